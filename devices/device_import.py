"""Bulk registration: the rows of a CSV file (``agri devices import``) or of
the API's JSON (``POST /api/v1/devices/import``), every one checked in
Python and against the registry before anything is registered. One bad row
imports nothing; each error names its row, its column and what is wrong.

The CSV has the header ``id,profile,field,owner`` (in any order, optionally
with ``dev_eui`` for LoRaWAN devices and ``bridge``, the LoRaWAN bridge a
device's uplinks come through); field, owner, dev_eui and bridge may be
empty. A device behind a bridge gets no MQTT account of its own.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass

import psycopg

from agri.devices import bridges, registry
from agri.devices.profiles import PROFILES, UnknownProfile, profile
from agri.devices.topics import _EUI_RE

COLUMNS = ("id", "profile", "field", "owner")
OPTIONAL_COLUMNS = ("dev_eui", "bridge")
HEADER = ",".join(COLUMNS)
# Mosquitto 2.0's dynamic-security plugin rewrites its whole file after each
# account it creates, so a large import takes time that grows with the square
# of the accounts: 1,000 devices on an empty broker take about 16 s.
MAX_ROWS = 10_000
MAX_BYTES = 8 * 1024 * 1024  # 10,000 rows of long values fit
MAX_VALUE_CHARS = 256  # no id, profile, field or user name is longer
MAX_ERRORS = 50  # errors reported at once; the rest after those are fixed


@dataclass(frozen=True, slots=True)
class Row:
    """One device to register; ``line`` is where it is: the CSV's line number
    (the header is line 1), or the row's index in the API's list."""

    line: int
    id: str
    profile: str
    field: str | None = None
    owner: str | None = None
    dev_eui: str | None = None
    bridge: str | None = None

    def device(self) -> registry.NewDevice:
        return (self.id, self.profile, self.field,
                self.dev_eui.lower() if self.dev_eui else None, self.owner)


@dataclass(frozen=True, slots=True)
class RowError:
    line: int | None  # None: the file as a whole
    column: str | None
    message: str

    def __str__(self) -> str:
        where = [f"line {self.line}"] if self.line is not None else []
        if self.column:
            where.append(f"column {self.column}")
        return f"{', '.join(where)}: {self.message}" if where else self.message


class ImportRejected(ValueError):
    """Rows that cannot be imported; nothing was. ``errors`` name each."""

    def __init__(self, errors: list[RowError]) -> None:
        super().__init__(errors)
        self.errors = sorted(errors, key=lambda e: (e.line or 0, e.column or ""))[:MAX_ERRORS]
        self.total = len(errors)

    def __str__(self) -> str:
        more = (f"\n  ... and {self.total - len(self.errors)} more"
                if self.total > len(self.errors) else "")
        lines = "\n".join(f"  {e}" for e in self.errors)
        return f"nothing was imported; fix these and import the file again:\n{lines}{more}"


def _file_error(message: str, line: int | None = None) -> ImportRejected:
    return ImportRejected([RowError(line, None, message)])


def parse_csv(data: bytes) -> list[Row]:
    """The rows of a CSV file, or ImportRejected naming what is wrong with it."""
    if len(data) > MAX_BYTES:
        raise _file_error(f"the file is larger than {MAX_BYTES // (1024 * 1024)} MB; split it "
                          f"into files of at most {MAX_ROWS:,} rows")
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark (Excel's "CSV UTF-8") is fine
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise _file_error(f"byte {exc.start + 1} is not UTF-8: save the file as UTF-8 "
                          "(in Excel: CSV UTF-8)", line) from None
    if not text.strip():
        raise _file_error(f"the file is empty: its first line must be the header {HEADER}")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
        names = _header(header)
        rows: list[Row] = []
        errors: list[RowError] = []
        for record in reader:
            if not any(cell.strip() for cell in record):
                continue  # blank lines
            if len(rows) >= MAX_ROWS:
                raise _file_error(f"more than {MAX_ROWS:,} rows: split the file")
            if len(record) != len(names):
                errors.append(RowError(reader.line_num, None,
                                       f"{len(record)} values, but the header has "
                                       f"{len(names)} columns ({','.join(names)})"))
                continue
            cells = {n: (c.strip() or None) for n, c in zip(names, record, strict=True)}
            rows.append(Row(reader.line_num, cells["id"] or "", cells["profile"] or "",
                            cells["field"], cells["owner"], cells.get("dev_eui"),
                            cells.get("bridge")))
    except csv.Error as exc:
        raise _file_error(f"not readable as CSV ({exc}); check its quotes",
                          reader.line_num) from None
    if errors:
        raise ImportRejected(errors)
    if not rows:
        raise _file_error(f"the file has a header but no devices: add one line per device "
                          f"after {HEADER}")
    return rows


def _header(cells: list[str]) -> list[str]:
    names = [c.strip().lower() for c in cells]
    allowed = (*COLUMNS, *OPTIONAL_COLUMNS)
    if not set(names) & set(allowed):
        raise _file_error(f"missing header: the first line must be {HEADER} (optionally "
                          f"also dev_eui and bridge), then one line per device", 1)
    unknown = [n for n in names if n not in allowed]
    missing = [n for n in COLUMNS if n not in names]
    doubled = sorted({n for n in names if names.count(n) > 1})
    if unknown or missing or doubled:
        wrong = [f"unknown column {n!r}" for n in unknown]
        wrong += [f"no column {n!r}" for n in missing]
        wrong += [f"column {n!r} twice" for n in doubled]
        raise _file_error(f"wrong header ({'; '.join(wrong)}): it must be {HEADER}, "
                          f"optionally with dev_eui and bridge", 1)
    return names


def at(line: int, unit: str = "line") -> str:
    """Where a row is: ``line 5`` of a file, ``devices[4]`` of the API's list."""
    return f"line {line}" if unit == "line" else f"{unit}[{line}]"


