"""Alerts by key: open one when its condition is found and none is open,
clear it when the condition is gone, and queue one message per recipient
and channel for each (alert_preferences decide who gets what; quiet hours
hold all but urgent ones until they end)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

import orjson
import psycopg
from psycopg.types.json import Jsonb

from agri.alerts import rules
from agri.clock import TZ

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Finding:
    """A condition a rule found now; ``observed_at``: when its evidence was measured."""

    key: str
    rule: rules.Rule
    observed_at: datetime
    field_id: str | None = None
    device_id: str | None = None
    evidence: dict = field(default_factory=dict)
    severity: str | None = None  # a rule's own unless given (advisory-published)


def bounded(evidence: dict) -> dict:
    """Evidence as the table takes it: JSON values, texts cut, and at most
    EVIDENCE_MAX_CHARS in all (else only its keys are kept)."""
    def cut(v: object) -> object:
        if isinstance(v, str):
            return v[:rules.TEXT_MAX_CHARS]
        if isinstance(v, dict):
            return {str(k)[:40]: cut(x) for k, x in list(v.items())[:20]}
        if isinstance(v, list | tuple):
            return [cut(x) for x in list(v)[:20]]
        if v is None or isinstance(v, bool | int | float):
            return v if not isinstance(v, float) or v == v and abs(v) != float("inf") else None
        return str(v)[:rules.TEXT_MAX_CHARS]

    out = cut(evidence)
    if len(orjson.dumps(out)) > rules.EVIDENCE_MAX_CHARS:
        out = {"truncated": True, "keys": [str(k)[:40] for k in list(evidence)[:20]]}
    return out  # type: ignore[return-value]


def sync(conn: psycopg.Connection, rule: rules.Rule, findings: Iterable[Finding], *,
         scope: list[str] | None = None, scope_by: str = "device_id",
         now: datetime) -> tuple[int, int]:
    """Make the open alerts of ``rule`` what ``findings`` say: open the new
    ones, clear the open ones not found again. ``scope`` (device or field ids,
    by ``scope_by``) limits the clearing to what was judged; None: all.
    Returns (opened, cleared)."""
    found = {f.key: f for f in findings}
    column = {"device_id": "device_id", "field_id": "field_id"}[scope_by]
    open_rows = conn.execute(
        f"SELECT id, key FROM alerts WHERE rule = %s AND cleared_at IS NULL "  # noqa: S608
        f"AND (%s::text[] IS NULL OR {column} = ANY(%s::text[]))",
        (rule.name, scope, scope)).fetchall()
    open_keys = {k: i for i, k in open_rows}
    opened = 0
    for f in found.values():
        if f.key not in open_keys and open_alert(conn, f, now=now):
            opened += 1
    gone = [i for k, i in open_keys.items() if k not in found]
    for alert_id in gone:
        clear_alert(conn, alert_id, now=now)
    return opened, len(gone)


def open_alert(conn: psycopg.Connection, f: Finding, *, now: datetime) -> int | None:
    """Open the alert of ``f`` unless one with its key is open; queue its messages."""
    row = conn.execute(
        """INSERT INTO alerts (key, rule, severity, field_id, device_id, evidence,
                               opened_at, observed_at)
           VALUES (%s, %s, %s, %s, %s, %s, %s, least(%s, %s))
           ON CONFLICT (key) WHERE cleared_at IS NULL DO NOTHING RETURNING id""",
        (f.key, f.rule.name, f.severity or f.rule.severity, f.field_id, f.device_id,
         Jsonb(bounded(f.evidence)), now, f.observed_at, now)).fetchone()
    if row is None:
        return None
    logger.info("alert %s opened: %s", row[0], f.key)
    queue_opened(conn, row[0], now=now)
    return row[0]


def clear_alert(conn: psycopg.Connection, alert_id: int, *, now: datetime) -> None:
    """Clear an alert; a follow-up to everyone its opening was (or will be)
    sent to. One still held in quiet hours is not sent any more."""
    conn.execute("UPDATE alerts SET cleared_at = greatest(%s, opened_at) "
                 "WHERE id = %s AND cleared_at IS NULL", (now, alert_id))
    conn.execute("""UPDATE alert_deliveries SET status = 'skipped',
                        error = 'cleared before the quiet hours ended'
                    WHERE alert_id = %s AND event = 'opened' AND status = 'held'""",
                 (alert_id,))
    conn.execute(
        """INSERT INTO alert_deliveries (alert_id, user_name, channel, event, status,
                                         not_before)
           SELECT alert_id, user_name, channel, 'cleared', 'queued', greatest(not_before, %s)
           FROM alert_deliveries
           WHERE alert_id = %s AND event = 'opened' AND status IN ('queued', 'sent')
           ON CONFLICT DO NOTHING""", (now, alert_id))
    logger.info("alert %s cleared", alert_id)


# Who is told about an alert: the field's owner, the users it is shared with,
# the officers of its municipality, or the owner of a device without a field;
# each only with preferences that want the rule. Disabled users never.
_RECIPIENTS = """
WITH a AS (SELECT a.*, coalesce(a.field_id, d.field_id) AS fid, d.owner AS device_owner
           FROM alerts a LEFT JOIN devices d ON d.id = a.device_id WHERE a.id = %(id)s),
     who AS (
        SELECT f.owner AS name FROM a JOIN fields f ON f.id = a.fid
        UNION SELECT s.grantee FROM a JOIN field_shares s ON s.field_id = a.fid
              WHERE s.revoked_at IS NULL
        UNION SELECT u.name FROM a JOIN fields f ON f.id = a.fid
              JOIN users u ON u.role = 'officer' AND f.municipality = ANY(u.regions)
        UNION SELECT a.device_owner FROM a WHERE a.fid IS NULL)
SELECT p.user_name, p.email, p.email_on, p.line_user_id, p.line_on, p.quiet_start,
       p.quiet_end, (SELECT severity FROM a), (SELECT rule FROM a)
FROM who JOIN users u ON u.name = who.name AND u.disabled_at IS NULL
JOIN alert_preferences p ON p.user_name = u.name
WHERE (p.email_on OR p.line_on)
  AND (p.rules IS NULL OR (SELECT rule FROM a) = ANY(p.rules))"""


def quiet_until(now: datetime, start: time | None, end: time | None) -> datetime | None:
    """The end of the quiet hours ``now`` falls in (local times), or None."""
    if start is None or end is None or start == end:
        return None
    local = now.astimezone(TZ)
    t = local.time().replace(tzinfo=None)
    inside = start <= t < end if start < end else (t >= start or t < end)
    if not inside:
        return None
    until = datetime.combine(local.date(), end, tzinfo=TZ)
    if until <= local:
        until += timedelta(days=1)
    return until


def queue_opened(conn: psycopg.Connection, alert_id: int, *, now: datetime) -> int:
    rows = conn.execute(_RECIPIENTS, {"id": alert_id}).fetchall()
    queued = 0
    for user, email, email_on, line_id, line_on, q_start, q_end, severity, _rule in rows:
        held = None if severity == "urgent" else quiet_until(now, q_start, q_end)
        for channel, on, address in (("email", email_on, email), ("line", line_on, line_id)):
            if not on:
                continue
            status, error = ("held", None) if held else ("queued", None)
            if not address:
                status, error = "skipped", f"no {channel} address set"
            conn.execute(
                """INSERT INTO alert_deliveries (alert_id, user_name, channel, event, status,
                                                 not_before, error)
                   VALUES (%s, %s, %s, 'opened', %s, %s, %s) ON CONFLICT DO NOTHING""",
                (alert_id, user, channel, status, held or now, error))
            queued += 1
    return queued
