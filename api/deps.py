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

from agri.api.accounts import USER_BY_TOKEN, User
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
    conn: Conn,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "missing bearer token: send Authorization: Bearer <token>",
                            headers={"WWW-Authenticate": "Bearer"})
    async with conn.cursor(row_factory=class_row(User)) as cur:
        await cur.execute(USER_BY_TOKEN, (token_digest(credentials.credentials),))
        user = await cur.fetchone()
    if user is None:
        raise HTTPException(401, "unknown or disabled token", headers={"WWW-Authenticate":
                                                                        "Bearer"})
    return user


CurrentUser = Annotated[User, Depends(current_user)]
