"""Dependencies of the routes: the connection pool, the settings and the
authenticated user (bearer token)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg import AsyncConnection
from psycopg.rows import class_row
from psycopg_pool import AsyncConnectionPool

from agri.api.accounts import USER_BY_TOKEN, User
from agri.devices.credentials import token_digest
from agri.settings import Settings

_bearer = HTTPBearer(auto_error=False)


def get_pool(request: Request) -> AsyncConnectionPool:
    return request.app.state.pool


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_conn(pool: Annotated[AsyncConnectionPool, Depends(get_pool)]):
    async with pool.connection() as conn:
        yield conn


Conn = Annotated[AsyncConnection, Depends(get_conn)]
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
