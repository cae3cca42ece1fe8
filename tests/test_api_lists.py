"""Lists of fields and devices, GeoJSON, conditions and series through a
real `agri api`: pagination, who sees what (another farmer, an officer's
region, an officer without one, a developer on a shared field, a planner),
status colours, day buckets in Tokyo time with today's partial day, rollups
equal to the raw readings, capped ranges and hostile input."""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

import httpx
import orjson
import psycopg
import pytest
import shapely.geometry

from agri.api.accounts import add_user
from agri.api.field_registry import import_fields, parse_features
from agri.clock import TZ, today_local
from agri.ingest.batch import Batch
from agri.ingest.writer import Writer
from tests.test_ingest_e2e import FIELD

MINE = [f"lst-f{i}" for i in range(1, 6)]  # the farmer's, in Hirosaki
STEP_S = 1200  # the paddy sensor's readings: every 20 minutes
DAYS = 3


def _fields(specs: list[tuple[str, str, str]]) -> dict:
    data = orjson.loads(orjson.dumps(FIELD))
    template = data["features"][0]
    features = []
    for n, (fid, owner, municipality) in enumerate(specs):
        feature = orjson.loads(orjson.dumps(template))
        ring = [[lon + n * 0.001, lat] for lon, lat in template["geometry"]["coordinates"][0]]
        feature["geometry"]["coordinates"] = [ring]
        feature["properties"].update(id=fid, name=f"一覧 {n}", owner=owner,
                                     municipality=municipality)
        features.append(feature)
    data["features"] = features
    return data


def _write(platform, rows=(), rejects=()) -> None:
    """Through ingest's writer: readings with their rollups, and rejects."""
    batch = Batch()
    batch.rows = list(rows)
    batch.rejects = list(rejects)
    writer = Writer(platform.db_url)
    try:
        writer.write(batch)
    finally:
        writer.close()


@pytest.fixture(scope="module")
def world(platform):
    with psycopg.connect(platform.db_url) as conn:
        people = {name: add_user(conn, name=name, role=role, regions=regions).token
                  for name, role, regions in [
                      ("lst-farmer", "farmer", []), ("lst-other", "farmer", []),
                      ("lst-officer", "officer", ["Hirosaki"]),
                      ("lst-noregion", "officer", []), ("lst-dev", "developer", []),
                      ("lst-planner", "planner", [])]}
        import_fields(conn, parse_features(_fields(
            [(f, "lst-farmer", "Hirosaki") for f in MINE]
            + [("lst-g1", "lst-other", "Goshogawara")])))
        # A water status the analytics found today: below the band for 8 h.
        conn.execute("INSERT INTO field_water_status (field_id, computed_for, state, "
                     "off_hours) VALUES ('lst-f4', %s, 'below', 8.0)", (today_local(),))
    people["admin"] = platform.admin_token
    platform.add_device("lst-pw-1", field_id="lst-f1")
    platform.add_device("lst-proto", profile="soil", field_id="lst-f1", owner="lst-dev")
    platform.add_device("lst-pw-old", field_id="lst-f2")
    platform.add_device("lst-pw-g", field_id="lst-g1")
    now = time.time()
    first = now - DAYS * 86400
    level = [("lst-pw-1", "water_level", t, round(0.03 + (t % 7) / 1000, 4), t)
             for t in range(int(first), int(now) - 60, STEP_S)]
    _write(platform, level + [
        ("lst-pw-1", "battery", now - 600, 81.0, now),
        ("lst-proto", "soil_moisture", now - 300, 0.41, now),
        ("lst-pw-old", "water_level", now - 2 * 3600, 0.05, now),
        ("lst-pw-old", "battery", now - 2 * 3600, 70.0, now),
        ("lst-pw-g", "water_level", now - 300, 0.04, now)], rejects=[
        (now, "agri/v1/devices/lst-pw-1/senml", "lst-pw-1", "lst reject one", None, b"x"),
        (now, "agri/v1/devices/lst-pw-g/senml", "lst-pw-g", "lst reject g", None, b"y")])
    return {"people": people, "level": level}


