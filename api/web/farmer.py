"""The farmer's pages: the list of their fields and one field's page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response

from agri.analytics.imagery import ImageryError
from agri.api.deps import Conn, SettingsDep
from agri.api.field_registry import FIELD_ID_RE
from agri.api.queries import access, imagery
from agri.api.sessions import PageUser
from agri.api.web import colours, device_pages, field_data, i18n
from agri.api.web.render import render
from agri.api.web.svg_charts import time_series

router = APIRouter(include_in_schema=False)

MAP_INDEX = "ndvi"  # the index the field page shows of the latest image
MAP_CACHE = "private, max-age=3600, stale-if-error=604800"

FieldCursor = Annotated[str | None, Query(max_length=64, pattern=FIELD_ID_RE.pattern)]


async def field_or_404(conn, user, field_id: str, *, to_change: bool = False):
    """access.visible_field's row, or the 404 page (bad ids included)."""
    row = (await access.visible_field(conn, user, field_id, to_change=to_change)
           if FIELD_ID_RE.fullmatch(field_id) else None)
    if row is None:
        raise HTTPException(404, f"no field {field_id[:64]!r}")
    return row


@router.get("/fields")
async def my_fields(request: Request, conn: Conn, user: PageUser, settings: SettingsDep,
                    after: FieldCursor = None):
    cards, more = await field_data.my_fields(conn, user, after=after,
                                             max_future_s=settings.max_future_s)
    lang = i18n.choose(request, user.language)
    first_dry = next((c for c in cards if c.water_state == "below"), None)
    device_alerts = await device_pages.alerts_by_field(
        conn, user, [c.id for c in cards], max_future_s=settings.max_future_s, lang=lang)
    return render(request, "fields.html", {
        "user": user, "cards": cards, "more": more, "first_dry": first_dry,
        "device_alerts": device_alerts, "card_lines": device_pages.FIELD_CARD_LINES,
        "swatches": {c: colours.status(c, lang) for c in colours.STATUS},
        "status_legend": colours.status_legend(lang),
    }, data_time=field_data.newest(c.level_at for c in cards))


@router.get("/fields/{field_id}")
async def field_page(request: Request, field_id: str, conn: Conn, user: PageUser,
                     settings: SettingsDep):
    row = await field_or_404(conn, user, field_id)
    data = await field_data.field_page(conn, user, row, max_future_s=settings.max_future_s)
    lang = i18n.choose(request, user.language)
    t = i18n.MESSAGES[lang]
    charts = {
        "level": time_series(data["level"], title=t["field.chart_level"], unit="cm", lang=lang,
                             start=data["chart_start"], end=data["chart_end"],
                             band=data["bands"]),
        "temp": time_series(data["temp"], title=t["field.chart_temp"], unit="°C", lang=lang,
                            start=data["chart_start"], end=data["chart_end"]),
    }
    owner = row[2] == user.name
    may_write = access.may_change(user, row)
    status = data["status"]
    return render(request, "field.html", {
        "user": user, **data, "charts": charts, "owner": owner, "may_write": may_write,
        "swatch": colours.status(status.colour, lang) if status else None,
        "cm": field_data.cm,
        "map_url": f"/fields/{row[0]}/map.png" if data["image"] and
        MAP_INDEX in data["image"]["previews"] else None,
    }, data_time=data["data_time"])


@router.get("/fields/{field_id}/map.png")
async def field_map(request: Request, field_id: str, conn: Conn, user: PageUser,
                    settings: SettingsDep):
    """The latest drone or satellite image of the field as the field page shows it."""
    row = await field_or_404(conn, user, field_id)
    try:
        found = await imagery.field_map_png(conn, user, row[0], home=settings.home,
                                            index=MAP_INDEX)
    except ImageryError:
        found = None
    if found is None:
        raise HTTPException(404, "field.map_none")
    png, tag = found
    headers = {"ETag": f'"{tag}"', "Cache-Control": MAP_CACHE, "Vary": "Cookie"}
    if request.headers.get("if-none-match") == headers["ETag"]:
        return Response(status_code=304, headers=headers)
    return Response(png, media_type="image/png", headers=headers)
