"""Officers' records of a field through the API: heading and maturity dates,
lab protein, yields and notes, into the table the analytics read (the next
run uses them), with the kinds and limits of the CSV import
(``agri.analytics.observations``).

Officers of the field's region and admins record and remove them (others:
403; a field outside the region: 404); whoever sees the field reads them. A
record of the same field, kind and date replaces the earlier one; a removed
record is kept in ``observation_removals``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Literal

from fastapi import HTTPException
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from agri.analytics.observations import KINDS, MAX_NOTE_CHARS
from agri.api.accounts import User
from agri.api.field_registry import FIELD_ID_RE
from agri.api.pagination import page
from agri.api.queries import access
from agri.api.queries.advisories import REVIEWERS, Day, Strict, as_model, no_nul
from agri.clock import today_local

PAGE = 100
_COLUMNS = ("id, field_id, kind, observed_on, value, note, recorded_by, source, "
            "created_at, updated_at")


def _finite_or_text(value):
    # A NaN or Infinity in the JSON body is refused as its text: the error
    # shown to the client must itself be valid JSON.
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return value


class NewObservation(Strict):
    """One record: ``value`` as the kind needs it (lab_protein in % of brown
    rice at 15 % moisture, yield in kg per 10 a), ``note`` free text."""
    kind: Literal[tuple(KINDS)]  # type: ignore[valid-type]
    date: Day
    value: Annotated[Annotated[float, Field(allow_inf_nan=False)] | None,
                     BeforeValidator(_finite_or_text)] = None
    note: Annotated[str, Field(max_length=MAX_NOTE_CHARS), AfterValidator(no_nul)] | None = None

    @model_validator(mode="after")
    def _value(self):
        required, bounds, unit = KINDS[self.kind]
        if required and self.value is None:
            raise ValueError(f"{self.kind} needs a value ({unit})")
        if bounds is not None and self.value is not None and not (
                bounds[0] <= self.value <= bounds[1]):
            raise ValueError(f"{self.kind} {self.value:g} is outside {bounds[0]:g}-"
                             f"{bounds[1]:g} ({unit})")
        if self.date > today_local():
            raise ValueError(f"date {self.date.isoformat()} is in the future: record what "
                             "was observed")
        return self


def _item(r: dict) -> dict:
    return {"id": r["id"], "field": r["field_id"], "kind": r["kind"],
            "date": r["observed_on"].isoformat(), "value": r["value"], "note": r["note"],
            "recorded_by": r["recorded_by"], "source": r["source"],
            "created_at": r["created_at"].isoformat(), "updated_at": r["updated_at"].isoformat()}


async def _changeable_field(conn: AsyncConnection, user: User, field_id: str) -> None:
    access.require_role(user, *REVIEWERS, action="recording observations")
    if not (FIELD_ID_RE.fullmatch(field_id)
            and await access.visible_field(conn, user, field_id, to_change=True)):
        raise HTTPException(404, f"no field {field_id[:64]!r} in your region")


async def record(conn: AsyncConnection, user: User, field_id: str,
                 new: NewObservation | Mapping) -> tuple[dict, bool]:
    """Record an observation of a field of the user's region: (the record,
    whether it is new rather than replacing one of the same kind and date)."""
    new = as_model(NewObservation, new)
    async with conn.transaction():
        await _changeable_field(conn, user, field_id)
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                "INSERT INTO observations (field_id, year, kind, observed_on, value, note, "
                "recorded_by, source) VALUES (%s, %s, %s, %s, %s, %s, %s, 'api') "
                "ON CONFLICT (field_id, kind, observed_on) DO UPDATE SET value = "
                "EXCLUDED.value, note = EXCLUDED.note, recorded_by = EXCLUDED.recorded_by, "
                f"source = EXCLUDED.source, updated_at = now() RETURNING {_COLUMNS}, "
                "xmax = 0 AS added",
                (field_id, new.date.year, new.kind, new.date, new.value, new.note, user.name))
            row = await cur.fetchone()
    return _item(row), row["added"]


async def list_for_field(conn: AsyncConnection, user: User, field_id: str, *,
                         kind: str | None = None, year: int | None = None,
                         after: int | None = None, limit: int = PAGE) -> dict:
    """A page of a visible field's records (else 404), newest first."""
    if not (FIELD_ID_RE.fullmatch(field_id) and await access.visible_field(conn, user, field_id)):
        raise HTTPException(404, f"no field {field_id[:64]!r}")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {_COLUMNS} FROM observations WHERE field_id = %(field)s "
            "AND (%(kind)s::text IS NULL OR kind = %(kind)s) "
            "AND (%(year)s::int IS NULL OR year = %(year)s) "
            "AND (%(after)s::bigint IS NULL OR id < %(after)s) ORDER BY id DESC LIMIT %(n)s",
            {"field": field_id, "kind": kind, "year": year, "after": after, "n": limit + 1})
        rows = await cur.fetchall()
    return page([_item(r) for r in rows], limit)


async def remove(conn: AsyncConnection, user: User, field_id: str, observation_id: int) -> None:
    """Remove a record of a field of the user's region (else 404): the
    analytics stop using it; it is kept, with who removed it, in
    ``observation_removals``."""
    async with conn.transaction():
        await _changeable_field(conn, user, field_id)
        cur = await conn.execute(
            "WITH gone AS (DELETE FROM observations WHERE id = %s AND field_id = %s "
            "RETURNING *) INSERT INTO observation_removals (id, field_id, year, kind, "
            "observed_on, value, note, recorded_by, source, created_at, removed_by) "
            "SELECT id, field_id, year, kind, observed_on, value, note, recorded_by, source, "
            "created_at, %s FROM gone", (observation_id, field_id, user.name))
        if cur.rowcount != 1:
            raise HTTPException(404, f"no observation {observation_id} of field {field_id!r}")


def kinds() -> dict[str, dict]:
    """The kinds a record may have, with whether a value is needed, its range and unit."""
    return {k: {"value_required": req, "range": list(b) if b else None, "unit": unit}
            for k, (req, b, unit) in KINDS.items()}

