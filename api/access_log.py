"""The access log: one row per request in ``access_log`` (migration 010).

A request only puts its row in a bounded queue; a background task writes
what is queued in batches (at most FLUSH_S after a request ends), so that
logging never slows a request down nor fails it. When the queue is full or
the database refuses a batch, rows are dropped and counted
(``agri_access_log_dropped_total`` at /metrics, and a warning in the API's
log). Once an hour the task deletes rows older than ``AGRI_ACCESS_LOG_DAYS``.

What a row keeps: the time the request arrived, the user name when a token
or session named one, the client address, the method, the path (never the
query string, which may carry secrets; the token of a sign-in link,
``/sign-in/<token>``, is replaced by ``...``) cut to PATH_CHARS, the status
and the duration in milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import astuple, dataclass
from datetime import datetime

from psycopg import AsyncConnection
from psycopg import Error as DatabaseError

from agri.api.pools import Databases

logger = logging.getLogger(__name__)

PATH_CHARS = 300  # the table's CHECK
QUEUE_ROWS = 10_000
BATCH_ROWS = 1_000
FLUSH_S = 1.0
PRUNE_EVERY_S = 3600.0
WARN_EVERY_S = 60.0  # drops are counted always, warned about at most this often
# Path prefixes whose next segments are secrets (one-time sign-in tokens).
SECRET_AFTER = ("/sign-in/",)
REDACTED = "..."

COPY_SQL = ("COPY access_log (time, user_name, client, method, path, status, duration_ms) "
            "FROM STDIN")
PRUNE_SQL = "DELETE FROM access_log WHERE time < now() - make_interval(days => %s)"


@dataclass(frozen=True, slots=True)
class Entry:
    time: datetime
    user_name: str | None
    client: str
    method: str
    path: str
    status: int
    duration_ms: float


def loggable_path(path: str) -> str:
    """The path as the log keeps it: secrets after SECRET_AFTER replaced, NUL
    and other control characters escaped, cut to PATH_CHARS."""
    for marker in SECRET_AFTER:
        at = path.find(marker)
        if at >= 0 and len(path) > at + len(marker):
            path = path[:at + len(marker)] + REDACTED
    path = path[:PATH_CHARS]
    if not path.isprintable():
        path = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" if ord(c) < 256
                       else f"\\u{ord(c):04x}" for c in path)
    return path[:PATH_CHARS]


class AccessLog:
    """The queue of rows and the task that writes them."""

    def __init__(self, databases: Databases, *, retention_days: int,
                 on_drop: Callable[[int], None] = lambda n: None) -> None:
        self.databases = databases
        self.retention_days = retention_days
        self.on_drop = on_drop
        self.queue: asyncio.Queue[Entry] = asyncio.Queue(QUEUE_ROWS)
        self._task: asyncio.Task | None = None
        self._warned_at: float | None = None
        self._unreported = 0

    def record(self, entry: Entry) -> None:
        try:
            self.queue.put_nowait(entry)
        except asyncio.QueueFull:
            self._dropped(1, "the queue is full")

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="access-log")

    async def stop(self) -> None:
        """Write what is queued, then end the task."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    async def flush(self) -> None:
        while not self.queue.empty():
            batch = [self.queue.get_nowait()
                     for _ in range(min(BATCH_ROWS, self.queue.qsize()))]
            await self._write(batch)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        pruned_at = None
        while True:
            if pruned_at is None or loop.time() - pruned_at > PRUNE_EVERY_S:
                await self._prune()
                pruned_at = loop.time()
            try:
                first = await asyncio.wait_for(self.queue.get(), PRUNE_EVERY_S)
            except TimeoutError:
                continue
            if self.queue.qsize() < BATCH_ROWS - 1:
                # Let the rows of a burst gather, then write them together.
                await asyncio.sleep(FLUSH_S)
            batch = [first] + [self.queue.get_nowait()
                               for _ in range(min(BATCH_ROWS - 1, self.queue.qsize()))]
            await self._write(batch)

    async def _write(self, batch: list[Entry]) -> None:
        try:
            async with self.databases.connection(read=False) as conn:
                await write(conn, batch)
        except (DatabaseError, OSError) as exc:
            self._dropped(len(batch), f"the database refused them: {exc}")
        except Exception:
            logger.exception("access log: %d rows not written", len(batch))
            self._dropped(len(batch), "of an error (traceback above)")

    async def _prune(self) -> None:
        try:
            async with self.databases.connection(read=False) as conn:
                cur = await conn.execute(PRUNE_SQL, (self.retention_days,))
                if cur.rowcount:
                    logger.info("access log: deleted %d rows older than %d days",
                                cur.rowcount, self.retention_days)
        except (DatabaseError, OSError) as exc:
            logger.warning("access log: old rows not deleted (tried again in %.0f s): %s",
                           PRUNE_EVERY_S, exc)

    def _dropped(self, n: int, why: str) -> None:
        self.on_drop(n)
        self._unreported += n
        now = asyncio.get_running_loop().time()
        if self._warned_at is None or now - self._warned_at > WARN_EVERY_S:
            logger.warning("access log: %d rows dropped because %s", self._unreported, why)
            self._warned_at = now
            self._unreported = 0


async def write(conn: AsyncConnection, entries: list[Entry]) -> None:
    async with conn.cursor() as cur, cur.copy(COPY_SQL) as copy:
        for entry in entries:
            await copy.write_row(astuple(entry))


# The operator's query behind ``agri access-log``: newest first, one user's or all.
RECENT_SQL = """SELECT time, user_name, client, method, path, status, duration_ms
                FROM access_log
                WHERE %(user)s::text IS NULL OR user_name = %(user)s
                ORDER BY time DESC, id DESC LIMIT %(limit)s"""
