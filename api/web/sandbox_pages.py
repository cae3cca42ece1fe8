"""The sandbox pages: a developer's prototypes with their latest conformance
report, a form to check one now, and a report in full (docs/sandbox.md).

Who may check which device and the checks themselves are the JSON API's
(api/routes/conformance.py, devices/conformance.py): another developer's
device is a 404 here too."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Form, Request

from agri.api.accounts import Role
from agri.api.deps import Conn, PrimaryConn, SettingsDep
from agri.api.routes.conformance import HISTORY, checkable
from agri.api.sessions import CsrfForm, PageUser
from agri.api.web import i18n_officer, staff
from agri.api.web.render import local_time
from agri.devices import conformance

router = APIRouter(include_in_schema=False)

DEVELOPERS = (Role.DEVELOPER, Role.ADMIN)
MAX_LISTED = 200  # prototypes on one page
WINDOWS = (60, 240, 1440)  # minutes offered by the form; 240 is enough to tell a stuck value
MARKS = {"pass": ("green", "✓"), "fail": ("red", "✗"), "not_tried": ("grey", "–"),
         "not_measured": ("grey", "–")}


def _not_found(request: Request, user) -> object:
    lang = staff.language(request, user)
    return staff.refuse(request, user, 404, i18n_officer.gettext(lang, "sbx.not_yours"))


@router.get("/sandbox")
async def sandbox(request: Request, user: PageUser, conn: Conn):
    refused = staff.allowed(request, user, DEVELOPERS)
    if refused:
        return refused
    rows = await checkable(conn, user, limit=MAX_LISTED)
    items = []
    for row in rows:
        latest = await conformance.reports(conn, row[0], row[1], limit=1)
        items.append({"id": row[0], "profile": row[1], "organisation": row[3],
                      "latest": latest[0] if latest else None})
    newest = max((i["latest"]["created_at"] for i in items if i["latest"]), default=None)
    return staff.page(request, user, "sandbox.html",
                      {"items": items, "windows": WINDOWS, "marks": MARKS, "local": local_time},
                      data_time=newest and _time(newest))


async def _prototype(request: Request, user, conn, device_id: str):
    """(the prototype's row, None), or (None, the refusal or not-found page)."""
    refused = staff.allowed(request, user, DEVELOPERS)
    if refused:
        return None, refused
    rows = await checkable(conn, user, device_id)
    return (rows[0], None) if rows else (None, _not_found(request, user))


@router.get("/sandbox/{device_id}")
async def sandbox_device(device_id: str, request: Request, user: PageUser, conn: Conn):
    row, refused = await _prototype(request, user, conn, device_id)
    if refused:
        return refused
    history = await conformance.reports(conn, row[0], row[1], limit=HISTORY)
    first = await conformance.first_passed(conn, row[0])
    latest = history[0] if history else None
    return staff.page(request, user, "sandbox_device.html",
                      {"device": {"id": row[0], "profile": row[1], "organisation": row[3]},
                       "report": latest, "history": history[1:], "first_passed": first,
                       "windows": WINDOWS, "marks": MARKS, "local": local_time},
                      data_time=latest and _time(latest["created_at"]))


@router.post("/sandbox/{device_id}/check")
async def sandbox_check(device_id: str, request: Request, user: PageUser, conn: PrimaryConn,
                        settings: SettingsDep, _csrf: None = CsrfForm,
                        minutes: str = Form("60", max_length=8)):
    row, refused = await _prototype(request, user, conn, device_id)
    if refused:
        return refused
    chosen = int(minutes) if minutes.isascii() and minutes.isdigit() else 0
    if chosen not in WINDOWS:
        chosen = WINDOWS[0]
    await conformance.run(conn, row[0], row[1], minutes=chosen,
                          max_payload_bytes=settings.max_payload_bytes, created_by=user.name)
    return staff.see_other(f"/sandbox/{row[0]}")


def _time(iso: str) -> datetime:
    return datetime.fromisoformat(iso)
