"""The extension officer's pages: the region's fields on a map and in a list,
advisories to review, edit, publish and withdraw, observations to record,
the harvest order, and printable sign-in links for farmers.

Every form is a plain POST with the session's CSRF token and answers with a
redirect (303) to the page that shows the result, so the pages work without
JavaScript and a reload never sends a form twice. What a user may see or
change is decided by the query functions (``api/queries``), which answer 404
for what is outside the officer's region; a page shows such an error in
words with the same status.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, date, datetime, time, timedelta

from fastapi import APIRouter, HTTPException, Request
from markupsafe import Markup

from agri.analytics.advice import Severity
from agri.api import sessions
from agri.api.deps import Conn, PrimaryConn, SettingsDep
from agri.api.field_registry import FIELD_ID_RE
from agri.api.pagination import MAX_CURSOR
from agri.api.queries import access, advisories, farmers, field_status, groups, maps, observations
from agri.api.sessions import CsrfForm, PageUser
from agri.api.web import basemap as gsi
from agri.api.web import colours, device_pages, i18n_officer, staff
from agri.api.web.svg_map import polygon_map
from agri.clock import TZ, today_local

logger = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

MODES = ("status", "harvest", "protein")
MAP_FIELDS = 2000  # polygons drawn on one map; the list says when there are more
LIST_DRAFTS, LIST_OTHERS = 50, 20
ADVISORY_DONE = ("created", "edited", "published", "withdrawn")  # ?done= after a form
OBSERVATION_DONE = ("recorded",)
FIELD_LIST_RE = re.compile(r"[\s,、]+")

def _midnight(day: date | None) -> datetime | None:
    return None if day is None else datetime.combine(day, time(0), TZ)


def _newest(values) -> datetime | None:
    found = [v for v in values if v is not None]
    return max(found) if found else None


def _municipalities(user) -> list[str]:
    return sorted(user.regions)


def _choose_municipality(user, asked: str | None) -> tuple[str | None, bool]:
    """(the municipality to show or None for the whole region, whether the
    asked one was usable)."""
    if not asked:
        return None, True
    if asked in user.regions or (user.role == "admin" and len(asked) <= 100
                                 and "\x00" not in asked):
        return asked, True
    return None, False


def _status_swatch(status: field_status.Status | None, lang: str) -> colours.Swatch:
    return colours.status(status.colour if status else "grey", lang)


# --- the region on a map ------------------------------------------------------------


@router.get("/region")
async def region_page(request: Request, user: PageUser, conn: Conn, settings: SettingsDep,
                      mode: str = "status", municipality: str | None = None,
                      basemap: str | None = None):
    """The fields of the officer's region on a map coloured by ``mode``
    (status, predicted harvest date or protein class), with a legend in
    words and the same fields as a list."""
    refused = staff.allowed(request, user, staff.OFFICERS)
    if refused:
        return refused
    lang = staff.language(request, user)
    mode = mode if mode in MODES else "status"
    chosen, usable = _choose_municipality(user, municipality)
    with_basemap = basemap == "1"
    context = {"mode": mode, "modes": MODES, "municipality": chosen,
               "municipalities": _municipalities(user), "basemap": with_basemap,
               "unusable_municipality": not usable, "no_region": False, "items": [],
               "map": None, "legend": [], "truncated": False,
               "tile_list_url": gsi.TILE_LIST_URL, "device_alerts": None}
    if user.role == "officer" and not user.regions:
        context["no_region"] = True
        return staff.page(request, user, "officer_region.html", context, data_time=None)
    if not usable:
        return staff.page(request, user, "officer_region.html", context, data_time=None,
                          status=404)
    if mode == "protein":
        collection = await maps.protein_features(conn, user, municipality=chosen,
                                                 limit=MAP_FIELDS)
    else:
        collection = await maps.harvest_features(conn, user, municipality=chosen,
                                                 limit=MAP_FIELDS)
    features = collection["features"]
    items, legend, data_time = await _colour(conn, user, mode, features, lang)
    colour_of = {item["id"]: item["colour"] for item in items}
    label_of = {item["id"]: f"{item['name']}: {item['words']}" for item in items}
    svg = polygon_map(
        features, colour=lambda f: colour_of[f["id"]],
        href=lambda f: f"/fields/{f['id']}", label=lambda f: label_of[f["id"]],
        title=i18n_officer.gettext(lang, f"region.map_title.{mode}"), lang=lang,
        underlay=gsi.underlay if with_basemap else None) if features else None
    context.update(items=items, legend=legend, map=svg, truncated=collection["truncated"],
                   device_alerts=await device_pages.region_alert_counts(
                       conn, user, max_future_s=settings.max_future_s, lang=lang))
    # The pages' Content-Security-Policy lets images come from the GSI tile
    # server (api/middleware.py): nothing else of the page leaves the site.
    return staff.page(request, user, "officer_region.html", context, data_time=data_time)


async def _colour(conn, user, mode: str, features: list[dict], lang: str):
    """Each field's colour and words for ``mode``, the legend, the data time."""
    t = i18n_officer.translator(lang)
    items = []
    if mode == "status":
        statuses = await field_status.field_statuses(conn, user, [f["id"] for f in features])
        for f in features:
            status = statuses.get(f["id"])
            swatch = _status_swatch(status, lang)
            reasons = [r.ja if lang == "ja" else r.en for r in (status.reasons if status else ())]
            items.append(_item(f, swatch.colour, f"{swatch.mark} {swatch.label}",
                               "; ".join(reasons[:3])))
        return (items, colours.status_legend(lang),
                _newest(s.as_of for s in statuses.values()))
    if mode == "harvest":
        opens_by_class: dict[int, list[date]] = {}
        for f in features:
            p = f["properties"]
            window = p["harvest_window"] or {}
            opens, closes = window.get("opens"), window.get("closes")
            cls = p["harvest_class"]
            if cls is not None and opens:
                opens_by_class.setdefault(cls, []).append(date.fromisoformat(opens))
            words = (t("region.harvest_words", opens=_md(opens), closes=_md(closes))
                     if opens else t("region.harvest_none"))
            if cls is not None:
                words = f"{cls} · {words}"
            order = p["order_in_municipality"]
            extra = t("region.order", order=order) if order else ""
            items.append(_item(f, p["colour"], words, extra))
        legend = []
        for cls, colour in enumerate(maps.maturity.HARVEST_CLASS_COLOURS, start=1):
            days = opens_by_class.get(cls)
            span = f"{_md(min(days).isoformat())}–{_md(max(days).isoformat())}" if days else ""
            edge = (t("harvest.early") if cls == 1 else t("harvest.late")
                    if cls == len(maps.maturity.HARVEST_CLASS_COLOURS) else "")
            legend.append(colours.Swatch(colour, " ".join(x for x in (edge, span) if x),
                                         str(cls)))
        legend.append(colours.Swatch(maps.NO_DATA_COLOUR, t("region.harvest_none"), "?"))
        computed = [f["properties"]["harvest_window"]["computed_for"] for f in features
                    if f["properties"]["harvest_window"]]
        return items, legend, _midnight(date.fromisoformat(max(computed))) if computed else None
    for f in features:
        p = f["properties"]
        pct, cls = p["protein_pct"], p["protein_class"]
        words = (t("region.protein_words", pct=f"{pct:.1f}", cls=t(f"region.protein.{cls}"))
                 if pct is not None else t("region.protein_none"))
        items.append(_item(f, p["colour"], words, ""))
    legend = [colours.Swatch(e["colour"], _protein_label(e, t)) for e in maps.protein_legend()]
    legend.append(colours.Swatch(maps.NO_DATA_COLOUR, t("region.protein_none"), "?"))
    taken = [f["properties"]["acquired_on"] for f in features if f["properties"]["acquired_on"]]
    return items, legend, _midnight(date.fromisoformat(max(taken))) if taken else None


