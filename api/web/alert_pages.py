"""The alert pages: ``/alerts``, the user's alerts (open first) with what
happened, the evidence in one line, the page to open and how each reached
the user; and ``/me/alerts``, the user's choices (email, LINE, kinds,
quiet hours) with a one-time code to link a LINE account.

Which alerts a user sees is api/queries/alerts.py's (access rules there);
the words of what happened are the alert messages' own (alerts/messages.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import time
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from psycopg import AsyncConnection

from agri.alerts import messages
from agri.alerts.rules import RULES
from agri.api.accounts import Role, User
from agri.api.deps import Conn, PrimaryConn
from agri.api.queries import alerts as alert_queries
from agri.api.routes import line_webhook
from agri.api.sessions import PageUser
from agri.api.web import (
    colours,
    i18n,
    i18n_alerts,  # noqa: F401 - adds the pages' words to i18n
    staff,
)
from agri.api.web.forms import CsrfChecked
from agri.api.web.render import NO_STORE, local_time, render

router = APIRouter(include_in_schema=False)

PAGE = 30           # alerts on one page
MAX_PAGE = 1000     # the last page number asked for
EMAIL_MAX = 254     # characters of an address (RFC 5321's path limit)
FORM_TEXT_MAX = 10_000  # a text field the form reads at all; longer is a 422 page
EMAIL_RE = re.compile(r"^[^@\s\x00-\x1f\x7f<>\"]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}$")
TIME_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
SEVERITY_COLOUR = {"urgent": "red", "warning": "yellow", "info": "grey"}
SHOWN_STATUS = {"sent": "sent", "held": "held", "failed": "failed", "queued": "queued",
                "skipped": "none"}

PageNumber = Annotated[int, Query(ge=1, le=MAX_PAGE)]
State = Annotated[str, Query(pattern="^(open|cleared|all)$")]
Town = Annotated[str | None, Query(max_length=64)]
FormText = Annotated[str, Form(max_length=FORM_TEXT_MAX)]
Toggle = Annotated[str, Form(max_length=3)]
RuleChoices = Annotated[list[str], Form(max_length=len(RULES) * 2)]

_PREFERENCES = """SELECT email, email_on, line_user_id IS NOT NULL, line_on, rules,
                         quiet_start, quiet_end
                  FROM alert_preferences WHERE user_name = %s"""
_SAVE = """
INSERT INTO alert_preferences (user_name, email, email_on, line_on, rules, quiet_start,
                               quiet_end)
VALUES (%(user)s, %(email)s, %(email_on)s, %(line_on)s, %(rules)s, %(quiet_start)s,
        %(quiet_end)s)
