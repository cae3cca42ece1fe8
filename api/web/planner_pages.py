"""The plan office's pages: the indicators (KPI) by year, municipality and
kind with bar charts and a CSV for Japanese Excel, and the register of
agri-tech initiatives that officers (their region) and the plan office
(everywhere) keep.

The counts, the CSV and the register's rules are ``api/queries/kpis.py``'s;
an initiative's form is checked by the JSON API's own model
(``api/routes/kpis.py`` ``NewInitiative``), so a page and the API accept the
same things.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from pydantic import ValidationError

from agri.api.accounts import Role
from agri.api.deps import Conn, PrimaryConn
from agri.api.municipalities import AOMORI
from agri.api.queries import kpis, open_data
from agri.api.routes.kpis import NewInitiative
from agri.api.sessions import CsrfForm, PageUser
from agri.api.web import i18n_officer, staff
from agri.api.web.svg_bars import bar_chart
from agri.clock import today_local

logger = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

KPI_VIEWERS = tuple(kpis.VIEWERS)
KEEPERS = tuple(kpis.KEEPERS)
BASES = ("fiscal", "calendar")
REGISTER_PAGE = 50


def _filters(year: str | None, basis: str | None, municipality: str | None) -> dict:
    """The KPI page's filters from its query, whatever was typed: a year
    1900-2200, a basis, a municipality of one line (else left out)."""
    chosen: dict = {"year_basis": basis if basis in BASES else "fiscal", "year": None,
                    "municipality": None}
    if year and year.isascii() and year.isdigit() and 1900 <= int(year) <= 2200:
        chosen["year"] = int(year)
    if municipality:
        try:
            chosen["municipality"] = staff.clean_text(municipality, limit=100) or None
        except staff.FormError:
            chosen["municipality"] = None
    return chosen


def _query(chosen: dict) -> str:
    return urlencode({k: v for k, v in chosen.items() if v is not None})


def _indicator_name(indicator: str, lang: str) -> str:
    ja, en, _ = kpis.INDICATORS[indicator]
    return ja if lang == "ja" else en


def _charts(result: dict, lang: str) -> list[dict]:
    """Per indicator: its totals by year as bars (drone flights also their
    sprayed area)."""
    t = i18n_officer.translator(lang)
    label = result["year_label"] if lang == "ja" else ""
    charts = []
    for indicator, (_, _, source) in kpis.INDICATORS.items():
        totals = [x for x in result["totals"] if x["indicator"] == indicator]
        name = _indicator_name(indicator, lang)
        bars = [(f"{x['year']}{label}", x["count"]) for x in totals]
        chart = {"indicator": indicator, "name": name, "source": t(f"kpi.source.{source}"),
                 "total": sum(x["count"] for x in totals),
                 "svg": bar_chart(bars, title=t("kpi.chart_title", name=name)) if bars
                 else None, "area": None}
        if indicator == "drone_flights":
            area = [(f"{x['year']}{label}", x["sprayed_area_ha"] or 0.0) for x in totals]
            if any(v for _, v in area):
                chart["area"] = bar_chart(area, title=t("kpi.area_title"), unit=" ha",
                                          digits=2)
        charts.append(chart)
    return charts


@router.get("/kpis")
async def kpi_page(request: Request, user: PageUser, conn: Conn, year: str | None = None,
                   year_basis: str | None = None, municipality: str | None = None):
    """The indicators by year (bars), by municipality (the register beside
    what the platform observed) and every row, with the CSV of the same."""
    refused = staff.allowed(request, user, KPI_VIEWERS)
    if refused:
        return refused
    lang = staff.language(request, user)
    chosen = _filters(year, year_basis, municipality)
    result = await kpis.counts(conn, user, chosen["year_basis"], chosen["year"],
                               chosen["municipality"])
    years = sorted({r["year"] for r in result["rows"]}, reverse=True)
    return staff.page(request, user, "planner_kpis.html", {
        "result": result, "charts": _charts(result, lang), "chosen": chosen, "years": years,
        "this_year": today_local().year, "bases": BASES,
        "csv_href": "/kpis.csv" + (f"?{_query(chosen)}" if _query(chosen) else ""),
        "indicators": {k: _indicator_name(k, lang) for k in kpis.INDICATORS},
        "no_region": user.role == Role.OFFICER and not user.regions},
        data_time=datetime.now(UTC))


@router.get("/kpis.csv")
async def kpi_csv(request: Request, user: PageUser, conn: Conn, year: str | None = None,
                  year_basis: str | None = None, municipality: str | None = None):
    """The rows of the KPI page as a CSV Japanese Excel opens as it should
    (UTF-8 with BOM, CRLF)."""
    refused = staff.allowed(request, user, KPI_VIEWERS)
    if refused:
        return refused
    chosen = _filters(year, year_basis, municipality)
    result = await kpis.counts(conn, user, chosen["year_basis"], chosen["year"],
                               chosen["municipality"])
    name = f"kpis-{chosen['year'] or 'all'}-{today_local().isoformat()}.csv"
    return Response(kpis.csv_bytes(result), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})


# --- the initiatives register --------------------------------------------------------


def _municipality_choices(user) -> list[tuple[str, str]]:
    """(value, words) of the municipalities the user may record initiatives in."""
    if user.role == Role.OFFICER:
        names = {m.name: m.name_ja for m in AOMORI.values()}
        return [(r, f"{names.get(r, r)} ({r})") for r in sorted(user.regions)]
    return [(m.name, f"{m.name_ja} ({m.name})") for m in AOMORI.values()]


async def _register_page(request, user, conn, *, error: str | None = None, status: int = 200,
                         values: dict | None = None, cursor: int | None = None):
    lang = staff.language(request, user)
    items = await kpis.initiatives(conn, user, cursor=cursor, limit=REGISTER_PAGE)
    more = len(items) > REGISTER_PAGE
    items = items[:REGISTER_PAGE]
    done = request.query_params.get("done")
    defaults = {"name": "", "kind": "drone", "municipality": "", "started_on":
                today_local().isoformat(), "status": "active", "evidence": ""}
    newest = [datetime.fromisoformat(i["updated_at"]) for i in items if i["updated_at"]]
    return staff.page(request, user, "planner_initiatives.html", {
        "items": items, "next": items[-1]["id"] if more else None,
        "kinds": {k: (ja if lang == "ja" else en) for k, (ja, en) in
                  kpis.INITIATIVE_KINDS.items()},
        "statuses": kpis.INITIATIVE_STATUSES, "municipalities": _municipality_choices(user),
        "values": defaults | (values or {}), "error": error, "done": done == "added",
        "no_region": user.role == Role.OFFICER and not user.regions},
        data_time=max(newest) if newest else None, status=status)


@router.get("/initiatives")
async def register_page(request: Request, user: PageUser, conn: Conn,
                        cursor: str | None = None):
    """The register, newest first, and a form for a new initiative."""
    refused = staff.allowed(request, user, KEEPERS)
    if refused:
        return refused
    after = int(cursor) if cursor and cursor.isascii() and cursor.isdigit() and len(
        cursor) <= 18 else None
    return await _register_page(request, user, conn, cursor=after)


def _validation_text(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                     for e in exc.errors()[:5])[:500]


@router.post("/initiatives")
async def register_add(request: Request, user: PageUser, conn: PrimaryConn,
                       _csrf: None = CsrfForm):
    refused = staff.allowed(request, user, KEEPERS)
    if refused:
        return refused
    lang = staff.language(request, user)
    form = await request.form()
    raw = {k: form.get(k) if isinstance(form.get(k), str) else "" for k in (
        "name", "kind", "municipality", "started_on", "status", "evidence")}
    shown = {k: v[:2000].replace("\x00", "") for k, v in raw.items()}
    try:
        name = staff.clean_text(raw["name"], limit=200, required=True)
        evidence = staff.clean_text(raw["evidence"], limit=2000, one_line=False)
    except staff.FormError as exc:
        return await _register_page(request, user, conn, status=422, values=shown,
                                    error=i18n_officer.gettext(lang, exc.key, **exc.values))
    try:
        new = NewInitiative.model_validate({
            "name": name, "kind": raw["kind"], "municipality": raw["municipality"] or "-",
            "started_on": raw["started_on"], "status": raw["status"], "evidence": evidence})
    except ValidationError as exc:
        return await _register_page(request, user, conn, status=422, values=shown,
                                    error=_validation_text(exc))
    municipality = await open_data.platform_municipality(conn, new.municipality)
    if municipality is None:
        return await _register_page(request, user, conn, status=422, values=shown,
                                    error=i18n_officer.gettext(lang, "reg.unknown_town"))
    if not kpis.may_keep(user, municipality):
        return await _register_page(request, user, conn, status=403, values=shown,
                                    error=i18n_officer.gettext(lang, "reg.not_your_town"))
    try:
        await kpis.add_initiative(conn, user, new.model_dump() | {"municipality": municipality})
    except HTTPException as exc:
        return await _register_page(request, user, conn, status=exc.status_code, values=shown,
                                    error=staff.error_text(exc))
    return staff.see_other("/initiatives?done=added")
