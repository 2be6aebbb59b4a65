"""Finding customers by what callers know about them, creating the ones we have never seen.

Events and imports name customers by `external_id`, `email` or `phone`, thousands at a
time. Resolution is set work: one SELECT per identifier kind, one INSERT for the unknown,
one more SELECT for what was inserted (or inserted by a concurrent request meanwhile).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import String, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from engine import clock
from engine.db import upsert
from engine.errors import InvalidInput
from engine.models import Profile

#: the identifiers a customer may be named by, in the order they are matched
IDENTIFIERS = ("external_id", "email", "phone")
IN_CHUNK = 500

Identity = Mapping[str, Any]


def normalize(kind: str, value: Any) -> str:
    """The stored form of an identifier: emails compare case-insensitively, all are trimmed."""
    text = str(value).strip()
    return text.lower() if kind == "email" else text


def identity_of(raw: Any, pointer: str) -> dict[str, str]:
    """The identifiers in `raw` (a request's `profile` object), normalized, or InvalidInput
    naming `pointer` when none is usable."""
    if not isinstance(raw, Mapping):
        raise InvalidInput.field(pointer, "must be an object with external_id, email or phone")
    found = {}
    for kind in IDENTIFIERS:
        value = raw.get(kind)
        if value is None:
            continue
        if not isinstance(value, (str, int)) or isinstance(value, bool) or not str(value).strip():
            raise InvalidInput.field(f"{pointer}/{kind}", "must be a non-empty string")
        if len(str(value)) > Profile.__table__.c[kind].type.length:
            raise InvalidInput.field(f"{pointer}/{kind}", f"is longer than {Profile.__table__.c[kind].type.length}")
        found[kind] = normalize(kind, value)
    if not found:
        raise InvalidInput.field(pointer, "must name the customer by external_id, email or phone")
    return found


def resolve(session: Session, identities: Sequence[Identity]) -> tuple[list[int], int]:
    """The profile id of each identity (same order), creating profiles for the unknown ones
    with every identifier given. Returns (ids, how many profiles were created).

    An identity matches by its first identifier that some profile has (external_id, then
    email, then phone), so `{"external_id": "u1", "email": "a@x"}` finds the profile that
    already has a@x rather than failing on the unique email."""
    ids: list[int | None] = [None] * len(identities)
    _match(session, identities, ids)
    missing = [i for i, found in enumerate(ids) if found is None]
    if not missing:
        return ids, 0  # type: ignore[return-value]
    now = clock.now()
    rows, seen = [], set()
    for i in missing:
        key = _first_key(identities[i])
        if key not in seen:
            seen.add(key)
            rows.append({**{k: identities[i][k] for k in IDENTIFIERS if k in identities[i]},
                         "attributes": {}, "push_tokens": [], "points": 0, "created_at": now, "updated_at": now})
    before = len(rows)
    session.execute(upsert(session, Profile).on_conflict_do_nothing(), rows)
    _match(session, identities, ids)
    unresolved = [i for i, found in enumerate(ids) if found is None]
    if unresolved:  # an identifier of a new profile belongs to another one's other identifier
        first = identities[unresolved[0]]
        raise InvalidInput.field("profile", f"cannot create a profile for {dict(first)}: one of its identifiers "
                                            "belongs to a different customer")
    return ids, before  # type: ignore[return-value]


def _first_key(identity: Identity) -> tuple[str, str]:
    kind = next(k for k in IDENTIFIERS if k in identity)
    return kind, identity[kind]


def _match(session: Session, identities: Sequence[Identity], ids: list[int | None]) -> None:
    for kind in IDENTIFIERS:
        wanted = {identity[kind] for i, identity in enumerate(identities) if ids[i] is None and kind in identity}
        if not wanted:
            continue
        found = _lookup(session, kind, sorted(wanted))
        for i, identity in enumerate(identities):
            if ids[i] is None and kind in identity:
                ids[i] = found.get(identity[kind])


def _lookup(session: Session, kind: str, values: list[str]) -> dict[str, int]:
    column = Profile.__table__.c[kind]
    found: dict[str, int] = {}
    if session.get_bind().dialect.name == "postgresql":
        condition = column == any_(bindparam(None, values, type_=ARRAY(String)))
        found.update(session.execute(select(column, Profile.id).where(condition)).tuples())
        return found
    for start in range(0, len(values), IN_CHUNK):
        part = values[start:start + IN_CHUNK]
        found.update(session.execute(select(column, Profile.id).where(column.in_(part))).tuples())
    return found
