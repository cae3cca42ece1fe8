"""The field diary's SQL (table ``field_diary``, migration 014)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from psycopg import AsyncConnection
from psycopg.rows import class_row

KINDS = ("work", "water", "fertiliser", "spraying", "note")
MAX_TEXT = 2000
PAGE = 50


@dataclass(frozen=True, slots=True)
class Entry:
    id: int
    day: date
    kind: str
    body: str
    photo: str | None
    author: str
    created_at: datetime


_COLUMNS = "id, day, kind, body, photo, author, created_at"


async def entries(conn: AsyncConnection, field_id: str, *, year: int | None = None,
                  before: int | None = None, limit: int = PAGE) -> list[Entry]:
    """Newest first (by day, then as written); ``year``: that year's only;
    ``before``: entries older than that entry (the next page)."""
    async with conn.cursor(row_factory=class_row(Entry)) as cur:
        await cur.execute(
            f"SELECT {_COLUMNS} FROM field_diary WHERE field_id = %(f)s "
            "AND (%(year)s::int IS NULL OR extract(year FROM day) = %(year)s) "
            "AND (%(before)s::bigint IS NULL OR (day, id) < "
            "    (SELECT day, id FROM field_diary WHERE id = %(before)s AND field_id = %(f)s)) "
            "ORDER BY day DESC, id DESC LIMIT %(n)s",
            {"f": field_id, "year": year, "before": before, "n": limit})
        return await cur.fetchall()


async def add(conn: AsyncConnection, *, field_id: str, day: date, kind: str, body: str,
              author: str, photo: str | None, photo_bytes: int | None) -> int:
    cur = await conn.execute(
        "INSERT INTO field_diary (field_id, day, kind, body, author, photo, photo_bytes) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (field_id, day, kind, body, author, photo, photo_bytes))
    return (await cur.fetchone())[0]


async def photo_of(conn: AsyncConnection, field_id: str, entry_id: int) -> str | None:
    cur = await conn.execute("SELECT photo FROM field_diary WHERE id = %s AND field_id = %s",
                             (entry_id, field_id))
    row = await cur.fetchone()
    return row[0] if row else None
