"""The database logins of the services in tests: those of the embedded stack
when it made them, else made here as the stack makes them."""

from __future__ import annotations

import secrets

import orjson
import psycopg

from agri.deploy.db_roles import SERVICE_ROLES, ensure_logins, login_url


def service_urls(platform) -> dict[str, str]:
    """service -> database URL of its login on the test cluster."""
    known = orjson.loads((platform.home / "stack.json").read_bytes()).get("database_urls", {})
    urls = {s: known[s] for s in SERVICE_ROLES if s in known}
    missing = {s: secrets.token_urlsafe(24) for s in SERVICE_ROLES if s not in urls}
    if missing:
        with psycopg.connect(platform.db_url) as conn:
            ensure_logins(conn, missing)
        urls |= {s: login_url(platform.db_url, s, pw) for s, pw in missing.items()}
    return urls
