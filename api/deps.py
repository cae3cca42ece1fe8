"""Dependencies of the routes: database connections, the settings and the
authenticated user (bearer token).

``Conn`` is the connection a route gets: for a safe method (GET, HEAD,
OPTIONS) from the read replica when one is configured and answering, else
from the primary (the rules are in ``api/pools.py``). A route that writes
must not be a GET; one that must read the latest write uses ``PrimaryConn``.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg import AsyncConnection
from psycopg.rows import class_row

from agri.api.accounts import BEARER_USED, USER_BY_BEARER, User
from agri.api.pools import Databases
from agri.devices.credentials import token_digest
from agri.settings import Settings

_bearer = HTTPBearer(auto_error=False)


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def get_databases(request: Request) -> Databases:
    return request.app.state.databases


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_conn(request: Request, databases: Annotated[Databases, Depends(get_databases)]):
    async with databases.connection_of(read=request.method in SAFE_METHODS) as (conn, primary):
        request.state.conn_is_primary = primary
        yield conn


# scope="function": the connection's transaction is committed and the
# connection given back before the response is sent, so that a client that
# reads right after a write's answer finds it stored.
Conn = Annotated[AsyncConnection, Depends(get_conn, scope="function")]


async def get_primary_conn(request: Request, conn: Conn,
                           databases: Annotated[Databases, Depends(get_databases)]):
    """The primary's connection: the request's own when it is the primary's
    (one connection per request, whatever the order of a route's
    parameters), else one more, always taken after the replica's."""
    if request.state.conn_is_primary:
        yield conn
        return
    async with databases.connection(read=False) as primary:
        yield primary


PrimaryConn = Annotated[AsyncConnection, Depends(get_primary_conn, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]


async def on_primary(request: Request, conn: AsyncConnection, databases: Databases,
                     query: str, params: tuple) -> None:
    """Run a write on the primary: on the request's connection when it is the
    primary's, else on one taken (after the replica's) for just this."""
    if request.state.conn_is_primary:
        await conn.execute(query, params)
        return
    async with databases.connection(read=False) as primary:
        await primary.execute(query, params)


class Throttle:
    """At most one write per key and ``every_s`` from this process (a token's
    last use, a session's sliding expiry), not one per request."""

    def __init__(self, every_s: float = 60.0, max_keys: int = 100_000):
        self.every_s, self.max_keys = every_s, max_keys
        self._last: dict[object, float] = {}

    def due(self, key: object) -> bool:
        now = time.monotonic()
        if now - self._last.get(key, -self.every_s) < self.every_s:
            return False
        if len(self._last) >= self.max_keys:
            self._last.clear()
        self._last[key] = now
        return True


_token_used = Throttle()


async def current_user(
    request: Request,
    conn: Conn,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    databases: Annotated[Databases, Depends(get_databases)],
) -> User:
    """The user of a live API token (``Authorization: Bearer``), looked up on
    the request's own connection (no second one is held meanwhile); the
    user's name is kept on the request for the access log."""
    return await _token_user(request, conn, credentials, databases)


async def current_user_holding_nothing(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    databases: Annotated[Databases, Depends(get_databases)],
) -> User:
    """As ``current_user``, on a connection given back at once: for a route
    that streams a large upload before it needs the database."""
    async with databases.connection_of(read=request.method in SAFE_METHODS) as (conn, primary):
        request.state.conn_is_primary = primary
        return await _token_user(request, conn, credentials, databases)


async def _token_user(request: Request, conn: AsyncConnection,
                      credentials: HTTPAuthorizationCredentials | None,
                      databases: Databases) -> User:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "missing bearer token: send Authorization: Bearer <token>",
                            headers={"WWW-Authenticate": "Bearer"})
    digest = token_digest(credentials.credentials)
    async with conn.cursor(row_factory=class_row(User)) as cur:
        await cur.execute(USER_BY_BEARER, (digest,))
        user = await cur.fetchone()
    if user is None:
        raise HTTPException(401, "unknown, expired or revoked token: ask for a new one "
                                 "(POST /api/v1/me/tokens with another live token, or an "
                                 "operator's agri users token NAME --rotate)",
                            headers={"WWW-Authenticate": "Bearer"})
    if _token_used.due(digest):
        await on_primary(request, conn, databases, BEARER_USED, (digest,))
    request.state.user_name = user.name
    return user


CurrentUser = Annotated[User, Depends(current_user)]
UploadingUser = Annotated[User, Depends(current_user_holding_nothing)]
