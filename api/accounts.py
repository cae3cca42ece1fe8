"""Users, roles, API tokens and passwords: the SQL for accounts, one place.

A user has any number of API tokens (stored as SHA-256, listable by label,
revocable, each with an optional expiry) and a password for the pages
(api/passwords.py). Roles and regions are set only here, by `agri users`,
never through a request body."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

import psycopg

from agri.api import passwords
from agri.devices.credentials import new_token, token_digest


class Role(StrEnum):
    FARMER = "farmer"
    OFFICER = "officer"
    DEVELOPER = "developer"
    PLANNER = "planner"
    ADMIN = "admin"


class AccountError(ValueError):
    """A user cannot be created or changed as asked; the message says why."""


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: Role
    regions: list[str] = field(default_factory=list)
    language: str = "ja"
    must_change_password: bool = False


@dataclass(frozen=True, slots=True)
class NewUser:
    name: str
    role: Role
    token: str          # shown once
    password: str       # initial, to be changed at first login; shown once


MAX_TOKEN_DAYS = 400


def add_user(conn: psycopg.Connection, *, name: str, role: str,
             regions: list[str] | None = None) -> NewUser:
    """Create a user with an API token and an initial password (both shown
    once; only their hashes are kept)."""
    try:
        role = Role(role)
    except ValueError:
        raise AccountError(f"role must be one of {', '.join(Role)}") from None
    token = new_token()
    password = passwords.initial_password()
    try:
        with conn.transaction():
            conn.execute("INSERT INTO users (name, role, regions, password_hash) "
                         "VALUES (%s, %s, %s, %s)",
                         (name, role.value, regions or [], passwords.hash_password(password)))
            conn.execute("INSERT INTO api_tokens (user_name, label, token_hash) "
                         "VALUES (%s, 'initial', %s)", (name, token_digest(token)))
    except psycopg.errors.UniqueViolation:
        raise AccountError(f"user {name!r} exists already") from None
    except psycopg.errors.CheckViolation:
        raise AccountError("user names are 1-64 letters, digits or _ . @ -") from None
    return NewUser(name, role, token, password)


def rotate_token(conn: psycopg.Connection, name: str) -> str:
    """A new API token for ``name``; all its earlier tokens stop working at once."""
    token = new_token()
    with conn.transaction():
        if conn.execute("SELECT 1 FROM users WHERE name = %s", (name,)).fetchone() is None:
            raise AccountError(f"no user {name!r}")
        conn.execute("UPDATE api_tokens SET revoked_at = now() WHERE user_name = %s "
                     "AND revoked_at IS NULL", (name,))
        conn.execute("INSERT INTO api_tokens (user_name, label, token_hash) "
                     "VALUES (%s, 'rotated', %s)", (name, token_digest(token)))
    return token


def reset_password(conn: psycopg.Connection, name: str) -> str:
    """A new initial password for ``name`` (to be changed at the next login);
    the user's page sessions end."""
    password = passwords.initial_password()
    with conn.transaction():
        cur = conn.execute("UPDATE users SET password_hash = %s, must_change_password = true "
                           "WHERE name = %s", (passwords.hash_password(password), name))
        if cur.rowcount != 1:
            raise AccountError(f"no user {name!r}")
        conn.execute("UPDATE page_sessions SET ended_at = now() WHERE user_name = %s "
                     "AND ended_at IS NULL", (name,))
    return password


async def create_token(conn: psycopg.AsyncConnection, user: User, *, label: str,
                       expires_in_days: int | None) -> tuple[int, str, datetime | None]:
    """(id, token, expires_at) of a new token of ``user``; the token is shown once."""
    token = new_token()
    expires = None if expires_in_days is None else timedelta(days=expires_in_days)
    cur = await conn.execute(
        "INSERT INTO api_tokens (user_name, label, token_hash, expires_at) "
        "VALUES (%s, %s, %s, now() + %s) RETURNING id, expires_at",
        (user.name, label, token_digest(token), expires))
    tid, expires_at = await cur.fetchone()
    return tid, token, expires_at


BEARER_COLUMNS = "id, label, created_at, expires_at, last_used_at, revoked_at"

# The user a bearer token belongs to: the token is live (not revoked, not
# expired) and the user not disabled. Its SHA-256 is stored, never the token.
USER_BY_BEARER = (
    "SELECT u.name, u.role, u.regions, u.language, false AS must_change_password "
    "FROM api_tokens t JOIN users u ON u.name = t.user_name "
    "WHERE t.token_hash = %s AND t.revoked_at IS NULL "
    "AND (t.expires_at IS NULL OR t.expires_at > now()) AND u.disabled_at IS NULL")

# When a token was last used, at most once a minute per token (a write per
# request would make every GET a write).
BEARER_USED = ("UPDATE api_tokens SET last_used_at = now() WHERE token_hash = %s "
              "AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')")