def _protein_label(entry: dict, t) -> str:
    words = t(f"region.protein.{entry['class']}")
    if entry["above_pct"] is None:
        return f"{words} (≤ {entry['up_to_pct']:.1f} %)"
    if entry["up_to_pct"] is None:
        return f"{words} (> {entry['above_pct']:.1f} %)"
    return f"{words} ({entry['above_pct']:.1f}–{entry['up_to_pct']:.1f} %)"


def _md(iso: str | None) -> str:
    if not iso:
        return ""
    d = date.fromisoformat(iso)
    return f"{d.month}/{d.day}"


def _item(feature: dict, colour: str, words: str, extra: str) -> dict:
    p = feature["properties"]
    return {"id": feature["id"], "name": p["name"], "municipality": p["municipality"],
            "colour": colour, "words": words, "extra": extra}


# --- the harvest order ---------------------------------------------------------------


@router.get("/harvest-order")
async def harvest_order(request: Request, user: PageUser, conn: Conn,
                        municipality: str | None = None):
    """Each municipality's fields in their harvest order, with the predicted
    window (the order the analytics stored with the window)."""
    refused = staff.allowed(request, user, staff.OFFICERS)
    if refused:
        return refused
    chosen, usable = _choose_municipality(user, municipality)
    context = {"municipality": chosen, "municipalities": _municipalities(user),
               "no_region": user.role == "officer" and not user.regions, "towns": [],
               "unusable_municipality": not usable, "truncated": False}
    if context["no_region"] or not usable:
        return staff.page(request, user, "officer_harvest_order.html", context, data_time=None,
                          status=200 if usable else 404)
    collection = await maps.harvest_features(conn, user, municipality=chosen,
                                             limit=MAP_FIELDS)
    towns: dict[str, list[dict]] = {}
    computed = []
    for f in collection["features"]:
        p = f["properties"]
        window = p["harvest_window"] or {}
        if window.get("computed_for"):
            computed.append(window["computed_for"])
        towns.setdefault(p["municipality"], []).append({
            "id": f["id"], "name": p["name"], "order": p["order_in_municipality"],
            "opens": _md(window.get("opens")), "closes": _md(window.get("closes")),
            "harvest_class": p["harvest_class"], "colour": p["colour"]})
    context.update(towns=sorted(towns.items()), truncated=collection["truncated"])
    return staff.page(request, user, "officer_harvest_order.html", context,
                      data_time=_midnight(date.fromisoformat(max(computed))) if computed
                      else None)


