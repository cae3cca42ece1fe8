"""The farmers an officer looks after: those with a field in the officer's
region (admins: every farmer with a field), for choosing whom to print a
sign-in link for."""

from __future__ import annotations

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from agri.api.accounts import User
from agri.api.queries import access

MAX_FARMERS = 2000


async def region_farmers(conn: AsyncConnection, user: User, *,
                         limit: int = MAX_FARMERS) -> list[dict]:
    """``{"name", "display_name", "fields"}`` of each live farmer account with a
    field in the user's region, by name (an officer without region: none)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"""SELECT u.name, u.display_name, count(f.id) AS fields
                FROM users u JOIN fields f ON f.owner = u.name
                WHERE u.role = 'farmer' AND u.disabled_at IS NULL
                  AND {access.in_region('f.municipality')}
                GROUP BY u.name, u.display_name ORDER BY u.name LIMIT %(limit)s""",
            {**access.who(user), "limit": limit})
        return await cur.fetchall()
