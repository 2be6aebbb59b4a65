"""Profile imports from files, for the API (`POST /api/profiles/import`) and the CLI
(`campaign-canvas import-profiles FILE`).

Formats
-------
CSV: UTF-8 (a byte order mark is fine), a header row first (line 1), separated by commas,
or by semicolons or tabs when the header uses more of those.

- `external_id`, `email`, `phone`, `timezone`: the profile's fields; a row must name the
  customer by at least one of the three identifiers.
- `email_opt_out`, `sms_opt_out`, `push_opt_out`: true/false, yes/no or 1/0.
- `push_tokens`: the device tokens, separated by spaces.
- Any other column is an attribute named by the column: `plan` and `attributes.plan` both
  set the attribute `plan`. Values are kept as strings (so `00123` stays `00123`) unless
  the column name ends with a type: `age:number` (an integer or a decimal number) or
  `vip:boolean` (true/false, yes/no, 1/0); `:string` is the default, spelt out.
- An empty cell changes nothing: it neither sets nor clears the value.

JSON: one object per line (JSON lines, `.jsonl` / `.ndjson`), or one array of objects
(`.json`); each object is an item of `POST /api/profiles`.

Rows are applied in order, as the items of a bulk upsert are (see `engine.journeys.profiles.Upsert`).
A bad row is refused with its line, field and reason (the first REJECTED_KEPT problems are
kept on the job; every refused row is counted) and the good rows are kept.

Why chunks: the file is streamed CHUNK_ROWS rows at a time and each chunk is one
transaction that also updates the job's counters, so a file of any size never sits in
memory, `GET /api/imports/<id>` shows exact progress while it runs, and a crash keeps
every committed chunk. Importing the same file again is harmless (rows are upserts).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import re
import shutil
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import IO, Any, TextIO

from sqlalchemy.orm import Session, sessionmaker

from engine.core import clock, db, json_input
from engine.core.clock import iso
from engine.core.errors import CampaignCanvasError, InvalidInput
from engine.core.models import ImportJob
from engine.core.pointers import token
from engine.journeys.profiles import (
    IDENTIFIERS,
    OPT_OUTS,
    ConcurrentChange,
    Upsert,
    check_fields,
)
from engine.journeys.segments import profiles_changed

log = logging.getLogger(__name__)

CHUNK_ROWS = 1000
#: problems kept on the job (every refused row is counted)
REJECTED_KEPT = 1000
#: files with fewer rows are imported while the request waits
SYNC_ROWS = 5000
#: a chunk refused because a concurrent writer took an identifier is read and tried again
CHUNK_ATTEMPTS = 3
BLOCK = 1 << 16
#: how far the JSON array reader looks ahead for the end of one element
JSON_VALUE_MAX = 1 << 20
#: the longest CSV line read (a row's identifiers and 64 KiB of attributes fit many times)
LINE_MAX = 1 << 20
#: rows that cannot be read as CSV (see `_Lines`) before the import stops: past this the
#: file is not CSV the way we read it, and re-reading swallowed lines would cost too much
UNREADABLE_MAX = 100

FORMATS = {"csv": "csv", "json": "json", "jsonl": "json", "ndjson": "json"}
MIMETYPES = {"text/csv": "csv", "application/csv": "csv", "application/json": "json",
             "application/x-ndjson": "json", "application/jsonl": "json", "application/x-jsonlines": "json"}
#: CSV columns that are profile fields rather than attributes
PROFILE_COLUMNS = (*IDENTIFIERS, "timezone", "push_tokens", *OPT_OUTS)
TYPES = ("string", "number", "boolean")
#: CSV separators, the first winning ties
DELIMITERS = (",", ";", "\t")
TRUE, FALSE = {"true", "yes", "1", "y", "t"}, {"false", "no", "0", "n", "f"}
NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
INTEGER = re.compile(r"^[+-]?\d+$")


@dataclass
class Record:
    """One row of a file, converted and checked: `fields` for `Upsert.apply` unless
    `problems` lists (field as the file names it, or None for the row, message)."""

    line: int
    fields: dict[str, Any] = field(default_factory=dict)
    problems: list[tuple[str | None, str]] = field(default_factory=list)
    #: profile field paths ("email", "attributes/age") to the file's name for them
    names: dict[str, str] = field(default_factory=dict)

    def name_of(self, path: str) -> str | None:
        return self.names.get(path, path.replace("/", ".")) if path else None


# --------------------------------------------------------------------------- reading files


def format_of(filename: str | None, mimetype: str | None = None, explicit: str | None = None) -> str:
    """`csv` or `json`: as told, else by the file name's extension, else by its media type."""
    if explicit:
        if explicit.lower() not in FORMATS:
            raise InvalidInput.field("format", f"must be one of {', '.join(FORMATS)}")
        return FORMATS[explicit.lower()]
    suffix = Path(filename or "").suffix.lower().lstrip(".")
    if suffix in FORMATS:
        return FORMATS[suffix]
    if mimetype in MIMETYPES:
        return MIMETYPES[mimetype]
    raise InvalidInput.field("file", f"is neither CSV nor JSON: name it .csv, .json or .jsonl, send it as text/csv "
                                     f"or application/x-ndjson, or add ?format=csv|json (got {filename or mimetype!r})")