# --- advisories ----------------------------------------------------------------------


def _advisory_id(raw: str) -> int | None:
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19:
        return None
    value = int(raw)
    return value if 1 <= value <= MAX_CURSOR else None


def _updated(items: list[dict]) -> datetime | None:
    return _newest(datetime.fromisoformat(i["updated_at"]) for i in items if i.get("updated_at"))


@router.get("/advisories")
async def advisory_list(request: Request, user: PageUser, conn: Conn):
    """The region's advisories to review: drafts first, then published and
    withdrawn ones."""
    refused = staff.allowed(request, user, staff.OFFICERS)
    if refused:
        return refused
    no_region = user.role == "officer" and not user.regions
    sections = []
    for status, limit in (("draft", LIST_DRAFTS), ("published", LIST_OTHERS),
                          ("withdrawn", LIST_OTHERS)):
        found = await advisories.list_for_user(conn, user, status=status, limit=limit)
        # Only the region's (a reviewer's) ones: published ones reaching a
        # field of the region from elsewhere carry no review rights.
        sections.append((status, [a for a in found["items"] if "targets" in a],
                         found["next"] is not None))
    every = [a for _, items, _ in sections for a in items]
    return staff.page(request, user, "officer_advisories.html",
                      {"sections": sections, "no_region": no_region},
                      data_time=_updated(every))


@router.get("/advisories/new")
async def advisory_new(request: Request, user: PageUser):
    refused = staff.allowed(request, user, staff.OFFICERS)
    if refused:
        return refused
    return _new_form(request, user, {}, None, 200)


def _new_form(request, user, values: dict, error: str | None, status: int):
    today = today_local()
    defaults = {"municipality": (user.regions or [""])[0], "severity": "info",
                "title_ja": "", "title_en": "", "body_ja": "", "body_en": "",
                "valid_from": today.isoformat(),
                "valid_until": (today + timedelta(days=7)).isoformat()}
    return staff.page(request, user, "officer_advisory_new.html", {
        "values": defaults | values, "error": error, "severities": [str(s) for s in Severity],
        "municipalities": _municipalities(user),
        "no_region": user.role == "officer" and not user.regions}, data_time=None,
        status=status)


def _texts(form: dict, *, required: bool) -> dict:
    """The title and body fields of an advisory form, cleaned (FormError)."""
    return {
        "title_ja": staff.clean_text(form.get("title_ja"), limit=advisories.TITLE_MAX,
                                     required=required),
        "title_en": staff.clean_text(form.get("title_en"), limit=advisories.TITLE_MAX),
        "body_ja": staff.clean_text(form.get("body_ja"), limit=advisories.BODY_MAX,
                                    required=required, one_line=False),
        "body_en": staff.clean_text(form.get("body_en"), limit=advisories.BODY_MAX,
                                    one_line=False),
    }


