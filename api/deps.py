"""Dependencies of the routes: database connections, the settings and the
authenticated user (bearer token).

``Conn`` is the connection a route gets: for a safe method (GET, HEAD,
OPTIONS) from the read replica when one is configured and answering, else
from the primary (the rules are in ``api/pools.py``). A route that writes
must not be a GET; one that must read the latest write uses ``PrimaryConn``.
"""

from __future__ import annotations

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


def get_databases(request: Request) -> Databases:
    return request.app.state.databases


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_conn(request: Request, databases: Annotated[Databases, Depends(get_databases)]):
    async with databases.connection(read=request.method in SAFE_METHODS) as conn:
        yield conn


async def get_primary_conn(databases: Annotated[Databases, Depends(get_databases)]):
    async with databases.connection(read=False) as conn:
        yield conn


Conn = Annotated[AsyncConnection, Depends(get_conn)]
PrimaryConn = Annotated[AsyncConnection, Depends(get_primary_conn)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


async def current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    databases: Annotated[Databases, Depends(get_databases)],
) -> User:
    """The user of a live API token (``Authorization: Bearer``), looked up on
    the primary so that a revoked token stops at once; the user's name is
    kept on the request for the access log."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "missing bearer token: send Authorization: Bearer <token>",
                            headers={"WWW-Authenticate": "Bearer"})
    digest = token_digest(credentials.credentials)
    async with databases.connection(read=False) as primary:
        async with primary.cursor(row_factory=class_row(User)) as cur:
            await cur.execute(USER_BY_BEARER, (digest,))
            user = await cur.fetchone()
        if user is not None:
            await primary.execute(BEARER_USED, (digest,))
    if user is None:
        raise HTTPException(401, "unknown, expired or revoked token: ask for a new one "
                                 "(agri users token NAME --rotate, or your page's Tokens)",
                            headers={"WWW-Authenticate": "Bearer"})
    request.state.user_name = user.name
    return user


CurrentUser = Annotated[User, Depends(current_user)]
