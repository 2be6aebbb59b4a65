// Status multi-select as a row of checkbox chips.

import type { CampaignStatus } from "../types";
import { STATUSES } from "./query";

export function StatusFilter(props: { value: CampaignStatus[]; onChange: (statuses: CampaignStatus[]) => void }) {
  const toggle = (status: CampaignStatus, on: boolean) =>
    props.onChange(STATUSES.filter((s) => (s === status ? on : props.value.includes(s))));
  return (
    <fieldset className="status-filter" data-testid="status-filter">
      <legend>Status</legend>
      {STATUSES.map((status) => {
        const checked = props.value.includes(status);
        return (
          <label key={status} className={`chip-check status-${status}${checked ? " checked" : ""}`}>
            <input type="checkbox" checked={checked} onChange={(e) => toggle(status, e.target.checked)} />
            {status}
          </label>
        );
      })}
    </fieldset>
  );
}
