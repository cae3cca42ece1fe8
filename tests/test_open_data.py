"""Open data against a real `agri api` process: downloadable without an
account, only once the plan office published a dataset; cells of fewer than
3 farms suppressed (a 2-farm and a 3-farm municipality); no station or farm
named anywhere; the showcase; hostile input."""

from __future__ import annotations

import csv
import io

import httpx
import orjson
import psycopg
import pytest

from agri.api.accounts import add_user
from agri.api.field_registry import import_fields, parse_features
from agri.api.queries.open_data import DATASETS, LICENSE_URL
from tests.test_api_kpis import square

TWO, THREE = "OdTwoFarms", "OdThreeFarms"
DAY = "2026-07-01"
# field -> (owner, municipality); OdTwoFarms has three fields of two farms.
FIELDS = {"od2-f1": ("od-farmer1", TWO), "od2-f2": ("od-farmer1", TWO),
          "od2-f3": ("od-farmer2", TWO), "od3-f1": ("od-farmer3", THREE),
          "od3-f2": ("od-farmer4", THREE), "od3-f3": ("od-farmer5", THREE)}
STATIONS = {"od2-ws": "od2-f1", "od3-ws": "od3-f1", "od3-ws2": "od3-f2"}


@pytest.fixture(scope="module")
def people(platform):
    with psycopg.connect(platform.db_url) as conn:
        tokens = {name: add_user(conn, name=name, role=role, regions=regions).token
                  for name, role, regions in [("od-planner", "planner", []),
                                              ("od-officer", "officer", [THREE]),
                                              ("od-farmer", "farmer", [])]}
        features = [square(fid, owner, town, 141.10 + 0.001 * n, 40.90)
                    for n, (fid, (owner, town)) in enumerate(FIELDS.items())]
        import_fields(conn, parse_features({"type": "FeatureCollection",
                                            "features": features}), create_owners=True)
    for fid in FIELDS:
        platform.add_device(f"{fid}-pw", "paddy-water", field_id=fid)
    for station, fid in STATIONS.items():
        platform.add_device(station, "weather-station", field_id=fid)
    daily = [  # device, metric, day, min, max, sum, count
        ("od3-f1-pw", "water_temp", DAY, 20, 24, 2200, 100),
        ("od3-f2-pw", "water_temp", DAY, 21, 25, 2300, 100),
        ("od3-f3-pw", "water_temp", DAY, 19, 26, 4800, 200),
        ("od2-f1-pw", "water_temp", DAY, 20, 22, 2100, 100),
        ("od2-f2-pw", "water_temp", DAY, 20, 22, 2100, 100),
        ("od2-f3-pw", "water_temp", DAY, 20, 22, 2100, 100),
        # the next day only two of the three farms' sensors reported
        ("od3-f1-pw", "water_temp", "2026-07-02", 20, 24, 2200, 100),
        ("od3-f2-pw", "water_temp", "2026-07-02", 21, 25, 2300, 100),
        ("od3-ws", "air_temp", DAY, 15, 28, 2100, 100),
        ("od3-ws2", "air_temp", DAY, 16, 27, 2200, 100),
        ("od3-ws", "precipitation", DAY, 0, 2, 12.0, 144),
        ("od3-ws2", "precipitation", DAY, 0, 1, 8.0, 144),
        ("od2-ws", "air_temp", DAY, 14, 29, 2000, 100),
    ]
    with psycopg.connect(platform.db_url) as conn:
        conn.cursor().executemany(
            "INSERT INTO readings_daily (device_id, metric, day, min, max, sum, count) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)", daily)
        windows = [("od3-f1", "2026-08-01", "2026-09-01", "2026-09-11"),  # superseded
                   ("od3-f1", "2026-08-20", "2026-09-10", "2026-09-20"),
                   ("od3-f2", "2026-08-20", "2026-09-12", "2026-09-22"),
                   ("od3-f3", "2026-08-20", "2026-09-15", "2026-09-25"),
                   ("od2-f1", "2026-08-20", "2026-09-11", "2026-09-21"),
                   ("od2-f3", "2026-08-20", "2026-09-13", "2026-09-23")]
        conn.cursor().executemany(
            "INSERT INTO field_harvest_windows (field_id, computed_for, opens, closes, "
            "opens_cday, closes_cday, rule) VALUES (%s, %s, %s, %s, 1000, 1200, 'test')",
            windows)
    return tokens


def _h(token):
    return {"Authorization": f"Bearer {token}"}


def _publish(api, token, name, published=True):
    return httpx.post(api + f"/api/v1/open-data/{name}/publish", headers=_h(token),
                      json={"published": published})


def _ids(api):
    r = httpx.get(api + "/api/v1/open-data")
    assert r.status_code == 200, r.text
    return {d["dct:identifier"] for d in r.json()["dcat:dataset"]}


