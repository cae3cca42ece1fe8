"""Flights through a real `agri api` process: a synthetic multispectral GeoTIFF
uploaded, processed by the analytics into per-field statistics, seen by the
users of those fields only; the harvest and protein maps as GeoJSON of the
fields each user sees; spray records scoped and summarised; hostile uploads
refused with nothing stored and no file left behind."""

from __future__ import annotations

import struct
import warnings
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import orjson
import psycopg
import pytest
import rasterio
from pyproj import Transformer
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import Affine
from shapely.geometry import shape

from agri.analytics import image_store, protein
from agri.api.accounts import add_user
from agri.api.field_registry import import_fields, parse_features
from tests.fix_stack import api_server

PLANE = "EPSG:6678"
X0, Y0 = -30_000.0, 50_000.0  # the image's north-west corner on the plane
PIXEL_M = 0.5
TOWN, ELSEWHERE = "ImgTown", "ImgElsewhere"
CAPTURED = "2026-08-20T10:15:00+09:00"
YEAR = 2026
# Field -> (owner, municipality, (west, south, east, north) offsets from X0, Y0 in m).
FIELDS = {
    "img-a1": ("img-farmer-a", TOWN, (10.0, -50.0, 50.0, -10.0)),
    "img-b1": ("img-farmer-b", TOWN, (70.0, -50.0, 110.0, -10.0)),
    "img-d1": ("img-farmer-d", TOWN, (3000.0, -50.0, 3040.0, -10.0)),
    "img-c1": ("img-farmer-c", ELSEWHERE, (6000.0, -50.0, 6040.0, -10.0)),
}
# (red, nir) of each field in the image; the ground around them is bare soil.
CANOPY = {"img-a1": (0.05, 0.35), "img-b1": (0.10, 0.25)}
SOIL = (0.15, 0.20)
TO_LONLAT = Transformer.from_crs(PLANE, "EPSG:4326", always_xy=True)


def _polygon(west: float, south: float, east: float, north: float) -> dict:
    ring = [(west, south), (east, south), (east, north), (west, north), (west, south)]
    return {"type": "Polygon",
            "coordinates": [[list(TO_LONLAT.transform(X0 + x, Y0 + y)) for x, y in ring]]}


@pytest.fixture(scope="module")
def world(platform):
    """Four farmers' fields, an officer of each municipality, an officer with no
    region, a planner and a developer; farmer A's drone."""
    features = [{"type": "Feature", "geometry": _polygon(*box),
                 "properties": {"id": fid, "name": fid, "owner": owner,
                                "cultivar": "seiten-no-hekireki",
                                "transplanted_on": f"{YEAR}-05-20", "municipality": town}}
                for fid, (owner, town, box) in FIELDS.items()]
    tokens = {}
    with psycopg.connect(platform.db_url) as conn:
        for owner in sorted({o for o, _, _ in FIELDS.values()}):
            tokens[owner] = add_user(conn, name=owner, role="farmer").token
        import_fields(conn, parse_features({"type": "FeatureCollection",
                                            "features": features}))
        for name, role, regions in (("img-officer", "officer", [TOWN]),
                                    ("img-officer-far", "officer", [ELSEWHERE]),
                                    ("img-officer-none", "officer", []),
                                    ("img-planner", "planner", []),
                                    ("img-dev", "developer", [])):
            tokens[name] = add_user(conn, name=name, role=role, regions=regions).token
        conn.commit()
    platform.add_device("img-drone-a", "drone", owner="img-farmer-a")
    tokens["admin"] = platform.admin_token
    return tokens


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def survey(path: Path, *, bands: int = 5, crs: str | None = PLANE, width_m: float = 120.0,
           height_m: float = 60.0, offset_x: float = 0.0) -> Path:
    """A drone-p4m-like GeoTIFF over fields A and B (5 float32 bands)."""
    width, height = int(width_m / PIXEL_M), int(height_m / PIXEL_M)
    transform = Affine(PIXEL_M, 0.0, X0 + offset_x, 0.0, -PIXEL_M, Y0)
    names = ("blue", "green", "red", "red_edge", "nir")
    data = np.empty((5, height, width), dtype=np.float32)
    data[0], data[1], data[3] = 0.04, 0.08, 0.20
    data[2], data[4] = SOIL
    xs = offset_x + (np.arange(width) + 0.5) * PIXEL_M
    ys = -(np.arange(height) + 0.5) * PIXEL_M
    for fid, (red, nir) in CANOPY.items():
        west, south, east, north = FIELDS[fid][2]
        inside = ((ys[:, None] > south) & (ys[:, None] < north)
                  & (xs[None, :] > west) & (xs[None, :] < east))
        data[2][inside], data[4][inside] = red, nir
    profile = {"driver": "GTiff", "width": width, "height": height, "count": bands,
               "dtype": "float32", "nodata": -1.0}
    if crs is not None:
        profile |= {"crs": crs, "transform": transform}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # the file without a CRS
        dst = rasterio.open(path, "w", **profile)
    with dst:
        dst.write(data[:bands])
        for i, name in enumerate(names[:bands], start=1):
            dst.set_band_description(i, name)
    return path