def spool(stream: IO[bytes], suffix: str = "") -> Path:
    """Copy an upload to a file of our own, block by block (the request's stream is gone
    once it is answered, and a background import outlives it)."""
    with tempfile.NamedTemporaryFile("wb", prefix="cc-import-", suffix=suffix, delete=False) as out:
        shutil.copyfileobj(stream, out, BLOCK)
    return Path(out.name)


def estimate_rows(path: Path, fmt: str) -> int:
    """The file's line count less the CSV header: exact unless quoted cells span lines or
    lines are blank (a pretty-printed JSON array counts its lines). Read in blocks."""
    lines, last = 0, b"\n"
    with path.open("rb") as file:
        while block := file.read(BLOCK * 16):
            lines += block.count(b"\n")
            last = block[-1:]
    lines += last != b"\n"
    return max(lines - 1, 0) if fmt == "csv" else lines


class Source:
    """The records of a file, read lazily. Opening it reads the CSV header, so a file that
    cannot be imported at all is refused before a job exists. `temporary` files (spooled
    uploads) are deleted on close."""

    def __init__(self, path: Path, fmt: str, *, temporary: bool = False):
        self.path, self.fmt, self.temporary = path, fmt, temporary
        #: the last line read (for errors that stop the whole file)
        self.line = 0
        self._file = path.open("rb")
        self._text = io.TextIOWrapper(self._file, encoding="utf-8-sig", newline="")
        try:
            self._columns = self._header() if fmt == "csv" else self._json_head()
        except BaseException:
            self.close()
            raise

    def __iter__(self) -> Iterator[Record]:
        return self._csv() if self.fmt == "csv" else self._json()

    def close(self) -> None:
        self._text.close()
        if self.temporary:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- CSV -------------------------------------------------------------------------------
    def _header(self) -> list[Column]:
        try:
            first = self._text.readline(BLOCK)
            self._text.seek(0)
            # the separator the header uses most: spreadsheets in many locales write ";"
            self._delimiter = max(DELIMITERS, key=first.count)
            self._lines = _Lines(self._text)
            self._reader = csv.reader(self._lines, delimiter=self._delimiter, strict=True)
            header = next(self._reader, None)
        except UnicodeDecodeError:
            raise InvalidInput.field("file", "is not UTF-8 text") from None
        except csv.Error as exc:
            raise InvalidInput.field("file", f"line 1: the header cannot be read as CSV ({exc})") from None
        if not header:
            raise InvalidInput.field("file", "is empty: a CSV file starts with a header row naming its columns")
        self.line = self._lines.last
        return columns(header)

    def _csv(self) -> Iterator[Record]:
        unreadable = 0
        while True:
            self._lines.start_row()
            try:
                cells = next(self._reader)
            except StopIteration:
                return
            except csv.Error as exc:  # a quote never closed, or text after a closing quote
                unreadable += 1
                if unreadable > UNREADABLE_MAX:
                    raise ValueError(f"more than {UNREADABLE_MAX} rows cannot be read as CSV (quotes that are never "
                                     f"closed?): is the file separated by {self._delimiter!r}, "
                                     "with '\"' quotes?") from None
                line, self.line = self._lines.first, self._lines.first
                yield Record(line, problems=[(None, _unreadable(exc, self._lines, self._delimiter))])
                self._lines.read_again_after_first()
                continue
            line, self.line = self._lines.first, self._lines.last
            if any(cell.strip() for cell in cells):
                yield csv_record(line, cells, self._columns)

    # -- JSON ------------------------------------------------------------------------------
    def _json_head(self) -> list[Column]:
        try:
            self._head = self._text.read(BLOCK)
        except UnicodeDecodeError:
            raise InvalidInput.field("file", "is not UTF-8 text") from None
        if not self._head.strip():
            raise InvalidInput.field("file", "is empty")
        return []

    def _json(self) -> Iterator[Record]:
        if self._head.lstrip().startswith("["):
            yield from self._array(self._head)
            return
        self._text.seek(0)
        for number, text in enumerate(self._text, 1):
            self.line = number
            if text.strip():
                yield json_record(number, text)

    def _array(self, head: str) -> Iterator[Record]:
        """The elements of a top-level JSON array, decoded one at a time from a rolling
        buffer (the file is never read whole)."""
        reader = _ArrayReader(self._text, head)
        for line, value in reader:
            self.line = line
            yield object_record(line, value)


