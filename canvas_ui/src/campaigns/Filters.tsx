// The toolbar above the table: name search, statuses, tag, sort.

import { DebouncedInput } from "./DebouncedInput";
import { hasFilters, SORTS, type ListFilters, type SortKey } from "./query";
import { StatusFilter } from "./StatusFilter";

export function Filters(props: { filters: ListFilters; onChange: (patch: Partial<ListFilters>) => void }) {
  const { filters, onChange } = props;
  return (
    <div className="filters">
      <DebouncedInput
        className="search"
        value={filters.q}
        onChange={(q) => onChange({ q })}
        placeholder="Search by name…"
        label="Search campaigns by name"
        testId="campaign-search"
      />
      <StatusFilter value={filters.statuses} onChange={(statuses) => onChange({ statuses })} />
      <DebouncedInput
        type="text"
        className="tag-input"
        value={filters.tag}
        onChange={(tag) => onChange({ tag })}
        placeholder="Tag"
        label="Filter by tag"
        testId="campaign-tag-filter"
      />
      <label className="sort">
        <span>Sort</span>
        <select value={filters.sort} onChange={(e) => onChange({ sort: e.target.value as SortKey })} data-testid="campaign-sort">
          {SORTS.map((s) => <option key={s.key} value={s.key}>{s.label}</option>)}
        </select>
      </label>
      {hasFilters(filters) && (
        <button type="button" className="link clear" onClick={() => onChange({ q: "", statuses: [], tag: "" })}>
          Clear filters
        </button>
      )}
    </div>
  );
}