def _get(api, path, token, **params) -> httpx.Response:
    return httpx.get(api + path, params=params, headers={"Authorization": f"Bearer {token}"},
                     timeout=30)


def _all(api, path, token, **params) -> tuple[list[dict], int]:
    """Every item of a list, following ``next``; and how many pages it took."""
    items, cursor, pages = [], None, 0
    while True:
        r = _get(api, path, token, **params, **({"cursor": cursor} if cursor else {}))
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["items"]) <= int(params.get("limit", 100))
        items += body["items"]
        pages += 1
        cursor = body["next"]
        if cursor is None:
            return items, pages
        assert cursor == body["items"][-1]["id"]


def test_fields_list_pages_and_shows_only_own_fields(api, world):
    p = world["people"]
    items, pages = _all(api, "/api/v1/fields", p["lst-farmer"], limit=2)
    assert [i["id"] for i in items] == MINE and pages == 3
    first = items[0]
    assert first["municipality"] == "Hirosaki" and len(first["centroid"]) == 2
    assert first["status"]["colour"] in ("green", "yellow", "red", "grey")
    theirs, _ = _all(api, "/api/v1/fields", p["lst-other"])
    assert [i["id"] for i in theirs] == ["lst-g1"]
    assert _get(api, "/api/v1/fields/lst-f1", p["lst-other"]).status_code == 404
    assert _get(api, "/api/v1/fields/lst-f1/conditions", p["lst-other"]).status_code == 404
    # Filters narrow, never widen.
    only, _ = _all(api, "/api/v1/fields", p["lst-farmer"], owner="lst-other")
    assert only == []
    r = _get(api, "/api/v1/fields", p["lst-farmer"], limit=1, cursor="lst-f4")
    assert [i["id"] for i in r.json()["items"]] == ["lst-f5"] and r.json()["next"] is None


def test_officers_see_their_region_and_none_without_one(api, world):
    p = world["people"]
    seen, _ = _all(api, "/api/v1/fields", p["lst-officer"], limit=1000)
    ids = {i["id"] for i in seen}
    assert set(MINE) <= ids and "lst-g1" not in ids
    assert {i["municipality"] for i in seen} == {"Hirosaki"}
    devices, _ = _all(api, "/api/v1/devices", p["lst-officer"], limit=1000)
    assert {"lst-pw-1", "lst-proto", "lst-pw-old"} <= {d["id"] for d in devices}
    assert "lst-pw-g" not in {d["id"] for d in devices}
    rejects = _get(api, "/api/v1/rejects", p["lst-officer"], limit=1000).json()["items"]
    assert "lst reject one" in {r["reason"] for r in rejects}
    assert "lst reject g" not in {r["reason"] for r in rejects}
    token = p["lst-noregion"]
    assert _all(api, "/api/v1/fields", token)[0] == []
    assert _all(api, "/api/v1/devices", token)[0] == []
    assert _get(api, "/api/v1/fields.geojson", token).json()["features"] == []
    assert _get(api, "/api/v1/rejects", token).json()["items"] == []
    assert _get(api, "/api/v1/fields/lst-f1", token).status_code == 404


def test_developer_sees_only_own_devices_on_a_shared_field(api, world):
    token = world["people"]["lst-dev"]
    devices, _ = _all(api, "/api/v1/devices", token)
    assert [d["id"] for d in devices] == ["lst-proto"]
    proto = devices[0]
    assert proto["field"] == "lst-f1" and proto["status"] == "ok" and proto["colour"] == "green"
    assert proto["battery"] is None and proto["last_seen"].endswith("+09:00")
    assert _get(api, "/api/v1/devices/lst-pw-1", token).status_code == 404
    fields, _ = _all(api, "/api/v1/fields", token)
    assert [f["id"] for f in fields] == ["lst-f1"]
    cond = _get(api, "/api/v1/fields/lst-f1/conditions", token).json()
    assert set(cond["metrics"]) == {"soil_moisture"}
    assert {m["device"] for m in cond["metrics"].values()} == {"lst-proto"}
    r = _get(api, "/api/v1/fields/lst-f1/series", token, metric="water_level")
    assert r.status_code == 200 and r.json()["points"] == []
    rejects = _get(api, "/api/v1/rejects", token).json()["items"]
    assert "lst reject one" not in {r["reason"] for r in rejects}


