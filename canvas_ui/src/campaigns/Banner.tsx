// A message above the table that the user can close.

import type { ReactNode } from "react";

export function Banner(props: { kind: "error" | "info"; onDismiss: () => void; children: ReactNode; testId?: string }) {
  return (
    <div className={`banner ${props.kind} campaigns-banner`} role={props.kind === "error" ? "alert" : "status"} data-testid={props.testId}>
      <span className="banner-text">{props.children}</span>
      <button type="button" className="dismiss" aria-label="Dismiss" title="Dismiss" onClick={props.onDismiss}>×</button>
    </div>
  );
}