class _Lines:
    """The physical lines of a CSV file for csv.reader, numbered, keeping those of the row
    being read: when a row cannot be read (its quote is never closed, so it swallowed the
    lines after it), those lines are handed out again, to be read as rows of their own.
    What a row keeps is bounded by csv's field size limit (131,072 characters) plus a line,
    and a line by LINE_MAX."""

    def __init__(self, text: TextIO):
        self.text = text
        self.number = 0
        #: (number, line) to hand out again before reading on
        self.again: deque[tuple[int, str]] = deque()
        self.row: list[tuple[int, str]] = []

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if self.again:
            number, line = self.again.popleft()
        else:
            line = self.text.readline(LINE_MAX + 1)
            if not line:
                raise StopIteration
            self.number += 1
            number = self.number
            if len(line) > LINE_MAX:
                raise ValueError(f"line {number} is longer than {LINE_MAX:,} characters: is this a CSV file?")
        self.row.append((number, line))
        return line

    def start_row(self) -> None:
        self.row = []

    @property
    def first(self) -> int:
        """The number of the current row's first line."""
        return self.row[0][0] if self.row else self.number + 1

    @property
    def last(self) -> int:
        return self.row[-1][0] if self.row else self.number

    def read_again_after_first(self) -> None:
        """Hand out the current row's lines but its first again."""
        self.again.extendleft(reversed(self.row[1:]))
        self.row = []


def _unreadable(exc: csv.Error, lines: _Lines, delimiter: str) -> str:
    """Why a row cannot be read, in words, for a problem on the row's first line."""
    reason = str(exc)
    if reason.startswith(("unexpected end of data", "field larger than field limit")):
        return (f"cannot be read: a quoted cell starts on this line and its closing quote never comes (read on to "
                f"line {lines.last}); this row is not imported and the lines after it are read as rows of their own. "
                "Close the quote, or double a quote inside a quoted cell (\"\")")
    if "expected after" in reason:
        return (f"cannot be read: a quoted cell ends before the next {delimiter!r} (on line {lines.last}); quote the "
                "whole cell and double every quote inside it (\"\"); this row is not imported")
    return f"cannot be read as CSV ({reason}); this row is not imported"