def test_planners_get_no_fields_or_devices(api, world):
    token = world["people"]["lst-planner"]
    for path in ("/api/v1/fields", "/api/v1/fields.geojson", "/api/v1/devices"):
        r = _get(api, path, token)
        assert r.status_code == 403 and "planner" in r.json()["detail"], (path, r.text)
    assert _get(api, "/api/v1/fields/lst-f1", token).status_code == 404
    assert _get(api, "/api/v1/devices/lst-pw-1", token).status_code == 404


def test_devices_show_last_seen_battery_and_status(api, world):
    token = world["people"]["lst-farmer"]
    devices = {d["id"]: d for d in _all(api, "/api/v1/devices", token, limit=1)[0]}
    assert set(devices) == {"lst-pw-1", "lst-proto", "lst-pw-old"}
    pw = devices["lst-pw-1"]
    assert pw["battery"]["value"] == 81.0 and pw["battery"]["unit"] == "%EL"
    assert pw["status"] == "ok" and 0 <= pw["age_s"] < 1500
    old = devices["lst-pw-old"]
    assert old["status"] == "stale" and old["colour"] == "yellow"
    one = _get(api, "/api/v1/devices/lst-pw-1", token).json()
    assert one["metrics"]["water_level"]["status"] == "ok"
    assert one["metrics"]["battery"]["colour"] == "green"
    r = _get(api, "/api/v1/devices", token, field="lst-f2")
    assert [d["id"] for d in r.json()["items"]] == ["lst-pw-old"]


def test_status_colours_and_conditions(api, world):
    token = world["people"]["lst-farmer"]
    status = {f["id"]: f["status"] for f in _all(api, "/api/v1/fields", token)[0]}
    assert status["lst-f1"]["colour"] == "green"
    assert status["lst-f2"]["colour"] == "yellow"
    assert [r["code"] for r in status["lst-f2"]["reasons"]] == ["sensor_stale"]
    assert status["lst-f3"]["colour"] == "grey"
    assert status["lst-f4"]["colour"] == "red"
    assert status["lst-f4"]["reasons"][0]["code"] == "water_below"
    assert status["lst-f4"]["reasons"][0]["text"]["ja"].startswith("水位")
    cond = _get(api, "/api/v1/fields/lst-f2/conditions", token).json()
    level = cond["metrics"]["water_level"]
    assert level["status"] == "stale" and level["colour"] == "yellow"
    assert 7000 < level["age_s"] < 7400 and level["measured_at"].endswith("+09:00")
    detail = _get(api, "/api/v1/fields/lst-f4", token).json()
    assert detail["status"]["colour"] == "red"


def test_geojson_is_a_valid_feature_collection(api, world):
    r = _get(api, "/api/v1/fields.geojson", world["people"]["lst-farmer"], limit=3)
    assert r.status_code == 200 and r.headers["content-type"] == "application/geo+json"
    body = r.json()
    assert body["type"] == "FeatureCollection" and body["next"] == "lst-f3"
    assert [f["id"] for f in body["features"]] == MINE[:3]
    for feature in body["features"]:
        assert feature["type"] == "Feature"
        shape = shapely.geometry.shape(feature["geometry"])
        assert shape.geom_type == "Polygon" and shape.is_valid
        ring = feature["geometry"]["coordinates"][0]
        assert ring[0] == ring[-1] and all(139 < lon < 142 and 40 < lat < 42
                                           for lon, lat in ring)
        assert feature["properties"]["status"] in ("green", "yellow", "red", "grey")
    assert body["features"][1]["properties"]["reasons"] == ["sensor_stale"]


def _expected(rows, key) -> dict[str, tuple]:
    groups = defaultdict(list)
    for _, _, t, v, _ in rows:
        groups[key(datetime.fromtimestamp(t, TZ))].append(v)
    return {k.isoformat(): (min(v), max(v), sum(v) / len(v), len(v)) for k, v in groups.items()}


