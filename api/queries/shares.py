"""Sharing a field's history with a successor: the owner grants a named user
read access and can withdraw it (table ``field_shares``; what a grantee sees
is decided in access.py)."""

from __future__ import annotations

from psycopg import AsyncConnection

from agri.api.accounts import User


class ShareError(ValueError):
    """A share cannot be made as asked; the message says why."""


async def owned_field(conn: AsyncConnection, user: User, field_id: str) -> bool:
    """Only a field's owner shares it (not an officer, not a grantee)."""
    cur = await conn.execute("SELECT 1 FROM fields WHERE id = %s AND owner = %s",
                             (field_id, user.name))
    return await cur.fetchone() is not None


async def list_shares(conn: AsyncConnection, field_id: str) -> list[dict]:
    cur = await conn.execute(
        "SELECT grantee, granted_at FROM field_shares WHERE field_id = %s "
        "AND revoked_at IS NULL ORDER BY granted_at", (field_id,))
    return [{"grantee": g, "granted_at": t.isoformat()} for g, t in await cur.fetchall()]


async def grant(conn: AsyncConnection, owner: User, field_id: str, grantee: str) -> None:
    """Let ``grantee`` (an existing farmer) read the field; granting again
    after a withdrawal renews it."""
    if grantee == owner.name:
        raise ShareError("you own this field already")
    cur = await conn.execute("SELECT role FROM users WHERE name = %s AND disabled_at IS NULL",
                             (grantee[:64],))
    row = await cur.fetchone()
    if row is None or row[0] != "farmer":
        raise ShareError(f"no farmer {grantee[:64]!r}: ask them for their user name, "
                         "or ask your extension officer to create their account")
    await conn.execute(
        "INSERT INTO field_shares (field_id, grantee, granted_by) VALUES (%s, %s, %s) "
        "ON CONFLICT (field_id, grantee) DO UPDATE SET revoked_at = NULL, "
        "granted_at = now(), granted_by = excluded.granted_by", (field_id, grantee, owner.name))


async def withdraw(conn: AsyncConnection, field_id: str, grantee: str) -> bool:
    cur = await conn.execute(
        "UPDATE field_shares SET revoked_at = now() WHERE field_id = %s AND grantee = %s "
        "AND revoked_at IS NULL", (field_id, grantee[:64]))
    return cur.rowcount == 1
