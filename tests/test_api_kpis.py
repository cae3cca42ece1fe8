"""The plan office's indicators and the initiatives register, against a real
`agri api` process: counts of what the tests store themselves (devices,
daily rollups, drone records, initiatives) by fiscal and calendar year, the
CSV that Japanese Excel opens, who may see which rows, and hostile input."""

from __future__ import annotations

import csv
import io

import httpx
import orjson
import psycopg
import pytest

from agri.api.accounts import add_user
from agri.api.field_registry import import_fields, parse_features
from agri.clock import today_local

TOWN_A, TOWN_B = "KpiTownA", "KpiTownB"
# Devices are registered today: their prototypes count in this year.
TODAY = today_local()
THIS_FY = TODAY.year if TODAY.month >= 4 else TODAY.year - 1


def square(fid: str, owner: str, municipality: str, lon: float, lat: float) -> dict:
    d = 0.0004
    return {"type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [[
                [lon, lat], [lon + d, lat], [lon + d, lat + d], [lon, lat + d], [lon, lat]]]},
            "properties": {"id": fid, "name": fid, "owner": owner,
                           "cultivar": "seiten-no-hekireki", "transplanted_on": "2026-05-20",
                           "municipality": municipality}}


def execute(platform, query: str, params: tuple = ()) -> None:
    with psycopg.connect(platform.db_url) as conn:
        conn.execute(query, params)


@pytest.fixture(scope="module")
def people(platform):
    with psycopg.connect(platform.db_url) as conn:
        tokens = {name: add_user(conn, name=name, role=role, regions=regions).token
                  for name, role, regions in [
                      ("kpi-planner", "planner", []),
                      ("kpi-officer-a", "officer", [TOWN_A]),
                      ("kpi-officer-none", "officer", []),
                      ("kpi-farmer", "farmer", []),
                      ("kpi-dev", "developer", [])]}
        import_fields(conn, parse_features({"type": "FeatureCollection", "features": [
            square("kpi-a1", "kpi-farmer", TOWN_A, 140.70, 40.70),
            square("kpi-b1", "kpi-farmer-b", TOWN_B, 140.71, 40.70)]}), create_owners=True)
    platform.add_device("kpi-pw-a1", "paddy-water", field_id="kpi-a1")
    platform.add_device("kpi-proto-a1", "paddy-water", field_id="kpi-a1", owner="kpi-dev",
                        prototype=True, organisation="KPI Lab")
    platform.add_device("kpi-proto-b1", "soil", field_id="kpi-b1", owner="kpi-dev",
                        prototype=True, organisation="KPI Lab")
    # Daily rollups as ingest writes them: the paddy sensor reported in May
    # (fiscal 2026), the prototype on the same field in March (fiscal 2025).
    execute(platform, "INSERT INTO readings_daily (device_id, metric, day, min, max, sum, count) "
                 "VALUES ('kpi-pw-a1', 'water_temp', '2026-05-10', 18, 22, 2000, 100), "
                 "('kpi-proto-a1', 'water_temp', '2026-03-20', 8, 12, 1000, 100), "
                 "('kpi-proto-b1', 'soil_temp', '2026-06-10', 15, 17, 1600, 100), "
                 # years before: 2022 and 2024, not 2023 or 2025
                 "('kpi-proto-b1', 'soil_temp', '2022-06-10', 15, 17, 1600, 100), "
                 "('kpi-proto-b1', 'soil_ec', '2024-06-10', 0.1, 0.2, 15, 100)")
    # Flight records: a spray at 23:30 on 31 March (fiscal 2025) and one at
    # 00:30 on 1 April Tokyo time (still 31 March in UTC: fiscal 2026), a
    # survey naming its fields, and a spray whose area is not a number.
    records = [
        ("kpi-drone", "2026-03-31T23:30:00+09:00", "spray", "kpi-a1",
         {"field": "kpi-a1", "sprayed_area_m2": 1500.0}),
        ("kpi-drone", "2026-04-01T00:30:00+09:00", "spray", "kpi-a1",
         {"field": "kpi-a1", "sprayed_area_m2": 2500.0}),
        ("kpi-drone", "2026-06-01T10:00:00+09:00", "survey", None,
         {"fields": ["kpi-b1"], "block": "b"}),
        ("kpi-drone", "2026-06-02T06:00:00+09:00", "spray", "kpi-b1",
         {"field": "kpi-b1", "sprayed_area_m2": "lots"}),
    ]
    for drone, time, kind, field, body in records:
        execute(platform, "INSERT INTO drone_records (drone_id, time, kind, field_id, body, "
                     "received_at) VALUES (%s, %s, %s, %s, %s, now())",
                     (drone, time, kind, field, orjson.dumps(body).decode()))
    return tokens


