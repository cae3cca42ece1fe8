"""Officers' records of their fields: heading and maturity dates, lab protein,
yields and notes, loaded from the spreadsheets officers keep.

A CSV file has the header ``field,kind,date,value`` (``note`` may follow).
The import is atomic: a file with one bad row imports nothing and the error
names the row. Importing a record again (same field, kind and date) updates
it.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import psycopg

from agri.api.field_registry import FIELD_ID_RE

KINDS = {  # kind -> (value required, allowed range, unit)
    "heading": (False, None, None),
    "maturity": (False, None, None),
    "transplanting": (False, None, None),
    "lab_protein": (True, (3.0, 12.0), "% of brown rice at 15 % moisture"),
    "yield": (True, (0.0, 1500.0), "kg brown rice per 10 a"),
    "note": (False, None, None),
}
COLUMNS = ("field", "kind", "date", "value")
MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_ROWS = 200_000
MAX_NOTE_CHARS = 2000


class ObservationError(ValueError):
    """A record cannot be imported; the message names the row and what to fix."""


@dataclass(frozen=True, slots=True)
class Observation:
    field_id: str
    kind: str
    observed_on: date
    value: float | None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class ImportResult:
    added: int
    updated: int

    def to_json(self) -> dict:
        return {"added": self.added, "updated": self.updated}


def parse(text: str) -> list[Observation]:
    """Records of a CSV text; raises ObservationError naming the first bad row."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = next(reader, None)
    if header is None:
        raise ObservationError("the file is empty: the first line must be field,kind,date,value")
    names = [h.strip().lower() for h in header]
    if tuple(names[:4]) != COLUMNS or any(n not in ("note",) for n in names[4:]):
        raise ObservationError(f"header is {','.join(header)!r}: it must be "
                               "field,kind,date,value (optionally ,note)")
    out = []
    for number, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(out) >= MAX_ROWS:
            raise ObservationError(f"more than {MAX_ROWS} rows: split the file")
        if len(row) > len(names):
            raise ObservationError(f"row {number}: {len(row)} columns, header has {len(names)}")
        row = row + [""] * (len(names) - len(row))
        out.append(_record(number, dict(zip(names, (c.strip() for c in row), strict=True))))
    return out


def _record(number: int, cells: dict[str, str]) -> Observation:
    where = f"row {number}"
    field_id, kind, when, raw = cells["field"], cells["kind"], cells["date"], cells["value"]
    if not FIELD_ID_RE.fullmatch(field_id):
        raise ObservationError(f"{where}: field {field_id[:70]!r} is not a field id "
                               "(1-64 letters, digits, - or _)")
    if kind not in KINDS:
        raise ObservationError(f"{where}: kind {kind!r} is not one of {', '.join(KINDS)}")
    try:
        observed_on = date.fromisoformat(when)
    except ValueError:
        raise ObservationError(f"{where}: date {when!r} is not a date like 2026-08-04") from None
    if not 1900 <= observed_on.year <= 2200:
        raise ObservationError(f"{where}: date {when!r} is outside 1900-2200")
    required, bounds, unit = KINDS[kind]
    value = None
    if raw:
        try:
            value = float(raw)
        except ValueError:
            raise ObservationError(f"{where}: value {raw!r} is not a number") from None
        if not math.isfinite(value):
            raise ObservationError(f"{where}: value {raw!r} is not a finite number")
    if required and value is None:
        raise ObservationError(f"{where}: {kind} needs a value ({unit})")
    if bounds is not None and value is not None and not bounds[0] <= value <= bounds[1]:
        raise ObservationError(f"{where}: {kind} {value:g} is outside {bounds[0]:g}-"
                               f"{bounds[1]:g} ({unit})")
    note = cells.get("note") or None
    if note is not None and "\x00" in note:
        raise ObservationError(f"{where}: note contains a NUL character")
    if note is not None and len(note) > MAX_NOTE_CHARS:
        raise ObservationError(f"{where}: note longer than {MAX_NOTE_CHARS} characters")
    return Observation(field_id, kind, observed_on, value, note)


def read_file(path: Path) -> list[Observation]:
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ObservationError(f"{path.name} is {size} bytes; at most {MAX_FILE_BYTES}")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise ObservationError(f"{path.name} is not UTF-8 text: save the sheet as "
                               "CSV UTF-8") from None
    return parse(text)


def store(conn: psycopg.Connection, records: Iterable[Observation], *,
          recorded_by: str | None = None, source: str = "import") -> ImportResult:
    """Insert or update ``records`` in one transaction; unknown fields fail the whole
    import with the rows named."""
    records = list(records)
    with conn.transaction():
        ids = sorted({r.field_id for r in records})
        known = {r[0] for r in conn.execute("SELECT id FROM fields WHERE id = ANY(%s)",
                                            (ids,)).fetchall()}
        missing = [r for r in records if r.field_id not in known]
        if missing:
            names = ", ".join(sorted({r.field_id for r in missing})[:10])
            raise ObservationError(f"{len(missing)} records name fields that are not "
                                   f"registered ({names}): import the fields first")
        added = updated = 0
        for r in records:
            inserted = conn.execute(
                "INSERT INTO observations (field_id, year, kind, observed_on, value, note, "
                "recorded_by, source) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (field_id, kind, observed_on) DO UPDATE SET value = "
                "EXCLUDED.value, note = EXCLUDED.note, recorded_by = EXCLUDED.recorded_by, "
                "source = EXCLUDED.source, updated_at = now() RETURNING xmax = 0",
                (r.field_id, r.observed_on.year, r.kind, r.observed_on, r.value, r.note,
                 recorded_by, source)).fetchone()[0]
            added += int(inserted)
            updated += int(not inserted)
    return ImportResult(added, updated)