class _ArrayReader:
    def __init__(self, text: TextIO, head: str):
        self.text, self.buf, self.pos, self.line, self.eof = text, head, 0, 1, False

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        self._expect("[")
        if self._peek() == "]":
            return
        while True:
            yield self._value()
            if self._expect(",]") == "]":
                return

    def _fill(self) -> bool:
        """Drop what was read, append the next block; False at the end of the file."""
        self.line += self.buf.count("\n", 0, self.pos)
        self.buf, self.pos = self.buf[self.pos:], 0
        block = self.text.read(BLOCK)
        self.eof = not block
        self.buf += block
        return bool(block)

    def _peek(self) -> str:
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos].isspace():
                self.pos += 1
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._fill():
                return ""

    def _expect(self, chars: str) -> str:
        found = self._peek()
        if not found or found not in chars:
            raise ValueError(f"line {self._line()}: expected {' or '.join(repr(c) for c in chars)} in the JSON array, "
                             f"found {found or 'the end of the file'!r}")
        self.pos += 1
        return found

    def _value(self) -> tuple[int, Any]:
        self._peek()
        while True:
            try:
                value, end = json_input.raw_decode(self.buf, self.pos)
                if end < len(self.buf) or self.eof:
                    line = self._line()
                    self.pos = end
                    return line, value
            except InvalidInput:  # too deep to parse, so where it ends is unknown: the file stops here
                raise ValueError(f"line {self._line()}: the value {json_input.TOO_DEEP}") from None
            except json.JSONDecodeError as exc:
                if self.eof or len(self.buf) - self.pos > JSON_VALUE_MAX:
                    raise ValueError(f"line {self._line()}: not valid JSON ({exc.msg})") from None
            self._fill()

    def _line(self) -> int:
        return self.line + self.buf.count("\n", 0, self.pos)


# --------------------------------------------------------------------------- rows to records


@dataclass(frozen=True)
class Column:
    header: str
    #: a profile field, or "attributes"
    target: str
    #: the attribute's name
    name: str = ""
    kind: str = "string"


def columns(header: list[str]) -> list[Column]:
    """What each CSV column sets; InvalidInput listing every unusable column name."""
    found: list[Column] = []
    problems: list[dict[str, str]] = []
    seen: dict[tuple[str, str], str] = {}
    for index, raw in enumerate(header, 1):
        column, problem = _column(raw)
        key = (column.target, column.name)
        if problem is None and key in seen:
            problem = f"sets the same field as column {seen[key]!r}"
        if problem is not None:
            problems.append({"pointer": "file", "message": f"column {index} ({raw!r}) {problem}"})
        seen.setdefault(key, raw)
        found.append(column)
    if problems:
        raise InvalidInput(f"the CSV header cannot be imported: {problems[0]['message']}"
                           + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""), problems)
    return found


def _column(raw: str) -> tuple[Column, str | None]:
    text = raw.strip()
    base, colon, suffix = text.rpartition(":")
    kind = "string"
    if colon and suffix.strip().lower() in TYPES:
        text, kind = base.strip(), suffix.strip().lower()
    if text in PROFILE_COLUMNS:
        return Column(raw, text), None if kind == "string" else "is a profile field: it takes no type suffix"
    name = text.removeprefix("attributes.").strip()
    if not name:
        return Column(raw, "attributes", name, kind), "has no name"
    return Column(raw, "attributes", name, kind), None


def csv_record(line: int, cells: list[str], cols: list[Column]) -> Record:
    record = Record(line)
    extra = [c for c in cells[len(cols):] if c.strip()]
    if extra:
        record.problems.append((None, f"has {len(cells)} cells; the header names {len(cols)} columns"))
        return record
    raw: dict[str, Any] = {}
    attributes: dict[str, Any] = {}
    for column, cell in zip(cols, cells, strict=False):
        text = cell.strip()
        if not text:
            continue
        try:
            value = _convert(column, text)
        except ValueError as exc:
            record.problems.append((column.header, str(exc)))
            continue
        if column.target == "attributes":
            attributes[column.name] = value
            record.names["attributes/" + token(column.name)] = column.header
        else:
            raw[column.target] = value
            record.names[column.target] = column.header
    if attributes:
        raw["attributes"] = attributes
    return _checked(record, raw)