def _h(token):
    return {"Authorization": f"Bearer {token}"} if token else {}


def _kpis(api, token, **params):
    r = httpx.get(api + "/api/v1/kpis", headers=_h(token), params=params)
    assert r.status_code == 200, r.text
    return r.json()


def _cells(body, municipality=None) -> dict:
    return {(r["year"], r["indicator"], r["kind"]): (r["count"], r["sprayed_area_ha"])
            for r in body["rows"] if municipality is None or r["municipality"] == municipality}


def _post(api, token, body):
    return httpx.post(api + "/api/v1/initiatives", headers=_h(token), json=body)


INITIATIVE = {"name": "水管理の自動化", "kind": "iot_sensor", "municipality": TOWN_A,
              "started_on": "2026-04-01", "status": "active",
              "evidence": "https://www.example.jp/water"}


@pytest.fixture(scope="module")
def register(api, people):
    made = [
        _post(api, people["kpi-officer-a"], INITIATIVE),
        _post(api, people["kpi-planner"], {**INITIATIVE, "name": "ドローン散布", "kind": "drone",
                                           "municipality": TOWN_B, "started_on": "2026-05-01"}),
        # planned: not counted yet; ended: counted in the year it started
        _post(api, people["kpi-planner"], {**INITIATIVE, "name": "計画", "status": "planned"}),
        _post(api, people["kpi-planner"], {**INITIATIVE, "name": "前年度", "status": "ended",
                                           "started_on": "2026-03-31"}),
    ]
    assert [r.status_code for r in made] == [201] * 4, [r.text for r in made]
    return [r.json() for r in made]


def test_counts_by_fiscal_year(api, people, register):
    body = _kpis(api, people["kpi-planner"], municipality=TOWN_A)
    assert body["year_basis"] == "fiscal" and body["year_label"] == "年度"
    assert _cells(body) == {
        (2025, "agritech_initiatives", "iot_sensor"): (1, None),
        (2026, "agritech_initiatives", "iot_sensor"): (1, None),
        (THIS_FY, "iot_prototypes", "KPI Lab"): (1, None),
        (2025, "fields_with_sensors", None): (1, None),
        (2026, "fields_with_sensors", None): (1, None),
        (2025, "drone_flights", "spray"): (1, 0.15),
        (2026, "drone_flights", "spray"): (1, 0.25),
    }
    town_b = _cells(_kpis(api, people["kpi-planner"], municipality=TOWN_B, year=2026))
    assert town_b == {
        (2026, "agritech_initiatives", "drone"): (1, None),
        **({(2026, "iot_prototypes", "KPI Lab"): (1, None)} if THIS_FY == 2026 else {}),
        (2026, "fields_with_sensors", None): (1, None),
        (2026, "drone_flights", "survey"): (1, None),
        (2026, "drone_flights", "spray"): (1, None),  # its area was not a number
    }
    years = {r["year"] for r in _kpis(api, people["kpi-planner"], municipality=TOWN_B)["rows"]
             if r["indicator"] == "fields_with_sensors"}
    assert years == {2022, 2024, 2026}
    side = {(s["year"], s["municipality"]): s for s in body["side_by_side"]}
    assert side[(2026, TOWN_A)]["register"] == {"agritech_initiatives": 1}
    assert side[(2026, TOWN_A)]["observed"] == {
        "iot_prototypes": int(THIS_FY == 2026), "iot_prototypes_passed": 0,
        "fields_with_sensors": 1, "drone_flights": 1,
        "sprayed_area_ha": 0.25}


def test_counts_by_calendar_year(api, people, register):
    body = _kpis(api, people["kpi-planner"], municipality=TOWN_A, year_basis="calendar")
    assert body["year_label"] == "年"
    assert _cells(body) == {
        (2026, "agritech_initiatives", "iot_sensor"): (2, None),
        (TODAY.year, "iot_prototypes", "KPI Lab"): (1, None),
        (2026, "fields_with_sensors", None): (1, None),  # two devices, one field
        (2026, "drone_flights", "spray"): (2, 0.4),
    }


