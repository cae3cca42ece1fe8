"""Who may see which field or device. Objects of others are reported as
missing (404), never as forbidden, so their existence does not leak."""

from __future__ import annotations

from psycopg import AsyncConnection

from agri.api.accounts import User

# A user sees a field when: admin or planner; officer with no regions or the
# field's municipality among them; farmer who owns it; developer who owns a
# device on it.
FIELD_VISIBLE = """(
    %(role)s IN ('admin', 'planner')
    OR (%(role)s = 'officer' AND (cardinality(%(regions)s::text[]) = 0
                                  OR f.municipality = ANY(%(regions)s::text[])))
    OR (%(role)s = 'farmer' AND f.owner = %(user)s)
    OR (%(role)s = 'developer' AND EXISTS (
        SELECT 1 FROM devices d WHERE d.field_id = f.id AND d.owner = %(user)s))
)"""

DEVICE_VISIBLE = """(
    %(role)s IN ('admin', 'planner')
    OR (%(role)s = 'developer' AND d.owner = %(user)s)
    OR EXISTS (SELECT 1 FROM fields f WHERE f.id = d.field_id AND (
        (%(role)s = 'officer' AND (cardinality(%(regions)s::text[]) = 0
                                   OR f.municipality = ANY(%(regions)s::text[])))
        OR (%(role)s = 'farmer' AND f.owner = %(user)s)))
)"""


def who(user: User) -> dict:
    return {"role": str(user.role), "regions": list(user.regions), "user": user.name}


async def visible_device(conn: AsyncConnection, user: User, device_id: str):
    """(id, profile, field_id) of a device the user may see, or None."""
    cur = await conn.execute(
        f"SELECT d.id, d.profile, d.field_id FROM devices d WHERE d.id = %(id)s "
        f"AND {DEVICE_VISIBLE}", {"id": device_id, **who(user)})
    return await cur.fetchone()


async def visible_field(conn: AsyncConnection, user: User, field_id: str):
    cur = await conn.execute(
        f"SELECT f.id, f.name, f.owner, f.cultivar, f.transplanted_on, f.municipality, "
        f"f.geometry, f.area_m2 FROM fields f WHERE f.id = %(id)s AND {FIELD_VISIBLE}",
        {"id": field_id, **who(user)})
    return await cur.fetchone()
