"""Send the deliveries that are due: each taken with FOR UPDATE SKIP LOCKED
(several services may run), rendered in the user's language, sent on its
channel and recorded: sent, failed (refused for good, or too many tries) or
skipped (nothing to send to). A transient failure is tried again later,
each time after a longer wait, at most MAX_ATTEMPTS times."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import psycopg
from psycopg.rows import dict_row

from agri.alerts import messages
from agri.alerts.channels import DeliveryError
from agri.settings import Settings

logger = logging.getLogger(__name__)

BATCH = 50  # deliveries taken per round
MAX_ATTEMPTS = 5
BACKOFF_S = (10.0, 30.0, 120.0, 600.0)  # wait after the 1st, 2nd, ... transient failure
ERROR_MAX_CHARS = 500
LANGUAGES = ("ja", "en")

_DUE = """
SELECT dl.id, dl.channel, dl.event, dl.attempts, dl.user_name,
       p.email, p.email_on, p.line_user_id, p.line_on, u.language,
       a.id AS alert_id, a.rule, a.severity, a.field_id, a.device_id, a.evidence,
       a.opened_at, a.observed_at, f.name AS field_name
FROM alert_deliveries dl
JOIN alerts a ON a.id = dl.alert_id
JOIN users u ON u.name = dl.user_name
LEFT JOIN alert_preferences p ON p.user_name = dl.user_name
LEFT JOIN fields f ON f.id = a.field_id
WHERE dl.status IN ('queued', 'held') AND dl.not_before <= %s
ORDER BY dl.not_before, dl.id
LIMIT 1
FOR UPDATE OF dl SKIP LOCKED"""


def link(settings: Settings, alert: dict) -> str:
    path = f"/fields/{alert['field_id']}" if alert["field_id"] else \
        f"/devices/{alert['device_id']}"
    return settings.site_url + path


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=BACKOFF_S[min(attempts - 1, len(BACKOFF_S) - 1)])


def _send(settings: Settings, row: dict) -> tuple[str, str | None]:
    """(status, error) of sending one delivery; raises DeliveryError when the channel did."""
    from agri.alerts import email, line

    alert = {k: row[k] for k in ("rule", "severity", "field_id", "field_name", "device_id",
                                 "evidence", "opened_at", "observed_at")}
    alert["id"] = row["alert_id"]
    language = row["language"] if row["language"] in LANGUAGES else "ja"
    message = messages.render(alert, row["event"], language, link(settings, alert))
    if row["channel"] == "email":
        if not row["email_on"] or not row["email"]:
            return "skipped", "no email address, or email turned off"
        email.send_email(settings, row["email"], message.subject, message.text)
    else:
        if not row["line_on"] or not row["line_user_id"] or not settings.line_channel_token:
            return "skipped", "no LINE account linked, LINE turned off or not set up"
        line.send_line(settings, row["line_user_id"], message.text,
                       f"alert-delivery-{row['id']}")
    return "sent", None


def deliver_one(conn: psycopg.Connection, settings: Settings, *, now: datetime) -> bool:
    """Take, send and record one due delivery; False when none is due."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(_DUE, (now,)).fetchone()
        if row is None:
            return False
        attempts = row["attempts"] + 1
        try:
            status, error = _send(settings, row)
        except DeliveryError as exc:
            error = str(exc)[:ERROR_MAX_CHARS] or type(exc).__name__
            status = "failed" if exc.permanent or attempts >= MAX_ATTEMPTS else "queued"
        except Exception as exc:  # a bad row or a channel's bug: record it, keep serving
            logger.exception("delivery %s could not be sent", row["id"])
            error, status = f"{type(exc).__name__}: {exc}"[:ERROR_MAX_CHARS], "failed"
        cur.execute(
            """UPDATE alert_deliveries SET status = %s, attempts = %s, error = %s,
                   sent_at = CASE WHEN %s = 'sent' THEN clock_timestamp() END,
                   not_before = CASE WHEN %s = 'queued' THEN %s ELSE not_before END
               WHERE id = %s""",
            (status, attempts, error, status, status, now + backoff(attempts), row["id"]))
        if status != "sent":
            logger.warning("delivery %s (%s to %s): %s after %s attempts: %s", row["id"],
                           row["channel"], row["user_name"], status, attempts, error)
    return True


def deliver_due(conn: psycopg.Connection, settings: Settings, *, now: datetime,
                limit: int = BATCH) -> int:
    sent = 0
    while sent < limit and deliver_one(conn, settings, now=now):
        sent += 1
    return sent
