"""What the officers' and the plan office's pages share: their words (the
catalogue of ``i18n_officer`` before the common one), the role a page is
for, the role-aware menu, and reading a form's text safely.

A page is rendered with ``page(...)``; a role that may never use it gets the
error page with 403 (an object outside the user's scope stays a 404, as in
the JSON API: the query functions decide that).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from fastapi import HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from agri.api.accounts import Role, User
from agri.api.web import i18n, i18n_officer
from agri.api.web.render import render

OFFICERS = (Role.OFFICER, Role.ADMIN)
# These pages change through their own forms: the browser asks again each
# time (a 304 when nothing changed), so a list never shows a draft that was
# just published; with the server out of reach it may still show the last one.
STAFF_CACHE = "private, no-cache, stale-if-error=604800"
PLANNERS = (Role.PLANNER, Role.ADMIN)
LINE_MAX = 200      # a one-line form field, characters
TEXT_MAX = 4000     # a text area, characters


@dataclass(frozen=True, slots=True)
class MenuItem:
    href: str
    key: str  # message id of its words


# The menu of each role, most used first.
MENU: Mapping[str, tuple[MenuItem, ...]] = {
    "officer": (MenuItem("/region", "nav.region"), MenuItem("/advisories", "nav.advisories"),
                MenuItem("/harvest-order", "nav.harvest_order"),
                MenuItem("/sign-in-links", "nav.sign_in_links"),
                MenuItem("/initiatives", "nav.initiatives"), MenuItem("/kpis", "nav.kpis")),
    "planner": (MenuItem("/kpis", "nav.kpis"), MenuItem("/initiatives", "nav.initiatives"),
                MenuItem("/open-data", "nav.open_data"), MenuItem("/showcase", "nav.showcase")),
    "admin": (MenuItem("/region", "nav.region"), MenuItem("/advisories", "nav.advisories"),
              MenuItem("/harvest-order", "nav.harvest_order"),
              MenuItem("/sign-in-links", "nav.sign_in_links"), MenuItem("/kpis", "nav.kpis"),
              MenuItem("/initiatives", "nav.initiatives"),
              MenuItem("/open-data", "nav.open_data"), MenuItem("/showcase", "nav.showcase")),
}
PUBLIC_MENU = (MenuItem("/open-data", "nav.open_data"), MenuItem("/showcase", "nav.showcase"))


def menu(user: User | None) -> tuple[MenuItem, ...]:
    """The pages of the menu for ``user`` (signed out: the public ones)."""
    if user is None:
        return PUBLIC_MENU
    return MENU.get(str(user.role), ())


def language(request: Request, user: User | None) -> str:
    return i18n.choose(request, getattr(user, "language", None))


def page(request: Request, user: User | None, template: str, context: dict, *,
         data_time: datetime | None, status: int = 200) -> Response:
    """``template`` rendered with the officers' catalogue and the menu of the
    user's role (see ``render.render`` for the headers)."""
    lang = language(request, user)
    values = {"user": user, "t": lambda key, **kw: i18n_officer.gettext(lang, key, **kw),
              "menu": menu(user), **context}
    response = render(request, template, values, data_time=data_time, status=status)
    if status == 200:
        response.headers["Cache-Control"] = STAFF_CACHE
    return response


def refuse(request: Request, user: User | None, status: int, message: str) -> Response:
    """The error page with ``status`` and ``message`` (already in the user's language)."""
    return page(request, user, "error.html", {"status": status, "message": message},
                data_time=None, status=status)


def allowed(request: Request, user: User, roles: tuple[Role, ...]) -> Response | None:
    """None when ``user``'s role may use the page, else the 403 page to answer."""
    if user.role in roles:
        return None
    return refuse(request, user, 403, i18n_officer.gettext(language(request, user),
                                                           "staff.not_for_role"))


def error_text(exc: HTTPException) -> str:
    """The message of an error a query function raised, as one line of text."""
    detail = exc.detail
    if isinstance(detail, list):
        return "; ".join(f"{'.'.join(str(p) for p in d.get('loc', ()))}: {d.get('msg', '')}"
                         if isinstance(d, dict) else str(d) for d in detail)[:500]
    return str(detail)[:500]


class FormError(ValueError):
    """A form field that cannot be used; ``key`` is the message id saying why."""

    def __init__(self, key: str, **values: object):
        super().__init__(key)
        self.key = key
        self.values = values


def clean_text(value: str | None, *, limit: int, required: bool = False,
               one_line: bool = True) -> str:
    """The text of a form field: stripped, without NUL or (``one_line``) line
    breaks and control characters, at most ``limit`` characters."""
    text = (value or "").strip()
    if "\x00" in text or (one_line and any(ord(c) < 32 or ord(c) == 127 for c in text)):
        raise FormError("form.bad_characters")
    if len(text) > limit:
        raise FormError("form.too_long", max=limit)
    if required and not text:
        raise FormError("form.required")
    return text


def see_other(path: str) -> RedirectResponse:
    """After a form: back to a page of this site (never a URL from the request)."""
    return RedirectResponse(path, status_code=303)
