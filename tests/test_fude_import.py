"""The Ministry of Agriculture's field polygons (筆ポリゴン) with an assignment
CSV, through `agri fields import` and POST /api/v1/fields/import: paddies the
CSV assigns become fields keeping their polygon uuid, the rest is counted,
a bad row or polygon imports nothing and is named, officers import only in
their region. The test files (tests/data/fude/) have the Ministry's shape:
a few polygons of Hirosaki (022021) and of Goshogawara (022055)."""

from __future__ import annotations

import copy
from pathlib import Path

import httpx
import orjson
import psycopg
import pytest
from pyproj import Geod
from shapely.geometry import shape

from agri.api.accounts import add_user
from agri.api.field_registry import FieldImportError, parse_features
from agri.api.fude_polygons import parse_upload
from agri.api.municipalities import AOMORI, check_digit, is_valid_code

DATA = Path(__file__).parent / "data" / "fude"
HIROSAKI = DATA / "hirosaki_2024.geojson"
GOSHOGAWARA = DATA / "goshogawara_2024.geojson"
PADDY_1, PADDY_2, PADDY_3, UPLAND_1, UPLAND_2 = (
    f["properties"]["polygon_uuid"] for f in orjson.loads(HIROSAKI.read_bytes())["features"])
GOSHO_1, GOSHO_2 = (
    f["properties"]["polygon_uuid"] for f in orjson.loads(GOSHOGAWARA.read_bytes())["features"])


NEW_POLYGON = "0c6f2d4e-8a1b-4c3d-9e5f-7a8b9c0d1e2f"


def _read(name: str) -> bytes:
    return (DATA / name).read_bytes()


def _parse(geojson: bytes | dict, csv: bytes | str | None = None, fmt: str = "auto"):
    if isinstance(geojson, dict):
        geojson = orjson.dumps(geojson)
    if isinstance(csv, str):
        csv = csv.encode()
    return parse_upload(geojson, csv, fmt)


def _refused(geojson, csv=None, fmt="auto") -> str:
    with pytest.raises(FieldImportError) as caught:
        _parse(geojson, csv, fmt)
    return str(caught.value)


def _hirosaki() -> dict:
    return orjson.loads(HIROSAKI.read_bytes())


CSV_ONE = ("polygon_uuid,owner,cultivar,transplanted_on\n"
           f"{PADDY_1},fude-farmer-a,seiten-no-hekireki,2026-05-18\n")


# --- the municipal codes ---------------------------------------------------------

def test_aomori_codes_carry_their_check_digit():
    assert len(AOMORI) == 40  # 10 cities, 22 towns, 8 villages
    assert all(is_valid_code(code) for code in AOMORI)
    # Published codes: Aomori 022012, Hirosaki 022021, Hachinohe 022039 (check digit 1
    # comes from remainder 0, 0 from remainder 1: Mutsu 022080).
    assert [AOMORI[c].name for c in ("022012", "022021", "022039", "022080")] == [
        "Aomori", "Hirosaki", "Hachinohe", "Mutsu"]
    assert check_digit("02205") == "5" and not is_valid_code("022022")
    assert not is_valid_code("02202\x00") and not is_valid_code("０２２０２１")


# --- parsing, no database ---------------------------------------------------------

def test_assigned_paddies_become_rows_and_the_rest_is_counted():
    parsed = _parse(HIROSAKI.read_bytes(), _read("hirosaki_assign.csv"))
    assert parsed.report == {
        "format": "fude", "crs": "EPSG:6668", "polygons": 5, "paddies": 3, "assigned": 3,
        "paddies_not_assigned": 1, "assigned_not_paddy": 1,
        "assigned_not_paddy_uuids": [UPLAND_1], "latitude_first": 0}
    rows = {r["polygon_uuid"]: r for r in parsed.rows}
    assert set(rows) == {PADDY_1, PADDY_2}
    one, two = rows[PADDY_1], rows[PADDY_2]
    assert (one["id"], one["name"], one["owner"], one["cultivar"], str(one["transplanted_on"]),
            one["municipality"]) == ("fude-hirosaki-1", "弘前 北 1", "fude-farmer-a",
                                     "seiten-no-hekireki", "2026-05-18", "Hirosaki")
    assert two["id"] is None and two["name"] == f"弘前市 {PADDY_2[:8]}"