ON CONFLICT (user_name) DO UPDATE SET
    email = EXCLUDED.email, email_on = EXCLUDED.email_on, line_on = EXCLUDED.line_on,
    rules = EXCLUDED.rules, quiet_start = EXCLUDED.quiet_start,
    quiet_end = EXCLUDED.quiet_end, updated_at = now()"""


@dataclass(frozen=True, slots=True)
class Preferences:
    email: str
    email_on: bool
    line_linked: bool
    line_on: bool
    rules: tuple[str, ...]  # the kinds received (every rule when none was chosen)
    quiet_start: str        # "22:00" or ""
    quiet_end: str


def _hhmm(value: time | None) -> str:
    return value.strftime("%H:%M") if value else ""


async def _preferences(conn: AsyncConnection, user: User) -> Preferences:
    row = await (await conn.execute(_PREFERENCES, (user.name,))).fetchone()
    if row is None:
        return Preferences("", False, False, False, tuple(RULES), "", "")
    email, email_on, linked, line_on, rules, start, end = row
    return Preferences(email or "", email_on, linked, line_on,
                       tuple(RULES) if rules is None else tuple(rules), _hhmm(start),
                       _hhmm(end))


def _line(alert: alert_queries.AlertRow, lang: str) -> dict:
    texts = messages.TEXTS.get(alert.rule, {}).get(lang) or messages.GENERIC[lang]
    colour = SEVERITY_COLOUR.get(alert.severity, "grey")
    swatch = colours.status(colour, lang)
    href = f"/fields/{alert.field_id}" if alert.field_id else f"/devices/{alert.device_id}"
    if RULES.get(alert.rule) and RULES[alert.rule].subject == "device" and alert.device_id:
        href = f"/devices/{alert.device_id}"
    return {
        "a": alert, "colour": colour, "mark": swatch.mark,
        "severity": i18n.gettext(lang, f"severity.{alert.severity}"),
        "what": texts.what.format_map({"device": alert.device_id or "", "rule": alert.rule}),
        # The one line of evidence, as the messages show it.
        "evidence": messages._evidence(alert.rule, alert.evidence, lang),  # noqa: SLF001
        "href": href,
        "deliveries": [(ch, SHOWN_STATUS.get(alert.deliveries.get(ch, ""), "none"))
                       for ch in alert_queries.CHANNELS],
    }


@router.get("/alerts")
async def alerts_page(request: Request, user: PageUser, conn: Conn, page: PageNumber = 1,
                      state: State = "all", municipality: Town = None):
    refused = staff.allowed(request, user, (Role.FARMER, Role.OFFICER, Role.ADMIN,
                                            Role.DEVELOPER))
    if refused:
        return refused
    lang = i18n.choose(request, user.language)
    staff_user = user.role in staff.OFFICERS
    town = municipality if staff_user and municipality else None
    if town and user.role == Role.OFFICER and town not in user.regions:
        town = None  # outside the region: the whole region, as the scope decides anyway
    rows = await alert_queries.visible_alerts(conn, user, state=state, municipality=town,
                                              limit=PAGE + 1, offset=(page - 1) * PAGE)
    more = len(rows) > PAGE
    items = [_line(a, lang) for a in rows[:PAGE]]
    query = f"state={state}" + (f"&municipality={town}" if town else "")
    newest = max((a.opened_at for a in rows[:PAGE]), default=None)
    return staff.page(request, user, "alerts.html", {
        "items": items, "state": state, "states": alert_queries.STATES, "page_no": page,
        "staff_user": staff_user, "municipality": town or "",
        "municipalities": list(user.regions) if user.role == Role.OFFICER else [],
        "next_href": f"/alerts?{query}&page={page + 1}" if more else None,
        "prev_href": f"/alerts?{query}&page={page - 1}" if page > 1 else None,
    }, data_time=newest)


def _settings(request: Request, user: User, prefs: Preferences, *, error: str | None = None,
              error_values: dict | None = None, saved: bool = False, code: dict | None = None,
              status: int = 200):
    lang = i18n.choose(request, user.language)
    response = render(request, "alert_settings.html", {
        "user": user, "prefs": prefs, "rules": list(RULES), "error": error,
        "error_text": i18n.gettext(lang, error, **(error_values or {})) if error else None,
        "saved": saved, "code": code, "email_max": EMAIL_MAX,
    }, data_time=None, status=status)
    if code or error or saved:
        response.headers["Cache-Control"] = NO_STORE
    return response


@router.get("/me/alerts")
async def settings_page(request: Request, user: PageUser, conn: PrimaryConn):
    return _settings(request, user, await _preferences(conn, user),
                     saved=request.query_params.get("saved") == "1")


def _time(value: str) -> time | None:
    value = value.strip()
    if not value:
        return None
    found = TIME_RE.fullmatch(value)
    if not found:
        raise staff.FormError("set.error.time")
    return time(int(found.group(1)), int(found.group(2)))


def _checked(*, email: str, email_on: bool, line_on: bool, line_linked: bool,
             rules: list[str], quiet_start: str, quiet_end: str) -> dict:
    """The values to store, or FormError saying what to fix."""
    email = email.strip()
    if len(email) > EMAIL_MAX:
        raise staff.FormError("set.error.email_long", max=EMAIL_MAX)
    if email and not EMAIL_RE.fullmatch(email):
        raise staff.FormError("set.error.email")
    if email_on and not email:
        raise staff.FormError("set.error.email_needed")
    if line_on and not line_linked:
        raise staff.FormError("set.error.line_needed")
    if any(r not in RULES for r in rules):
        raise staff.FormError("set.error.kind")
    start, end = _time(quiet_start), _time(quiet_end)
    if (start is None) != (end is None):
        raise staff.FormError("set.error.quiet_both")
    if start is not None and start == end:
        raise staff.FormError("set.error.quiet_same")
    chosen = [r for r in RULES if r in rules]
    return {"email": email or None, "email_on": email_on, "line_on": line_on,
            "rules": None if len(chosen) == len(RULES) else chosen,
            "quiet_start": start, "quiet_end": end}


@router.post("/me/alerts")
async def save_settings(request: Request, user: PageUser, conn: PrimaryConn,
                        _csrf: CsrfChecked, email: FormText = "", email_on: Toggle = "",
                        line_on: Toggle = "", rules: RuleChoices = [],  # noqa: B006
                        quiet_start: FormText = "", quiet_end: FormText = ""):
    current = await _preferences(conn, user)
    try:
        values = _checked(email=email, email_on=email_on == "1", line_on=line_on == "1",
                          line_linked=current.line_linked, rules=rules,
                          quiet_start=quiet_start, quiet_end=quiet_end)
    except staff.FormError as exc:
        kept = Preferences(email.strip()[:EMAIL_MAX], email_on == "1", current.line_linked,
                           line_on == "1", tuple(r for r in RULES if r in rules),
                           quiet_start.strip()[:5], quiet_end.strip()[:5])
        return _settings(request, user, kept, error=exc.key, error_values=exc.values,
                         status=400)
    await conn.execute(_SAVE, {"user": user.name, **values})
    return staff.see_other("/me/alerts?saved=1")


@router.post("/me/alerts/line-code")
async def line_code(request: Request, user: PageUser, conn: PrimaryConn, _csrf: CsrfChecked):
    """A new one-time code to send to the LINE official account (it replaces
    the user's unused ones; the LINE webhook takes it)."""
    made = await line_webhook.create_line_link(user, conn)
    code = {"code": made["code"], "until": local_time(made["expires_at"]),
            "minutes": made["minutes"]}
    return _settings(request, user, await _preferences(conn, user), code=code)

