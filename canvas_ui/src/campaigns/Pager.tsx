// "1–25 of 312" with previous / next.

import { formatCount } from "./format";
import { PAGE_SIZE } from "./query";

export function Pager(props: { page: number; total: number; shown: number; onPage: (page: number) => void }) {
  const { page, total } = props;
  const first = (page - 1) * PAGE_SIZE + 1;
  const last = first + props.shown - 1;
  const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
  const text = props.shown > 0
    ? `${formatCount(first)}–${formatCount(last)} of ${formatCount(total)}`
    : `${formatCount(total)} campaign${total === 1 ? "" : "s"}`;
  return (
    <nav className="pager" aria-label="Pages">
      <span data-testid="campaign-total">{text}</span>
      <button type="button" disabled={page <= 1} onClick={() => props.onPage(page - 1)} aria-label="Previous page">
        ‹ Previous
      </button>
      <button type="button" disabled={page >= pages} onClick={() => props.onPage(page + 1)} aria-label="Next page">
        Next ›
      </button>
    </nav>
  );
}