def _as_tuples(points) -> dict[str, tuple]:
    return {p["t"]: (p["min"], p["max"], p["avg"], p["count"]) for p in points}


def _latest_day(world) -> date:
    return datetime.fromtimestamp(max(r[2] for r in world["level"]), TZ).date()


def _days(world) -> int:
    """How many Tokyo days the water levels written span."""
    return len({datetime.fromtimestamp(r[2], TZ).date() for r in world["level"]})


def test_day_buckets_are_tokyo_days_with_todays_partial_day(api, world, platform):
    token = world["people"]["lst-farmer"]
    start = (datetime.now(TZ) - timedelta(days=DAYS + 1)).isoformat()
    r = _get(api, "/api/v1/fields/lst-f1/series", token, metric="water_level", bucket="1d",
             start=start)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["source"] == "daily rollup" and body["bucket"] == "1d"
    points = body["points"]
    assert all(p["t"].endswith("T00:00:00+09:00") for p in points)
    # The last bucket is the Tokyo day of the latest reading (today, unless
    # the data was written just before midnight).
    assert points[-1]["t"] == f"{_latest_day(world)}T00:00:00+09:00"
    expected = _expected(world["level"], lambda t: datetime.combine(t.date(), datetime.min.time(),
                                                                    TZ))
    got = _as_tuples(points)
    assert got.keys() == expected.keys()
    for k, (lo, hi, avg, n) in expected.items():
        assert got[k][:2] == (lo, hi) and got[k][2] == pytest.approx(avg) and got[k][3] == n
    # A reading stored now is in today's bucket at once: the rollup is kept per batch.
    now = time.time()
    _write(platform, [("lst-pw-1", "water_level", now - 5, 0.2, now)])
    world["level"].append(("lst-pw-1", "water_level", now - 5, 0.2, now))
    again = _get(api, "/api/v1/fields/lst-f1/series", token, metric="water_level",
                 bucket="1d", start=start).json()["points"]
    today = f"{datetime.fromtimestamp(now - 5, TZ).date()}T00:00:00+09:00"
    before = points[-1]["count"] if points[-1]["t"] == today else 0
    assert again[-1]["t"] == today
    assert again[-1]["count"] == before + 1 and again[-1]["max"] == 0.2


