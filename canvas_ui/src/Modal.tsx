// A dialog for questions that need an answer before going on (delete, stop, leave unsaved).

import { useEffect, useRef } from "react";

export function Confirm(props: {
  title: string;
  message: string;
  confirmLabel: string;
  danger?: boolean;
  onConfirm: () => void;
  onCancel: () => void;
}) {
  const confirmButton = useRef<HTMLButtonElement>(null);
  const cancel = useRef(props.onCancel);
  cancel.current = props.onCancel;
  useEffect(() => {
    confirmButton.current?.focus(); // once, when it opens: a re-render must not steal focus
    const onKey = (event: KeyboardEvent) => event.key === "Escape" && cancel.current();
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, []);
  return (
    <div className="modal-backdrop" onClick={props.onCancel}>
      <div className="modal" role="dialog" aria-modal="true" aria-labelledby="modal-title" onClick={(e) => e.stopPropagation()}>
        <h3 id="modal-title">{props.title}</h3>
        <p>{props.message}</p>
        <div className="actions">
          <button type="button" onClick={props.onCancel}>Cancel</button>
          <button type="button" ref={confirmButton} className={props.danger ? "primary danger-fill" : "primary"} onClick={props.onConfirm}>
            {props.confirmLabel}
          </button>
        </div>
      </div>
    </div>
  );
}

/** One answer of a `Choose` dialog. */
export interface Choice {
  label: string;
  onChoose: () => void;
  kind?: "primary" | "danger";
  testId?: string;
}

/**
 * A question with several answers (leave with unsaved changes: save, leave, stay). Focus
 * starts on `initial` (the answer that loses nothing), Tab stays inside the dialog, Escape
 * and a click outside answer `onCancel`, and focus returns where it was when it closes.
 */
export function Choose(props: {
  title: string;
  message: string;
  choices: Choice[];
  initial: number;
  onCancel: () => void;
  testId?: string;
}) {
  const box = useRef<HTMLDivElement>(null);
  const cancel = useRef(props.onCancel);
  cancel.current = props.onCancel;
  useEffect(() => {
    const before = document.activeElement as HTMLElement | null;
    box.current?.querySelectorAll<HTMLButtonElement>("button")[props.initial]?.focus();
    const onKey = (event: KeyboardEvent) => {
      if (event.key === "Escape") {
        event.preventDefault();
        cancel.current();
      } else if (event.key === "Tab" && box.current) {
        trapTab(event, box.current);
      }
    };
    window.addEventListener("keydown", onKey, true);
    return () => {
      window.removeEventListener("keydown", onKey, true);
      before?.focus?.();
    };
    // once, when it opens: a re-render must not steal focus
  }, []);
  return (
    <div className="modal-backdrop" onClick={props.onCancel}>
      <div className="modal" role="alertdialog" aria-modal="true" aria-labelledby="choose-title" aria-describedby="choose-message"
           data-testid={props.testId} ref={box} onClick={(e) => e.stopPropagation()}>
        <h3 id="choose-title">{props.title}</h3>
        <p id="choose-message">{props.message}</p>
        <div className="actions">
          {props.choices.map((c) => (
            <button key={c.label} type="button" data-testid={c.testId} onClick={c.onChoose}
                    className={c.kind === "primary" ? "primary" : c.kind === "danger" ? "danger" : undefined}>
              {c.label}
            </button>
          ))}
        </div>
      </div>
    </div>
  );
}

/** Keep Tab and Shift+Tab cycling through the buttons of `box`. */
function trapTab(event: KeyboardEvent, box: HTMLElement): void {
  const buttons = Array.from(box.querySelectorAll<HTMLButtonElement>("button:not([disabled])"));
  if (!buttons.length) return;
  const at = buttons.indexOf(document.activeElement as HTMLButtonElement);
  const next = event.shiftKey ? (at <= 0 ? buttons.length - 1 : at - 1) : (at + 1) % buttons.length;
  event.preventDefault();
  buttons[next].focus();
}
