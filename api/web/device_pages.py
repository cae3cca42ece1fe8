"""The device pages: ``/devices``, the user's visible devices a page at a
time with their health alerts (worst first), and ``/devices/{id}``, one
device's health in full (api/queries/device_health.py); and the short alert
lines and counts the field and region pages show.

Who sees which device is access.DEVICE_VISIBLE, as in the JSON API: another
user's device is the 404 page, and so is any device for a planner, who gets
the 403 page for the list. Every alert is shown in colour, a symbol and
words (api/web/colours.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from psycopg import AsyncConnection

from agri.api.accounts import User
from agri.api.deps import Conn, SettingsDep
from agri.api.queries import access
from agri.api.queries.device_health import RANK, health_of, visible_devices
from agri.api.routes.devices import LISTERS, DeviceCursor
from agri.api.sessions import PageUser
from agri.api.web import colours, i18n, i18n_officer, staff
from agri.api.web.render import render
from agri.clock import TZ
from agri.devices.topics import DEVICE_ID_RE

router = APIRouter(include_in_schema=False)

PAGE = 100            # devices on one page of the list
ALERT_BATCHES = 3     # with ?alerts=1: pages of devices read looking for alerts
REGION_DEVICES = 200  # devices the region page counts the alerts of
FIELD_CARD_LINES = 3  # alert lines under one field of the field list
# A device's status (device_health) -> the colour of the status scale.
STATUS_COLOUR = {"critical": "red", "warning": "yellow", "ok": "green", "revoked": "grey"}
AlertsOnly = Annotated[str | None, Query(max_length=1, pattern="^[01]$")]


@dataclass(frozen=True, slots=True)
class AlertLine:
    """One alert of one device in the reader's language."""
    device: str
    field: str | None
    code: str
    colour: str   # red | yellow | grey
    mark: str     # the symbol beside the colour
    label: str    # the colour's words
    short: str    # "センサー X の電池があと5日でなくなります"
    text: str     # the full reason with what to do


def _days_left(empty: str | None) -> int | None:
    if empty is None:
        return None
    return (date.fromisoformat(empty) - datetime.now(TZ).date()).days