def test_rollups_answer_as_the_raw_readings(api, world, platform):
    token = world["people"]["lst-farmer"]
    end = datetime.now(UTC) + timedelta(minutes=1)
    start = end - timedelta(days=DAYS + 1)
    hourly = _get(api, "/api/v1/devices/lst-pw-1/series", token, metric="water_level",
                  bucket="3h", start=start.isoformat(), end=end.isoformat()).json()
    assert hourly["source"] == "hourly rollup"
    expected = _expected(world["level"], lambda t: t.replace(
        hour=t.hour // 3 * 3, minute=0, second=0, microsecond=0))
    got = _as_tuples(hourly["points"])
    assert got.keys() == expected.keys()
    for k, (lo, hi, avg, n) in expected.items():
        assert got[k][:2] == (lo, hi) and got[k][2] == pytest.approx(avg) and got[k][3] == n
    # The same range from the readings themselves (buckets under an hour), summed up.
    minutes = _get(api, "/api/v1/devices/lst-pw-1/series", token, metric="water_level",
                   bucket="20m", start=start.isoformat(), end=end.isoformat()).json()
    assert minutes["source"] == "raw readings"
    assert sum(p["count"] for p in minutes["points"]) == sum(n for *_, n in got.values())
    # Whole buckets: the answer's range starts on a bucket boundary.
    assert datetime.fromisoformat(hourly["start"]).hour % 3 == 0


def test_ranges_over_their_cap_are_422(api, world):
    token = world["people"]["lst-farmer"]
    end = datetime.now(UTC)
    path = "/api/v1/fields/lst-f1/series"
    for bucket, days, words in ((None, 40, "31 days"), ("10m", 40, "31 days"),
                                ("1h", 400, "366 days"), ("1d", 6 * 366, "1,830 days")):
        params = {"metric": "water_level", "start": (end - timedelta(days=days)).isoformat(),
                  "end": end.isoformat(), **({"bucket": bucket} if bucket else {})}
        r = _get(api, path, token, **params)
        assert r.status_code == 422 and words in r.json()["detail"], (bucket, r.text)
    ok = _get(api, path, token, metric="water_level", bucket="1d",
              start=(end - timedelta(days=4 * 366)).isoformat(), end=end.isoformat())
    assert ok.status_code == 200 and len(ok.json()["points"]) == _days(world)


def test_hostile_input_is_a_clear_4xx(api, world):
    token = world["people"]["lst-farmer"]
    cases = [
        ("/api/v1/fields", {"cursor": "a\x00b"}, 422),
        ("/api/v1/fields", {"limit": 10**12}, 422),
        ("/api/v1/fields", {"limit": 0}, 422),
        ("/api/v1/fields", {"municipality": "Hiro\x00saki"}, 422),
        ("/api/v1/fields", {"owner": "x' OR '1'='1"}, 422),
        ("/api/v1/fields.geojson", {"cursor": "x" * 65}, 422),
        ("/api/v1/devices", {"cursor": "\x00"}, 422),
        ("/api/v1/devices", {"profile": "\x00"}, 422),
        ("/api/v1/devices", {"field": "a/b"}, 422),
        ("/api/v1/fields/lst-f1/series", {"metric": "water_level", "bucket": "1y"}, 422),
        ("/api/v1/fields/lst-f1/series", {"metric": "water_level", "bucket": "0m"}, 422),
        ("/api/v1/fields/lst-f1/series", {"metric": "water_level", "bucket": "\x00"}, 422),
        ("/api/v1/fields/lst-f1/series", {"metric": "water\x00level"}, 422),
        ("/api/v1/fields/lst-f1/series", {"metric": "water_level",
                                          "start": "99999-01-01T00:00:00Z"}, 422),
        ("/api/v1/fields/lst%00f1", {}, 404),
        ("/api/v1/fields/lst%00f1/conditions", {}, 404),
        ("/api/v1/devices/lst%00pw-1", {}, 404),
        ("/api/v1/devices/lst%00pw-1/series", {"metric": "water_level"}, 404),
        ("/api/v1/devices/" + "x" * 5000, {}, 404),
    ]
    for path, params, status in cases:
        r = _get(api, path, token, **params)
        nul = "%00" in path or "\x00" in "".join(str(v) for v in params.values())
        # A NUL byte may be refused before routing (400), else as the route says.
        assert r.status_code in ({status, 400} if nul else {status}), (path, params, r.text)
        assert r.json()["detail"], (path, params, r.text)
    r = _get(api, "/api/v1/rejects", world["people"]["lst-officer"], device="lst\x00pw-1")
    assert r.status_code in (200, 400), r.text
    assert r.json() == {"items": [], "next": None} if r.status_code == 200 else r.json()["detail"]
    # Cursors are ids (text): one past every id ends the list, digits beyond 64 bits are
    # just an id that sorts before letters.
    r = _get(api, "/api/v1/fields", token, cursor="z" * 64)
    assert r.status_code == 200 and r.json() == {"items": [], "next": None}
    r = _get(api, "/api/v1/fields", token, cursor="9" * 30)
    assert r.status_code == 200 and [i["id"] for i in r.json()["items"]] == MINE
    r = _get(api, "/api/v1/devices", token, cursor="z" * 64)
    assert r.status_code == 200 and r.json() == {"items": [], "next": None}


def test_openapi_has_examples_for_the_lists(api):
    spec = httpx.get(api + "/openapi.json").json()
    for path in ("/api/v1/fields", "/api/v1/fields.geojson", "/api/v1/devices",
                 "/api/v1/devices/{device_id}", "/api/v1/fields/{field_id}/conditions",
                 "/api/v1/fields/{field_id}/series"):
        content = spec["paths"][path]["get"]["responses"]["200"]["content"]
        assert any("example" in c for c in content.values()), path
