"""The API's database pools: the primary, and a streaming replica for reads
when ``AGRI_DATABASE_READ_URL`` is set.

Which requests read from the replica: safe HTTP methods (GET, HEAD,
OPTIONS), which must not write; everything else uses the primary. A route
that must see its own or another request's latest write uses the primary
explicitly (``PrimaryConn`` in ``api/deps.py``): a replica lags the primary
by up to a few hundred milliseconds under load, more after an outage.

When the replica is gone, reads fall back to the primary: the API keeps
answering, with fresh data, and the primary carries the reads until the
replica is back. The request that finds the replica away waits at most
``REPLICA_TIMEOUT_S`` for it, or fails with 503 if the replica went away
mid-query; later requests go straight to the primary while a background
probe checks every ``REPLICA_RETRY_S`` whether the replica answers again.
Only when the primary is unavailable too does a read answer 503 ("database
unavailable").
"""

from __future__ import annotations

import asyncio
import logging
import select
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from psycopg import AsyncConnection, OperationalError
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from agri.db import CONNECT_TIMEOUT_S

logger = logging.getLogger(__name__)

POOL_MAX = 10
POOL_TIMEOUT_S = 10.0
REPLICA_TIMEOUT_S = 1.0  # a read waits this long for the replica, then uses the primary
REPLICA_RETRY_S = 5.0
SESSION = {"options": "-c timezone=UTC"}


CHECK_IDLE_S = 2.0  # a connection idle longer than this is checked before it is used


class _IdleCheck:
    """The pool's check. A connection given back more than CHECK_IDLE_S ago,
    or one with something to read (an idle connection has nothing to read
    unless the server ended it: a restart, a replica stopped), is tried with
    a round trip before a request gets it; one in steady use is not, so a
    request does not pay a round trip for it. A connection that breaks while
    in use is discarded when given back (psycopg_pool sees its state)."""

    def __init__(self) -> None:
        self._back: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    async def reset(self, conn: AsyncConnection) -> None:
        self._back[conn] = time.monotonic()

    async def check(self, conn: AsyncConnection) -> None:
        back = self._back.get(conn)
        if back is None or time.monotonic() - back > CHECK_IDLE_S or _has_input(conn):
            await AsyncConnectionPool.check_connection(conn)


def _has_input(conn: AsyncConnection) -> bool:
    poller = select.poll()
    poller.register(conn.pgconn.socket, select.POLLIN | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(0))


def _pool(url: str, *, timeout_s: float) -> AsyncConnectionPool:
    idle = _IdleCheck()
    return AsyncConnectionPool(url, min_size=1, max_size=POOL_MAX, timeout=timeout_s,
                               open=False, check=idle.check, reset=idle.reset,
                               kwargs=SESSION | {"connect_timeout": CONNECT_TIMEOUT_S})


class Databases:
    """The primary pool and the replica pool (or None)."""

    def __init__(self, primary_url: str, replica_url: str | None = None) -> None:
        self.primary = _pool(primary_url, timeout_s=POOL_TIMEOUT_S)
        self.replica = _pool(replica_url, timeout_s=REPLICA_TIMEOUT_S) if replica_url else None
        self._replica_url = replica_url
        self._down_since: float | None = None
        self._probe: asyncio.Task | None = None

    async def open(self) -> None:
        await self.primary.open()
        if self.replica is not None:
            await self.replica.open()

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
        if self.replica is not None:
            await self.replica.close()
        await self.primary.close()

    @property
    def replica_state(self) -> str:
        """'none' (not configured), 'up', or 'down' (reads use the primary)."""
        if self.replica is None:
            return "none"
        return "down" if self._down_since is not None else "up"

    @asynccontextmanager
    async def connection(self, *, read: bool) -> AsyncIterator[AsyncConnection]:
        """A connection of the replica for a read while it answers, else of the primary."""
        async with self.connection_of(read=read) as (conn, _primary):
            yield conn

    @asynccontextmanager
    async def connection_of(self, *, read: bool
                            ) -> AsyncIterator[tuple[AsyncConnection, bool]]:
        """(connection, whether it is the primary's), as ``connection``."""
        use_replica = read and self.replica is not None
        async with AsyncExitStack() as stack:
            conn = None
            if use_replica and self._down_since is None:
                try:
                    conn = await stack.enter_async_context(self.replica.connection())
                except PoolTimeout as exc:
                    # Every connection busy is load, not an outage: this read
                    # alone goes to the primary.
                    if self.replica.get_stats().get("pool_size", 0) < POOL_MAX:
                        self._mark_down(exc)
                except OperationalError as exc:
                    self._mark_down(exc)
            if conn is None:
                if use_replica and self._down_since is not None:
                    self._maybe_probe()
                yield await stack.enter_async_context(self.primary.connection()), True
                return
            try:
                yield conn, False
            except OperationalError as exc:
                self._mark_down(exc)
                raise

    def _mark_down(self, exc: BaseException) -> None:
        if self._down_since is None:
            logger.warning("read replica unavailable (%s); reading from the primary until it "
                           "answers again", str(exc).strip() or type(exc).__name__)
            self._down_since = time.monotonic()

    def _maybe_probe(self) -> None:
        if self._probe is None or self._probe.done():
            self._probe = asyncio.create_task(self._probe_replica())

    async def _probe_replica(self) -> None:
        await asyncio.sleep(REPLICA_RETRY_S)
        try:
            conn = await AsyncConnection.connect(self._replica_url, autocommit=True,
                                                 connect_timeout=CONNECT_TIMEOUT_S, **SESSION)
            async with conn:
                await conn.execute("SELECT 1")
            await self.replica.check()  # replace the pool's broken connections
        except (OperationalError, PoolTimeout) as exc:
            logger.debug("read replica still unavailable: %s", exc)
            return
        logger.info("read replica answers again after %.0f s; reads go to it",
                    time.monotonic() - self._down_since)
        self._down_since = None
