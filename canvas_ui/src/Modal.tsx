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
