"""Signing in to the pages: sessions, passwords, one-time sign-in links,
rate limits on login attempts, and CSRF protection of every form.

- The session cookie (``agri_session``) is Secure, HttpOnly and
  SameSite=Lax; only its SHA-256 is stored (table ``page_sessions``). A
  session lasts SESSION_DAYS from its last use, so a farmer does not sign in
  again every week.
- Every form carries a ``csrf`` field. Signed in, it must equal the session's
  own token; on the sign-in forms (no session yet) it must equal the
  ``agri_csrf`` cookie set with the form (double submit).
- Failed logins are counted per user name and per client address
  (``login_attempts``); past the limits the form answers 429 and says when to
  try again.
- A sign-in link is a one-time token (valid LINK_HOURS) that an officer makes
  for a farmer of their region and prints as a QR code. Opening it shows a
  button; only pressing it signs in, so that link previews in mail or chat
  apps cannot use it up.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated
from urllib.parse import quote

import segno
from fastapi import Depends, Form, HTTPException, Request
from psycopg import AsyncConnection
from psycopg.rows import class_row

from agri.api import passwords
from agri.api.accounts import User
from agri.api.deps import Conn, Throttle, get_databases, on_primary
from agri.api.pools import Databases
from agri.api.queries.access import in_region

COOKIE = "agri_session"
ANON_CSRF_COOKIE = "agri_csrf"
SESSION_DAYS = 30
LINK_HOURS = 72
# Failed logins in LIMIT_WINDOW before the form refuses more.
LIMIT_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_NAME = 5
MAX_FAILURES_PER_CLIENT = 30
# Pages a user who must change their password may still open.
OPEN_WHILE_CHANGING = ("/password", "/logout", "/static/")


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


def client_of(request: Request) -> str:
    return (request.client.host if request.client else "unknown")[:64]


def cookie_options() -> dict:
    return {"secure": True, "httponly": True, "samesite": "lax", "path": "/"}


def local_path(target: str | None, default: str = "/") -> str:
    """``target`` when it is a path on this site (never another host: no
    ``//``, no scheme, no backslash), else ``default``."""
    if (not target or not target.startswith("/") or target.startswith("//")
            or "\\" in target or any(ord(c) < 32 for c in target)):
        return default
    return target


# --- sessions ---------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SessionRow:
    name: str
    role: str
    regions: list[str]
    language: str
    must_change_password: bool
    csrf_token: str


SESSION_USER = """
    SELECT u.name, u.role, u.regions, u.language,
           u.must_change_password AND s.via = 'password' AS must_change_password, s.csrf_token
    FROM page_sessions s JOIN users u ON u.name = s.user_name
    WHERE s.id_hash = %s AND s.ended_at IS NULL AND s.expires_at > now()
      AND u.disabled_at IS NULL"""


async def start_session(conn: AsyncConnection, user_name: str, *, via: str) -> str:
    """A new session for ``user_name`` signed in ``via`` "password" or
    "link"; returns the cookie value. (Only a password sign-in is sent to
    change an initial password: a farmer who signs in by link has none.)"""
    value = secrets.token_urlsafe(32)
    await conn.execute(
        "INSERT INTO page_sessions (id_hash, user_name, csrf_token, via, expires_at) "
        "VALUES (%s, %s, %s, %s, now() + %s)",
        (_digest(value), user_name, secrets.token_urlsafe(24), via,
         timedelta(days=SESSION_DAYS)))
    return value


async def end_session(conn: AsyncConnection, cookie: str) -> None:
    await conn.execute("UPDATE page_sessions SET ended_at = now() WHERE id_hash = %s",
                       (_digest(cookie),))


_slid = Throttle()  # sessions whose expiry this process slid lately
SLIDE = ("UPDATE page_sessions SET last_seen_at = now(), expires_at = now() + %s "
         "WHERE id_hash = %s AND last_seen_at < now() - interval '1 hour'")


async def session_of(conn: AsyncConnection, cookie: str | None) -> SessionRow | None:
    if not cookie or len(cookie) > 100:
        return None
    async with conn.cursor(row_factory=class_row(SessionRow)) as cur:
        await cur.execute(SESSION_USER, (_digest(cookie),))
        return await cur.fetchone()


async def _page_user(request: Request, conn: AsyncConnection,
                     databases: Databases) -> User | None:
    cookie = request.cookies.get(COOKIE)
    row = await session_of(conn, cookie)
    if row is None:
        return None
    # Sliding expiry, written at most once an hour per session (on the
    # primary, without holding a second connection of the same pool); this
    # process does not even ask more than once a minute.
    if _slid.due(cookie):
        await on_primary(request, conn, databases, SLIDE,
                         (timedelta(days=SESSION_DAYS), _digest(cookie)))
    request.state.user_name = row.name
    request.state.csrf = row.csrf_token
    return User(row.name, row.role, row.regions, row.language, row.must_change_password)


async def optional_page_user(
        request: Request, conn: Conn,
        databases: Annotated[Databases, Depends(get_databases)]) -> User | None:
    return await _page_user(request, conn, databases)


async def page_user(request: Request, conn: Conn,
                    databases: Annotated[Databases, Depends(get_databases)]) -> User:
    """The signed-in user; without a session, a redirect to the login page
    that comes back here; with a password to change, a redirect there."""
    user = await _page_user(request, conn, databases)
    path = request.url.path
    if user is None:
        back = quote(local_path(path + (f"?{request.url.query}" if request.url.query else "")))
        raise HTTPException(303, "sign in first", headers={"Location": f"/login?next={back}"})
    if user.must_change_password and not path.startswith(OPEN_WHILE_CHANGING):
        raise HTTPException(303, "change your password first",
                            headers={"Location": "/password"})
    return user


PageUser = Annotated[User, Depends(page_user)]
OptionalPageUser = Annotated[User | None, Depends(optional_page_user)]


# --- CSRF -------------------------------------------------------------------

def csrf_token(request: Request) -> str:
    """The token to put in the ``csrf`` field of a form on this page: the
    session's, or for a visitor without a session the ``agri_csrf`` cookie's
    (``anonymous_csrf`` sets it)."""
    token = getattr(request.state, "csrf", None)
    if token is None:
        token = getattr(request.state, "anon_csrf", None) or request.cookies.get(
            ANON_CSRF_COOKIE)
    if token is None or len(token) > 100:
        token = secrets.token_urlsafe(24)
    request.state.anon_csrf = token
    return token


def set_anonymous_csrf(request: Request, response) -> None:
    """Set the ``agri_csrf`` cookie that a sign-in form's token is checked
    against (call it on the response of a page with such a form)."""
    token = getattr(request.state, "anon_csrf", None)
    if token and request.cookies.get(ANON_CSRF_COOKIE) != token:
        response.set_cookie(ANON_CSRF_COOKIE, token, max_age=86_400,
                            **(cookie_options() | {"samesite": "strict"}))


async def check_csrf(request: Request, csrf: Annotated[str, Form(max_length=100)] = "") -> None:
    """A POST from a page: its ``csrf`` field must match (403 otherwise).
    Run after ``page_user`` for forms of signed-in users."""
    expected = getattr(request.state, "csrf", None) or request.cookies.get(ANON_CSRF_COOKIE)
    if not expected or not csrf or not hmac.compare_digest(csrf, expected):
        raise HTTPException(403, "the form has expired or did not come from this site: "
                                 "open the page again and resend it")


CsrfForm = Depends(check_csrf)


# --- passwords and rate limits -------------------------------------------------

class LoginLimited(Exception):
    def __init__(self, retry_after_s: int):
        super().__init__(f"too many failed sign-ins; try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


async def _retry_after(conn: AsyncConnection, column: str, value: str, limit: int) -> int:
    """Seconds until ``value`` (a user name or a client) may try again; 0 if
    now. Failures count from the last success within the window."""
    cur = await conn.execute(
        f"""SELECT count(*), min(time) FROM (
                SELECT time FROM login_attempts
                WHERE {column} = %(v)s AND time > now() - %(w)s AND NOT succeeded
                  AND time > coalesce((SELECT max(time) FROM login_attempts
                                       WHERE {column} = %(v)s AND succeeded), '-infinity')
                ORDER BY time DESC LIMIT %(limit)s) recent""",
        {"v": value, "w": LIMIT_WINDOW, "limit": limit})
    count, oldest = await cur.fetchone()
    if count < limit:
        return 0
    cur = await conn.execute("SELECT ceil(extract(epoch FROM %s + %s - now()))::int",
                             (oldest, LIMIT_WINDOW))
    return max(1, (await cur.fetchone())[0])


async def login(conn: AsyncConnection, name: str, password: str, client: str) -> str | None:
    """The user's name when ``password`` is theirs, else None; every attempt
    is recorded. Raises LoginLimited past the limits (before checking)."""
    name = name[:64]
    wait = max(await _retry_after(conn, "user_name", name, MAX_FAILURES_PER_NAME),
               await _retry_after(conn, "client", client, MAX_FAILURES_PER_CLIENT))
    if wait:
        raise LoginLimited(wait)
    cur = await conn.execute(
        "SELECT password_hash FROM users WHERE name = %s AND disabled_at IS NULL", (name,))
    row = await cur.fetchone()
    ok = passwords.verify(password, row[0] if row else None)
    await conn.execute("INSERT INTO login_attempts (user_name, client, succeeded) "
                       "VALUES (%s, %s, %s)", (name, client, ok))
    return name if ok else None


async def change_password(conn: AsyncConnection, user: User, current: str, new: str) -> None:
    """Raises PasswordError when ``current`` is wrong or ``new`` not acceptable."""
    cur = await conn.execute("SELECT password_hash FROM users WHERE name = %s", (user.name,))
    row = await cur.fetchone()
    if not passwords.verify(current, row[0] if row else None):
        raise passwords.PasswordError("the current password is not right")
    passwords.check_new(new)
    if new == current:
        raise passwords.PasswordError("choose a password other than the current one")
    await conn.execute("UPDATE users SET password_hash = %s, must_change_password = false "
                       "WHERE name = %s", (passwords.hash_password(new), user.name))


# --- one-time sign-in links -------------------------------------------------------

class LinkError(ValueError):
    pass


async def create_sign_in_link(conn: AsyncConnection, maker: User, farmer: str) -> str | None:
    """A one-time sign-in token for ``farmer``, made by an admin or an
    officer of a region where the farmer has a field; None when ``maker``
    may not (the caller answers 404: the farmer's existence does not leak)."""
    if maker.role not in ("admin", "officer"):
        return None
    cur = await conn.execute(
        f"""SELECT 1 FROM users u WHERE u.name = %(farmer)s AND u.role = 'farmer'
              AND u.disabled_at IS NULL AND (%(role)s = 'admin' OR EXISTS (
                SELECT 1 FROM fields f WHERE f.owner = u.name
                AND {in_region('f.municipality')}))""",
        {"farmer": farmer, "role": str(maker.role), "regions": list(maker.regions)})
    if await cur.fetchone() is None:
        return None
    token = secrets.token_urlsafe(24)
    await conn.execute(
        "INSERT INTO sign_in_links (token_hash, user_name, created_by, expires_at) "
        "VALUES (%s, %s, %s, now() + %s)",
        (_digest(token), farmer, maker.name, timedelta(hours=LINK_HOURS)))
    return token


def qr_svg(url: str) -> str:
    """The link as an inline SVG QR code, big enough to scan from paper."""
    return segno.make(url, error="m").svg_inline(scale=6, title="QR")


async def link_is_live(conn: AsyncConnection, token: str) -> bool:
    if len(token) > 100:
        return False
    cur = await conn.execute("SELECT 1 FROM sign_in_links WHERE token_hash = %s "
                             "AND used_at IS NULL AND expires_at > now()", (_digest(token),))
    return await cur.fetchone() is not None


async def use_sign_in_link(conn: AsyncConnection, token: str) -> str | None:
    """The user the link signs in, once; None when used, expired or unknown."""
    if len(token) > 100:
        return None
    cur = await conn.execute(
        "UPDATE sign_in_links SET used_at = now() WHERE token_hash = %s AND used_at IS NULL "
        "AND expires_at > now() RETURNING user_name", (_digest(token),))
    row = await cur.fetchone()
    return row[0] if row else None
