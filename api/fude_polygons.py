"""The Ministry of Agriculture's field polygons (筆ポリゴン) as fields, with the
CSV in which officers assign owner, cultivar and transplanting date.

The Ministry publishes the polygons as open data, a GeoJSON FeatureCollection
per municipality (open.fude.maff.go.jp; described on the Ministry's page
maff.go.jp/j/tokei/porigon/ and in the fiboa data survey for Japan). Each
feature is a Polygon in JGD2011 geographic coordinates (EPSG:6668),
longitude first as GeoJSON orders them, with the properties

- ``polygon_uuid``: the polygon's id (a UUID, 筆ポリゴンID);
- ``land_type``: 100 paddy (田), 200 upland (畑), read from satellite images;
- ``local_government_cd``: the municipality's six-digit code (with check
  digit) where the polygon's centroid lies;
- ``issue_year``, ``edit_year`` (publication and drawing years), ``history``
  (JSON text), ``last_polygon_uuid`` and ``prev_last_polygon_uuid``;
- ``point_lng``, ``point_lat``: the polygon's centroid.

Only paddies that the CSV assigns become fields; the others are counted. The
whole file is refused (nothing is imported) when a row of the CSV or a
polygon it assigns is wrong, and the message names the CSV line or the
polygon's uuid.

Coordinates are reprojected from the file's CRS (its ``crs`` member, JGD2011
when there is none) to the platform's WGS84 lon/lat with pyproj. JGD2011 and
WGS84 (as realised today) agree within a few centimetres in Japan, and PROJ's
JGD2011-to-WGS84 transformation is the null one, so the numbers barely move;
the step is kept so that a file in another geographic CRS (JGD2000, ...)
comes out right. A file whose coordinates are latitude first (an EPSG axis
order some tools write) is recognised: in Japan the two ranges do not overlap.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import re
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache

import orjson
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError
from shapely.geometry import Polygon

from agri.analytics.agronomy import CULTIVARS
from agri.api.field_registry import FIELD_ID_RE, FieldImportError, geometry_columns, parse_features
from agri.api.municipalities import AOMORI, is_valid_code

logger = logging.getLogger(__name__)

PADDY, UPLAND = 100, 200  # land_type: 田, 畑
SOURCE_CRS = "EPSG:6668"  # JGD2011 geographic: the Ministry's files
PLATFORM_CRS = "EPSG:4326"
# Where a polygon of Japan may lie (degrees); anything else is refused.
JAPAN_LON = (122.0, 154.0)
JAPAN_LAT = (20.0, 46.0)
POINT_TOLERANCE_DEG = 0.01  # point_lng/point_lat vs the polygon's centroid (about 1 km)
MAX_FEATURES = 300_000
MAX_VERTICES = 10_000  # per polygon
MAX_ROWS = 100_000  # of the CSV
MAX_NAME = 100
MAX_LISTED = 20  # uuids listed in a report
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
OWNER_RE = re.compile(r"[A-Za-z0-9_.@-]{1,64}")  # the users table's CHECK

REQUIRED_COLUMNS = ("polygon_uuid", "owner", "cultivar", "transplanted_on")
OPTIONAL_COLUMNS = ("field_id", "name")
CSV_HEADER = ",".join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)


@dataclass(frozen=True, slots=True)
class Assignment:
    """One CSV row: who farms a polygon, what and since when."""
    line: int
    polygon_uuid: str
    owner: str
    cultivar: str
    transplanted_on: date
    field_id: str | None
    name: str | None


@dataclass(slots=True)
class ParsedImport:
    """Rows for ``field_registry.import_fields`` and what the file held."""
    rows: list[dict]
    report: dict = field(default_factory=dict)


def _short(value: object) -> str:
    return repr(value)[:70]


def load_json(data: bytes) -> dict:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise FieldImportError(f"the file is not JSON ({str(exc)[:200]}); "
                               f"send a GeoJSON FeatureCollection") from None


def is_fude(data: object) -> bool:
    """The shape of the Ministry's field polygons: a FeatureCollection whose
    first feature has ``polygon_uuid`` and ``land_type``."""
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection":
        return False
    features = data.get("features")
    if not isinstance(features, list) or not features or not isinstance(features[0], dict):
        return False
    props = features[0].get("properties")
    return isinstance(props, dict) and "polygon_uuid" in props and "land_type" in props


def _is_platform(data: object) -> bool:
    """The platform's own GeoJSON: its first feature has ``id`` and ``owner``."""
    try:
        props = data["features"][0]["properties"]
        return "id" in props and "owner" in props and "polygon_uuid" not in props
    except (KeyError, IndexError, TypeError):
        return False