def sparse(path: Path, *, width: int, height: int, **layout) -> Path:
    """A TIFF declaring ``width`` x ``height`` pixels and holding none (a bomb)."""
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=5,
                       dtype="float32", crs=PLANE, sparse_ok=True, nodata=-1.0,
                       transform=Affine(PIXEL_M, 0.0, X0, 0.0, -PIXEL_M, Y0), **layout) as dst:
        for i, name in enumerate(("blue", "green", "red", "red_edge", "nir"), start=1):
            dst.set_band_description(i, name)
    return path


def upload(base: str, token: str, path: Path | None, **fields: str) -> httpx.Response:
    data = {"source": "drone-p4m", "captured_at": CAPTURED} | fields
    # Without a file, still a multipart form (a text part where the file should be).
    files = ({"file": (path.name, path.read_bytes(), "image/tiff")} if path
             else {"flight": (None, "no file")})
    return httpx.post(f"{base}/api/v1/flights", headers=auth(token), data=data, files=files,
                      timeout=60)


def stored(platform) -> tuple[int, list[str]]:
    """Images rows, and the files under AGRI_HOME/images (partial uploads included)."""
    rows = platform.sql("SELECT count(*) FROM images")[0][0]
    folder = platform.home / image_store.IMAGES_DIR
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) \
        if folder.exists() else []
    return rows, files


