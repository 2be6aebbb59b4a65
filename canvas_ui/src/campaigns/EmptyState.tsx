// What shows instead of rows: nothing created yet, or nothing matching the filters.

export function EmptyState(props: { filtered: boolean; canEdit: boolean; onNew: () => void; onClear: () => void }) {
  if (props.filtered) {
    return (
      <div className="empty" data-testid="campaigns-empty">
        <p className="empty-title">No campaigns match these filters.</p>
        <button type="button" onClick={props.onClear}>Clear filters</button>
      </div>
    );
  }
  return (
    <div className="empty" data-testid="campaigns-empty">
      <p className="empty-title">No campaigns yet</p>
      {props.canEdit ? (
        <>
          <p className="muted">Draw your first journey on the canvas: an entry, a few steps, a goal.</p>
          <button type="button" className="primary" onClick={props.onNew}>New campaign</button>
        </>
      ) : (
        <p className="muted">Campaigns appear here once a marketer creates them.</p>
      )}
    </div>
  );
}