def check(conn: psycopg.Connection, rows: list[Row], *, unit: str = "line") -> None:
    """Raise ImportRejected naming every bad row: bad values (in Python), then
    ids and DevEUIs already registered and fields and owners that do not
    exist (against the database). ``unit``: what rows are (see :func:`at`)."""
    if len(rows) > MAX_ROWS:
        raise _file_error(f"more than {MAX_ROWS:,} devices at once: split them")
    errors = check_values(rows, unit=unit)
    bad = {(e.line, e.column) for e in errors}
    fine = [r for r in rows if (r.line, "id") not in bad]
    taken_ids, taken_euis = registry.registered(
        conn, (r.id for r in fine), _lower(r.dev_eui for r in rows
                                           if (r.line, "dev_eui") not in bad))
    seen_bridges: dict[tuple[str, bool], str | None] = {}
    fields, users = registry.known_fields_and_users(
        conn, {r.field for r in rows if r.field and (r.line, "field") not in bad},
        {r.owner for r in rows if r.owner and (r.line, "owner") not in bad})
    for r in rows:
        if r.id in taken_ids and (r.line, "id") not in bad:
            errors.append(RowError(r.line, "id", f"device {r.id!r} is already registered "
                                                 "(ids of revoked devices are not given again)"))
        if r.dev_eui and r.dev_eui.lower() in taken_euis:
            errors.append(RowError(r.line, "dev_eui",
                                   f"DevEUI {r.dev_eui} is registered to another device"))
        if r.field and (r.line, "field") not in bad and r.field not in fields:
            errors.append(RowError(r.line, "field", f"unknown field {r.field!r}: import it "
                                                    "first (agri fields import)"))
        if r.owner and (r.line, "owner") not in bad and r.owner not in users:
            errors.append(RowError(r.line, "owner", f"unknown owner {r.owner!r}: no such "
                                                    "user (agri users add)"))
        if r.bridge and (r.line, "bridge") not in bad:
            refused = _bridge_refusal(conn, r.bridge, r.dev_eui, seen_bridges)
            if refused:
                errors.append(RowError(r.line, "bridge", refused))
    if errors:
        raise ImportRejected(errors)


