"""The field diary and the season report: who sees the field reads them;
only who may change the field (its owner, its region's officers) writes."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import FileResponse, RedirectResponse
from starlette.datastructures import UploadFile

from agri.api.deps import Conn, PrimaryConn, SettingsDep
from agri.api.queries import access
from agri.api.sessions import PageUser
from agri.api.web import diary_store, field_data, i18n, photos
from agri.api.web.farmer import field_or_404
from agri.api.web.forms import capped_form
from agri.api.web.render import render
from agri.api.web.svg_charts import time_series
from agri.clock import today_local

router = APIRouter(include_in_schema=False)

PHOTO_CACHE = "private, max-age=604800, immutable"  # a photo's name is its hash


async def _diary_page(request, conn, user, row, *, before=None, errors=(), values=None,
                      status=200):
    may_write = await _may_write(conn, user, row[0])
    entries = await diary_store.entries(conn, row[0], before=before)
    return render(request, "diary.html", {
        "user": user, "field": {"id": row[0], "name": row[1]}, "entries": entries,
        "may_write": may_write, "kinds": diary_store.KINDS, "errors": list(errors),
        "values": values or {"day": today_local().isoformat(), "kind": "work", "text": ""},
        "max_mb": photos.MAX_PHOTO_MB, "max_text": diary_store.MAX_TEXT,
        "saved": request.query_params.get("saved") == "1",
        "older": entries[-1].id if len(entries) == diary_store.PAGE else None,
    }, data_time=entries[0].created_at if entries else None, status=status)


async def _may_write(conn, user, field_id: str) -> bool:
    return await access.visible_field(conn, user, field_id, to_change=True) is not None


@router.get("/fields/{field_id}/diary")
async def diary(request: Request, field_id: str, conn: PrimaryConn, user: PageUser,
                before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None):
    row = await field_or_404(conn, user, field_id)
    return await _diary_page(request, conn, user, row, before=before)


def _field_text(form, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


@router.post("/fields/{field_id}/diary")
async def add_entry(request: Request, field_id: str, conn: PrimaryConn, user: PageUser,
                    settings: SettingsDep):
    form = await capped_form(request, max_file_bytes=photos.MAX_PHOTO_BYTES)
    row = await field_or_404(conn, user, field_id, to_change=True)
    values = {"day": _field_text(form, "day")[:10], "kind": _field_text(form, "kind")[:20],
              "text": _field_text(form, "text").replace("\r\n", "\n").strip()}
    errors = []
    try:
        day = date.fromisoformat(values["day"])
        if not date(1900, 1, 1) <= day <= date(2200, 12, 31):
            raise ValueError(day)
    except ValueError:
        errors.append(("error.day", {}))
    if values["kind"] not in diary_store.KINDS:
        errors.append(("error.kind", {}))
    text = values["text"]
    if not text or len(text) > diary_store.MAX_TEXT or "\x00" in text:
        errors.append(("error.text_required", {"max": diary_store.MAX_TEXT}))
    upload = form.get("photo")
    data = b""
    if isinstance(upload, UploadFile) and upload.filename:
        if upload.size is not None and upload.size > photos.MAX_PHOTO_BYTES:
            raise HTTPException(413, "error.photo_size")
        data = await upload.read(photos.MAX_PHOTO_BYTES + 1)
        try:
            photos.check(data)
        except photos.PhotoError as exc:
            if exc.key == "error.photo_size":
                raise HTTPException(413, "error.photo_size") from None
            errors.append((exc.key, {}))
    if errors:
        return await _diary_page(request, conn, user, row, errors=errors, values=values,
                                 status=400)
    name = photos.store(settings.home, data) if data else None
    await diary_store.add(conn, field_id=row[0], day=day, kind=values["kind"], body=text,
                          author=user.name, photo=name, photo_bytes=len(data) or None)
    return RedirectResponse(f"/fields/{row[0]}/diary?saved=1", status_code=303)


@router.get("/fields/{field_id}/diary/{entry_id}/photo")
async def photo(field_id: str, entry_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
                conn: Conn, user: PageUser, settings: SettingsDep):
    row = await field_or_404(conn, user, field_id)
    name = await diary_store.photo_of(conn, row[0], entry_id)
    found = photos.path_of(settings.home, name) if name else None
    if found is None or not found[0].is_file():
        raise HTTPException(404, "no photo")
    path, media_type = found
    return FileResponse(path, media_type=media_type, headers={
        "Cache-Control": PHOTO_CACHE, "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'", "Vary": "Cookie"})


@router.get("/fields/{field_id}/report")
async def report(request: Request, field_id: str, conn: Conn, user: PageUser,
                 year: Annotated[int | None, Query(ge=1900, le=2200)] = None):
    row = await field_or_404(conn, user, field_id)
    year = year or today_local().year
    data = await field_data.season_report(conn, user, row, year)
    lang = i18n.choose(request, user.language)
    chart = time_series(data["daily"], title=i18n.gettext(lang, "report.chart_level"),
                        unit="cm", lang=lang, start=data["chart_start"],
                        end=data["chart_end"], band=data["bands"]) if data["daily"] else None
    entries = await diary_store.entries(conn, row[0], year=year, limit=500)
    return render(request, "report.html", {
        "user": user, "field": {"id": row[0], "name": row[1], "cultivar": row[3],
                                "municipality": row[5]},
        "year": year, **data, "chart": chart, "entries": entries,
    }, data_time=data["data_time"])
