"""Rendering a page: the Jinja2 templates (``api/templates``, autoescaped),
the headers that let a phone on a weak signal keep showing the last page,
and the static files (``api/static``) with their content hash in the URL.

A page is cached privately for a minute, may be shown stale while the phone
revalidates it (a day) or while the server cannot be reached (a week), and
revalidates with its ETag (a hash of the body): an unchanged page costs a
304 with no body. ``Last-Modified`` is the time of the data the page shows,
which the page also states in words.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from email.utils import format_datetime
from functools import cache
from pathlib import Path

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from agri.api import sessions
from agri.api.web import i18n
from agri.api.web.home import HOMES
from agri.clock import TZ

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
STATIC = Path(__file__).resolve().parent.parent / "static"
STATIC_PREFIX = "/static"

PAGE_CACHE = "private, max-age=60, stale-while-revalidate=86400, stale-if-error=604800"
NO_STORE = "no-store"
STATIC_CACHE = "public, max-age=31536000, immutable"
LANG_COOKIE_S = 365 * 86_400


def local_time(value: datetime | str | None) -> str:
    """"2026-07-15 09:20" in the platform's time zone ("" for None)."""
    if value is None:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(TZ).strftime("%Y-%m-%d %H:%M")


def short_date(value) -> str:
    """"7/15" of a date, a datetime or an ISO date string ("" for None)."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        value = value.astimezone(TZ)
    return f"{value.month}/{value.day}"


def age_words(seconds: float | None, lang: str) -> str:
    """"12分前", "3 h ago": how old a value is, in the largest whole unit."""
    if seconds is None:
        return ""
    if seconds < 60:
        return i18n.gettext(lang, "age.now")
    for unit, size in (("days", 86_400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size:
            n = int(seconds // size)
            return i18n.gettext(lang, "data.age", age=i18n.gettext(lang, f"age.{unit}", n=n))
    return ""


@cache
def _digest(name: str) -> str:
    return hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:12]


def static_url(name: str) -> str:
    """The URL of a file in ``api/static`` with its content hash, cached for a year."""
    return f"{STATIC_PREFIX}/{name}?v={_digest(name)}"


class HashedStatic(StaticFiles):
    """``api/static``, cached for a year when asked for by its hashed URL."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        query = scope.get("query_string", b"").decode("latin-1")
        try:
            hashed = response.status_code == 200 and query == f"v={_digest(path)}"
        except (OSError, ValueError):
            hashed = False
        response.headers["Cache-Control"] = STATIC_CACHE if hashed else "public, max-age=300"
        return response


def static_files() -> HashedStatic:
    return HashedStatic(directory=STATIC)


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["local_time"] = local_time
    env.filters["short_date"] = short_date
    env.globals["static_url"] = static_url
    return env


ENV = _environment()


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in header.split(","))


def render(request: Request, template: str, context: dict, *, data_time: datetime | None,
           status: int = 200) -> Response:
    """The page ``template`` filled with ``context`` (plus the language, the
    translator ``t``, the time of the data and the CSRF token of the
    session), with caching headers when ``status`` is 200 and ``no-store``
    otherwise; 304 when the client's ``If-None-Match`` names this body.

    ``data_time``: the time of the newest data the page shows (None: no
    data yet); shown on the page and sent as ``Last-Modified``."""
    user = context.get("user")
    lang = i18n.choose(request, getattr(user, "language", None))
    other = "en" if lang == "ja" else "ja"
    switched = request.url.include_query_params(lang=other)
    values = {
        "lang": lang,
        "t": lambda key, **kw: i18n.gettext(lang, key, **kw),
        "age": lambda seconds: age_words(seconds, lang),
        "data_time": None if data_time is None else local_time(data_time),
        "csrf": context.get("csrf") or _csrf(request, user),
        "user": user,
        "home_href": HOMES.get(str(getattr(user, "role", "")), "/fields"),
        "path": request.url.path,
        "switch_href": f"{switched.path}?{switched.query}",
        **context,
    }
    body = ENV.get_template(template).render(values).encode()
    # Security headers (CSP, nosniff, ...) are set for every response in api/middleware.py.
    headers = {"Vary": "Cookie"}
    headers["Content-Language"] = lang
    if status == 200:
        headers["Cache-Control"] = PAGE_CACHE
        headers["ETag"] = _etag(body)
        if data_time is not None:
            headers["Last-Modified"] = format_datetime(data_time.astimezone(UTC), usegmt=True)
        if _matches(request.headers.get("if-none-match"), headers["ETag"]):
            return Response(status_code=304, headers=headers)
    else:
        headers["Cache-Control"] = NO_STORE
    response = HTMLResponse(body, status_code=status, headers=headers)
    asked = request.query_params.get("lang")
    if asked in i18n.LANGUAGES:
        response.set_cookie(i18n.COOKIE, asked, max_age=LANG_COOKIE_S, httponly=True,
                            samesite="lax", secure=request.url.scheme == "https")
    return response


def _csrf(request: Request, user) -> str | None:
    return None if user is None else sessions.csrf_token(request)
