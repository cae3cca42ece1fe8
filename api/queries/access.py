"""Who may see what: the one place every query takes its scope from.

- admin: everything;
- officer: the fields, devices and rejects of their region's municipalities,
  and nothing at all when they have no region;
- farmer: their own fields and the devices on them, and fields another
  farmer shared with them (read only, until the owner withdraws it);
- developer: their own devices and what those devices sent; a field only
  while one of their devices is on it, and never the other devices there;
- planner: no single field, device or reject; aggregates only (KPIs, open
  data), whose endpoints do not take a field scope.

Objects outside a user's scope are reported as missing (404), never as
forbidden, so their existence does not leak. The fragments below expect the
parameters of ``who(user)`` and the table aliases ``f`` (fields), ``d``
(devices) and ``r`` (rejects).
"""

from __future__ import annotations

from fastapi import HTTPException
from psycopg import AsyncConnection

from agri.api.accounts import Role, User

# Municipality ``{column}`` lies in the user's region (admins: everywhere).
_IN_REGION = ("(%(role)s = 'admin' OR (%(role)s = 'officer' "
              "AND {column} = ANY(%(regions)s::text[])))")


def in_region(column: str) -> str:
    """SQL: the municipality in ``column`` is one the user oversees."""
    return _IN_REGION.format(column=column)


def aggregate_region(column: str) -> str:
    """SQL: aggregates (counts, sums) over municipality ``column`` that the
    user may see: planners everywhere (never a single farm's rows), officers
    their region, admins everywhere."""
    return f"(%(role)s = 'planner' OR {in_region(column)})"


FIELD_VISIBLE = f"""(
    {in_region('f.municipality')}
    OR (%(role)s = 'farmer' AND (f.owner = %(user)s OR EXISTS (
        SELECT 1 FROM field_shares s WHERE s.field_id = f.id AND s.grantee = %(user)s
        AND s.revoked_at IS NULL)))
    OR (%(role)s = 'developer' AND EXISTS (
        SELECT 1 FROM devices dd WHERE dd.field_id = f.id AND dd.owner = %(user)s))
)"""

# Fields the user may change (advice, observations, diary): shared fields are
# read only for the farmer they were shared with.
FIELD_OWNED = f"""(
    {in_region('f.municipality')}
    OR (%(role)s = 'farmer' AND f.owner = %(user)s)
)"""

DEVICE_VISIBLE = f"""(
    %(role)s = 'admin'
    OR (%(role)s = 'developer' AND d.owner = %(user)s)
    OR (%(role)s IN ('officer', 'farmer') AND EXISTS (
        SELECT 1 FROM fields f WHERE f.id = d.field_id AND (
            {in_region('f.municipality')}
            OR (%(role)s = 'farmer' AND (f.owner = %(user)s OR EXISTS (
                SELECT 1 FROM field_shares s WHERE s.field_id = f.id
                AND s.grantee = %(user)s AND s.revoked_at IS NULL))))))
    OR (%(role)s = 'farmer' AND d.owner = %(user)s)
)"""

# A reject is seen by whoever sees the device it came from; one with no known
# device (a topic that names none) only by admins.
REJECT_VISIBLE = f"""(
    %(role)s = 'admin'
    OR EXISTS (SELECT 1 FROM devices d WHERE d.id = r.device_id AND {DEVICE_VISIBLE})
)"""

# An image (alias i): admins; its uploader (not a planner); whoever sees a
# field under it (overlapped at upload, or found by the analytics).
IMAGE_FIELDS = ("(i.field_ids || ARRAY(SELECT s.field_id FROM field_index_stats s "
                 "WHERE s.image_id = i.id AND s.valid_fraction > 0))")
IMAGE_VISIBLE = f"""(
    %(role)s = 'admin'
    OR (%(role)s <> 'planner' AND i.added_by = %(user)s)
    OR EXISTS (SELECT 1 FROM fields f WHERE f.id = ANY{IMAGE_FIELDS} AND {FIELD_VISIBLE})
)"""

