"""The plan office's indicators (JSON and a CSV for Excel) and the
initiatives register that officers and the plan office keep."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from agri.api.deps import Conn, CurrentUser, PrimaryConn
from agri.api.pagination import MAX_CURSOR, Cursor, Limit, page
from agri.api.queries import kpis

router = APIRouter(prefix="/api/v1", tags=["kpis"])

# One line of text: no control characters (a NUL cannot be stored at all).
LINE = r"^[^\x00-\x1f\x7f]+$"
TEXT = r"^[^\x00]*$"  # several lines

Kind = Literal[tuple(kpis.INITIATIVE_KINDS)]  # type: ignore[valid-type]
Status = Literal[kpis.INITIATIVE_STATUSES]  # type: ignore[valid-type]
Municipality = Annotated[str, Field(min_length=1, max_length=100, pattern=LINE,
                                    examples=["Hirosaki"],
                                    description="the platform's name (Hirosaki) or the "
                                                "Japanese one (弘前市)")]
YearQ = Annotated[int | None, Query(ge=1900, le=2200, description="only this (fiscal) year")]
MunicipalityQ = Annotated[str | None, Query(min_length=1, max_length=100, pattern=LINE,
                                            description="only this municipality")]
BasisQ = Annotated[kpis.YearBasis, Query(
    description="fiscal: 年度, April to March (as the prefecture's plans count); "
                "calendar: January to December")]

_KPI_EXAMPLE = {
    "year_basis": "fiscal", "year_label": "年度",
    "rows": [
        {"year": 2026, "municipality": "Hirosaki", "municipality_ja": "弘前市",
         "indicator": "drone_flights",
         "indicator_ja": "ドローン飛行数", "source": "observed", "kind": "spray",
         "kind_ja": "散布", "count": 12, "sprayed_area_ha": 3.84},
        {"year": 2026, "municipality": "Hirosaki", "municipality_ja": "弘前市",
         "indicator": "agritech_initiatives",
         "indicator_ja": "「農業×Tech：アグリテック」の取組数", "source": "register",
         "kind": "drone", "kind_ja": "ドローン", "count": 2, "sprayed_area_ha": None}],
    "totals": [{"year": 2026, "indicator": "drone_flights", "indicator_ja": "ドローン飛行数",
                "source": "observed", "count": 12, "sprayed_area_ha": 3.84}],
    "side_by_side": [{"year": 2026, "municipality": "Hirosaki", "municipality_ja": "弘前市",
                      "register": {"agritech_initiatives": 2},
                      "observed": {"iot_prototypes": 1, "iot_prototypes_passed": 1,
                                   "fields_with_sensors": 40, "drone_flights": 12,
                                   "sprayed_area_ha": 3.84}}]}


@router.get("/kpis", responses={200: {"content": {"application/json": {
    "example": _KPI_EXAMPLE}}}, 403: {"description": "farmers and developers"}})
async def kpi_counts(conn: Conn, user: CurrentUser, year: YearQ = None,
                     municipality: MunicipalityQ = None, year_basis: BasisQ = "fiscal"):
    """Counts by year, municipality and kind of what the platform observes
    (IoT prototypes, fields with sensors, drone flights and sprayed area,
    open datasets) beside the registers (agri-tech initiatives, apps on the
    open data). Planners and admins: every municipality; officers: their
    region and the prefecture-wide open-data counts."""
    return await kpis.counts(conn, user, year_basis, year, municipality)


_CSV_EXAMPLE = ("\ufeff年度,市町村,指標,種別,出所,件数,散布面積(ha)\r\n"
                "2026,弘前市,ドローン飛行数,散布,プラットフォーム観測,12,3.84\r\n")


@router.get("/kpis.csv", response_class=Response, responses={
    200: {"content": {"text/csv": {"example": _CSV_EXAMPLE}},
          "description": "UTF-8 with a BOM and CRLF line ends, as Japanese Excel opens it"}})
async def kpi_csv(conn: Conn, user: CurrentUser, year: YearQ = None,
                  municipality: MunicipalityQ = None, year_basis: BasisQ = "fiscal"):
    """The rows of /kpis as a CSV for Excel (UTF-8 with BOM, CRLF, Japanese
    headers; the first column is 年度 for fiscal years, 年 for calendar)."""
    body = kpis.csv_bytes(await kpis.counts(conn, user, year_basis, year, municipality))
    name = f"kpis-{year_basis}{'-' + str(year) if year else ''}.csv"
    return Response(body, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


# -- the register ------------------------------------------------------------

class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewInitiative(Strict):
    """An initiative; who recorded it and when are the caller and now."""
    name: Annotated[str, Field(min_length=1, max_length=200, pattern=LINE,
                               examples=["ドローンによる農薬散布の実証"])]
    kind: Annotated[Kind, Field(examples=["drone"])]
    municipality: Municipality
    started_on: Annotated[date, Field(ge=date(1900, 1, 1), le=date(2200, 12, 31),
                                      examples=["2026-06-01"])]
    status: Annotated[Status, Field(examples=["active"])]
    evidence: Annotated[str, Field(max_length=2000, pattern=TEXT,
                                   examples=["https://www.example.jp/news/drone-2026"])] = ""


class InitiativeChange(Strict):
    name: Annotated[str | None, Field(min_length=1, max_length=200, pattern=LINE)] = None
    kind: Kind | None = None
    municipality: Annotated[str | None, Field(min_length=1, max_length=100,
                                              pattern=LINE)] = None
    started_on: Annotated[date | None, Field(ge=date(1900, 1, 1),
                                             le=date(2200, 12, 31))] = None
    status: Status | None = None
    evidence: Annotated[str | None, Field(max_length=2000, pattern=TEXT)] = None


InitiativeId = Annotated[int, Path(ge=1, le=MAX_CURSOR)]

_INITIATIVE_EXAMPLE = {
    "id": 7, "name": "ドローンによる農薬散布の実証", "kind": "drone", "kind_ja": "ドローン",
    "municipality": "Hirosaki", "municipality_ja": "弘前市", "started_on": "2026-06-01",
    "status": "active",
    "evidence": "https://www.example.jp/news/drone-2026", "recorded_by": "sato",
    "recorded_at": "2026-06-02T09:12:00+09:00", "updated_by": "sato",
    "updated_at": "2026-06-02T09:12:00+09:00"}


@router.get("/initiatives", responses={200: {"content": {"application/json": {"example": {
    "items": [_INITIATIVE_EXAMPLE], "next": None}}}}})
async def list_initiatives(conn: Conn, user: CurrentUser, cursor: Cursor = None,
                           limit: Limit = 100, municipality: MunicipalityQ = None,
                           kind: Kind | None = None, status: Status | None = None):
    """The register, newest first: planners and admins all of it, officers
    their region's."""
    items = await kpis.initiatives(conn, user, cursor=cursor, limit=limit,
                                   municipality=municipality, kind=kind, status=status)
    return page(items, limit)


@router.get("/initiatives/{initiative_id}", responses={200: {"content": {"application/json": {
    "example": _INITIATIVE_EXAMPLE}}}})
async def get_initiative(initiative_id: InitiativeId, conn: Conn, user: CurrentUser):
    found = await kpis.initiative(conn, user, initiative_id)
    if found is None:
        raise HTTPException(404, f"no initiative {initiative_id}")
    return found


@router.post("/initiatives", status_code=201, responses={201: {"content": {
    "application/json": {"example": _INITIATIVE_EXAMPLE}}}})
async def add_initiative(body: NewInitiative, conn: PrimaryConn, user: CurrentUser):
    """Record an initiative (planners anywhere, officers in their region)."""
    return await kpis.add_initiative(conn, user, body.model_dump())


@router.patch("/initiatives/{initiative_id}", responses={200: {"content": {
    "application/json": {"example": _INITIATIVE_EXAMPLE}}}})
async def change_initiative(initiative_id: InitiativeId, body: InitiativeChange,
                            conn: PrimaryConn, user: CurrentUser):
    """Change what was recorded (a field left out stays as it was)."""
    return await kpis.change_initiative(conn, user, initiative_id,
                                        body.model_dump(exclude_unset=True))
