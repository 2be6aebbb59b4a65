// A text box that reports what was typed once typing pauses, and follows outside changes
// (a clicked tag chip, "Clear filters", back / forward) without eating keystrokes in flight.

import { useEffect, useRef, useState } from "react";

export function DebouncedInput(props: {
  value: string;
  onChange: (value: string) => void;
  delay?: number;
  placeholder?: string;
  label: string;
  type?: "search" | "text";
  className?: string;
  testId?: string;
}) {
  const { value, onChange, delay = 250 } = props;
  const [text, setText] = useState(value);
  const reported = useRef(value);
  const report = useRef(onChange);
  report.current = onChange; // a new callback each render must not restart the wait

  useEffect(() => {
    if (value === reported.current) return; // our own report coming back
    reported.current = value;
    setText(value);
  }, [value]);

  useEffect(() => {
    if (text === reported.current) return;
    const timer = window.setTimeout(() => {
      reported.current = text;
      report.current(text);
    }, delay);
    return () => window.clearTimeout(timer);
  }, [text, delay]);

  return (
    <input
      type={props.type ?? "search"}
      className={props.className}
      value={text}
      placeholder={props.placeholder}
      aria-label={props.label}
      data-testid={props.testId}
      onChange={(e) => setText(e.target.value)}
      onKeyDown={(e) => e.key === "Escape" && text && setText("")}
    />
  );
}