# A drone record (alias r): whoever sees the field it served (or one of the
# fields a multi-field record lists).
DRONE_RECORD_VISIBLE = f"""EXISTS (SELECT 1 FROM fields f WHERE (f.id = r.field_id OR
    (r.field_id IS NULL AND jsonb_typeof(r.body->'fields') = 'array'
     AND r.body->'fields' ? f.id)) AND {FIELD_VISIBLE})"""


# An alert (alias a; alerts/): whoever sees its field, or its device's field; a
# farmer or developer also those of their own devices; a planner none.
ALERT_VISIBLE = f"""(
    %(role)s = 'admin'
    OR (%(role)s IN ('officer', 'farmer') AND EXISTS (
        SELECT 1 FROM fields f
        WHERE f.id = coalesce(a.field_id, (SELECT ad.field_id FROM devices ad
                                           WHERE ad.id = a.device_id))
          AND {FIELD_VISIBLE}))
    OR (%(role)s IN ('farmer', 'developer') AND EXISTS (
        SELECT 1 FROM devices ao WHERE ao.id = a.device_id AND ao.owner = %(user)s))
)"""


def who(user: User) -> dict:
    return {"role": str(user.role), "regions": list(user.regions), "user": user.name}


def require_role(user: User, *roles: Role | str, action: str) -> None:
    """403 when the user's role may not do ``action`` at all (an object the
    role may handle but this user may not see is a 404, not this)."""
    if user.role not in roles:
        allowed = ", ".join(str(r) for r in roles)
        raise HTTPException(403, f"{action} is for {allowed}; you are signed in as "
                                 f"{user.role}")


async def visible_device(conn: AsyncConnection, user: User, device_id: str):
    """(id, profile, field_id) of a device the user may see, or None."""
    cur = await conn.execute(
        f"SELECT d.id, d.profile, d.field_id FROM devices d WHERE d.id = %(id)s "
        f"AND {DEVICE_VISIBLE}", {"id": device_id, **who(user)})
    return await cur.fetchone()


async def visible_field(conn: AsyncConnection, user: User, field_id: str, *,
                        to_change: bool = False):
    """(id, name, owner, cultivar, transplanted_on, municipality, geometry,
    area_m2, polygon_uuid) of a field the user may see (``to_change``: may
    change), or None."""
    cur = await conn.execute(
        f"SELECT f.id, f.name, f.owner, f.cultivar, f.transplanted_on, f.municipality, "
        f"f.geometry, f.area_m2, f.polygon_uuid::text FROM fields f WHERE f.id = %(id)s "
        f"AND {FIELD_OWNED if to_change else FIELD_VISIBLE}",
        {"id": field_id, **who(user)})
    return await cur.fetchone()


def may_change(user: User, row) -> bool:
    """Whether FIELD_OWNED holds for a field the user sees (``row``:
    visible_field's), without asking the database again: for officers and
    admins seeing is their region, for a farmer only their own fields."""
    return user.role in (Role.ADMIN, Role.OFFICER) or (
        user.role == Role.FARMER and row[2] == user.name)


async def field_devices(conn: AsyncConnection, user: User, field_id: str) -> list[tuple]:
    """(id, profile) of the devices on a visible field that the user may see:
    a developer sees only their own there."""
    cur = await conn.execute(
        f"SELECT d.id, d.profile FROM devices d WHERE d.field_id = %(id)s "
        f"AND d.revoked_at IS NULL AND {DEVICE_VISIBLE} ORDER BY d.id",
        {"id": field_id, **who(user)})
    return await cur.fetchall()


async def devices_on(conn: AsyncConnection, user: User, field_ids: list[str]) -> list[tuple]:
    """(id, profile, field_id) of the live devices on ``field_ids`` that the
    user may see (the fields' own visibility is the caller's to check)."""
    cur = await conn.execute(
        f"SELECT d.id, d.profile, d.field_id FROM devices d WHERE d.field_id = ANY(%(ids)s) "
        f"AND d.revoked_at IS NULL AND {DEVICE_VISIBLE} ORDER BY d.id",
        {"ids": field_ids, **who(user)})
    return await cur.fetchall()