def parse_upload(geojson: bytes, assignments: bytes | None, fmt: str = "auto") -> ParsedImport:
    """Either format, as ``agri fields import`` and the API take them:
    ``fmt`` 'platform' (the platform's own GeoJSON), 'fude' (field polygons
    with ``assignments``, the CSV) or 'auto' (recognised by its shape)."""
    data = load_json(geojson)
    if fmt == "auto":
        fmt = "fude" if is_fude(data) or (assignments is not None
                                          and not _is_platform(data)) else "platform"
    if fmt == "fude":
        if assignments is None:
            raise FieldImportError(f"field polygons (筆ポリゴン) need the CSV that assigns them "
                                   f"(--assign FILE.csv; columns {CSV_HEADER})")
        return parse_fude(data, read_assignments(assignments))
    if fmt != "platform":
        raise FieldImportError("format must be auto, platform or fude")
    if assignments is not None:
        raise FieldImportError("an assignment CSV goes with field polygons (筆ポリゴン) only; "
                               "this file is the platform's GeoJSON (properties id, name, ...)")
    rows = parse_features(data)
    return ParsedImport(rows, {"format": "platform", "features": len(rows)})


# --- the CSV -----------------------------------------------------------------------

def _decode(raw: bytes) -> str:
    """UTF-8 (with or without Excel's BOM), else Shift_JIS as Japanese Excel saves."""
    for encoding in ("utf-8-sig", "cp932"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise FieldImportError("the CSV is neither UTF-8 nor Shift_JIS; save it as CSV UTF-8")


def read_assignments(raw: bytes) -> dict[str, Assignment]:
    """The CSV's rows by polygon uuid; the first bad row stops it all."""
    text = _decode(raw)
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise FieldImportError(f"CSV line {line}: contains a NUL byte; save the file as text")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise FieldImportError(f"the CSV is empty; its header is {CSV_HEADER}") from None
    except csv.Error as exc:
        raise FieldImportError(f"CSV line 1: {exc}") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    unknown = [c for c in header if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    if missing or unknown or len(set(header)) != len(header):
        raise FieldImportError(
            f"CSV line 1: the header must name the columns {CSV_HEADER} (the last two may be "
            f"left out); missing {', '.join(missing) or 'none'}, unknown "
            f"{', '.join(_short(c) for c in unknown[:5]) or 'none'}")
    found: dict[str, Assignment] = {}
    lines_of_ids: dict[str, int] = {}
    try:
        for values in reader:
            line = reader.line_num
            if not any(v.strip() for v in values):
                continue
            if len(found) >= MAX_ROWS:
                raise FieldImportError(f"CSV line {line}: more than {MAX_ROWS} rows; split the "
                                       f"file")
            if len(values) != len(header):
                raise FieldImportError(f"CSV line {line}: {len(values)} values for "
                                       f"{len(header)} columns")
            row = _assignment(line, dict(zip(header, (v.strip() for v in values), strict=True)))
            if row.polygon_uuid in found:
                raise FieldImportError(f"CSV line {line}: polygon {row.polygon_uuid} is "
                                       f"assigned on line {found[row.polygon_uuid].line} "
                                       f"already; one row a polygon")
            if row.field_id is not None:
                if row.field_id in lines_of_ids:
                    raise FieldImportError(f"CSV line {line}: field_id {row.field_id} is on line "
                                           f"{lines_of_ids[row.field_id]} already")
                lines_of_ids[row.field_id] = line
            found[row.polygon_uuid] = row
    except csv.Error as exc:
        raise FieldImportError(f"CSV line {reader.line_num}: {exc}") from None
    if not found:
        raise FieldImportError("the CSV assigns no polygon; add rows under its header")
    return found


def _assignment(line: int, values: dict[str, str]) -> Assignment:
    where = f"CSV line {line}"
    uuid = values["polygon_uuid"].lower()
    if not UUID_RE.fullmatch(uuid):
        raise FieldImportError(f"{where}: polygon_uuid {_short(values['polygon_uuid'])} is not "
                               f"a uuid (as in the file's polygon_uuid)")
    owner = values["owner"]
    if not OWNER_RE.fullmatch(owner):
        raise FieldImportError(f"{where}: owner {_short(owner)} is not a user name (1-64 "
                               f"letters, digits or _ . @ -)")
    cultivar = values["cultivar"]
    if cultivar not in CULTIVARS:
        raise FieldImportError(f"{where}: cultivar {_short(cultivar)} is not known; write one of "
                               f"{', '.join(CULTIVARS)}")
    try:
        planted = date.fromisoformat(values["transplanted_on"])
    except ValueError:
        raise FieldImportError(f"{where}: transplanted_on {_short(values['transplanted_on'])} "
                               f"must be a date as 2026-05-20") from None
    if not 1900 <= planted.year <= 2200:
        raise FieldImportError(f"{where}: transplanted_on {planted} is not a season's date")
    field_id = values.get("field_id") or None
    if field_id is not None and not FIELD_ID_RE.fullmatch(field_id):
        raise FieldImportError(f"{where}: field_id {_short(field_id)} must be 1-64 letters, "
                               f"digits, _ or - (or empty: the polygon's uuid)")
    name = values.get("name") or None
    if name is not None and (len(name) > MAX_NAME or not name.isprintable()):
        raise FieldImportError(f"{where}: name must be at most {MAX_NAME} printable characters")
    return Assignment(line, uuid, owner, cultivar, planted, field_id, name)


# --- the polygons ------------------------------------------------------------------

@lru_cache(maxsize=8)
def _transformer(crs_name: str) -> Transformer:
    return Transformer.from_crs(crs_name, PLATFORM_CRS, always_xy=True)


def source_crs(data: dict) -> str:
    """The file's CRS: its ``crs`` member (the 2008 GeoJSON form, as GDAL
    writes it) when there is one, else JGD2011. Only geographic CRSs."""
    member = data.get("crs")
    if member is None:
        return SOURCE_CRS
    name = member.get("properties", {}).get("name") if isinstance(member, dict) else None
    if not isinstance(name, str) or not 0 < len(name) <= 100 or not name.isprintable():
        raise FieldImportError("the file's crs member names no CRS; remove it (JGD2011 is "
                               "assumed) or write {\"type\": \"name\", \"properties\": "
                               "{\"name\": \"urn:ogc:def:crs:EPSG::6668\"}}")
    try:
        crs = CRS.from_user_input(name)
    except CRSError:
        raise FieldImportError(f"the file's crs {_short(name)} is not known; reproject the "
                               f"file to JGD2011 (EPSG:6668)") from None
    if not crs.is_geographic:
        raise FieldImportError(f"the file's crs {_short(name)} is projected; reproject the file "
                               f"to JGD2011 longitude/latitude (EPSG:6668)")
    return crs.to_string()


def _year(where: str, props: dict, key: str) -> None:
    value = props.get(key)
    if value is None:
        return
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1990 <= value <= 2200:
        raise FieldImportError(f"{where}: {key} {_short(value)} must be a year")


def _land_type(where: str, props: dict) -> int:
    value = props.get("land_type")
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or value not in (PADDY, UPLAND):
        raise FieldImportError(f"{where}: land_type {_short(value)} must be {PADDY} (田, paddy) "
                               f"or {UPLAND} (畑, upland)")
    return value


def _municipality(where: str, props: dict):
    code = props.get("local_government_cd")
    if isinstance(code, int) and not isinstance(code, bool):
        code = f"{code:06d}"  # a leading zero lost by a spreadsheet
    if not isinstance(code, str) or not is_valid_code(code):
        raise FieldImportError(f"{where}: local_government_cd {_short(code)} is not a local "
                               f"government code (six digits with its check digit)")
    if code not in AOMORI:
        raise FieldImportError(f"{where}: local_government_cd {code} is not a municipality of "
                               f"Aomori Prefecture")
    return AOMORI[code]


def _ring(where: str, ring: object) -> list[tuple[float, float]]:
    if not isinstance(ring, list) or len(ring) < 4:
        raise FieldImportError(f"{where}: a ring must be a list of at least 4 positions")
    points = []
    for position in ring:
        if (not isinstance(position, list) or len(position) not in (2, 3)
                or not all(isinstance(c, int | float) and not isinstance(c, bool)
                           and math.isfinite(c) for c in position)):
            raise FieldImportError(f"{where}: a position must be [longitude, latitude] numbers, "
                                   f"not {_short(position)}")
        points.append((float(position[0]), float(position[1])))
    return points


def _in_japan(points: list[tuple[float, float]]) -> bool:
    return all(JAPAN_LON[0] <= x <= JAPAN_LON[1] and JAPAN_LAT[0] <= y <= JAPAN_LAT[1]
               for x, y in points)


def _polygon(where: str, geometry: object, props: dict, crs_name: str) -> tuple[Polygon, bool]:
    """The polygon in WGS84 lon/lat, and whether the file had latitude first."""
    if not isinstance(geometry, dict):
        raise FieldImportError(f"{where}: the feature has no geometry")
    kind, coords = geometry.get("type"), geometry.get("coordinates")
    if kind == "MultiPolygon" and isinstance(coords, list) and len(coords) == 1:
        kind, coords = "Polygon", coords[0]
    if kind != "Polygon" or not isinstance(coords, list) or not coords:
        raise FieldImportError(f"{where}: geometry must be a Polygon (one part), not "
                               f"{_short(kind)}")
    if sum(len(r) for r in coords if isinstance(r, list)) > MAX_VERTICES:
        raise FieldImportError(f"{where}: more than {MAX_VERTICES} vertices; is it one paddy?")
    rings = [_ring(where, r) for r in coords]
    swapped = False
    if not _in_japan([p for r in rings for p in r]):
        flipped = [[(y, x) for x, y in r] for r in rings]
        if not _in_japan([p for r in flipped for p in r]):
            raise FieldImportError(f"{where}: coordinates lie outside Japan (longitude "
                                   f"{JAPAN_LON[0]:.0f}-{JAPAN_LON[1]:.0f}, latitude "
                                   f"{JAPAN_LAT[0]:.0f}-{JAPAN_LAT[1]:.0f}); the file must be "
                                   f"in degrees")
        rings, swapped = flipped, True
    polygon = Polygon(rings[0], rings[1:])
    if not polygon.is_valid or polygon.area <= 0:
        raise FieldImportError(f"{where}: polygon is not valid (self-intersecting or empty)")
    _check_point(where, props, polygon)
    transformer = _transformer(crs_name)
    return shapely.transform(polygon, transformer.transform, interleaved=False), swapped


def _check_point(where: str, props: dict, polygon: Polygon) -> None:
    """``point_lng``/``point_lat``, when given, lie at the polygon's centroid."""
    lng, lat = props.get("point_lng"), props.get("point_lat")
    if lng is None and lat is None:
        return
    try:
        lng, lat = float(lng), float(lat)
    except (TypeError, ValueError):
        raise FieldImportError(f"{where}: point_lng and point_lat must be numbers") from None
    centroid = polygon.centroid
    if not (abs(centroid.x - lng) <= POINT_TOLERANCE_DEG
            and abs(centroid.y - lat) <= POINT_TOLERANCE_DEG):
        raise FieldImportError(f"{where}: point_lng/point_lat ({lng}, {lat}) are not at the "
                               f"polygon's centroid ({centroid.x:.6f}, {centroid.y:.6f}); is "
                               f"the geometry in another CRS?")


def parse_fude(data: dict, assigned: dict[str, Assignment]) -> ParsedImport:
    """Rows for the assigned paddies of a field-polygon file, and a report of
    what the file held: polygons, paddies, paddies not assigned, polygons the
    CSV assigns that are not paddies (not imported)."""
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection":
        raise FieldImportError("expected a GeoJSON FeatureCollection")
    features = data.get("features")
    if not isinstance(features, list) or not features:
        raise FieldImportError("the FeatureCollection has no features")
    if len(features) > MAX_FEATURES:
        raise FieldImportError(f"more than {MAX_FEATURES} polygons; split the file")
    crs_name = source_crs(data)
    rows, seen, not_paddy = [], set(), []
    paddies = swapped = 0
    for n, feature in enumerate(features):
        props = feature.get("properties") if isinstance(feature, dict) else None
        if not isinstance(props, dict):
            raise FieldImportError(f"feature {n}: has no properties")
        raw_uuid = props.get("polygon_uuid")
        uuid = raw_uuid.lower() if isinstance(raw_uuid, str) else None
        if uuid is None or not UUID_RE.fullmatch(uuid):
            raise FieldImportError(f"feature {n}: polygon_uuid {_short(raw_uuid)} is not a uuid")
        where = f"polygon {uuid}"
        if uuid in seen:
            raise FieldImportError(f"{where}: appears twice in the file")
        seen.add(uuid)
        land_type = _land_type(where, props)
        paddies += land_type == PADDY
        row = assigned.get(uuid)
        if row is None:
            continue
        if land_type != PADDY:
            not_paddy.append(uuid)
            continue
        where = f"polygon {uuid} (CSV line {row.line})"
        _year(where, props, "issue_year")
        _year(where, props, "edit_year")
        municipality = _municipality(where, props)
        polygon, flipped = _polygon(where, feature.get("geometry"), props, crs_name)
        swapped += flipped
        rows.append({
            "id": row.field_id, "name": row.name or f"{municipality.name_ja} {uuid[:8]}",
            "owner": row.owner, "cultivar": row.cultivar, "transplanted_on": row.transplanted_on,
            "municipality": municipality.name, "polygon_uuid": uuid, "where": where,
            **geometry_columns(polygon),
        })
    absent = [a for u, a in assigned.items() if u not in seen]
    if absent:
        first = min(absent, key=lambda a: a.line)
        raise FieldImportError(f"CSV line {first.line}: polygon {first.polygon_uuid} is not in "
                               f"the file ({len(absent)} rows name polygons it lacks)")
    if swapped:
        logger.info("%d polygons had latitude first; read as longitude, latitude", swapped)
    report = {
        "format": "fude", "crs": crs_name, "polygons": len(features), "paddies": paddies,
        "assigned": len(assigned), "paddies_not_assigned": paddies - len(rows),
        "assigned_not_paddy": len(not_paddy),
        "assigned_not_paddy_uuids": not_paddy[:MAX_LISTED],
        "latitude_first": swapped,
    }
    if not rows:
        raise FieldImportError(f"the CSV assigns no paddy of the file (land_type {PADDY}); "
                               f"{len(not_paddy)} assigned polygons are not paddies")
    return ParsedImport(rows, report)