def test_officer_sees_only_their_region(api, people, register):
    rows = _kpis(api, people["kpi-officer-a"])["rows"]
    municipalities = {r["municipality"] for r in rows}
    assert TOWN_A in municipalities and municipalities <= {TOWN_A, None}
    assert all(r["indicator"] in ("open_datasets", "open_data_apps")
               for r in rows if r["municipality"] is None)
    assert _cells(_kpis(api, people["kpi-officer-a"]), TOWN_A) == _cells(
        _kpis(api, people["kpi-planner"]), TOWN_A)
    nobody = _kpis(api, people["kpi-officer-none"])["rows"]
    assert all(r["municipality"] is None for r in nobody)
    listed = httpx.get(api + "/api/v1/initiatives", headers=_h(people["kpi-officer-a"]),
                       params={"limit": 1000}).json()["items"]
    assert {i["municipality"] for i in listed} == {TOWN_A}
    b = register[1]["id"]
    r = httpx.get(api + f"/api/v1/initiatives/{b}", headers=_h(people["kpi-officer-a"]))
    assert r.status_code == 404
    r = httpx.patch(api + f"/api/v1/initiatives/{b}", headers=_h(people["kpi-officer-a"]),
                    json={"status": "ended"})
    assert r.status_code == 404
    r = _post(api, people["kpi-officer-a"], {**INITIATIVE, "municipality": TOWN_B})
    assert r.status_code == 403 and "region" in r.json()["detail"]
    r = _post(api, people["kpi-officer-none"], INITIATIVE)
    assert r.status_code == 403
    r = _post(api, people["kpi-officer-a"], {**INITIATIVE, "municipality": "弘前市"})
    assert r.status_code == 403
    r = _post(api, people["kpi-planner"], {**INITIATIVE, "municipality": "Atlantis"})
    assert r.status_code == 422 and "unknown municipality" in r.json()["detail"]


def test_farmers_and_developers_may_not(api, people):
    for who in ("kpi-farmer", "kpi-dev"):
        for path in ("/api/v1/kpis", "/api/v1/kpis.csv", "/api/v1/initiatives"):
            r = httpx.get(api + path, headers=_h(people[who]))
            assert r.status_code == 403, (who, path, r.text)
        assert _post(api, people[who], INITIATIVE).status_code == 403
    assert httpx.get(api + "/api/v1/kpis").status_code == 401


def test_csv_opens_in_japanese_excel(api, people, register):
    r = httpx.get(api + "/api/v1/kpis.csv", headers=_h(people["kpi-planner"]),
                  params={"municipality": TOWN_A, "year": 2026})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    raw = r.content
    assert raw.startswith(b"\xef\xbb\xbf")
    text = raw.decode("utf-8-sig")
    assert text.count("\r\n") == text.count("\n") and text.endswith("\r\n")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == ["年度", "市町村", "指標", "種別", "出所", "件数", "散布面積(ha)"]
    got = {(r[0], r[1], r[2], r[3], r[4]): (r[5], r[6]) for r in rows[1:]}
    expected = {
        ("2026", TOWN_A, "「農業×Tech：アグリテック」の取組数", "IoTセンサー", "登録簿"): ("1", ""),
        ("2026", TOWN_A, "センサーのある圃場数", "", "プラットフォーム観測"): ("1", ""),
        ("2026", TOWN_A, "ドローン飛行数", "散布", "プラットフォーム観測"): ("1", "0.25"),
    }
    if THIS_FY == 2026:
        expected["2026", TOWN_A, "IoT関連試作品の数", "KPI Lab",
                 "プラットフォーム観測"] = ("1", "")
    assert got == expected
    # Japanese names in, the platform's name stored, the Japanese one in the CSV
    r = _post(api, people["kpi-planner"], {**INITIATIVE, "municipality": "弘前市",
                                           "kind": "other", "started_on": "2019-06-01"})
    assert r.status_code == 201 and r.json()["municipality"] == "Hirosaki", r.text
    old = httpx.get(api + "/api/v1/kpis.csv", headers=_h(people["kpi-planner"]),
                    params={"municipality": "Hirosaki", "year": 2019})
    rows = list(csv.reader(io.StringIO(old.content.decode("utf-8-sig"), newline="")))
    assert ["2019", "弘前市", "「農業×Tech：アグリテック」の取組数", "その他", "登録簿", "1",
            ""] in rows
    calendar = httpx.get(api + "/api/v1/kpis.csv", headers=_h(people["kpi-planner"]),
                         params={"year_basis": "calendar", "municipality": TOWN_A})
    assert calendar.content.decode("utf-8-sig").startswith("年,市町村,")


