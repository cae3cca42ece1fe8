"""Open data, downloadable without registration: the catalogue, the
datasets in CSV, JSON and GeoJSON, and the showcase of what was built on
them. Publishing a dataset and registering an app are for the plan office."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from agri.api.deps import Conn, CurrentUser, PrimaryConn, SettingsDep
from agri.api.pagination import Cursor, Limit, page
from agri.api.queries import access, open_data
from agri.clock import today_local

router = APIRouter(prefix="/api/v1", tags=["open data"])

DEFAULT_DAYS = 30
CACHE = "public, max-age=600"
LINE = r"^[^\x00-\x1f\x7f]+$"

DateQ = Annotated[date | None, Query(ge=date(1900, 1, 1), le=date(2200, 12, 31),
                                     description="first / last day (ISO date, Asia/Tokyo); "
                                                 f"at most {open_data.MAX_DAYS} days")]

_CATALOGUE_EXAMPLE = {
    "@context": {"dcat": "http://www.w3.org/ns/dcat#", "dct": "http://purl.org/dc/terms/",
                 "foaf": "http://xmlns.com/foaf/0.1/", "cc": "http://creativecommons.org/ns#"},
    "@type": "dcat:Catalog", "@id": "https://agri.example.jp/api/v1/open-data",
    "dcat:dataset": [{
        "@type": "dcat:Dataset", "dct:identifier": "harvest-forecast",
        "dct:title": [{"@value": "収穫適期予測（市町村別）", "@language": "ja"},
                      {"@value": "Harvest-timing forecast by municipality", "@language": "en"}],
        "dct:license": {"@id": open_data.LICENSE_URL},
        "cc:attributionText": "出典：青森県 企画政策部 情報システム課「収穫適期予測（市町村別）」"
                              "（https://agri.example.jp/api/v1/open-data）、公共データ利用規約"
                              f"（第1.0版）（{open_data.LICENSE_URL}）",
        "dct:modified": "2026-09-01",
        "dcat:distribution": [{
            "@type": "dcat:Distribution", "dct:format": "CSV", "dcat:mediaType": "text/csv",
            "dcat:downloadURL": {
                "@id": "https://agri.example.jp/api/v1/open-data/harvest-forecast.csv"}}]}]}


@router.get("/open-data", responses={200: {"content": {"application/ld+json": {
    "example": _CATALOGUE_EXAMPLE}}}})
async def catalogue(conn: Conn, settings: SettingsDep):
    """The catalogue (DCAT, JSON-LD) of the published datasets, with their
    licence (公共データ利用規約 第1.0版) and attribution (出典). No account needed."""
    body = await open_data.catalogue(conn, settings.site_url)
    return Response(orjson.dumps(body), media_type="application/ld+json",
                    headers={"Cache-Control": CACHE,
                             "Link": f'<{open_data.LICENSE_URL}>; rel="license"'})


@router.get("/open-data/publications", responses={200: {"content": {"application/json": {
    "example": {"items": [{"dataset": "weather-daily", "published": True,
                           "published_at": "2026-06-01T10:00:00+09:00",
                           "published_by": "plan-office", "withdrawn_at": None}]}}}}})
async def publications(conn: PrimaryConn, user: CurrentUser):
    """Every dataset the platform can publish and whether it is (plan office)."""
    access.require_role(user, *open_data.PUBLISHERS, action="the publication list")
    return {"items": list((await open_data.publications(conn)).values())}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Publication(Strict):
    published: Annotated[bool, Field(description="false withdraws it")] = True


def _dataset(name: str) -> open_data.Dataset:
    found = open_data.DATASETS.get(name)
    if found is None:
        raise HTTPException(404, f"no dataset {name[:64]!r}; choose one of "
                                 f"{', '.join(open_data.DATASETS)}")
    return found


@router.post("/open-data/{dataset}/publish", responses={200: {"content": {"application/json": {
    "example": {"dataset": "weather-daily", "published": True,
                "published_at": "2026-06-01T10:00:00+09:00", "published_by": "plan-office",
                "withdrawn_at": None}}}}})
async def publish(dataset: str, conn: PrimaryConn, user: CurrentUser,
                  body: Publication | None = None):
    """Publish a dataset (``{"published": false}`` withdraws it): it appears
    in the catalogue and its downloads answer. Planners and admins."""
    access.require_role(user, *open_data.PUBLISHERS, action="publishing open data")
    _dataset(dataset)
    return await open_data.publish(conn, user, dataset, (body or Publication()).published)


@router.get("/open-data/{dataset}.{fmt}", responses={200: {"content": {
    "text/csv": {"example": "\ufeff年,市町村,予測日,最早開始日,中央開始日,最遅開始日,中央終了日,"
                            "農家数,圃場数,秘匿\r\n2026,弘前市,2026-09-01,2026-09-10,"
                            "2026-09-14,2026-09-19,2026-09-24,12,31,\r\n"},
    "application/json": {"example": {"dataset": "harvest-forecast", "start": "2026-01-01",
                                     "end": "2026-09-01", "items": [
                                         {"year": 2026, "municipality": "弘前市",
                                          "median_opening": "2026-09-14", "farms": 12}]}},
    "application/geo+json": {"example": {"type": "FeatureCollection", "features": [{
        "type": "Feature", "geometry": {"type": "Point", "coordinates": [140.46, 40.6]},
        "properties": {"year": 2026, "municipality": "弘前市"}}]}}}},
    404: {"description": "no such dataset, or not published"}})
async def download(dataset: str, fmt: Literal["csv", "json", "geojson"], conn: Conn,
                   settings: SettingsDep, start: DateQ = None, end: DateQ = None):
    """A published dataset from ``start`` to ``end`` (default: the last 30
    days; the harvest forecast: since 1 January). No account needed. The
    licence is in the ``Link`` header and, with the attribution, in the
    catalogue and the JSON."""
    d = _dataset(dataset)
    if not await open_data.is_published(conn, dataset):
        raise HTTPException(404, f"dataset {dataset!r} is not published")
    end = end or today_local()
    if start is None:
        start = (date(end.year, 1, 1) if dataset == "harvest-forecast"
                 else end - timedelta(days=DEFAULT_DAYS - 1))
    try:
        items = await open_data.rows(conn, dataset, start, end)
    except open_data.OpenDataError as exc:
        raise HTTPException(422, str(exc)) from None
    catalogue_url = f"{settings.site_url}/api/v1/open-data"
    headers = {"Cache-Control": CACHE,
               "Link": f'<{open_data.LICENSE_URL}>; rel="license", '
                       f'<{catalogue_url}>; rel="describedby"',
               "Content-Disposition": f'attachment; filename="{dataset}_{start}_{end}.{fmt}"'}
    if fmt == "csv":
        return Response(open_data.csv_bytes(dataset, items),
                        media_type="text/csv; charset=utf-8", headers=headers)
    if fmt == "geojson":
        body = open_data.geojson(items, await open_data.places(conn))
    else:
        body = {"dataset": dataset, "title": {"ja": d.title[0], "en": d.title[1]},
                "license": open_data.LICENSE_URL,
                "attribution": open_data.attribution(d, catalogue_url),
                "start": start.isoformat(), "end": end.isoformat(), "items": items}
    return Response(orjson.dumps(body), media_type=open_data.FORMATS[fmt], headers=headers)


# -- the showcase -------------------------------------------------------------

class NewApp(Strict):
    name: Annotated[str, Field(min_length=1, max_length=200, pattern=LINE,
                               examples=["収穫カレンダー"])]
    organisation: Annotated[str, Field(min_length=1, max_length=200, pattern=LINE,
                                       examples=["弘前市のシビックテック団体"])]
    url: Annotated[str, Field(max_length=500, pattern=r"^https?://[^\s\x00-\x1f\x7f]+$",
                              examples=["https://harvest.example.jp/"])]
    datasets: Annotated[list[Annotated[str, Field(max_length=64)]],
                        Field(max_length=len(open_data.DATASETS),
                              examples=[["harvest-forecast"]])] = []
    description: Annotated[str, Field(max_length=2000, pattern=r"^[^\x00]*$")] = ""


_APP_EXAMPLE = {"id": 3, "name": "収穫カレンダー", "organisation": "弘前市のシビックテック団体",
                "url": "https://harvest.example.jp/", "datasets": ["harvest-forecast"],
                "description": "", "registered_at": "2026-09-05T10:00:00+09:00"}


@router.get("/showcase", responses={200: {"content": {"application/json": {"example": {
    "items": [_APP_EXAMPLE], "next": None}}}}})
async def showcase(conn: Conn, cursor: Cursor = None, limit: Limit = 100):
    """Apps and services built on the open data, newest first. No account needed."""
    return page(await open_data.showcase(conn, cursor=cursor, limit=limit), limit)


@router.post("/showcase", status_code=201, responses={201: {"content": {"application/json": {
    "example": _APP_EXAMPLE}}}})
async def add_app(body: NewApp, conn: PrimaryConn, user: CurrentUser):
    """Register an app or service that uses the open data (planners and
    admins); it is counted in the indicators by the year it was registered."""
    try:
        return await open_data.add_app(conn, user, body.model_dump())
    except open_data.OpenDataError as exc:
        raise HTTPException(422, str(exc)) from None