@pytest.fixture(scope="module")
def published(api, people):
    token = people["od-planner"]
    for name in DATASETS:
        assert _publish(api, token, name, False).status_code == 200
    assert _ids(api).isdisjoint(DATASETS)
    for name in DATASETS:
        r = httpx.get(api + f"/api/v1/open-data/{name}.csv", params={"start": DAY, "end": DAY})
        assert r.status_code == 404 and "not published" in r.json()["detail"]
    for name in DATASETS:
        r = _publish(api, token, name)
        assert r.status_code == 200 and r.json()["published"] is True, r.text
        assert r.json()["published_at"] and r.json()["withdrawn_at"] is None
    return token


def _download(api, name, fmt, **params):
    r = httpx.get(api + f"/api/v1/open-data/{name}.{fmt}", params=params)  # no account
    assert r.status_code == 200, r.text
    assert LICENSE_URL in r.headers["link"] and 'rel="license"' in r.headers["link"]
    return r


def test_only_the_plan_office_publishes(api, people):
    path = "/api/v1/open-data/weather-daily/publish"
    assert httpx.post(api + path, json={"published": True}).status_code == 401
    for who in ("od-farmer", "od-officer"):
        r = httpx.post(api + path, headers=_h(people[who]), json={"published": True})
        assert r.status_code == 403, r.text
    planner = _h(people["od-planner"])
    r = httpx.post(api + "/api/v1/open-data/farmers-names/publish", headers=planner)
    assert r.status_code == 404 and "choose one of" in r.json()["detail"]
    r = httpx.post(api + path, headers=planner, json={"published": True, "by": "x"})
    assert r.status_code == 422
    assert httpx.get(api + "/api/v1/open-data/publications",
                     headers=_h(people["od-farmer"])).status_code == 403
    listed = httpx.get(api + "/api/v1/open-data/publications", headers=planner).json()
    assert {p["dataset"] for p in listed["items"]} == set(DATASETS)


def test_catalogue_is_dcat_with_licence_and_attribution(api, published):
    r = httpx.get(api + "/api/v1/open-data")
    assert r.status_code == 200 and r.headers["content-type"] == "application/ld+json"
    body = r.json()
    assert body["@type"] == "dcat:Catalog" and "dcat" in body["@context"]
    datasets = {d["dct:identifier"]: d for d in body["dcat:dataset"]}
    assert set(datasets) == set(DATASETS)
    for name, d in datasets.items():
        titles = {t["@language"]: t["@value"] for t in d["dct:title"]}
        assert titles["ja"] == DATASETS[name].title[0] and titles["en"]
        assert d["dct:license"]["@id"] == LICENSE_URL
        assert d["cc:attributionText"].startswith("出典：") and LICENSE_URL in \
            d["cc:attributionText"]
        assert d["dct:publisher"]["foaf:name"][0]["@language"] == "ja"
        assert len(d["dct:modified"]) == 10
        media = {x["dcat:mediaType"]: x["dcat:downloadURL"]["@id"]
                 for x in d["dcat:distribution"]}
        assert set(media) == {"text/csv", "application/json", "application/geo+json"}
        assert media["text/csv"].endswith(f"/api/v1/open-data/{name}.csv")
    assert datasets["harvest-forecast"]["dct:modified"] >= "2026-08-20"


def test_field_conditions_suppress_cells_of_fewer_than_3_farms(api, published):
    items = _download(api, "field-conditions-daily", "json", start=DAY,
                      end="2026-07-02").json()["items"]
    cells = {(i["day"], i["municipality"]): i for i in items
             if i["metric"] == "water_temp" and i["municipality"] in (TWO, THREE)}
    assert cells[(DAY, THREE)] == {
        "day": DAY, "municipality": THREE, "municipality_code": None,
        "municipality_ja": THREE, "metric": "water_temp", "unit": "Cel",
        "mean": 23.25, "min": 19.0, "max": 26.0, "farms": 3, "fields": 3,
        "suppressed": False}
    for key in ((DAY, TWO), ("2026-07-02", THREE)):  # 2 farms (3 fields), 2 farms
        cell = cells[key]
        assert cell["suppressed"] is True
        assert [cell[k] for k in ("mean", "min", "max", "farms", "fields")] == [None] * 5
    raw = _download(api, "field-conditions-daily", "csv", start=DAY, end="2026-07-02").content
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    by_key = {(r["日付"], r["市町村"]): r for r in rows if r["項目"] == "water_temp"}
    assert by_key[(DAY, THREE)]["平均"] == "23.25" and by_key[(DAY, THREE)]["秘匿"] == ""
    two = by_key[(DAY, TWO)]
    assert two["秘匿"] == "x" and two["平均"] == two["最小"] == two["農家数"] == ""
    text = raw.decode("utf-8-sig")
    for secret in [*FIELDS, "od-farmer", *STATIONS]:
        assert secret not in text


def test_weather_names_no_station(api, published):
    r = _download(api, "weather-daily", "json", start=DAY, end=DAY)
    cells = {(i["municipality"], i["metric"]): i for i in r.json()["items"]
             if i["municipality"] in (TWO, THREE)}
    air = cells[(THREE, "air_temp")]
    assert (air["mean"], air["min"], air["max"], air["stations"], air["daily_total"]) == \
        (21.5, 15.0, 28.0, 2, None)
    assert cells[(THREE, "precipitation")]["daily_total"] == 10.0
    assert cells[(TWO, "air_temp")]["stations"] == 1
    for fmt in ("json", "csv", "geojson"):
        text = _download(api, "weather-daily", fmt, start=DAY, end=DAY).text
        for secret in [*STATIONS, *FIELDS, "od-farmer"]:
            assert secret not in text, (fmt, secret)