def test_area_is_computed_as_for_the_platforms_own_geojson():
    feature = _hirosaki()["features"][0]
    row = next(r for r in _parse(HIROSAKI.read_bytes(), CSV_ONE).rows)
    own = parse_features({"type": "FeatureCollection", "features": [{
        "type": "Feature", "geometry": feature["geometry"],
        "properties": {"id": "x", "name": "x", "owner": "x", "cultivar": "x",
                       "transplanted_on": "2026-05-18", "municipality": "Hirosaki"}}]})[0]
    assert row["area_m2"] == pytest.approx(own["area_m2"], rel=1e-9)
    # and it is the paddy's area on the ellipsoid (about 30 m x 100 m)
    geodesic = abs(Geod(ellps="GRS80").geometry_area_perimeter(
        shape(feature["geometry"]))[0])
    assert row["area_m2"] == pytest.approx(geodesic, rel=2e-3)
    assert 2900 < row["area_m2"] < 3100
    stored = orjson.loads(row["geometry"])
    assert stored["type"] == "Polygon"
    assert stored["coordinates"][0][0] == pytest.approx(
        feature["geometry"]["coordinates"][0][0], abs=1e-7)  # JGD2011 = WGS84 within cm


def test_latitude_first_with_a_crs_member_reads_the_same():
    data = _hirosaki()
    data["crs"] = {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::6668"}}
    for f in data["features"]:
        f["geometry"]["coordinates"] = [[[y, x] for x, y in ring]
                                        for ring in f["geometry"]["coordinates"]]
    flipped = _parse(data, CSV_ONE)
    plain = _parse(HIROSAKI.read_bytes(), CSV_ONE)
    assert flipped.report["latitude_first"] == 1 and flipped.report["crs"] == "EPSG:6668"
    assert flipped.rows[0]["area_m2"] == pytest.approx(plain.rows[0]["area_m2"], rel=1e-9)
    assert flipped.rows[0]["centroid_lon"] == pytest.approx(plain.rows[0]["centroid_lon"])


def test_coordinates_are_reprojected_from_the_files_crs():
    # The same numbers read in the old Tokyo datum lie some hundreds of metres away
    # in WGS84: pyproj does transform.
    data = _hirosaki()
    data["crs"] = {"type": "name", "properties": {"name": "EPSG:4301"}}
    tokyo = _parse(data, CSV_ONE).rows[0]
    plain = _parse(HIROSAKI.read_bytes(), CSV_ONE).rows[0]
    shift_m = Geod(ellps="WGS84").inv(plain["centroid_lon"], plain["centroid_lat"],
                                      tokyo["centroid_lon"], tokyo["centroid_lat"])[2]
    assert 300 < shift_m < 600
    data["crs"] = {"type": "name", "properties": {"name": "EPSG:6678"}}
    assert "projected" in _refused(data, CSV_ONE)
    data["crs"] = {"type": "name", "properties": {"name": "no such crs\x00"}}
    assert "crs" in _refused(data, CSV_ONE)


def test_a_bad_csv_row_is_named_by_its_line():
    assert _refused(HIROSAKI.read_bytes(), _read("hirosaki_bad_row.csv")) == (
        "CSV line 3: transplanted_on '2026-05-32' must be a date as 2026-05-20")
    head = "polygon_uuid,owner,cultivar,transplanted_on\n"
    cases = {
        f"{PADDY_1},fude-farmer-a,koshihikari-x,2026-05-18": "cultivar 'koshihikari-x'",
        f"{PADDY_1},田中,seiten-no-hekireki,2026-05-18": "owner '田中' is not a user name",
        "not-a-uuid,fude-farmer-a,seiten-no-hekireki,2026-05-18": "is not a uuid",
        f"{PADDY_1},fude-farmer-a,seiten-no-hekireki": "3 values for 4 columns",
    }
    for row, message in cases.items():
        error = _refused(HIROSAKI.read_bytes(), head + CSV_ONE.splitlines()[1] + "\n" + row)
        assert error.startswith("CSV line 3:") and message in error, error
    twice = _refused(HIROSAKI.read_bytes(), CSV_ONE + CSV_ONE.splitlines()[1] + "\n")
    assert twice.startswith("CSV line 3:") and "line 2 already" in twice
    typo = _refused(HIROSAKI.read_bytes(), CSV_ONE.replace("cultivar", "cultiver", 1))
    assert typo.startswith("CSV line 1:") and "'cultiver'" in typo


def test_hostile_files_are_refused_by_name():
    assign = _read("hirosaki_assign.csv")
    assert _refused(_read("hirosaki_2024.geojson"), _read("hirosaki_unknown_uuid.csv")) == (
        f"CSV line 3: polygon {GOSHO_1} is not in the file (1 rows name polygons it lacks)")
    assert _refused(_read("hirosaki_2024.geojson"), _read("hirosaki_nul.csv")) == (
        "CSV line 3: contains a NUL byte; save the file as text")
    huge = _refused(_read("hostile_huge_coordinates.geojson"), assign)
    assert huge.startswith(f"polygon {PADDY_1} (CSV line 2): coordinates lie outside Japan")
    types = _refused(_read("hostile_wrong_types.geojson"), assign)
    assert types == (f"polygon {PADDY_2}: land_type 'paddy' must be 100 (田, paddy) or 200 "
                     f"(畑, upland)")
    cases = [
        (lambda f: f["properties"].update(polygon_uuid=PADDY_1[:-1] + "\x00"), "feature 0:"),
        (lambda f: f["properties"].update(local_government_cd="011011"), "not a municipality "
                                                                          "of Aomori"),
        (lambda f: f["properties"].update(local_government_cd="022022"), "check digit"),
        (lambda f: f["properties"].update(local_government_cd=["022021"]), "check digit"),
        (lambda f: f["properties"].update(issue_year="2024年"), "issue_year"),
        (lambda f: f["properties"].update(point_lng=140.0), "not at the polygon's centroid"),
        (lambda f: f["properties"].update(point_lat="north"), "must be numbers"),
        (lambda f: f["geometry"].update(type="Point"), "must be a Polygon"),
        (lambda f: f["geometry"]["coordinates"][0].__setitem__(1, ["140.5", 40.6]),
         "must be [longitude, latitude] numbers"),
        (lambda f: f["geometry"]["coordinates"][0].__setitem__(1, [True, 40.6]),
         "must be [longitude, latitude] numbers"),
        (lambda f: f["geometry"]["coordinates"][0].insert(1, [140.6, 40.7]), "not valid"),
        (lambda f: f["geometry"].update(coordinates=[[[140.5, 40.6]] * 20_000]), "vertices"),
        (lambda f: f.update(properties=None), "has no properties"),
    ]
    for change, message in cases:
        data = _hirosaki()
        change(data["features"][0])
        error = _refused(data, CSV_ONE)
        assert message in error and len(error) < 400, (message, error)
    assert "not JSON" in _refused(b"\x00\xff{", CSV_ONE)
    assert "not JSON" in _refused(b'{"type": "FeatureCollection", "features": [1e400]}')
    twice = _hirosaki()
    twice["features"].append(copy.deepcopy(twice["features"][0]))
    assert "appears twice" in _refused(twice, CSV_ONE)


def test_formats_are_recognised_and_kept_apart():
    assert "need the CSV" in _refused(HIROSAKI.read_bytes())
    assert "missing properties" in _refused(HIROSAKI.read_bytes(), None, "platform")
    own = {"type": "FeatureCollection", "features": [{
        "type": "Feature", "geometry": _hirosaki()["features"][0]["geometry"],
        "properties": {"id": "own-1", "name": "x", "owner": "x", "cultivar": "x",
                       "transplanted_on": "2026-05-18", "municipality": "Hirosaki"}}]}
    assert _parse(own).report == {"format": "platform", "features": 1}
    assert "field polygons (筆ポリゴン) only" in _refused(own, CSV_ONE)
    own["features"][0]["properties"]["name"] = "bad\x00"
    assert "NUL" in _refused(own)


def test_excel_csv_in_shift_jis_or_with_bom_is_read():
    named = ("polygon_uuid,owner,cultivar,transplanted_on,name\n"
             f"{PADDY_1},fude-farmer-a,seiten-no-hekireki,2026-05-18,弘前の田\n")
    for raw in (named.encode("cp932"), b"\xef\xbb\xbf" + named.encode()):
        assert _parse(HIROSAKI.read_bytes(), raw).rows[0]["name"] == "弘前の田"


# --- through the CLI and the API, counted in the database ------------------------------

@pytest.fixture(scope="module")
def people(platform):
    with psycopg.connect(platform.db_url) as conn:
        return {name: add_user(conn, name=name, role=role, regions=regions).token
                for name, role, regions in [
                    ("fude-officer-h", "officer", ["Hirosaki"]),
                    ("fude-officer-g", "officer", ["Goshogawara"]),
                    ("fude-officer-none", "officer", []),
                    ("fude-planner", "planner", []), ("fude-farmer-x", "farmer", [])]}


@pytest.fixture(scope="module")
def hirosaki(platform):
    """The Hirosaki file imported with `agri fields import` (owners created)."""
    done = platform.cli("fields", "import", str(HIROSAKI), "--assign",
                        str(DATA / "hirosaki_assign.csv"), "--create-owners")
    return done.stdout


def _fields(platform, uuids) -> list[tuple]:
    return platform.sql(
        "SELECT f.id, f.polygon_uuid::text, f.owner, f.municipality, f.cultivar, "
        "f.transplanted_on::text, round(f.area_m2), "
        "(SELECT count(*) FROM field_seasons s WHERE s.field_id = f.id) "
        "FROM fields f WHERE f.polygon_uuid = ANY(%s::uuid[]) ORDER BY f.id", (list(uuids),))


def test_cli_imports_the_assigned_paddies_with_their_uuid(platform, hirosaki):
    assert "imported 2 fields (season 2026)" in hirosaki
    assert ("field polygons: 5 in the file, 3 paddies; not imported: 1 paddies the CSV does "
            "not assign, 1 assigned polygons that are not paddies") in hirosaki
    assert "created farmer fude-farmer-a" in hirosaki
    stored = _fields(platform, [PADDY_1, PADDY_2, PADDY_3, UPLAND_1, UPLAND_2])
    assert sorted(row[:6] + row[7:] for row in stored) == sorted([
        ("fude-hirosaki-1", PADDY_1, "fude-farmer-a", "Hirosaki", "seiten-no-hekireki",
         "2026-05-18", 1),
        (PADDY_2, PADDY_2, "fude-farmer-a", "Hirosaki", "masshigura", "2026-05-20", 1)])
    assert all(2900 < row[6] < 3100 for row in stored)
    # fude-farmer-b only farms the upland, which is not imported: not created either
    assert "fude-farmer-b" not in hirosaki
    # The next year's CSV finds the same fields by their polygons.
    again = platform.cli("fields", "import", str(HIROSAKI), "--assign",
                         str(DATA / "hirosaki_assign.csv"), "--create-owners")
    assert "imported 2 fields" in again.stdout
    assert sorted(row[0] for row in _fields(platform, [PADDY_1, PADDY_2])) == sorted([
        "fude-hirosaki-1", PADDY_2])


def test_cli_bad_row_imports_nothing(platform, tmp_path):
    csv = tmp_path / "assign.csv"
    csv.write_text("polygon_uuid,owner,cultivar,transplanted_on\n"
                   f"{PADDY_3},fude-farmer-a,seiten-no-hekireki,2026-05-18\n"
                   f"{GOSHO_1},fude-farmer-a,seiten-no-hekireki,2026-05-18\n")
    refused = platform.cli("fields", "import", str(HIROSAKI), "--assign", str(csv),
                           "--create-owners", check=False)
    assert refused.returncode == 2
    assert f"CSV line 3: polygon {GOSHO_1} is not in the file" in refused.stderr
    refused = platform.cli("fields", "import", str(HIROSAKI), "--assign",
                           str(DATA / "hirosaki_bad_row.csv"), check=False)
    assert refused.returncode == 2 and "CSV line 3: transplanted_on" in refused.stderr
    assert _fields(platform, [PADDY_3]) == []


def _post(api, token, geojson: bytes, csv: bytes | None = None, **form):
    files = {"file": ("polygons.geojson", geojson, "application/geo+json")}
    if csv is not None:
        files["assign"] = ("assign.csv", csv, "text/csv")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(api + "/api/v1/fields/import", files=files, data=form, headers=headers,
                      timeout=30)


def test_api_officer_imports_polygons_of_their_region(api, platform, people, hirosaki):
    g_csv = _read("goshogawara_assign.csv")
    # another region's officer, an officer without region, a planner, a farmer, nobody
    for who in ("fude-officer-h", "fude-officer-none"):
        r = _post(api, people[who], GOSHOGAWARA.read_bytes(), g_csv)
        assert r.status_code == 403, r.text
        assert f"polygon {GOSHO_1} (CSV line 2) lies in Goshogawara" in r.json()["detail"]
    for who in ("fude-planner", "fude-farmer-x"):
        r = _post(api, people[who], GOSHOGAWARA.read_bytes(), g_csv)
        assert r.status_code == 403 and "admin, officer" in r.json()["detail"]
    assert _post(api, None, GOSHOGAWARA.read_bytes(), g_csv).status_code == 401
    assert _fields(platform, [GOSHO_1, GOSHO_2]) == []
    r = _post(api, people["fude-officer-g"], GOSHOGAWARA.read_bytes(), g_csv)
    assert r.status_code == 200, r.text
    assert r.json() == {"imported": 2, "format": "fude", "crs": "EPSG:6668", "polygons": 2,
                        "paddies": 2, "assigned": 2, "paddies_not_assigned": 0,
                        "assigned_not_paddy": 0, "assigned_not_paddy_uuids": [],
                        "latitude_first": 0}
    stored = _fields(platform, [GOSHO_1, GOSHO_2])
    assert sorted(row[0] for row in stored) == sorted([GOSHO_1, GOSHO_2])
    assert {row[3] for row in stored} == {"Goshogawara"}
    # the field detail names the polygon it came from
    detail = httpx.get(f"{api}/api/v1/fields/{stored[0][0]}", timeout=30,
                       headers={"Authorization": f"Bearer {people['fude-officer-g']}"})
    assert detail.status_code == 200, detail.text
    assert detail.json()["polygon_uuid"] == stored[0][1]


def test_api_officer_cannot_take_another_regions_field(api, platform, people, hirosaki):
    # A Goshogawara row naming the Hirosaki field's id would move it there: refused.
    data = orjson.loads(GOSHOGAWARA.read_bytes())
    data["features"][0]["properties"]["polygon_uuid"] = NEW_POLYGON
    csv = ("polygon_uuid,owner,cultivar,transplanted_on,field_id\n"
           f"{NEW_POLYGON},fude-farmer-a,seiten-no-hekireki,2026-05-19,fude-hirosaki-1\n")
    r = _post(api, people["fude-officer-g"], orjson.dumps(data), csv.encode())
    assert r.status_code == 409, r.text
    assert "fude-hirosaki-1 belongs to a field you may not change" in r.json()["detail"]
    assert _fields(platform, [NEW_POLYGON]) == []
    assert _fields(platform, [PADDY_1])[0][:4] == (
        "fude-hirosaki-1", PADDY_1, "fude-farmer-a", "Hirosaki")
    # ... and the Hirosaki polygon held by that field cannot be renamed by its officer either
    csv = ("polygon_uuid,owner,cultivar,transplanted_on,field_id\n"
           f"{PADDY_1},fude-farmer-a,seiten-no-hekireki,2026-05-19,fude-other-id\n")
    r = _post(api, people["fude-officer-h"], HIROSAKI.read_bytes(), csv.encode())
    assert r.status_code == 422 and "is field fude-hirosaki-1 already" in r.json()["detail"]


def test_api_hostile_input_is_a_clear_422_and_stores_nothing(api, platform, people, hirosaki):
    token = people["fude-officer-h"]
    before = platform.sql("SELECT count(*), max(updated_at) FROM fields")
    cases = [
        (_read("hostile_huge_coordinates.geojson"), _read("hirosaki_assign.csv"),
         "coordinates lie outside Japan"),
        (_read("hostile_wrong_types.geojson"), _read("hirosaki_assign.csv"), "land_type"),
        (HIROSAKI.read_bytes(), _read("hirosaki_nul.csv"), "NUL"),
        (HIROSAKI.read_bytes(), _read("hirosaki_unknown_uuid.csv"), "is not in the file"),
        (HIROSAKI.read_bytes(), _read("hirosaki_bad_row.csv"), "CSV line 3"),
        (HIROSAKI.read_bytes(), None, "need the CSV"),
        (b"\x00" * 100, None, "not JSON"),
        (HIROSAKI.read_bytes(), b"\xff\xfe\x00\x00garbage", "CSV"),
        (HIROSAKI.read_bytes(), CSV_ONE.replace("fude-farmer-a", "fude-nobody").encode(),
         "owners are not users: fude-nobody"),
    ]
    for geojson, csv, message in cases:
        r = _post(api, token, geojson, csv)
        assert r.status_code == 422 and message in r.json()["detail"], (message, r.text)
    r = _post(api, token, HIROSAKI.read_bytes(), _read("hirosaki_assign.csv"), format="shp")
    assert r.status_code == 422
    assert platform.sql("SELECT count(*), max(updated_at) FROM fields") == before


def test_api_takes_the_platforms_geojson_too(api, platform, people):
    def own(field_id: str, municipality: str, **extra) -> bytes:
        return orjson.dumps({"type": "FeatureCollection", "features": [{
            "type": "Feature", "geometry": _hirosaki()["features"][2]["geometry"],
            "properties": {"id": field_id, "name": "自分の田", "owner": "fude-farmer-x",
                           "cultivar": "masshigura", "transplanted_on": "2026-05-21",
                           "municipality": municipality, **extra}}]})

    token = people["fude-officer-h"]
    r = _post(api, token, own("fude-own-g", "Goshogawara"))
    assert r.status_code == 403 and "field fude-own-g lies in Goshogawara" in r.json()["detail"]
    r = _post(api, token, own("fude-own-h", "Hirosaki", name="bad\x00name"))
    assert r.status_code == 422 and "NUL" in r.json()["detail"]
    r = _post(api, token, own("fude-own-h", "Hirosaki", transplanted_on="0001-05-21"))
    assert r.status_code == 422 and "season" in r.json()["detail"]
    r = _post(api, token, own("fude-own-h", "Hirosaki"))
    assert r.status_code == 200 and r.json() == {"imported": 1, "format": "platform",
                                                 "features": 1}
    assert platform.sql("SELECT owner, municipality, polygon_uuid FROM fields "
                        "WHERE id IN ('fude-own-g', 'fude-own-h')") == [
        ("fude-farmer-x", "Hirosaki", None)]
