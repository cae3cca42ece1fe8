"""The database roles of the platform's services, and their logins.

The migration owner (the role that runs ``agri db migrate``) owns the schema.
Migration 004 creates one NOLOGIN group role per service and
``migrations/grants.sql`` gives each the rights it needs and no more (no
superuser, no CREATE on the schema, no ownership). A process logs in with a
role that is a member of its service's group:

- the embedded stack creates these logins itself (``ensure_logins``) with
  generated passwords and writes their URLs (``login_url``) to ``stack.json``;
- in production the operator creates them once, as the migration owner::

      CREATE ROLE agri_ingest_login LOGIN PASSWORD '...' IN ROLE agri_ingest;
      CREATE ROLE agri_api_login LOGIN PASSWORD '...' IN ROLE agri_api;
      CREATE ROLE agri_analytics_login LOGIN PASSWORD '...' IN ROLE agri_analytics;
      CREATE ROLE agri_alerts_login LOGIN PASSWORD '...' IN ROLE agri_alerts;
      CREATE ROLE agri_water_login LOGIN PASSWORD '...' IN ROLE agri_water;

  and gives each process its own ``AGRI_DATABASE_URL``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import MappingProxyType
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

logger = logging.getLogger(__name__)

# Service -> group role (created by migration 004, rights in grants.sql).
SERVICE_ROLES: Mapping[str, str] = MappingProxyType({
    "ingest": "agri_ingest",
    "api": "agri_api",
    "analytics": "agri_analytics",
    "alerts": "agri_alerts",
    "water": "agri_water",
})
LOGIN_SUFFIX = "_login"
ROLES_LOCK_ID = 0x61677267  # advisory lock: one writer of roles at a time

_LOGIN_OPTIONS = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT"


class RoleError(RuntimeError):
    """A service login cannot be set up; the message says what to do."""


def login_name(service: str) -> str:
    """The login role of a service, e.g. ``agri_ingest_login``."""
    return _group(service) + LOGIN_SUFFIX


def _group(service: str) -> str:
    try:
        return SERVICE_ROLES[service]
    except KeyError:
        raise RoleError(f"unknown service {service!r}: choose one of "
                        f"{', '.join(SERVICE_ROLES)}") from None


def ensure_logins(conn: psycopg.Connection, passwords: Mapping[str, str]) -> None:
    """Create or update the login role of each service in ``passwords``
    (service -> password), as a member of the service's group role and
    nothing else. Run as the migration owner after ``migrate``; idempotent.

    The password reaches the server only as a SCRAM verifier computed here,
    as a quoted literal: never in clear text, never formatted into SQL."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (ROLES_LOCK_ID,))
        for service, password in passwords.items():
            group, login = _group(service), login_name(service)
            if not password:
                raise RoleError(f"empty password for the {service} login {login}")
            if conn.execute("SELECT FROM pg_roles WHERE rolname = %s", (group,)).fetchone() is None:
                raise RoleError(f"role {group} is missing: run `agri db migrate` first")
            exists = conn.execute("SELECT FROM pg_roles WHERE rolname = %s",
                                  (login,)).fetchone() is not None
            verifier = conn.pgconn.encrypt_password(
                password.encode(), login.encode(), b"scram-sha-256").decode()
            conn.execute(sql.SQL("{verb} ROLE {login} " + _LOGIN_OPTIONS + " PASSWORD {pw}").format(
                verb=sql.SQL("ALTER" if exists else "CREATE"), login=sql.Identifier(login),
                pw=sql.Literal(verifier)))
            conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group),
                                                         sql.Identifier(login)))
            logger.info("database login %s (%s) %s", login, group,
                        "updated" if exists else "created")


def login_url(owner_url: str, service: str, password: str) -> str:
    """The owner's database URL with the service's login and password instead
    (same host, port, database and options). A key=value connection string
    gets the same treatment and stays one."""
    login = login_name(service)
    if "://" not in owner_url:
        return make_conninfo(owner_url, user=login, password=password)
    parts = urlsplit(owner_url)
    host = parts.netloc.rsplit("@", 1)[-1]
    netloc = f"{quote(login, safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))
