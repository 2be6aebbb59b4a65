"""Finding customers by what callers know about them, creating the ones we have never seen,
and writing what callers tell us about them.

Events and imports name customers by `external_id`, `email` or `phone`, thousands at a
time. Resolution is set work: one SELECT per identifier kind, one INSERT for the unknown,
one more SELECT for what was inserted (or inserted by a concurrent request meanwhile).

Writing profiles (the bulk upsert API, PATCH, file imports) goes through `Upsert`: it
loads every profile the items name in one SELECT per identifier kind, applies the items in
order to that in-memory view (so an item sees what earlier items of the same request did,
and a conflict is found before anything is written), then writes with one executemany
UPDATE and one multi-row INSERT.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any, cast
from zoneinfo import available_timezones

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    String,
    any_,
    bindparam,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.core import clock
from engine.core.db import upsert
from engine.core.errors import InvalidInput, InvalidState, NotFound
from engine.core.models import Profile
from engine.core.pointers import token

#: the identifiers a customer may be named by, in the order they are matched
IDENTIFIERS = ("external_id", "email", "phone")
IN_CHUNK = 500
_PHONE_PUNCTUATION = re.compile(r"[\s().-]")

Identity = Mapping[str, Any]


def normalize(kind: str, value: Any) -> str:
    """The stored form of an identifier: emails compare case-insensitively, all are trimmed."""
    text = str(value).strip()
    if kind == "email":
        return text.lower()
    if kind == "phone":  # "+1 (555) 010-0100" and "+15550100100" are one customer
        return _PHONE_PUNCTUATION.sub("", text)
    return text


def identity_of(raw: Any, pointer: str) -> dict[str, str]:
    """The identifiers in `raw` (a request's `profile` object), normalized, or InvalidInput
    naming `pointer` when none is usable."""
    if not isinstance(raw, Mapping):
        raise InvalidInput.field(pointer, "must be an object with external_id, email or phone")
    found = {}
    for kind in IDENTIFIERS:
        try:
            value = _identifier(kind, raw.get(kind))
        except _Bad as exc:
            raise InvalidInput.field(f"{pointer}/{kind}", str(exc)) from None
        if value is not None:
            found[kind] = value
    if not found:
        raise InvalidInput.field(pointer, "must name the customer by external_id, email or phone")
    return found


def identity(checked: Mapping[str, Any]) -> dict[str, str]:
    """The identifiers of a `profile` object `identity_of` passed, normalized (without
    checking them again: a batch of 10,000 events is checked once)."""
    return {kind: normalize(kind, checked[kind]) for kind in IDENTIFIERS if checked.get(kind) is not None}


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
        return cast("list[int]", ids), 0  # every identity matched
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
    return cast("list[int]", ids), before  # every identity matched (unresolved is empty)


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
        found.update(session.execute(select(column, Profile.id).where(condition)).all())
        return found
    for start in range(0, len(values), IN_CHUNK):
        part = values[start:start + IN_CHUNK]
        found.update(session.execute(select(column, Profile.id).where(column.in_(part))).all())
    return found


def find(session: Session, identities: Sequence[Identity]) -> list[int | None]:
    """The profile id of each identity (same order), None for those nobody has; creates
    nothing. Matching is the same as `resolve`'s."""
    ids: list[int | None] = [None] * len(identities)
    _match(session, identities, ids)
    return ids


#: the largest id a database column of ours holds (64-bit); larger numbers are nobody's id
MAX_ID = 2**63 - 1


def existing_ids(session: Session, ids: Sequence[int]) -> set[int]:
    """Which of `ids` (each 1..MAX_ID) are profiles."""
    found: set[int] = set()
    for condition in where_in(session, Profile.__table__.c.id, sorted(set(ids))):
        found.update(session.scalars(select(Profile.id).where(condition)))
    return found


# --------------------------------------------------------------------------- writing profiles

OPT_OUTS = ("email_opt_out", "sms_opt_out", "push_opt_out")
#: what a client may write on a profile (bulk upsert, PATCH, imports)
FIELDS = (*IDENTIFIERS, "timezone", "attributes", "push_tokens", *OPT_OUTS)
#: what GET answers but these paths never write (points: award_points nodes; bounces: webhooks)
READ_ONLY = ("id", "points", "email_bounced_at", "created_at", "updated_at")
#: loose on purpose: one @, no spaces, a dot in the domain. Providers judge the rest.
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PHONE = re.compile(r"^\+?[0-9][0-9 ().-]*$")
PHONE_DIGITS = (6, 15)
ATTRIBUTE_KEY_MAX = 128
#: a profile's attributes as stored JSON, like an event's properties (engine/journeys/events.py)
MAX_ATTRIBUTES_BYTES = 64 * 1024
PUSH_TOKEN_MAX = 4096
#: names available_timezones() lists that depend on the machine rather than name a place
_MACHINE_ZONES = {"localtime", "posixrules", "Factory"}

#: (path under the item as a JSON pointer without the leading slash, message)
Problem = tuple[str, str]


class ConcurrentChange(InvalidState):
    """Another transaction stored one of the identifiers being written after we looked."""


class _Bad(Exception):
    """A field value is wrong; the message says how."""


def check_fields(raw: Any, *, patch: bool = False) -> tuple[dict[str, Any], list[Problem]]:
    """The normalized fields of one profile item and every problem in it, without a database.

    An upsert item (`patch=False`) must name the customer by external_id, email or phone; a
    null identifier there counts as not given (it is what the item is matched by). A PATCH
    body needs no identifier, and a null identifier clears it."""
    if not isinstance(raw, Mapping):
        return {}, [("", "must be an object")]
    fields: dict[str, Any] = {}
    problems: list[Problem] = []
    # profile fields in their own order, so problems come in the same order from any client
    for key, value in sorted(raw.items(), key=lambda kv: FIELDS.index(kv[0]) if kv[0] in FIELDS else len(FIELDS)):
        if key in READ_ONLY:
            problems.append((token(key), "is read-only"))
        elif key not in FIELDS:
            problems.append((token(key), f"is not a profile field (expected {', '.join(FIELDS)})"))
        elif key == "attributes":
            fields[key] = _attributes(value, problems)
        else:
            try:
                checked = _CHECKS[key](key, value)
            except _Bad as exc:
                problems.append((key, str(exc)))
                continue
            if checked is not None or patch or key not in IDENTIFIERS:
                fields[key] = checked
    named = any(fields.get(k) is not None for k in IDENTIFIERS) or any(p in IDENTIFIERS for p, _ in problems)
    if not patch and not named:
        problems.append(("", "must name the customer by external_id, email or phone"))
    return fields, problems


def _identifier(kind: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, (str, int)) or isinstance(value, bool) or not str(value).strip():
        raise _Bad("must be a non-empty string")
    text = normalize(kind, value)
    if "\x00" in text:
        raise _Bad("must not contain NUL characters")
    column_type = Profile.__table__.c[kind].type
    assert isinstance(column_type, String) and column_type.length is not None  # identifiers are VARCHAR(n)
    limit = column_type.length
    if len(text) > limit:
        raise _Bad(f"is longer than {limit} characters")
    if kind == "email" and not EMAIL.match(text):
        raise _Bad(f"{text!r} is not an email address (expected name@domain.tld)")
    if kind == "phone" and (not PHONE.match(text) or not PHONE_DIGITS[0] <= _digits(text) <= PHONE_DIGITS[1]):
        raise _Bad(f"{text!r} is not a phone number (6 to 15 digits, an optional leading +, "
                   "spaces, dots, dashes and parentheses)")
    return text


def _digits(text: str) -> int:
    return sum(c.isdigit() for c in text)


def _timezone(_key: str, value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or value not in _zones()):
        raise _Bad(f"{value!r} is not an IANA time zone name (e.g. Europe/Paris, America/New_York, UTC)")
    return value


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones() - _MACHINE_ZONES)


