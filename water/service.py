"""The water control service: every ``poll_s`` one pass over the fields in
an automatic mode (schedule, hold): read their states, decide, queue the
commands and log the decisions (docs/water-control.md)."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

import psycopg

from agri.db import connect
from agri.water import control_store, controller
from agri.water.controller import Decision

logger = logging.getLogger(__name__)

POLL_S = 60.0  # between two passes
RETRY_MAX_S = 30.0  # the longest wait after a database outage


def run_once(conn: psycopg.Connection, *, now: datetime) -> list[Decision]:
    """One pass as of ``now``: the decisions made (commands queued and
    hold-backs logged, committed before it returns)."""
    with conn.transaction():
        states = control_store.load_states(conn, now=now)
        decisions = [d for s in states for d in controller.decide(s, now)]
        if decisions:
            control_store.write(conn, decisions, now=now)
    for d in decisions:
        logger.info("%s %s %s %s", d.field_id, d.device_id or "-", d.action, d.log_reason)
    return decisions


def serve(settings, stop: threading.Event, poll_s: float = POLL_S) -> None:
    """Passes every ``poll_s`` until ``stop``, logged in as the water role; a
    database outage delays them, it does not end the service."""
    url = settings.db_url("water")
    conn: psycopg.Connection | None = None
    delay = 0.0
    logger.info("water control: a pass every %.0f s", poll_s)
    while not stop.wait(delay):
        try:
            if conn is None or conn.closed:
                conn = connect(url, autocommit=True)
            run_once(conn, now=datetime.now(UTC))
            delay = poll_s
        except psycopg.OperationalError as exc:
            logger.warning("water control: database unavailable (%s); retrying", exc)
            if conn is not None:
                conn.close()
            conn = None
            delay = min(max(delay, 1.0) * 2, RETRY_MAX_S)
    if conn is not None:
        conn.close()