def test_harvest_forecast_by_area(api, published):
    items = _download(api, "harvest-forecast", "json", start="2026-01-01",
                      end="2026-12-31").json()["items"]
    cells = {i["municipality"]: i for i in items if i["municipality"] in (TWO, THREE)}
    assert cells[THREE] == {
        "year": 2026, "municipality": THREE, "municipality_code": None,
        "municipality_ja": THREE, "forecast_as_of": "2026-08-20",
        "earliest_opening": "2026-09-10", "median_opening": "2026-09-12",
        "latest_opening": "2026-09-15", "median_closing": "2026-09-22",
        "farms": 3, "fields": 3, "suppressed": False}
    assert cells[TWO]["suppressed"] is True and cells[TWO]["earliest_opening"] is None
    # as the forecast stood on 1 August: one field, suppressed
    early = _download(api, "harvest-forecast", "json", start="2026-01-01",
                      end="2026-08-01").json()["items"]
    assert [i["suppressed"] for i in early if i["municipality"] == THREE] == [True]


def test_geojson_places_municipalities_not_farms(api, published):
    body = _download(api, "harvest-forecast", "geojson", start="2026-01-01",
                     end="2026-12-31").json()
    assert body["type"] == "FeatureCollection"
    places = {f["properties"]["municipality"]: f["geometry"] for f in body["features"]}
    assert places[TWO] is None  # two farms: no point that would show where they are
    point = places[THREE]
    assert point["type"] == "Point"
    lon, lat = point["coordinates"]
    assert (round(lon, 2), round(lat, 2)) == (lon, lat)
    assert abs(lon - 141.104) < 0.01 and abs(lat - 40.9) < 0.01


def test_showcase(api, people, published):
    app = {"name": "収穫カレンダー", "organisation": "テスト団体",
           "url": "https://harvest.example.jp/", "datasets": ["harvest-forecast"],
           "description": "市町村別の収穫適期"}
    assert httpx.post(api + "/api/v1/showcase", json=app).status_code == 401
    r = httpx.post(api + "/api/v1/showcase", headers=_h(people["od-farmer"]), json=app)
    assert r.status_code == 403
    made = []
    for n in range(3):
        r = httpx.post(api + "/api/v1/showcase", headers=_h(people["od-planner"]),
                       json={**app, "name": f"{app['name']} {n}"})
        assert r.status_code == 201, r.text
        made.append(r.json()["id"])
    first = httpx.get(api + "/api/v1/showcase", params={"limit": 2}).json()  # no account
    assert [i["id"] for i in first["items"]] == made[::-1][:2] and first["next"]
    second = httpx.get(api + "/api/v1/showcase", params={"limit": 2,
                                                         "cursor": first["next"]}).json()
    assert second["items"][0]["id"] == made[0]
    assert "registered_by" not in first["items"][0]
    assert first["items"][0]["datasets"] == ["harvest-forecast"]
    for bad in ({**app, "registered_by": "someone"}, {**app, "id": 1},
                {**app, "url": "javascript:alert(1)"}, {**app, "datasets": ["nope"]},
                {**app, "name": "a\x00b"}, {**app, "url": "https://x/\x00"},
                {**app, "datasets": ["harvest-forecast"] * 10}):
        r = httpx.post(api + "/api/v1/showcase", headers=_h(people["od-planner"]), json=bad)
        assert r.status_code == 422, (bad, r.text)


def test_hostile_downloads(api, published):
    base = api + "/api/v1/open-data/"
    cases = [
        ("field-conditions-daily.csv", {"start": "2025-01-01", "end": "2026-12-31"}, 422,
         "at most 400 days"),
        ("field-conditions-daily.csv", {"start": "2026-07-02", "end": "2026-07-01"}, 422,
         "start"),
        ("field-conditions-daily.json", {"start": "2026-02-30"}, 422, "date"),
        ("field-conditions-daily.json", {"start": "-1"}, 422, "date"),
        ("field-conditions-daily.json", {"start": "0001-01-01", "end": "9999-12-31"}, 422, ""),
        ("field-conditions-daily.xml", {}, 422, "csv"),
        ("farmers.csv", {}, 404, "choose one of"),
        ("..%2F..%2Fetc%2Fpasswd.csv", {}, 404, ""),
        ("%00.csv", {}, 400, "NUL"),
        ("weather-daily.csv", {"start": "2026-07-01\x00"}, 400, "NUL"),
    ]
    for path, params, status, words in cases:
        r = httpx.get(base + path, params=params)
        assert r.status_code == status, (path, params, r.text)
        assert words in r.json()["detail"] if isinstance(r.json()["detail"], str) \
            else words in orjson.dumps(r.json()).decode(), (path, r.text)
