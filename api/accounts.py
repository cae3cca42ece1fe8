"""Users, roles and API tokens: SQL for users, one place."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import psycopg

from agri.devices.credentials import new_token, token_digest


class Role(StrEnum):
    FARMER = "farmer"
    OFFICER = "officer"
    DEVELOPER = "developer"
    PLANNER = "planner"
    ADMIN = "admin"


class AccountError(ValueError):
    """A user cannot be created as asked; the message says why."""


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: Role
    regions: list[str]

    @property
    def sees_everything(self) -> bool:
        return self.role in (Role.ADMIN, Role.PLANNER) or (
            self.role == Role.OFFICER and not self.regions)


def add_user(conn: psycopg.Connection, *, name: str, role: str,
             regions: list[str] | None = None) -> str:
    """Create a user; returns the API token (shown once, only its hash is kept)."""
    try:
        role = Role(role)
    except ValueError:
        raise AccountError(f"role must be one of {', '.join(Role)}") from None
    token = new_token()
    try:
        with conn.transaction():
            conn.execute("INSERT INTO users (name, role, regions, token_hash) "
                         "VALUES (%s, %s, %s, %s)",
                         (name, role.value, regions or [], token_digest(token)))
    except psycopg.errors.UniqueViolation:
        raise AccountError(f"user {name!r} exists already") from None
    except psycopg.errors.CheckViolation:
        raise AccountError("user names are 1-64 letters, digits or _ . @ -") from None
    return token


def rotate_token(conn: psycopg.Connection, name: str) -> str:
    """A new API token for ``name``; the old one stops working at once."""
    token = new_token()
    with conn.transaction():
        cur = conn.execute("UPDATE users SET token_hash = %s WHERE name = %s",
                           (token_digest(token), name))
    if cur.rowcount != 1:
        raise AccountError(f"no user {name!r}")
    return token


# The user a bearer token belongs to (its SHA-256 is stored, never the token).
USER_BY_TOKEN = (
    "SELECT name, role, regions FROM users WHERE token_hash = %s "  # noqa: S105 - SQL, no secret
    "AND disabled_at IS NULL")