def png_pixels(data: bytes) -> np.ndarray:
    """RGBA pixels of an unfiltered 8-bit RGBA PNG (as the API writes them)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    assert depth == 8 and colour == 6
    idat, pos = b"", 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(height, 1 + width * 4)
    assert (raw[:, 0] == 0).all()
    return raw[:, 1:].reshape(height, width, 4)


@pytest.fixture(scope="module")
def flight(platform, api, world, tmp_path_factory):
    """Farmer A's survey, uploaded with A's drone and processed."""
    path = survey(tmp_path_factory.mktemp("flight") / "b01.tif")
    r = upload(api, world["img-farmer-a"], path, drone="img-drone-a", flight="B01 朝")
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["status"] == "pending" and not body["existing"]
    assert body["fields"] == ["img-a1"]  # only A's own field counts for A
    assert r.headers["location"] == body["status_url"] == f"/api/v1/flights/{body['id']}"
    pending = httpx.get(api + body["status_url"], headers=auth(world["img-farmer-a"]))
    assert pending.status_code == 200 and pending.json()["status"] == "pending"
    with psycopg.connect(platform.db_url) as conn:
        image_store.process_pending(conn)
    return body["id"], path


def test_upload_is_processed_into_statistics_of_the_users_fields(platform, api, world, flight):
    image_id, path = flight
    row = platform.sql("SELECT status, error, added_by, drone_id, flight, source, "
                       "acquired_at, field_ids FROM images WHERE id = %s", (image_id,))
    assert row[0][:7] == ("done", None, "img-farmer-a", "img-drone-a", "B01 朝", "drone-p4m",
                          datetime.fromisoformat(CAPTURED))
    assert sorted(row[0][7]) == ["img-a1", "img-b1"]  # the fields under it, whoever's
    kept = Path(platform.sql("SELECT path FROM images WHERE id = %s", (image_id,))[0][0])
    assert kept.read_bytes() == path.read_bytes()

    r = httpx.get(f"{api}/api/v1/flights/{image_id}", headers=auth(world["img-farmer-a"]))
    assert r.status_code == 200, r.text
    detail = r.json()
    assert detail["status"] == "done" and detail["uploaded_by"] == "img-farmer-a"
    assert [s["field"] for s in detail["statistics"]] == ["img-a1"]
    ndvi = (CANOPY["img-a1"][1] - CANOPY["img-a1"][0]) / sum(CANOPY["img-a1"])
    stats = detail["statistics"][0]
    assert stats["ndvi_mean"] == pytest.approx(ndvi, abs=0.02)
    assert stats["valid_fraction"] > 0.9 and "ndvi_p10" in stats["stats"]

    # Farmer B sees the same flight, with B's field only; the officer both.
    r = httpx.get(f"{api}/api/v1/flights/{image_id}", headers=auth(world["img-farmer-b"]))
    assert [s["field"] for s in r.json()["statistics"]] == ["img-b1"]
    assert r.json()["uploaded_by"] is None
    r = httpx.get(f"{api}/api/v1/flights/{image_id}", headers=auth(world["img-officer"]))
    assert [s["field"] for s in r.json()["statistics"]] == ["img-a1", "img-b1"]
    # Another farmer's valid token, an officer elsewhere or of no region: no such flight.
    for who in ("img-farmer-c", "img-officer-far", "img-officer-none", "img-dev"):
        r = httpx.get(f"{api}/api/v1/flights/{image_id}", headers=auth(world[who]))
        assert r.status_code == 404, (who, r.text)
        listed = httpx.get(f"{api}/api/v1/flights?limit=1000", headers=auth(world[who]))
        assert listed.status_code == 200
        assert image_id not in [i["id"] for i in listed.json()["items"]], who
    r = httpx.get(f"{api}/api/v1/flights", headers=auth(world["img-planner"]))
    assert r.status_code == 403
    listed = httpx.get(f"{api}/api/v1/flights?limit=1", headers=auth(world["img-farmer-a"]))
    assert listed.json()["items"][0]["id"] == image_id
    assert listed.json()["items"][0]["fields"] == 1
    for bad in ("0", "-1", "99999999999999999999", "abc", "%00"):
        r = httpx.get(f"{api}/api/v1/flights/{bad}", headers=auth(world["img-farmer-a"]))
        assert r.status_code in (400, 404, 422), (bad, r.status_code)

    # The same file again is the same image, answered as such.
    again = upload(api, world["img-farmer-a"], path)
    assert again.status_code == 200 and again.json()["id"] == image_id
    assert again.json()["existing"]


def test_field_map_png_for_visible_fields_only(platform, api, world, flight):
    image_id, _ = flight
    r = httpx.get(f"{api}/api/v1/fields/img-a1/map", headers=auth(world["img-farmer-a"]))
    assert r.status_code == 200, r.text
    latest = r.json()
    assert latest["image"] == image_id and latest["source"] == "drone-p4m"
    assert set(latest["previews"]) == {"ndvi", "gndvi", "ndre"}
    pixels = {}
    for fid, who in (("img-a1", "img-farmer-a"), ("img-b1", "img-officer")):
        r = httpx.get(f"{api}/api/v1/fields/{fid}/map.png", headers=auth(world[who]))
        assert r.status_code == 200 and r.headers["content-type"] == "image/png", r.text
        rgba = png_pixels(r.content)
        shown = rgba[rgba[..., 3] == 255]
        assert len(shown) > 0.8 * rgba.shape[0] * rgba.shape[1]
        pixels[fid] = np.median(shown[:, :3].astype(int), axis=0)
        etag = r.headers["etag"]
        cached = httpx.get(f"{api}/api/v1/fields/{fid}/map.png",
                           headers=auth(world[who]) | {"If-None-Match": etag})
        assert cached.status_code == 304
    # A (NDVI 0.75) green, B (NDVI 0.43) orange-yellow.
    assert pixels["img-a1"][1] > pixels["img-a1"][0]
    assert pixels["img-b1"][0] > pixels["img-b1"][1]
    for who in ("img-farmer-b", "img-farmer-c", "img-officer-far", "img-planner"):
        for path in ("/api/v1/fields/img-a1/map.png", "/api/v1/fields/img-a1/map"):
            r = httpx.get(api + path, headers=auth(world[who]))
            assert r.status_code == 404, (who, path, r.status_code)
    r = httpx.get(f"{api}/api/v1/fields/img-d1/map.png", headers=auth(world["img-farmer-d"]))
    assert r.status_code == 404  # no image of D's field
    for bad in ("?index=evi", "?index=%00", "?as_of=2026-02-30"):
        r = httpx.get(f"{api}/api/v1/fields/img-a1/map.png{bad}",
                      headers=auth(world["img-farmer-a"]))
        assert r.status_code in (400, 422), bad  # a NUL is refused before the route


def _results(platform, image_id: int) -> None:
    """What the analytics would store for the season (the map's inputs)."""
    with psycopg.connect(platform.db_url) as conn:
        for fid, opens, order in (("img-a1", "2026-09-10", 1), ("img-b1", "2026-09-14", 2),
                                  ("img-d1", "2026-09-18", 3)):
            conn.execute(
                "INSERT INTO field_harvest_windows (field_id, computed_for, opens, closes, "
                "opens_cday, closes_cday, rule, region_order, order_basis) VALUES "
                "(%s, '2026-08-20', %s, %s::date + 10, 1000, 1200, 'test', %s, 'window') "
                "ON CONFLICT DO NOTHING", (fid, opens, opens, order))
        conn.execute("INSERT INTO field_maturity (field_id, image_id, red_mean, rank, class, "
                     "colour) VALUES ('img-a1', %s, 0.05, 1, 1, '#d7191c') "
                     "ON CONFLICT DO NOTHING", (image_id,))
        for fid, pct in (("img-a1", 5.9), ("img-b1", 6.3), ("img-c1", 6.8)):
            conn.execute("INSERT INTO field_protein (field_id, image_id, year, protein_pct, "
                         "class) VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                         (fid, image_id, YEAR, pct, str(protein.protein_class(pct))))


def _features(r: httpx.Response) -> dict[str, dict]:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/geo+json")
    body = r.json()
    assert body["type"] == "FeatureCollection"
    for f in body["features"]:
        assert f["type"] == "Feature" and shape(f["geometry"]).is_valid
    return {f["id"]: f["properties"] for f in body["features"]}


def test_harvest_and_protein_maps_show_the_users_fields(platform, api, world, flight):
    image_id, _ = flight
    _results(platform, image_id)
    harvest = _features(httpx.get(f"{api}/api/v1/harvest-map",
                                  headers=auth(world["img-officer"])))
    ours = {k: v for k, v in harvest.items() if k.startswith("img-")}
    assert set(ours) == {"img-a1", "img-b1", "img-d1"}  # not ELSEWHERE's field
    assert ours["img-a1"]["harvest_class"] == 1 and ours["img-a1"]["class_basis"] == "image"
    assert ours["img-a1"]["colour"] == "#d7191c"
    assert ours["img-b1"]["class_basis"] == "window"  # no image ranked B
    assert ours["img-a1"]["harvest_window"]["opens"] == "2026-09-10"
    assert [ours[f]["order_in_municipality"] for f in ("img-a1", "img-b1", "img-d1")] == [1, 2, 3]
    mine = _features(httpx.get(f"{api}/api/v1/harvest-map",
                               headers=auth(world["img-farmer-a"])))
    assert set(mine) == {"img-a1"}  # farmer B's field is absent
    elsewhere = _features(httpx.get(f"{api}/api/v1/harvest-map",
                                     headers=auth(world["img-officer-far"])))
    assert set(elsewhere) == {"img-c1"} and elsewhere["img-c1"]["harvest_class"] is None
    assert _features(httpx.get(f"{api}/api/v1/harvest-map",
                               headers=auth(world["img-officer-none"]))) == {}
    town = _features(httpx.get(f"{api}/api/v1/harvest-map", params={"municipality": TOWN},
                               headers=auth(platform.admin_token)))
    assert set(town) == {"img-a1", "img-b1", "img-d1"}
    before = _features(httpx.get(f"{api}/api/v1/harvest-map", params={"as_of": "2026-08-19"},
                                 headers=auth(world["img-farmer-a"])))
    assert before["img-a1"]["harvest_window"] is None  # computed for the 20th only

    proteins = _features(httpx.get(f"{api}/api/v1/protein-map",
                                   headers=auth(world["img-officer"])))
    assert proteins["img-a1"]["protein_class"] == "target"
    assert proteins["img-b1"]["protein_class"] == "acceptable"
    assert proteins["img-d1"]["protein_pct"] is None and "img-c1" not in proteins
    far = _features(httpx.get(f"{api}/api/v1/protein-map",
                              headers=auth(world["img-officer-far"])))
    assert far["img-c1"]["protein_class"] == "over" and far["img-c1"]["protein_pct"] == 6.8
    legend = httpx.get(f"{api}/api/v1/protein-map",
                       headers=auth(world["img-farmer-b"])).json()["legend"]
    assert [(c["class"], c["up_to_pct"]) for c in legend] == [
        ("target", 6.0), ("acceptable", 6.4), ("over", None)]
    assert set(_features(httpx.get(f"{api}/api/v1/protein-map",
                                   headers=auth(world["img-farmer-b"])))) == {"img-b1"}
    for path in ("/api/v1/harvest-map", "/api/v1/protein-map"):
        assert httpx.get(api + path, headers=auth(world["img-planner"])).status_code == 403
        assert httpx.get(api + path).status_code == 401
        for bad in ({"municipality": "x\x00"}, {"municipality": ""}, {"as_of": "2026-13-01"},
                    {"municipality": "x" * 101}):
            r = httpx.get(api + path, params=bad, headers=auth(world["img-officer"]))
            assert r.status_code in (400, 422), (path, bad, r.status_code)


def test_spray_records_are_scoped_and_summarised(platform, api, world):
    t0 = datetime(YEAR, 8, 12, 6, 0, tzinfo=UTC)
    records = [("img-drone-a", "img-a1", 2890.5), ("img-drone-a", "img-b1", 1500.0),
               ("img-drone-a", "img-d1", 1200.0), ("img-drone-a", "img-c1", 999.0)]
    with psycopg.connect(platform.db_url) as conn:
        for n, (drone, fid, area) in enumerate(records):
            t = t0 + timedelta(minutes=10 * n)
            body = {"kind": "spray", "drone_id": drone, "field": fid, "product": "農薬A",
                    "target": "blast", "rate_l_per_10a": 0.8, "sprayed_area_m2": area,
                    "volume_l": 2.3, "started_at": t.isoformat()}
            conn.execute("INSERT INTO drone_records (drone_id, time, kind, field_id, body, "
                         "received_at) VALUES (%s, %s, 'spray', %s, %s, now()) "
                         "ON CONFLICT DO NOTHING", (drone, t, fid, orjson.dumps(body).decode()))
        # A record whose body the drone got wrong: its values are not trusted.
        conn.execute("INSERT INTO drone_records (drone_id, time, kind, field_id, body, "
                     "received_at) VALUES ('img-drone-a', %s, 'spray', 'img-a1', %s, now()) "
                     "ON CONFLICT DO NOTHING",
                     (t0 - timedelta(days=1), orjson.dumps(
                         {"sprayed_area_m2": "lots", "product": ["x"], "rate_l_per_10a": True}
                     ).decode()))

    def fields_seen(who: str, **params) -> list[str]:
        seen, cursor = [], None
        while True:
            query = {"limit": 1, **params} | ({"after": cursor} if cursor else {})
            r = httpx.get(f"{api}/api/v1/spray-records", params=query, headers=auth(world[who]))
            assert r.status_code == 200, r.text
            seen += [(i["field"], i["sprayed_area_m2"]) for i in r.json()["items"]
                     if i["drone"] == "img-drone-a"]
            cursor = r.json()["next"]
            if cursor is None:
                return seen

    assert sorted(fields_seen("img-farmer-a"), key=str) == [("img-a1", 2890.5),
                                                            ("img-a1", None)]
    assert sorted(fields_seen("img-officer"), key=str) == [
        ("img-a1", 2890.5), ("img-a1", None), ("img-b1", 1500.0), ("img-d1", 1200.0)]
    assert fields_seen("img-officer-far") == [("img-c1", 999.0)]
    assert fields_seen("img-officer-none") == [] and fields_seen("img-farmer-c") == [
        ("img-c1", 999.0)]
    assert fields_seen("img-farmer-a", field="img-b1") == []  # B's, not A's to see
    assert len(fields_seen("admin")) == 5
    for who, status in (("img-planner", 403), ("img-dev", 403)):
        r = httpx.get(f"{api}/api/v1/spray-records", headers=auth(world[who]))
        assert r.status_code == status
    for bad in ({"after": "9223372036854775808"}, {"limit": "0"}, {"field": "x" * 65}):
        r = httpx.get(f"{api}/api/v1/spray-records", params=bad, headers=auth(world["img-officer"]))
        assert r.status_code == 422, bad

    r = httpx.get(f"{api}/api/v1/spray-summary", params={"year": YEAR},
                  headers=auth(world["img-planner"]))
    assert r.status_code == 200, r.text
    rows = {i["municipality"]: i for i in r.json()["items"]}
    # Three farms sprayed in TOWN; ELSEWHERE's one farm is not shown.
    assert rows[TOWN]["farms"] == 3 and rows[TOWN]["flights"] == 4
    assert rows[TOWN]["sprayed_area_m2"] == pytest.approx(2890.5 + 1500.0 + 1200.0)
    assert ELSEWHERE not in rows
    r = httpx.get(f"{api}/api/v1/spray-summary", headers=auth(world["img-officer-far"]))
    assert r.json()["items"] == []
    for who in ("img-farmer-a", "img-dev"):
        r = httpx.get(f"{api}/api/v1/spray-summary", headers=auth(world[who]))
        assert r.status_code == 403


def test_hostile_uploads_store_nothing(platform, api, world, tmp_path):
    before = stored(platform)
    farmer = world["img-farmer-a"]
    text = tmp_path / "notes.tif"
    text.write_text("not an image at all")
    cases = {
        "not a TIFF": (text, {}),
        "pixel bomb": (sparse(tmp_path / "bomb.tif", width=100_000, height=100_000,
                              tiled=True, blockxsize=1024, blockysize=1024), {}),
        "size bomb": (sparse(tmp_path / "bomb2.tif", width=30_000, height=30_000,
                             tiled=True, blockxsize=512, blockysize=512), {}),
        "huge strips": (sparse(tmp_path / "strips.tif", width=5000, height=5000,
                               blockysize=5000), {}),
        "two bands": (survey(tmp_path / "two.tif", bands=2), {}),
        "no CRS": (survey(tmp_path / "nocrs.tif", crs=None), {}),
        "over nobody's field": (survey(tmp_path / "away.tif", offset_x=20_000.0), {}),
        "over another farmer's field": (survey(tmp_path / "b.tif", offset_x=60.0,
                                               width_m=55.0), {}),
        "NUL in source": (survey(tmp_path / "nul.tif"), {"source": "drone-p4m\x00"}),
        "NUL in flight": (survey(tmp_path / "nul2.tif"), {"flight": "B01\x00; DROP"}),
        "unknown source": (survey(tmp_path / "src.tif"), {"source": "landsat"}),
        "no time": (survey(tmp_path / "notime.tif"), {"captured_at": ""}),
        "naive time": (survey(tmp_path / "naive.tif"), {"captured_at": "2026-08-20T10:15"}),
        "future time": (survey(tmp_path / "future.tif"), {"captured_at": "2099-01-01T00:00Z"}),
        "owner in the form": (survey(tmp_path / "own.tif"), {"owner": "img-farmer-b"}),
        "someone else's drone": (survey(tmp_path / "drone.tif"), {"drone": "img-drone-x"}),
        "bad drone id": (survey(tmp_path / "drone2.tif"), {"drone": "../x"}),
        "no file": (None, {}),
    }
    for what, (path, fields) in cases.items():
        r = upload(api, farmer, path, **fields)
        expected = 404 if what == "someone else's drone" else 422
        assert r.status_code == expected, (what, r.status_code, r.text)
        assert "upload-" not in str(r.json()["detail"]), what  # no server-side file name
    # Farmer B may not use A's drone: it is not B's device.
    r = upload(api, world["img-farmer-b"], survey(tmp_path / "bdrone.tif"), drone="img-drone-a")
    assert r.status_code == 404
    for who, status in (("img-planner", 403), ("img-dev", 403), ("img-officer-far", 422),
                        ("img-officer-none", 422)):
        r = upload(api, world[who], survey(tmp_path / f"{who}.tif"))
        assert r.status_code == status, (who, r.text)
    r = httpx.post(f"{api}/api/v1/flights", headers=auth(farmer), json={"file": "x"})
    assert r.status_code == 415
    r = httpx.post(f"{api}/api/v1/flights", files={"file": ("x.tif", b"x")})
    assert r.status_code == 401
    r = httpx.post(f"{api}/api/v1/flights", headers=auth(farmer) | {
        "Content-Type": "multipart/form-data; boundary=zzz"}, content=b"--zzz\r\ngarbage")
    assert r.status_code == 422
    assert stored(platform) == before

    # Larger than AGRI_MAX_UPLOAD_MB: refused when declared, and when streamed.
    big = survey(tmp_path / "big.tif", width_m=700.0, height_m=400.0)  # ~11 MB
    assert big.stat().st_size > 2 << 20
    with api_server(platform, AGRI_MAX_UPLOAD_MB="1") as small:
        r = upload(small, farmer, big)
        assert r.status_code == 413 and "AGRI_MAX_UPLOAD_MB" in r.json()["detail"]
        boundary = "agri-test-boundary"
        head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"source\"\r\n\r\n"
                f"drone-p4m\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                f"filename=\"big.tif\"\r\nContent-Type: image/tiff\r\n\r\n").encode()
        payload = big.read_bytes()

        def chunks():
            yield head
            for i in range(0, len(payload), 1 << 16):
                yield payload[i:i + (1 << 16)]
            yield f"\r\n--{boundary}--\r\n".encode()

        r = httpx.post(f"{small}/api/v1/flights", content=chunks(), timeout=60,
                       headers=auth(farmer) | {
                           "Content-Type": f"multipart/form-data; boundary={boundary}"})
        assert r.status_code == 413, r.text
        # A small image still goes through the same server.
        ok = upload(small, farmer, survey(tmp_path / "small.tif", width_m=60.0))
        assert ok.status_code == 202, ok.text
    rows, files = stored(platform)
    assert rows == before[0] + 1 and len(files) == len(before[1]) + 1
    assert not [f for f in files if f.endswith(".part")]
    with psycopg.connect(platform.db_url) as conn:
        image_store.process_pending(conn)