def _push_tokens(_key: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(
            isinstance(t, str) and t.strip() and len(t) <= PUSH_TOKEN_MAX for t in value):
        raise _Bad(f"must be a list of non-empty strings of up to {PUSH_TOKEN_MAX} characters")
    return list(dict.fromkeys(t.strip() for t in value))


def _flag(_key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Bad("must be true or false")
    return value


def _attributes(value: Any, problems: list[Problem]) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        problems.append(("attributes", "must be an object (its keys merge into the stored attributes; "
                                       "a null value removes one)"))
        return {}
    for key in value:
        if not isinstance(key, str) or not key.strip() or len(key) > ATTRIBUTE_KEY_MAX:
            problems.append((f"attributes/{token(key)}",
                             f"attribute names are non-empty strings of up to {ATTRIBUTE_KEY_MAX} characters"))
    return dict(value)


_CHECKS = {"external_id": _identifier, "email": _identifier, "phone": _identifier, "timezone": _timezone,
           "push_tokens": _push_tokens, **dict.fromkeys(OPT_OUTS, _flag)}


#: the columns Upsert reads and writes besides the id
_COLUMNS = (*FIELDS, "email_bounced_at")


def _blank() -> dict[str, Any]:
    return {**dict.fromkeys(_COLUMNS), "attributes": {}, "push_tokens": [], **dict.fromkeys(OPT_OUTS, False)}


@dataclass(eq=False)
class Row:
    """One profile as the items applied so far leave it; `id` is None until it is inserted."""

    id: int | None
    values: dict[str, Any]
    #: the identifiers as stored (None for a new profile)
    stored: tuple[Any, ...] | None = None
    changed: bool = False


@dataclass
class Applied:
    """What one item did: the profile it wrote (None when refused) and whether it made it."""

    row: Row | None
    created: bool = False
    problems: list[Problem] = field(default_factory=list)


class Upsert:
    """Items applied in order to an in-memory view of the profiles they name, then written
    together. Nothing is written before `write`, so a caller can refuse everything when an
    item is refused (the API) or keep the good ones (imports).

    An item matches the profile of its first identifier someone has (external_id, then
    email, then phone), as `resolve` does, or creates one. Its other identifiers are written
    to that profile: an email or phone may change, an external_id never does (an item whose
    external_id differs from the matched profile's names two customers). An identifier that
    belongs to another profile refuses the item. Attributes merge key by key (null removes
    a key); the other fields given replace the stored ones."""

    def __init__(self, session: Session):
        self.session = session
        self.rows: list[Row] = []
        self.by_id: dict[int, Row] = {}
        self.owner: dict[tuple[str, Any], Row] = {}

    def load(self, items: Sequence[Mapping[str, Any]]) -> None:
        """Read the stored profiles every identifier in `items` belongs to."""
        for kind in IDENTIFIERS:
            values = sorted({item[kind] for item in items if item.get(kind) is not None})
            if values:
                self._read(kind, values)

    def load_ids(self, ids: Sequence[int]) -> None:
        self._read("id", sorted(set(ids)))

    def row(self, profile_id: int) -> Row | None:
        return self.by_id.get(profile_id)

    def apply(self, item: Mapping[str, Any], target: Row | None = None) -> Applied:
        """Apply one item checked by `check_fields`: to `target` (PATCH) or to the profile it
        matches. A refused item changes nothing."""
        patch = target is not None
        row = target or self._match(item)
        problems = self._conflicts(item, row, patch) or _size_problems(row, item)
        if problems:
            return Applied(None, problems=problems)
        created = row is None
        if row is None:
            row = Row(None, _blank())
            self.rows.append(row)
        self._change(row, item)
        return Applied(row, created)

    def write(self, now: datetime) -> list[int]:
        """Store every changed profile: updates first (identifiers that move between profiles
        are cleared before they are set, so the unique indexes never see them twice), then
        one INSERT of the new ones. Returns the ids of the profiles written."""
        stored = [r for r in self.rows if r.id is not None and r.changed]
        new = [r for r in self.rows if r.id is None]
        try:
            moved = [r for r in stored if r.stored != tuple(r.values[k] for k in IDENTIFIERS)]
            if moved:
                self.session.execute(update(Profile), [{"id": r.id, **dict.fromkeys(IDENTIFIERS)} for r in moved])
            if stored:
                self.session.execute(update(Profile), [{"id": r.id, **r.values, "updated_at": now} for r in stored])
            if new:
                self._insert(new, now)
        except IntegrityError as exc:
            raise ConcurrentChange("another request stored some of these identifiers meanwhile; send the "
                                   "profiles again") from exc
        return cast("list[int]", [r.id for r in stored + new])  # _insert gave the new rows their ids

    # -- helpers ---------------------------------------------------------------------------
    def _insert(self, new: list[Row], now: datetime) -> None:
        """A plain executemany INSERT, then the new ids by identifier: on PostgreSQL an
        INSERT ... RETURNING of many rows is one huge statement that the driver parses
        client-side, several times slower than executemany's single prepared one."""
        table = Profile.__table__
        self.session.execute(insert(table), [{**r.values, "points": 0, "created_at": now, "updated_at": now}
                                             for r in new])
        for kind in IDENTIFIERS:
            rows = {r.values[kind]: r for r in new if r.id is None and r.values[kind] is not None}
            for condition in where_in(self.session, table.c[kind], sorted(rows)):
                for value, profile_id in self.session.execute(select(table.c[kind], table.c.id).where(condition)):
                    rows[value].id = profile_id
                    self.by_id[profile_id] = rows[value]

    def _read(self, key: str, values: list[Any]) -> None:
        table = Profile.__table__
        columns = [table.c.id, *(table.c[name] for name in _COLUMNS)]
        for condition in where_in(self.session, table.c[key], values):
            for record in self.session.execute(select(*columns).where(condition)).mappings():
                if record["id"] not in self.by_id:
                    values_ = {name: record[name] for name in _COLUMNS}
                    self._remember(Row(record["id"], values_, stored=tuple(values_[k] for k in IDENTIFIERS)))

    def _remember(self, row: Row) -> None:
        self.rows.append(row)
        self.by_id[cast(int, row.id)] = row  # read from the table: it has its id
        for kind in IDENTIFIERS:
            if row.values[kind] is not None:
                self.owner[(kind, row.values[kind])] = row

    def _match(self, item: Mapping[str, Any]) -> Row | None:
        for kind in IDENTIFIERS:
            value = item.get(kind)
            if value is not None and (kind, value) in self.owner:
                return self.owner[(kind, value)]
        return None

    def _conflicts(self, item: Mapping[str, Any], row: Row | None, patch: bool) -> list[Problem]:
        problems: list[Problem] = []
        for kind in IDENTIFIERS:
            value = item.get(kind)
            holder = self.owner.get((kind, value)) if value is not None else None
            if holder is not None and holder is not row:
                problems.append((kind, f"{value!r} belongs to another profile ({_which(holder)})"))
            elif kind == "external_id" and not patch and row is not None and value is not None \
                    and row.values[kind] not in (None, value):
                problems.append((kind, f"the profile matched by the other identifiers ({_which(row)}) has external_id "
                                       f"{row.values[kind]!r}: an upsert never changes an external_id (PATCH does)"))
        if patch and row is not None and all(item.get(k, row.values[k]) is None for k in IDENTIFIERS):
            problems.append(("", "a profile keeps at least one of external_id, email or phone"))
        return problems

    def _change(self, row: Row, item: Mapping[str, Any]) -> None:
        before = dict(row.values)
        for kind in IDENTIFIERS:
            if kind not in item or item[kind] == row.values[kind]:
                continue
            if row.values[kind] is not None:
                del self.owner[(kind, row.values[kind])]
            row.values[kind] = item[kind]
            if item[kind] is not None:
                self.owner[(kind, item[kind])] = row
            if kind == "email":  # a bounce belongs to the old address
                row.values["email_bounced_at"] = None
        for key in ("timezone", "push_tokens", *OPT_OUTS):
            if key in item:
                row.values[key] = item[key]
        if "attributes" in item:
            row.values["attributes"] = _merged(row.values["attributes"], item["attributes"])
        row.changed = row.changed or row.values != before


def _merged(stored: Any, given: Mapping[str, Any]) -> dict[str, Any]:
    """Stored attributes with the given ones merged in, key by key (null removes a key)."""
    merged = dict(stored) if isinstance(stored, Mapping) else {}
    for key, value in given.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def _size_problems(row: Row | None, item: Mapping[str, Any]) -> list[Problem]:
    """The attributes the item would leave on the profile, when larger than MAX_ATTRIBUTES_BYTES."""
    if "attributes" not in item:
        return []
    size = attributes_size(_merged(row.values["attributes"] if row is not None else {}, item["attributes"]))
    if size <= MAX_ATTRIBUTES_BYTES:
        return []
    return [("attributes", f"would take {size:,} bytes as JSON on the profile; at most {MAX_ATTRIBUTES_BYTES:,} "
                           "are kept (remove attributes with null)")]


def attributes_size(attributes: Mapping[str, Any]) -> int:
    """The bytes attributes take as stored JSON (as events count their properties)."""
    return len(json.dumps(attributes))


def _which(row: Row) -> str:
    return f"id {row.id}" if row.id is not None else "one an earlier item creates"


def where_in(session: Session, column: Any, values: list[Any]) -> Iterator[ColumnElement[bool]]:
    """Conditions that together say `column IN values`: one (an array parameter) on
    PostgreSQL, one per IN_CHUNK values on SQLite (whose statements take few parameters)."""
    if session.get_bind().dialect.name == "postgresql":
        kind = BigInteger() if isinstance(column.type, Integer) else String()
        yield column == any_(bindparam(None, values, type_=ARRAY(kind)))
        return
    for start in range(0, len(values), IN_CHUNK):
        yield column.in_(values[start:start + IN_CHUNK])


# --------------------------------------------------------------------------- the API's entry points


def upsert_profiles(session: Session, items: Sequence[Any], now: datetime,
                    pointer: str = "/profiles") -> tuple[list[int], int]:
    """Create or update one profile per item, all or nothing. Returns each item's profile
    id and how many items created one (the others updated one, possibly one an earlier
    item created). Any bad item raises InvalidInput naming every bad item's pointer."""
    checked = [check_fields(item) for item in items]
    plan = Upsert(session)
    plan.load([fields for fields, problems in checked if not problems])
    problems: list[tuple[int, Problem]] = []
    applied: list[Applied] = []
    for index, (fields, found) in enumerate(checked):
        outcome = Applied(None, problems=found) if found else plan.apply(fields)
        applied.append(outcome)
        problems.extend((index, p) for p in outcome.problems)
    if problems:
        raise _invalid([(f"{pointer}/{i}", p) for i, p in problems], len({i for i, _ in problems}))
    plan.write(now)
    written = [cast(Row, a.row) for a in applied]  # none refused: each wrote its row, which has its id now
    return cast("list[int]", [row.id for row in written]), sum(a.created for a in applied)


def patch_profile(session: Session, profile_id: int, raw: Any, now: datetime) -> None:
    """Change one profile's given fields (null clears an identifier or the time zone)."""
    plan = Upsert(session)
    plan.load_ids([profile_id])
    row = plan.row(profile_id)
    if row is None:
        raise NotFound(f"profile {profile_id} does not exist")
    fields, problems = check_fields(raw, patch=True)
    if not problems:
        plan.load([fields])
        problems = plan.apply(fields, target=row).problems
    if problems:
        raise _invalid([("", p) for p in problems], 1)
    plan.write(now)


def refuse(problems: list[dict[str, Any]], body: Any) -> InvalidInput:
    """The error for a refused upsert or PATCH body: how many profiles are invalid, the
    first problem and how many more."""
    bad = len({p["pointer"].split("/")[2] for p in problems if p["pointer"].startswith("/profiles/")}) or 1
    return _invalid([(p["pointer"], ("", p["message"])) for p in problems], bad)


def _invalid(problems: Sequence[tuple[str, Problem]], bad: int) -> InvalidInput:
    details = [{"pointer": f"{base}/{path}" if path else base, "message": message}
               for base, (path, message) in problems]
    first = details[0]
    what = "the profile is invalid" if bad == 1 else f"{bad} profiles are invalid"
    return InvalidInput(f"{what}: {first['pointer'] or 'body'} {first['message']}"
                        + (f" (and {len(details) - 1} more)" if len(details) > 1 else ""), details)
