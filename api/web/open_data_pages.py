"""The open data's public pages: the catalogue of published datasets with
their downloads, licence (公共データ利用規約 PDL1.0) and attribution, and the
showcase of apps and services built on them. Both are open to anyone
without an account, as open data must be; the plan office publishes or
withdraws a dataset and registers apps through the forms on the same pages.

What is published, the files and the attribution text are
``api/queries/open_data.py``'s; the showcase form is checked by the JSON
API's model (``api/routes/open_data.py`` ``NewApp``).
"""

from __future__ import annotations

import logging
from datetime import datetime

from fastapi import APIRouter, HTTPException, Request
from pydantic import ValidationError

from agri.api.deps import Conn, PrimaryConn, SettingsDep
from agri.api.queries import open_data
from agri.api.routes.open_data import NewApp
from agri.api.sessions import CsrfForm, OptionalPageUser, PageUser
from agri.api.web import i18n_officer, staff

logger = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

SHOWCASE_PAGE = 50
FORMAT_WORDS = {"csv": "CSV", "json": "JSON", "geojson": "GeoJSON"}


def _publisher(user) -> bool:
    return user is not None and user.role in open_data.PUBLISHERS


@router.get("/open-data")
async def catalogue_page(request: Request, user: OptionalPageUser, conn: Conn,
                         settings: SettingsDep):
    """The published datasets, each with its downloads and attribution."""
    lang = staff.language(request, user)
    states = await open_data.publications(conn)
    page_url = f"{settings.site_url}/api/v1/open-data"
    datasets, times = [], []
    for name, d in open_data.DATASETS.items():
        state = states.get(name) or {}
        published = bool(state.get("published"))
        if state.get("published_at"):
            times.append(datetime.fromisoformat(state["published_at"]))
        if not (published or _publisher(user)):
            continue
        datasets.append({
            "name": name, "published": published,
            "title": d.title[0] if lang == "ja" else d.title[1],
            "description": d.description[0] if lang == "ja" else d.description[1],
            "downloads": [(f"/api/v1/open-data/{name}.{fmt}", FORMAT_WORDS[fmt])
                          for fmt in open_data.FORMATS],
            "attribution": open_data.attribution(d, page_url)})
    return staff.page(request, user, "open_data_catalogue.html", {
        "datasets": datasets, "publisher": _publisher(user),
        "license_url": open_data.LICENSE_URL, "license_name": open_data.LICENSE_NAME[lang],
        "publisher_name": open_data.PUBLISHER[lang], "catalogue_url": "/api/v1/open-data",
        "done": request.query_params.get("done") in ("published", "withdrawn")
        and request.query_params.get("done")}, data_time=max(times) if times else None)


@router.post("/open-data/{dataset}/publication")
async def publication(request: Request, user: PageUser, conn: PrimaryConn, dataset: str,
                      _csrf: None = CsrfForm):
    """Publish (``published=1``) or withdraw a dataset (the plan office)."""
    refused = staff.allowed(request, user, tuple(open_data.PUBLISHERS))
    if refused:
        return refused
    if dataset not in open_data.DATASETS:
        return staff.refuse(request, user, 404, i18n_officer.gettext(
            staff.language(request, user), "od.no_dataset"))
    form = await request.form()
    published = form.get("published") == "1"
    await open_data.publish(conn, user, dataset, published)
    logger.info("%s %s dataset %s", user.name, "published" if published else "withdrew",
                dataset)
    return staff.see_other("/open-data?done=" + ("published" if published else "withdrawn"))


async def _showcase_page(request, user, conn, *, error: str | None = None, status: int = 200,
                         values: dict | None = None, cursor: int | None = None):
    lang = staff.language(request, user)
    apps = await open_data.showcase(conn, cursor=cursor, limit=SHOWCASE_PAGE)
    more = len(apps) > SHOWCASE_PAGE
    apps = apps[:SHOWCASE_PAGE]
    titles = {n: (d.title[0] if lang == "ja" else d.title[1])
              for n, d in open_data.DATASETS.items()}
    times = [datetime.fromisoformat(a["registered_at"]) for a in apps if a["registered_at"]]
    defaults = {"name": "", "organisation": "", "url": "https://", "description": "",
                "datasets": []}
    return staff.page(request, user, "open_data_showcase.html", {
        "apps": apps, "next": apps[-1]["id"] if more else None, "titles": titles,
        "publisher": _publisher(user), "values": defaults | (values or {}), "error": error,
        "done": request.query_params.get("done") == "added"},
        data_time=max(times) if times else None, status=status)


@router.get("/showcase")
async def showcase_page(request: Request, user: OptionalPageUser, conn: Conn,
                        cursor: str | None = None):
    """The apps and services built on the open data, newest first."""
    after = int(cursor) if cursor and cursor.isascii() and cursor.isdigit() and len(
        cursor) <= 18 else None
    return await _showcase_page(request, user, conn, cursor=after)


@router.post("/showcase")
async def showcase_add(request: Request, user: PageUser, conn: PrimaryConn,
                       _csrf: None = CsrfForm):
    """Register an app or service (the plan office)."""
    refused = staff.allowed(request, user, tuple(open_data.PUBLISHERS))
    if refused:
        return refused
    lang = staff.language(request, user)
    form = await request.form()
    raw = {k: form.get(k) if isinstance(form.get(k), str) else "" for k in (
        "name", "organisation", "url", "description")}
    chosen = [d for d in form.getlist("dataset") if isinstance(d, str)][:10]
    shown = {k: v[:2000].replace("\x00", "") for k, v in raw.items()} | {
        "datasets": [d for d in chosen if d in open_data.DATASETS]}
    try:
        values = {"name": staff.clean_text(raw["name"], limit=200, required=True),
                  "organisation": staff.clean_text(raw["organisation"], limit=200,
                                                   required=True),
                  "url": staff.clean_text(raw["url"], limit=500, required=True),
                  "description": staff.clean_text(raw["description"], limit=2000,
                                                  one_line=False)}
    except staff.FormError as exc:
        return await _showcase_page(request, user, conn, status=422, values=shown,
                                    error=i18n_officer.gettext(lang, exc.key, **exc.values))
    try:
        new = NewApp.model_validate(values | {"datasets": chosen})
        await open_data.add_app(conn, user, new.model_dump())
    except ValidationError as exc:
        reasons = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                            for e in exc.errors()[:3])[:400]
        return await _showcase_page(request, user, conn, status=422, values=shown,
                                    error=f"{i18n_officer.gettext(lang, 'od.bad_app')} {reasons}")
    except open_data.OpenDataError as exc:
        return await _showcase_page(request, user, conn, status=422, values=shown,
                                    error=str(exc)[:400])
    except HTTPException as exc:
        return await _showcase_page(request, user, conn, status=exc.status_code,
                                    values=shown, error=staff.error_text(exc))
    return staff.see_other("/showcase?done=added")