def _duration(seconds: float | None, lang: str) -> str:
    s = seconds or 0.0
    for unit, size in (("days", 86_400), ("hours", 3600), ("minutes", 60)):
        if s >= size:
            return i18n.gettext(lang, f"age.{unit}", n=int(s // size))
    return i18n.gettext(lang, "age.minutes", n=0)


def _short(health: dict, code: str, lang: str) -> str:
    device = health["device"]
    if code == "silent":
        return i18n.gettext(lang, "dev.short.silent", device=device,
                            age=_duration(health["last_seen"]["age_s"], lang))
    if code == "battery_low":
        return i18n.gettext(lang, "dev.short.battery_low", device=device,
                            pct=f"{health['battery']['value']:.0f}")
    if code == "battery_running_out":
        days = _days_left(health["battery"]["predicted_empty"]) or 0
        if days <= 0:
            return i18n.gettext(lang, "dev.short.battery_today", device=device)
        return i18n.gettext(lang, "dev.short.battery_running_out", device=device, days=days)
    if code == "clock_whole_hours":
        return i18n.gettext(lang, "dev.short.clock_whole_hours", device=device,
                            hours=f"{health['clock']['whole_hours']:+d}")
    key = f"dev.short.{code}"
    if key not in i18n.MESSAGES[lang]:  # a reason this page has no words for yet
        return f"{device}: {next(a['text'][lang] for a in health['alerts'] if a['code'] == code)}"
    return i18n.gettext(lang, key, device=device)


def alert_lines(healths: list[dict], lang: str) -> list[AlertLine]:
    """Every alert of ``healths`` (device_health's answers), worst first."""
    out = []
    for h in healths:
        for a in h["alerts"]:
            swatch = colours.status(a["colour"], lang)
            out.append(AlertLine(h["device"], h["field"], a["code"], a["colour"], swatch.mark,
                                 swatch.label, _short(h, a["code"], lang), a["text"][lang]))
    rank = {c: n for n, c in enumerate(colours.STATUS_ORDER)}
    return sorted(out, key=lambda a: (rank[a.colour], a.device))


async def alerts_by_field(conn: AsyncConnection, user: User, field_ids: list[str], *,
                          max_future_s: float, lang: str) -> dict[str, list[AlertLine]]:
    """The alert lines of the user's live devices on ``field_ids``, per field,
    read in the same few queries however many fields and devices."""
    if not field_ids:
        return {}
    devices = await access.devices_on(conn, user, field_ids)
    healths = await health_of(conn, [(d, p, f, None) for d, p, f in devices],
                              max_future_s=max_future_s)
    per: dict[str, list[AlertLine]] = {}
    for line in alert_lines(healths, lang):
        per.setdefault(line.field, []).append(line)
    return per


async def region_alert_counts(conn: AsyncConnection, user: User, *, max_future_s: float,
                              lang: str) -> dict:
    """The alerts of the user's first REGION_DEVICES live devices, counted by
    kind (most devices first), each with the colour of its worst."""
    rows = await visible_devices(conn, user, limit=REGION_DEVICES + 1)
    healths = await health_of(conn, rows[:REGION_DEVICES], max_future_s=max_future_s)
    kinds: dict[str, list] = {}
    rank = {c: n for n, c in enumerate(colours.STATUS_ORDER)}
    for h in healths:
        for a in h["alerts"]:
            entry = kinds.setdefault(a["code"], [0, a["colour"]])
            entry[0] += 1
            entry[1] = min(entry[1], a["colour"], key=rank.__getitem__)
    counts = [{"code": code, "devices": n, "swatch": colours.status(colour, lang),
               "colour": colour}
              for code, (n, colour) in sorted(kinds.items(), key=lambda k: (-k[1][0], k[0]))]
    return {"counts": counts, "checked": len(healths),
            "with_alerts": sum(1 for h in healths if h["alerts"]),
            "truncated": len(rows) > REGION_DEVICES, "limit": REGION_DEVICES}


async def _list(conn: AsyncConnection, user: User, after: str | None, only_alerts: bool,
                max_future_s: float) -> tuple[list[dict], str | None]:
    """A page of the user's live devices in id order (with ``only_alerts``,
    those with alerts among up to ALERT_BATCHES pages) and the id to continue
    after, or None at the end."""
    kept: list[dict] = []
    cursor, more = after, None
    for _ in range(ALERT_BATCHES if only_alerts else 1):
        rows = await visible_devices(conn, user, cursor=cursor, limit=PAGE + 1)
        healths = await health_of(conn, rows[:PAGE], max_future_s=max_future_s)
        kept += [h for h in healths if h["alerts"] or not only_alerts]
        more = cursor = rows[PAGE - 1][0] if len(rows) > PAGE else None
        if more is None or len(kept) >= PAGE:
            break
    if len(kept) > PAGE:
        kept = kept[:PAGE]
        more = kept[-1]["device"]
    return kept, more


def _newest(healths: list[dict]) -> datetime | None:
    seen = [h["last_seen"]["received_at"] for h in healths if h["last_seen"]["received_at"]]
    return max(datetime.fromisoformat(s) for s in seen) if seen else None


def _page(request: Request, user: User, template: str, context: dict, *,
          data_time: datetime | None):
    """``template`` with the officers' catalogue before the common one and the
    user's menu (officers and admins), cached as the farmer's pages are."""
    lang = i18n.choose(request, user.language)
    return render(request, template, {"user": user, "t": i18n_officer.translator(lang),
                                      "menu": staff.menu(user), **context},
                  data_time=data_time)


def _status(health: dict, lang: str) -> colours.Swatch:
    colour = STATUS_COLOUR[health["status"]]
    swatch = colours.status(colour, lang)
    if health["status"] in ("ok", "revoked"):
        return colours.Swatch(swatch.colour, i18n.gettext(lang, f"dev.status.{health['status']}"),
                              swatch.mark)
    return swatch


def metric_name(metric: str, lang: str) -> str:
    key = f"metric.{metric}"
    return i18n.gettext(lang, key) if key in i18n.MESSAGES[lang] else metric


@router.get("/devices")
async def devices_page(request: Request, user: PageUser, conn: Conn, settings: SettingsDep,
                       after: DeviceCursor = None, alerts: AlertsOnly = None):
    refused = staff.allowed(request, user, LISTERS)
    if refused:
        return refused
    lang = i18n.choose(request, user.language)
    only_alerts = alerts == "1"
    healths, more = await _list(conn, user, after, only_alerts, settings.max_future_s)
    healths.sort(key=lambda h: (-RANK.get(h["status"], -1), h["device"]))
    items = [{"health": h, "swatch": _status(h, lang), "colour": STATUS_COLOUR[h["status"]],
              "lines": alert_lines([h], lang)} for h in healths]
    query = "&alerts=1" if only_alerts else ""
    return _page(request, user, "devices.html", {
        "items": items, "only_alerts": only_alerts,
        "more_href": f"/devices?after={more}{query}" if more else None, "more": more,
    }, data_time=_newest(healths))


@router.get("/devices/{device_id}")
async def device_page(request: Request, device_id: str, user: PageUser, conn: Conn,
                      settings: SettingsDep):
    rows = (await visible_devices(conn, user, device_id=device_id)
            if DEVICE_ID_RE.fullmatch(device_id) else [])
    if not rows:
        raise HTTPException(404, f"no device {device_id[:64]!r}")
    health = (await health_of(conn, rows, max_future_s=settings.max_future_s))[0]
    lang = i18n.choose(request, user.language)
    return _page(request, user, "device.html", {
        "h": health, "swatch": _status(health, lang), "colour": STATUS_COLOUR[health["status"]],
        "lines": alert_lines([health], lang),
        "metric_name": lambda m: metric_name(m, lang),
        "gap": lambda s: _duration(s, lang),
        "clock_swatch": colours.status(health["clock"]["reason"]["colour"], lang)
        if health["clock"]["reason"] else None,
    }, data_time=_newest([health]))