def test_open_data_counts_are_prefecture_wide(api, people, platform):
    def counts():
        totals = _kpis(api, people["kpi-planner"], year=THIS_FY)["totals"]
        return {t["indicator"]: t["count"] for t in totals}

    before = counts()
    r = httpx.post(api + "/api/v1/showcase", headers=_h(people["kpi-planner"]),
                   json={"name": "KPIテストアプリ", "organisation": "テスト",
                         "url": "https://app.example.jp/", "datasets": ["weather-daily"]})
    assert r.status_code == 201, r.text
    first = platform.sql("SELECT published_at FROM open_datasets WHERE name = 'weather-daily'")
    r = httpx.post(api + "/api/v1/open-data/weather-daily/publish",
                   headers=_h(people["kpi-planner"]), json={"published": True})
    assert r.status_code == 200 and r.json()["published"], r.text
    after = counts()
    assert after.get("open_data_apps", 0) == before.get("open_data_apps", 0) + 1
    published_now = not first or first[0][0] is None
    assert after.get("open_datasets", 0) == before.get("open_datasets", 0) + published_now
    officer = _kpis(api, people["kpi-officer-a"], year=THIS_FY)["totals"]
    assert {t["indicator"]: t["count"] for t in officer}["open_data_apps"] == \
        after["open_data_apps"]


def test_register_pages_and_edits(api, people, register):
    token = people["kpi-planner"]
    seen, cursor = [], None
    for _ in range(100):
        params = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        body = httpx.get(api + "/api/v1/initiatives", headers=_h(token), params=params).json()
        assert len(body["items"]) <= 1
        seen += [i["id"] for i in body["items"]]
        cursor = body["next"]
        if cursor is None:
            break
    assert {i["id"] for i in register} <= set(seen) and seen == sorted(seen, reverse=True)
    first = register[0]
    assert first["recorded_by"] == "kpi-officer-a" and first["kind_ja"] == "IoTセンサー"
    r = httpx.patch(api + f"/api/v1/initiatives/{first['id']}", headers=_h(token),
                    json={"status": "ended", "evidence": "報告書 p.3\n2026年度"})
    assert r.status_code == 200, r.text
    changed = r.json()
    assert changed["status"] == "ended" and changed["updated_by"] == "kpi-planner"
    assert changed["recorded_by"] == "kpi-officer-a" and changed["name"] == first["name"]
    stored = httpx.get(api + f"/api/v1/initiatives/{first['id']}", headers=_h(token)).json()
    assert stored == changed and stored["evidence"] == "報告書 p.3\n2026年度"


def test_hostile_input(api, people, register):
    token = people["kpi-planner"]
    for params in ({"year": -1}, {"year": 99999}, {"year": "2026; DROP TABLE x"},
                   {"municipality": "A\x00B"}, {"municipality": "x" * 101},
                   {"year_basis": "lunar"}):
        for path in ("/api/v1/kpis", "/api/v1/kpis.csv"):
            r = httpx.get(api + path, headers=_h(token), params=params)
            # a NUL byte is refused before routing (400), anything else by validation
            assert r.status_code in (400, 422), (path, params, r.text)
            assert "detail" in r.json()
    bad_bodies = [
        {**INITIATIVE, "recorded_by": "someone-else"},
        {**INITIATIVE, "id": 1},
        {**INITIATIVE, "kind": "rocket"},
        {**INITIATIVE, "status": "done"},
        {**INITIATIVE, "name": "a\x00b"},
        {**INITIATIVE, "municipality": "Town\x00"},
        {**INITIATIVE, "started_on": "2026-02-30"},
        {**INITIATIVE, "name": ""},
        {**INITIATIVE, "evidence": "x" * 2001},
        {k: v for k, v in INITIATIVE.items() if k != "kind"},
    ]
    for body in bad_bodies:
        r = _post(api, token, body)
        assert r.status_code in (400, 422), (body, r.text)
    r = httpx.post(api + "/api/v1/initiatives", headers={**_h(token),
                   "Content-Type": "application/json"}, content=b"\x00{not json")
    assert r.status_code == 422
    target = register[0]["id"]
    for body in ({"recorded_by": "x"}, {"updated_at": "2020-01-01"}, {"name": None},
                 {"kind": None}):
        r = httpx.patch(api + f"/api/v1/initiatives/{target}", headers=_h(token), json=body)
        assert r.status_code == 422, (body, r.text)
    for path in ("/api/v1/initiatives/0", "/api/v1/initiatives/99999999999999999999",
                 "/api/v1/initiatives/%00", "/api/v1/initiatives/abc"):
        assert httpx.get(api + path, headers=_h(token)).status_code in (400, 422), path
    assert httpx.get(api + "/api/v1/initiatives/999999999",
                     headers=_h(token)).status_code == 404
    r = httpx.get(api + "/api/v1/initiatives", headers=_h(token),
                  params={"cursor": 2**64})
    assert r.status_code == 422
