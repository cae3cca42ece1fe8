"""Database connections: one place that opens them, with the session settings
every part of the platform relies on."""

from __future__ import annotations

import time

import psycopg

CONNECT_TIMEOUT_S = 5


def connect(url: str, *, autocommit: bool = False) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=autocommit, connect_timeout=CONNECT_TIMEOUT_S,
                           options="-c timezone=UTC")


def wait_ready(url: str, *, timeout_s: float = 60.0) -> None:
    """Poll until the server accepts connections; raise the last error at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with connect(url, autocommit=True) as conn:
                conn.execute("SELECT 1")
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
