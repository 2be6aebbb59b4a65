"""The action tracking table: one row per customer per step (who left which node by which
port, when, and what became of the message the step wrote), to page through or export.

Rows are journey steps joined to their customer and to the outbox row of the same
(enrollment, node). Newest first; paging is by id (keyset), so page 10,000 costs what page 1
costs, and an export walks the table in chunks, each its own short query, holding one chunk
in memory however large the table is.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, SQLColumnExpression, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from engine.core.clock import iso
from engine.core.errors import InvalidInput
from engine.core.models import JourneyStep, OutboxMessage, Profile

#: every column, in the table's and the CSV's order
COLUMNS = ("id", "at", "profile_id", "external_id", "email", "phone", "node_id", "node_label", "node_type",
           "node_type_label", "port", "message_status")
#: for developers only, in an export that names them: the node's id and its type's key
DEVELOPER_COLUMNS = ("node_id", "node_type")
#: a CSV export without `columns`: every column in the marketer's words (names, not keys)
EXPORT_COLUMNS = tuple(c for c in COLUMNS if c not in DEVELOPER_COLUMNS)
#: rows per query of an export
EXPORT_CHUNK = 5000
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
NUMBER = re.compile(r"[+-]?[0-9][0-9 .]*")

s, p, o = JourneyStep, Profile, OutboxMessage
MESSAGE_STATUS = func.coalesce(o.delivery_status, o.status)
_SELECTED: dict[str, SQLColumnExpression[Any]] = {
    "id": s.id, "at": s.at, "profile_id": s.profile_id, "external_id": p.external_id, "email": p.email,
    "phone": p.phone, "node_id": s.node_id, "port": s.port, "message_status": MESSAGE_STATUS,
}


@dataclass(frozen=True)
class Filters:
    """What the table is narrowed to; every field optional."""

    node: str | None = None
    port: str | None = None
    status: str | None = None
    #: an id, email, phone or external id
    profile: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        if self.since and self.until and self.since > self.until:
            raise InvalidInput.field("since", "must not be after until")


def _matching(campaign_id: int, filters: Filters) -> Select[Any]:
    """The ids of the steps the filters keep (the outbox is joined only to filter by status)."""
    query = select(s.id).where(s.campaign_id == campaign_id)
    if filters.status:
        query = query.outerjoin(o, (o.enrollment_id == s.enrollment_id) & (o.node_id == s.node_id))
        query = query.where(o.id.is_(None) if filters.status == "none" else MESSAGE_STATUS == filters.status)
    if filters.node:
        query = query.where(s.node_id == filters.node)
    if filters.port:
        query = query.where(s.port == filters.port)
    if filters.profile:
        query = query.where(s.profile_id.in_(_profiles_matching(filters.profile)))
    if filters.since:
        query = query.where(s.at >= filters.since)
    if filters.until:
        query = query.where(s.at <= filters.until)
    return query


def _rows(campaign_id: int, filters: Filters, before: int | None, limit: int) -> Select[Any]:
    """One page of rows, newest first. The page's ids are chosen first and only they are
    joined to customers and messages: a plan that joins every matching step and sorts them
    afterwards (PostgreSQL's choice before it has statistics of a fresh table) would make
    each page of an export cost the whole rest of the table."""
    chosen = _matching(campaign_id, filters)
    if before is not None:
        chosen = chosen.where(s.id < before)
    page_ids = chosen.order_by(s.id.desc()).limit(limit).subquery()
    return (select(*_SELECTED.values()).select_from(page_ids)
            .join(s, s.id == page_ids.c.id)
            .outerjoin(p, p.id == s.profile_id)
            .outerjoin(o, (o.enrollment_id == s.enrollment_id) & (o.node_id == s.node_id))
            .order_by(s.id.desc()))


def _profiles_matching(text: str) -> Select[Any]:
    text = text.strip()
    matches = [p.email == text.lower(), p.external_id == text, p.phone == text]
    if text.isdigit() and len(text) < 19:
        matches.append(p.id == int(text))
    return select(p.id).where(or_(*matches))


#: {node id: (label, type key, type label)}, as engine.journeys.report.labels answers it
Labels = Mapping[str, tuple[str, str, str]]
#: a step of a node no version of the campaign has (it cannot be named)
UNKNOWN_NODE = ("Unknown step", "", "")


def page(session: Session, campaign_id: int, filters: Filters, labels: Labels, *,
         limit: int, before: int | None = None) -> dict[str, Any]:
    """One page, newest first, older than `before` (a row id); `next_before` continues."""
    total = session.scalar(select(func.count()).select_from(_matching(campaign_id, filters).subquery()))
    rows = session.execute(_rows(campaign_id, filters, before, limit + 1)).all()
    items = [_item(row, labels) for row in rows[:limit]]
    return {"items": items, "total": total, "limit": limit,
            "next_before": items[-1]["id"] if len(rows) > limit else None}


def _item(row: Any, labels: Labels) -> dict[str, Any]:
    """A row as the API and the CSV answer it: the node named as the marketer named it, and
    its type as the palette names it, beside the id and key developers filter by."""
    item = dict(zip(_SELECTED, row, strict=True))
    item["at"] = iso(item["at"])
    item["node_label"], item["node_type"], item["node_type_label"] = labels.get(item["node_id"], UNKNOWN_NODE)
    return item


def export_csv(sessions: sessionmaker[Session], campaign_id: int, filters: Filters,
               labels: Labels, columns: Sequence[str]) -> Iterator[str]:
    """The whole filtered table as CSV text, a chunk of rows at a time. Rows written after
    the export started are left out, so a running campaign exports a consistent cut."""
    with sessions() as session:
        last = session.scalar(select(func.max(s.id)).where(s.campaign_id == campaign_id))
    yield _csv_lines([list(columns)])
    if last is None:
        return
    before = last + 1
    while True:
        with sessions() as session:
            rows = session.execute(_rows(campaign_id, filters, before, EXPORT_CHUNK)).all()
        if not rows:
            return
        items = (_item(row, labels) for row in rows)
        yield _csv_lines([[_cell(item[c]) for c in columns] for item in items])
        before = rows[-1][0]


def _csv_lines(rows: list[list[Any]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue()


def _cell(value: Any) -> Any:
    """A spreadsheet runs a cell that starts with = + - @ (or a tab or CR) as a formula:
    customer-supplied text (emails, external ids) is quoted so it stays text. A plain
    number or phone number (+33 6 12...) carries no formula and is left as it is."""
    if isinstance(value, str) and value[:1] in FORMULA_STARTS and not NUMBER.fullmatch(value):
        return "'" + value
    return "" if value is None else value