@router.post("/advisories")
async def advisory_create(request: Request, user: PageUser, conn: PrimaryConn,
                          _csrf: None = CsrfForm):
    refused = staff.allowed(request, user, staff.OFFICERS)
    if refused:
        return refused
    lang = staff.language(request, user)
    form = await request.form()
    raw = {k: form.get(k) if isinstance(form.get(k), str) else "" for k in (
        "municipality", "severity", "title_ja", "title_en", "body_ja", "body_en",
        "valid_from", "valid_until")}
    shown = {k: v[:advisories.BODY_MAX].replace("\x00", "") for k, v in raw.items()}
    try:
        texts = _texts(raw, required=True)
        municipality = staff.clean_text(raw["municipality"], limit=advisories.MUNICIPALITY_MAX,
                                        required=True)
    except staff.FormError as exc:
        return _new_form(request, user, shown, i18n_officer.gettext(lang, exc.key, **exc.values),
                         422)
    try:
        created = await advisories.create(conn, user, {
            "severity": raw["severity"] or "info", "municipality": municipality,
            "title": {"ja": texts["title_ja"], "en": texts["title_en"]},
            "body": {"ja": texts["body_ja"], "en": texts["body_en"]},
            "valid_from": raw["valid_from"], "valid_until": raw["valid_until"]})
    except HTTPException as exc:
        return _new_form(request, user, shown, staff.error_text(exc), exc.status_code)
    return staff.see_other(f"/advisories/{created['id']}?done=created")


async def _advisory_page(request, user, conn, advisory_id: int, *, error: str | None = None,
                         status: int = 200, values: dict | None = None):
    lang = staff.language(request, user)
    try:
        item = await advisories.get(conn, user, advisory_id)
    except HTTPException as exc:
        return staff.refuse(request, user, exc.status_code, staff.error_text(exc))
    if "targets" not in item:  # a farmer-side view of another region's advisory
        return staff.refuse(request, user, 404, i18n_officer.gettext(lang, "adv.not_yours"))
    group_page = await groups.list_groups(conn, user, limit=100)
    done = request.query_params.get("done")
    form_values = {"title_ja": item["title"]["ja"], "title_en": item["title"]["en"],
                   "body_ja": item["body"]["ja"], "body_en": item["body"]["en"],
                   "severity": item["severity"], "valid_from": item["valid_from"],
                   "valid_until": item["valid_until"], "fields_text": ""}
    return staff.page(request, user, "officer_advisory.html", {
        "a": item, "values": form_values | (values or {}), "error": error,
        "done": done if done in ADVISORY_DONE else None, "severities": [str(s) for s in Severity],
        "groups": [g for g in group_page["items"] if g["municipality"] == item["municipality"]]
        or group_page["items"],
        "municipalities": _municipalities(user) or [item["municipality"]],
        "editable": item["status"] != "withdrawn"},
        data_time=datetime.fromisoformat(item["updated_at"]) if item.get("updated_at")
        else None, status=status)


@router.get("/advisories/{advisory_id}")
async def advisory_page(request: Request, user: PageUser, conn: Conn, advisory_id: str):
    refused = staff.allowed(request, user, staff.OFFICERS)
    if refused:
        return refused
    number = _advisory_id(advisory_id)
    if number is None:
        return staff.refuse(request, user, 404, i18n_officer.gettext(
            staff.language(request, user), "adv.not_found"))
    return await _advisory_page(request, user, conn, number)


async def _advisory_form(request: Request, user, advisory_id: str):
    """(the advisory number, the submitted form) or (None, the page to answer)."""
    refused = staff.allowed(request, user, staff.OFFICERS)
    if refused:
        return None, refused
    number = _advisory_id(advisory_id)
    if number is None:
        return None, staff.refuse(request, user, 404, i18n_officer.gettext(
            staff.language(request, user), "adv.not_found"))
    return number, await request.form()


