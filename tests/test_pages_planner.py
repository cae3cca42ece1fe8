"""The plan office's pages through a real `agri api` and real sessions: the
KPI page and its CSV (BOM, parses, the counts of what this test made), the
initiatives register kept through its form (officers only in their region),
the open-data catalogue and showcase that need no account, and hostile
input in their forms."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime

import orjson
import psycopg
import pytest

from agri.api.field_registry import import_fields, parse_features
from tests.fix_pages import PageClient, login
from tests.test_pages_officer import field, make_people

TOWN, OTHER_TOWN = "Hiranai", "Imabetsu"
TOWN_JA = "平内町"
YEAR = 2031  # a fiscal year no other test counts in


@pytest.fixture(scope="module")
def world(platform):
    with psycopg.connect(platform.db_url) as conn:
        people = make_people(conn, [
            ("pp-planner", "planner", []), ("pp-officer", "officer", [TOWN]),
            ("pp-other-officer", "officer", [OTHER_TOWN]), ("pp-farmer", "farmer", [])])
        import_fields(conn, parse_features({"type": "FeatureCollection", "features": [
            field("pp-f1", "平内 一番", "pp-farmer", TOWN, 140.9500, 40.9200)]}))
        # Drone flights of the fiscal year: two sprays (0.5 ha and 1.25 ha) and a survey.
        for n, (kind, area) in enumerate((("spray", 5000), ("spray", 12500), ("survey", None))):
            body = {"sprayed_area_m2": area} if area is not None else {}
            conn.execute(
                "INSERT INTO drone_records (drone_id, time, kind, field_id, body, received_at) "
                "VALUES ('pp-drone', %s, %s, 'pp-f1', %s::jsonb, now())",
                (datetime(YEAR, 7, 1 + n, 1, tzinfo=UTC), kind,
                 orjson.dumps(body).decode()))
    return people


def client_of(api, world, name: str) -> PageClient:
    return login(api, name, world[name].password)


def kpi_rows(client: PageClient, query: str = f"year={YEAR}") -> tuple[bytes, list[dict]]:
    r = client.get(f"/kpis.csv?{query}")
    assert r.status_code == 200, r.text[:300]
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    return r.content, list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"),
                                                      newline="")))


def test_initiatives_recorded_through_the_form_are_counted_in_the_csv(api, world, platform):
    officer = client_of(api, world, "pp-officer")
    planner = client_of(api, world, "pp-planner")
    for who, name, status in ((officer, "スマート水管理の実証", "active"),
                              (planner, "ドローン散布の実証", "ended"),
                              (planner, "来年の計画", "planned")):
        r = who.form("/initiatives", name=name, kind="water_management", municipality=TOWN,
                     started_on=f"{YEAR}-05-01", status=status,
                     evidence="https://www.example.jp/news/1\n報告書あり")
        assert r.status_code == 303, r.text[:500]
    page = officer.get("/initiatives?done=added")
    assert "スマート水管理の実証" in page.text and "登録しました" in page.text
    # An officer records only in their region; nothing is stored otherwise.
    other = client_of(api, world, "pp-other-officer")
    r = other.form("/initiatives", name="よその取組", kind="drone", municipality=TOWN,
                   started_on=f"{YEAR}-05-01", status="active")
    assert r.status_code == 403
    assert platform.sql("SELECT count(*) FROM initiatives WHERE name = 'よその取組'")[0][0] == 0
    assert "スマート水管理の実証" not in other.get("/initiatives").text

    body, rows = kpi_rows(planner)
    assert body.startswith(b"\xef\xbb\xbf") and b"\r\n" in body
    mine = [r for r in rows if r["市町村"] in (TOWN, TOWN_JA)]
    counted = {(r["指標"], r["種別"]): (int(r["件数"]), r["散布面積(ha)"]) for r in mine}
    # Active and ended initiatives count, the planned one not.
    assert counted[("「農業×Tech：アグリテック」の取組数", "水管理")] == (2, "")
    assert counted[("ドローン飛行数", "散布")] == (2, "1.75")
    assert counted[("ドローン飛行数", "空撮")][0] == 1
    # The KPI page shows the same, with a bar chart per indicator and the CSV link.
    page = planner.get(f"/kpis?year={YEAR}")
    assert page.status_code == 200
    assert page.text.count('class="chart"') >= 2
    assert re.search(rf'href="/kpis\.csv\?[^"]*year={YEAR}', page.text)
    assert "1.75 ha" in page.text
    # An officer counts their region only.
    _, theirs = kpi_rows(other)
    assert not [r for r in theirs if r["市町村"] in (TOWN, TOWN_JA)]


def test_the_kpi_pages_are_not_for_farmers_and_take_any_query(api, world):
    farmer = client_of(api, world, "pp-farmer")
    for path in ("/kpis", "/kpis.csv", "/initiatives"):
        assert farmer.get(path).status_code == 403, path
    assert PageClient(api).get("/kpis").status_code == 303  # sign in first
    planner = client_of(api, world, "pp-planner")
    for query in ("year=99999", "year=abc", "year_basis=lunar", "municipality=" + "x" * 5000,
                  "municipality=%E2%80%AE", "year=-1&year_basis=calendar"):
        assert planner.get(f"/kpis?{query}").status_code == 200, query
        assert planner.get(f"/kpis.csv?{query}").status_code == 200, query
    assert planner.get("/kpis?year=%00").status_code == 400


def test_hostile_input_in_the_register(api, world, platform):
    planner = client_of(api, world, "pp-planner")
    before = platform.sql("SELECT count(*) FROM initiatives")[0][0]
    for data in ({"name": "NUL\x00", "kind": "drone"}, {"name": "x" * 201, "kind": "drone"},
                 {"name": "ok", "kind": "teleport"}, {"name": "ok", "kind": "drone",
                                                      "municipality": "Atlantis"},
                 {"name": "ok", "kind": "drone", "started_on": "2031-02-30"},
                 {"name": "ok", "kind": "drone", "evidence": "e" * 3000},
                 {"name": "", "kind": "drone"}):
        form = {"municipality": TOWN, "started_on": f"{YEAR}-05-01", "status": "active",
                "evidence": ""} | data
        r = planner.form("/initiatives", **form)
        assert r.status_code == 422, (data, r.status_code)
        assert "\x00" not in r.text
    r = planner.post("/initiatives", data={"name": "no csrf", "kind": "drone",
                                           "municipality": TOWN, "started_on": "2031-05-01",
                                           "status": "active"})
    assert r.status_code == 403
    assert platform.sql("SELECT count(*) FROM initiatives")[0][0] == before


def test_open_data_and_the_showcase_need_no_account(api, world, platform):
    anonymous = PageClient(api)
    page = anonymous.get("/open-data")
    assert page.status_code == 200
    assert "公共データ利用規約" in page.text and "CC BY 4.0" in page.text
    assert "public_data_license_v1.0" in page.text
    # The plan office publishes a dataset from the page; anyone then downloads it.
    planner = client_of(api, world, "pp-planner")
    r = planner.form("/open-data", action="/open-data/harvest-forecast/publication",
                     published="1")
    assert r.status_code == 303
    page = anonymous.get("/open-data")
    assert "/api/v1/open-data/harvest-forecast.csv" in page.text
    download = anonymous.get("/api/v1/open-data/harvest-forecast.csv")
    assert download.status_code == 200 and download.content.startswith(b"\xef\xbb\xbf")
    # Nobody else publishes.
    farmer = client_of(api, world, "pp-farmer")
    r = farmer.form("/fields", action="/open-data/weather-daily/publication", published="1")
    assert r.status_code == 403
    r = planner.form("/open-data", action="/open-data/../../etc/publication", published="1")
    assert r.status_code == 404

    assert anonymous.get("/showcase").status_code == 200
    r = planner.form("/showcase", name="収穫カレンダー pp", organisation="平内町の有志",
                     url="https://harvest.example.jp/", dataset="harvest-forecast",
                     description="刈り取りの予定を地図で")
    assert r.status_code == 303, r.text[:500]
    shown = anonymous.get("/showcase")
    assert "収穫カレンダー pp" in shown.text and "https://harvest.example.jp/" in shown.text
    for data in ({"url": "javascript:alert(1)"}, {"name": "NUL\x00"}, {"name": "n" * 300},
                 {"dataset": "secret-farm-list"}, {"url": "https://x.jp/" + "a" * 600},
                 {"description": "d" * 3000}):
        form = {"name": "悪い入力", "organisation": "org", "url": "https://ok.example.jp/"} | data
        r = planner.form("/showcase", **form)
        assert r.status_code == 422, (list(data), r.status_code)
    assert platform.sql("SELECT count(*) FROM showcase_apps WHERE name = '悪い入力'")[0][0] == 0
    r = farmer.form("/fields", action="/showcase", name="x", organisation="y",
                    url="https://x.example.jp/")
    assert r.status_code == 403