def _convert(column: Column, text: str) -> Any:
    if column.target in OPT_OUTS or column.kind == "boolean":
        if text.lower() not in TRUE | FALSE:
            raise ValueError(f"{text!r} is not true or false (true, false, yes, no, 1 or 0)")
        return text.lower() in TRUE
    if column.target == "push_tokens":
        return text.split()
    if column.kind == "number":
        if not NUMBER.match(text):
            raise ValueError(f"{text!r} is not a number")
        number = int(text) if INTEGER.match(text) else float(text)
        if not math.isfinite(number):
            raise ValueError(f"{text!r} is too large a number to store (at most about 1.8e308)")
        return number
    return text


def json_record(line: int, text: str) -> Record:
    try:
        value = json_input.loads(text)
    except json.JSONDecodeError as exc:
        return Record(line, problems=[(None, f"is not valid JSON ({exc.msg} at column {exc.colno})")])
    except InvalidInput as exc:
        return Record(line, problems=[_json_problem(exc)])
    return _item_record(line, value)


def _json_problem(exc: InvalidInput) -> tuple[str | None, str]:
    """A problem json_input found, as (the field it is in, or None for the row, message)."""
    detail = exc.details[0]
    return detail["pointer"].lstrip("/").replace("/", ".") or None, detail["message"]


def object_record(line: int, value: Any) -> Record:
    """The record of an element of a JSON array (parsed by json_input.raw_decode)."""
    try:
        json_input.check(value)
    except InvalidInput as exc:
        return Record(line, problems=[_json_problem(exc)])
    return _item_record(line, value)


def _item_record(line: int, value: Any) -> Record:
    if not isinstance(value, dict):
        return Record(line, problems=[(None, "must be a JSON object (a POST /api/profiles item)")])
    return _checked(Record(line), value)


def _checked(record: Record, raw: dict[str, Any]) -> Record:
    record.fields, problems = check_fields(raw)
    record.problems.extend((record.name_of(path), message) for path, message in problems)
    return record


# --------------------------------------------------------------------------- running an import


def create_job(sessions: sessionmaker[Session], filename: str, estimate: int | None) -> int:
    with db.transaction(sessions) as session:
        job = ImportJob(filename=filename[:255], status="running", total_rows=estimate, rejected=[])
        session.add(job)
        session.flush()
        return job.id