def _str(form, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


@router.post("/advisories/{advisory_id}/edit")
async def advisory_edit(request: Request, user: PageUser, conn: PrimaryConn, advisory_id: str,
                        _csrf: None = CsrfForm):
    number, form = await _advisory_form(request, user, advisory_id)
    if number is None:
        return form
    lang = staff.language(request, user)
    raw = {k: _str(form, k) for k in ("title_ja", "title_en", "body_ja", "body_en",
                                       "severity", "valid_from", "valid_until")}
    shown = {k: v[:advisories.BODY_MAX].replace("\x00", "") for k, v in raw.items()}
    try:
        texts = _texts(raw, required=True)
    except staff.FormError as exc:
        return await _advisory_page(request, user, conn, number, status=422, values=shown,
                                    error=i18n_officer.gettext(lang, exc.key, **exc.values))
    edit = {"title": {"ja": texts["title_ja"], "en": texts["title_en"]},
            "body": {"ja": texts["body_ja"], "en": texts["body_en"]}}
    for name in ("severity", "valid_from", "valid_until"):
        if raw[name]:
            edit[name] = raw[name][:20]
    try:
        await advisories.update(conn, user, number, edit)
    except HTTPException as exc:
        return await _advisory_page(request, user, conn, number, status=exc.status_code,
                                    values=shown, error=staff.error_text(exc))
    return staff.see_other(f"/advisories/{number}?done=edited")


@router.post("/advisories/{advisory_id}/publish")
async def advisory_publish(request: Request, user: PageUser, conn: PrimaryConn,
                           advisory_id: str, _csrf: None = CsrfForm):
    """Publish to the ticked and typed field ids, a group, or municipalities."""
    number, form = await _advisory_form(request, user, advisory_id)
    if number is None:
        return form
    lang = staff.language(request, user)
    target = _str(form, "target")
    try:
        if target == "fields":
            typed = staff.clean_text(_str(form, "fields_text"), limit=20_000)
            ids = [v for v in form.getlist("field") if isinstance(v, str)]
            ids += [v for v in FIELD_LIST_RE.split(typed) if v]
            bad = [i for i in ids if not FIELD_ID_RE.fullmatch(i)]
            if bad:
                raise staff.FormError("adv.bad_field_id", id=bad[0][:64])
            if not ids:
                raise staff.FormError("adv.no_fields")
            chosen = {"fields": sorted(set(ids))}
        elif target == "group":
            group = _str(form, "group")
            if not (group.isascii() and group.isdigit() and 0 < len(group) <= 19):
                raise staff.FormError("adv.no_group")
            chosen = {"group": int(group)}
        elif target == "region":
            names = [staff.clean_text(v, limit=advisories.MUNICIPALITY_MAX, required=True)
                     for v in form.getlist("municipality") if isinstance(v, str)]
            if not names:
                raise staff.FormError("adv.no_municipality")
            chosen = {"region": names}
        else:
            raise staff.FormError("adv.no_target")
    except staff.FormError as exc:
        return await _advisory_page(request, user, conn, number, status=422,
                                    error=i18n_officer.gettext(lang, exc.key, **exc.values))
    try:
        await advisories.publish(conn, user, number, chosen)
    except HTTPException as exc:
        return await _advisory_page(request, user, conn, number, status=exc.status_code,
                                    error=staff.error_text(exc))
    return staff.see_other(f"/advisories/{number}?done=published")


@router.post("/advisories/{advisory_id}/withdraw")
async def advisory_withdraw(request: Request, user: PageUser, conn: PrimaryConn,
                            advisory_id: str, _csrf: None = CsrfForm):
    number, form = await _advisory_form(request, user, advisory_id)
    if number is None:
        return form
    try:
        await advisories.withdraw(conn, user, number)
    except HTTPException as exc:
        return await _advisory_page(request, user, conn, number, status=exc.status_code,
                                    error=staff.error_text(exc))
    return staff.see_other(f"/advisories/{number}?done=withdrawn")


# --- observations --------------------------------------------------------------------


async def _observations_page(request, user, conn, field_id: str, *, error: str | None = None,
                             status: int = 200, values: dict | None = None):
    lang = staff.language(request, user)
    row = (await access.visible_field(conn, user, field_id, to_change=True)
           if FIELD_ID_RE.fullmatch(field_id) else None)
    if row is None:
        return staff.refuse(request, user, 404,
                            i18n_officer.gettext(lang, "obs.no_field"))
    records = await observations.list_for_field(conn, user, field_id, limit=50)
    done = request.query_params.get("done")
    defaults = {"kind": "heading", "date": today_local().isoformat(), "value": "", "note": ""}
    newest = _newest(datetime.fromisoformat(r["updated_at"]) for r in records["items"])
    return staff.page(request, user, "officer_observations.html", {
        "field": {"id": row[0], "name": row[1], "municipality": row[5]},
        "records": records["items"], "kinds": observations.kinds(),
        "values": defaults | (values or {}), "error": error,
        "done": done if done in OBSERVATION_DONE else None}, data_time=newest, status=status)


@router.get("/fields/{field_id}/observations")
async def observations_page(request: Request, user: PageUser, conn: Conn, field_id: str):
    """A field's records (heading date, lab protein, notes ...) and a form for a new one."""
    refused = staff.allowed(request, user, staff.OFFICERS)
    if refused:
        return refused
    return await _observations_page(request, user, conn, field_id)


@router.post("/fields/{field_id}/observations")
async def observation_record(request: Request, user: PageUser, conn: PrimaryConn,
                             field_id: str, _csrf: None = CsrfForm):
    refused = staff.allowed(request, user, staff.OFFICERS)
    if refused:
        return refused
    lang = staff.language(request, user)
    form = await request.form()
    raw = {k: _str(form, k) for k in ("kind", "date", "value", "note")}
    shown = {k: v[:observations.MAX_NOTE_CHARS].replace("\x00", "") for k, v in raw.items()}
    try:
        note = staff.clean_text(raw["note"], limit=observations.MAX_NOTE_CHARS, one_line=False)
        value_text = staff.clean_text(raw["value"], limit=20).replace(",", ".")
        value = float(value_text) if value_text else None
    except staff.FormError as exc:
        return await _observations_page(request, user, conn, field_id, status=422,
                                        values=shown,
                                        error=i18n_officer.gettext(lang, exc.key, **exc.values))
    except ValueError:
        return await _observations_page(request, user, conn, field_id, status=422,
                                        values=shown,
                                        error=i18n_officer.gettext(lang, "obs.bad_value"))
    try:
        record = {"kind": raw["kind"], "date": raw["date"][:20]}
        # (a value or note left empty is left out, not sent as None)
        record |= ({"value": value} if value is not None else {}) | (
            {"note": note} if note else {})
        await observations.record(conn, user, field_id, record)
    except HTTPException as exc:
        if exc.status_code == 404:
            return staff.refuse(request, user, 404, i18n_officer.gettext(lang, "obs.no_field"))
        return await _observations_page(request, user, conn, field_id, status=exc.status_code,
                                        values=shown, error=staff.error_text(exc))
    return staff.see_other(f"/fields/{field_id}/observations?done=recorded")


# --- sign-in links -------------------------------------------------------------------


@router.get("/sign-in-links")
async def sign_in_links(request: Request, user: PageUser, conn: Conn):
    """Choose a farmer of the region to print a one-time sign-in link for."""
    refused = staff.allowed(request, user, staff.OFFICERS)
    if refused:
        return refused
    return await _links_form(request, user, conn, None, 200)


async def _links_form(request, user, conn, error: str | None, status: int):
    people = await farmers.region_farmers(conn, user)
    return staff.page(request, user, "officer_sign_in_links.html", {
        "farmers": people, "error": error, "hours": sessions.LINK_HOURS,
        "no_region": user.role == "officer" and not user.regions}, data_time=None,
        status=status)


@router.post("/sign-in-links")
async def sign_in_link_make(request: Request, user: PageUser, conn: PrimaryConn,
                            settings: SettingsDep, _csrf: None = CsrfForm):
    """A printable page with the link and its QR code (never cached: it holds
    the token)."""
    refused = staff.allowed(request, user, staff.OFFICERS)
    if refused:
        return refused
    lang = staff.language(request, user)
    form = await request.form()
    farmer = _str(form, "farmer")
    token = None
    if 0 < len(farmer) <= 64 and "\x00" not in farmer:
        token = await sessions.create_sign_in_link(conn, user, farmer)
    if token is None:
        return await _links_form(request, user, conn,
                                 i18n_officer.gettext(lang, "links.unknown"), 404)
    url = f"{settings.site_url}/sign-in/{token}"
    logger.info("sign-in link made for %s by %s", farmer, user.name)
    expires = datetime.now(UTC) + timedelta(hours=sessions.LINK_HOURS)
    response = staff.page(request, user, "officer_sign_in_link.html", {
        "farmer": farmer, "url": url, "qr": Markup(sessions.qr_svg(url)),  # noqa: S704
        "expires": expires, "hours": sessions.LINK_HOURS}, data_time=None)
    response.headers["Cache-Control"] = "no-store"
    del response.headers["ETag"]
    return response