def _bridge_refusal(conn: psycopg.Connection, name: str, dev_eui: str | None,
                    seen: dict[tuple[str, bool], str | None]) -> str | None:
    """Why a device with ``dev_eui`` cannot go behind bridge ``name``; None
    when it can. Each bridge is looked up once per import."""
    key = (name, bool(dev_eui))
    if key not in seen:
        try:
            bridges.check_attachable(conn, name, dev_eui=dev_eui)
            seen[key] = None
        except bridges.BridgeError as exc:
            seen[key] = str(exc)
    return seen[key]


def credentials(rows: list[Row], imported: list[tuple[str, str | None]]) -> list[dict]:
    """What an import shows once of each device: its MQTT username and
    password, both None for a device behind a bridge, and the bridge."""
    behind = {r.id: r.bridge for r in rows}
    return [{"device_id": d, "username": d if pw else None, "password": pw,
             "bridge": behind[d]} for d, pw in imported]


def _lower(values: Iterable[str | None]) -> list[str]:
    return [v.lower() for v in values if v]


def check_values(rows: list[Row], *, unit: str = "line") -> list[RowError]:
    """What is wrong with the rows' values themselves, with no database."""
    errors: list[RowError] = []
    first_line: dict[str, int] = {}
    first_eui: dict[str, int] = {}
    for r in rows:
        bad_text = [c for c in ("id", "profile", "field", "owner", "dev_eui", "bridge")
                    if not _is_text(getattr(r, c))]
        errors += [RowError(r.line, c, f"too long (over {MAX_VALUE_CHARS} characters), or "
                                       "contains a NUL or a character that is not text")
                   for c in bad_text]
        if "id" not in bad_text:
            if not r.id:
                errors.append(RowError(r.line, "id", "no device id"))
            else:
                try:
                    registry.check_id(r.id)
                except registry.RegistryError as exc:
                    errors.append(RowError(r.line, "id", str(exc)))
                else:
                    if r.id in first_line:
                        errors.append(RowError(r.line, "id", f"device {r.id!r} is also on "
                                                             f"{at(first_line[r.id], unit)}"))
                    else:
                        first_line[r.id] = r.line
        if "profile" not in bad_text:
            if not r.profile:
                errors.append(RowError(r.line, "profile", "no profile; choose one of: "
                                                          f"{', '.join(PROFILES)}"))
            else:
                try:
                    profile(r.profile)
                except UnknownProfile as exc:
                    errors.append(RowError(r.line, "profile", str(exc)))
        if r.bridge and "bridge" not in bad_text and not bridges.NAME_RE.fullmatch(r.bridge):
            errors.append(RowError(r.line, "bridge", f"bridge name {r.bridge[:80]!r} must "
                                                     f"match {bridges.NAME_RE.pattern}"))
        if r.dev_eui and "dev_eui" not in bad_text:
            eui = r.dev_eui.lower()
            if not _EUI_RE.fullmatch(eui):
                errors.append(RowError(r.line, "dev_eui",
                                       f"DevEUI {r.dev_eui!r} must be 16 hexadecimal digits"))
            elif eui in first_eui:
                errors.append(RowError(r.line, "dev_eui", f"DevEUI {r.dev_eui} is also on "
                                                          f"{at(first_eui[eui], unit)}"))
            else:
                first_eui[eui] = r.line
    return errors


def _is_text(value: str | None) -> bool:
    if value is None:
        return True
    if len(value) > MAX_VALUE_CHARS or "\x00" in value:
        return False
    try:
        value.encode()
    except UnicodeEncodeError:  # a lone surrogate (from JSON "\ud800")
        return False
    return True