def run(sessions: sessionmaker[Session], job_id: int, source: Source,
        progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Import every record of `source` into job `job_id`, a chunk per transaction; calls
    `progress` with the job after each chunk. Never raises: a failure is recorded on the
    job (whatever was committed before it stays). Returns the finished job."""
    error = None
    try:
        for chunk in _chunks(source):
            summary = _import_chunk(sessions, job_id, chunk)
            if progress is not None:
                progress(summary)
    except UnicodeDecodeError:
        error = f"after line {source.line}: the file is not UTF-8 text"
    except (csv.Error, ValueError) as exc:
        error = f"after line {source.line}: {exc}" if isinstance(exc, csv.Error) else str(exc)
    except CampaignCanvasError as exc:
        error = exc.message
    except Exception as exc:  # kept on the job for the user, logged for us
        log.exception("import %s failed", job_id)
        error = f"{exc.__class__.__name__}: {exc}"
    return _finish(sessions, job_id, error)


def start(sessions: sessionmaker[Session], job_id: int, source: Source) -> threading.Thread:
    """Run the import in a thread of this process; it closes (and so deletes) the source."""
    def work() -> None:
        with source:
            run(sessions, job_id, source)

    thread = threading.Thread(target=work, name=f"import-{job_id}", daemon=True)
    thread.start()
    return thread


def _chunks(records: Iterable[Record]) -> Iterator[list[Record]]:
    iterator = iter(records)
    while chunk := list(islice(iterator, CHUNK_ROWS)):
        yield chunk


def _import_chunk(sessions: sessionmaker[Session], job_id: int, records: list[Record]) -> dict[str, Any]:
    for attempt in range(1, CHUNK_ATTEMPTS + 1):
        try:
            with db.transaction(sessions) as session:
                return _apply_chunk(session, job_id, records)
        except ConcurrentChange:
            if attempt == CHUNK_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def _apply_chunk(session: Session, job_id: int, records: list[Record]) -> dict[str, Any]:
    now = clock.now()
    plan = Upsert(session)
    plan.load([r.fields for r in records if not r.problems])
    created = updated = 0
    refused: list[dict[str, Any]] = []
    refused_rows = 0
    for record in records:
        problems = record.problems
        if not problems:
            outcome = plan.apply(record.fields)
            problems = [(record.name_of(path), message) for path, message in outcome.problems]
            if outcome.row is not None:
                created += outcome.created
                updated += not outcome.created
        if problems:
            refused_rows += 1
            refused.extend({"line": record.line, "field": name, "message": message} for name, message in problems)
    profiles_changed(session, plan.write(now), now)
    job = session.get(ImportJob, job_id)
    assert job is not None, f"import job {job_id} vanished"
    job.processed_rows += len(records)
    job.created_rows += created
    job.updated_rows += updated
    job.rejected_rows += refused_rows
    room = REJECTED_KEPT - len(job.rejected)
    if refused and room > 0:
        job.rejected = [*job.rejected, *refused[:room]]
    return job_json(job, rejected=False)


def _finish(sessions: sessionmaker[Session], job_id: int, error: str | None) -> dict[str, Any]:
    with db.transaction(sessions) as session:
        job = session.get(ImportJob, job_id)
        assert job is not None, f"import job {job_id} vanished"
        job.status = "failed" if error else "done"
        job.error = error
        job.finished_at = clock.now()
        if error is None:
            job.total_rows = job.processed_rows
        return job_json(job)


def job_json(job: ImportJob, rejected: bool = True) -> dict[str, Any]:
    data = {"id": job.id, "filename": job.filename, "status": job.status, "total_rows": job.total_rows,
            "processed_rows": job.processed_rows, "created_rows": job.created_rows,
            "updated_rows": job.updated_rows, "rejected_rows": job.rejected_rows, "error": job.error,
            "created_at": iso(job.created_at), "finished_at": iso(job.finished_at)}
    if rejected:
        data["rejected"] = job.rejected
    return data


# --------------------------------------------------------------------------- the CLI


def import_file(sessions: sessionmaker[Session], path: Path, out: TextIO, err: TextIO) -> int:
    """`campaign-canvas import-profiles FILE`: progress on `err` after every chunk, the
    finished job as JSON on `out`. Exit status 0: all imported; 1: some rows refused;
    2: the import failed."""
    fmt = format_of(path.name)
    try:
        source = Source(path, fmt)
    except FileNotFoundError:
        raise SystemExit(f"error: {path} does not exist") from None
    except OSError as exc:
        raise SystemExit(f"error: cannot read {path}: {exc.strerror}") from None
    with source:
        estimate = estimate_rows(path, fmt)
        job_id = create_job(sessions, path.name, estimate)
        print(f"importing {path} (about {estimate:,} rows) as import job {job_id}", file=err, flush=True)
        job = run(sessions, job_id, source, progress=lambda s: print(_progress_line(s, estimate), file=err, flush=True))
    print(json.dumps(job, indent=2), file=out)
    if job["status"] != "done":
        print(f"error: {job['error']}", file=err)
        return 2
    return 1 if job["rejected_rows"] else 0


def _progress_line(job: dict[str, Any], estimate: int) -> str:
    share = f" ({min(job['processed_rows'] * 100 // estimate, 100)}%)" if estimate else ""
    return (f"{job['processed_rows']:,} rows{share}: {job['created_rows']:,} created, "
            f"{job['updated_rows']:,} updated, {job['rejected_rows']:,} rejected")
