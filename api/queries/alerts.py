"""A user's alerts (table ``alerts``, written by the alert service in
alerts/) with the delivery status of each to that user, per channel.

Who sees which alert follows api/queries/access.py: a farmer the alerts of
the fields they own or that are shared with them and of their own devices;
an officer those of the fields (and the devices on fields) of their
region's municipalities; a developer those of their own devices; a planner
none; an admin all. An alert of a device counts as on the device's field.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from psycopg import AsyncConnection
from psycopg.rows import class_row

from agri.api.accounts import Role, User
from agri.api.queries import access

CHANNELS = ("email", "line")
STATES = ("open", "cleared", "all")

_LIST = f"""
SELECT a.id, a.rule, a.severity, a.field_id, af.name AS field_name, a.device_id,
       a.evidence, a.opened_at, a.observed_at, a.cleared_at,
       coalesce((SELECT jsonb_object_agg(dl.channel, dl.status) FROM alert_deliveries dl
                 WHERE dl.alert_id = a.id AND dl.user_name = %(user)s
                   AND dl.event = 'opened'), '{{}}') AS deliveries
FROM alerts a
LEFT JOIN fields af ON af.id = coalesce(a.field_id, (SELECT ad.field_id FROM devices ad
                                                      WHERE ad.id = a.device_id))
WHERE {access.ALERT_VISIBLE}
  AND (%(state)s = 'all' OR (%(state)s = 'open') = (a.cleared_at IS NULL))
  AND (%(town)s::text IS NULL OR af.municipality = %(town)s)
ORDER BY a.cleared_at IS NULL DESC, a.opened_at DESC, a.id DESC
LIMIT %(limit)s OFFSET %(offset)s"""


@dataclass(frozen=True, slots=True)
class AlertRow:
    id: int
    rule: str
    severity: str          # info | warning | urgent
    field_id: str | None   # the alert's field, or its device's
    field_name: str | None
    device_id: str | None
    evidence: dict
    opened_at: datetime
    observed_at: datetime
    cleared_at: datetime | None
    deliveries: dict       # channel -> status of the 'opened' message to this user


async def visible_alerts(conn: AsyncConnection, user: User, *, state: str = "all",
                         municipality: str | None = None, limit: int,
                         offset: int = 0) -> list[AlertRow]:
    """The user's alerts, open ones first, newest first within each; up to
    ``limit`` from ``offset``. ``municipality`` narrows to one town (an
    officer's region is the scope whatever is asked). A planner gets none."""
    if user.role == Role.PLANNER or state not in STATES:
        return []
    params = {"state": state, "town": municipality, "limit": limit, "offset": offset,
              **access.who(user)}
    async with conn.cursor(row_factory=class_row(AlertRow)) as cur:
        await cur.execute(_LIST, params)
        return await cur.fetchall()
