"""The device pages through a real `agri api` and real sessions, over
readings written by ingest's writer: a farmer's device that has gone silent
with its battery running out shows on the device list, the device page, the
field list and the field page; another farmer sees none of it; an officer
counts the region's device alerts and not another region's; English;
caching; small pages; planners and hostile ids refused."""

from __future__ import annotations

import re
import time
from datetime import date, datetime

import httpx
import psycopg
import pytest

from agri.api.field_registry import import_fields, parse_features
from agri.api.web.render import PAGE_CACHE
from agri.clock import TZ
from tests.fix_pages import login
from tests.test_device_health import _regular, _write
from tests.test_pages_officer import field, make_people

TOWN, OTHER_TOWN = "Sotogahama", "Yomogita"
HOUR = 3600
MAX_PAGE_BYTES = 60_000


@pytest.fixture(scope="module")
def world(platform, api):
    with psycopg.connect(platform.db_url) as conn:
        people = make_people(conn, [
            ("pd-farmer", "farmer", []), ("pd-other", "farmer", []),
            ("pd-officer", "officer", [TOWN]), ("pd-far-officer", "officer", [OTHER_TOWN]),
            ("pd-planner", "planner", [])])
        import_fields(conn, parse_features({"type": "FeatureCollection", "features": [
            field("pd-f1", "外ヶ浜 一番", "pd-farmer", TOWN, 140.6300, 41.0500),
            field("pd-k1", "蓬田 よその田", "pd-other", OTHER_TOWN, 140.6500, 40.9600)]}))
    platform.add_device("pd-weak", "paddy-water", field_id="pd-f1", owner="pd-farmer")
    platform.add_device("pd-theirs", "paddy-water", field_id="pd-k1", owner="pd-other")
    now = time.time()
    last = now - 2 * HOUR  # pd-weak went silent two hours ago ...
    # Levels that vary (3 to 5 cm): a flat series can hang the chart's ticks (svg_charts).
    rows = [(d, m, t, v + (int(t) // 600 % 3) * 0.01, r)
            for d, m, t, v, r in _regular("pd-weak", start=now - 26 * HOUR, end=last,
                                          value=0.03)]
    # ... with its battery falling 10 %/day to 30 % then: empty about three days later.
    rows += [("pd-weak", "battery", last - h * HOUR, 30.0 + 10.0 * h / 24, last - h * HOUR)
             for h in range(7 * 24)]
    # The other farmer's device reports, with its battery low.
    rows += [(d, m, t, v + (int(t) // 600 % 3) * 0.01, r)
             for d, m, t, v, r in _regular("pd-theirs", start=now - 2 * HOUR, end=now,
                                           value=0.03)]
    rows += [("pd-theirs", "battery", now - h * HOUR, 15.0, now - h * HOUR) for h in range(3)]
    _write(platform, rows)
    clients = {name: login(api, name, made.password) for name, made in people.items()}
    return {"clients": clients}


def _days_left(html: str) -> int:
    found = re.search(r"センサー pd-weak の電池があと(\d+)日でなくなります", html)
    assert found, html[:2000]
    return int(found.group(1))


def test_the_farmer_sees_the_silent_device_and_its_battery_on_the_device_list(world):
    farmer = world["clients"]["pd-farmer"]
    page = farmer.get("/devices")
    assert page.status_code == 200 and page.headers["cache-control"] == PAGE_CACHE
    assert len(page.content) < MAX_PAGE_BYTES
    html = page.text
    assert 'href="/devices/pd-weak"' in html and "pd-theirs" not in html
    # Each alert in colour, a symbol and words: running out within 3 days is critical.
    assert '<span class="badge b-red">‼ すぐ対応</span> 電池は' in html
    assert '<span class="badge b-yellow">! 注意</span> 2.0 時間データが届いていません' in html
    assert "電池: 30%" in html and "切れる見込み 20" in html
    assert "最後に届いた時刻: " in html and "2時間前" in html
    assert re.search(r"データ時刻 \d{4}-\d\d-\d\d \d\d:\d\d", html)
    assert 'href="/devices"' in html  # the header's link to the device pages
    # Only devices with alerts: the same device, and the list says what it shows.
    alerts = farmer.get("/devices?alerts=1")
    assert alerts.status_code == 200 and 'href="/devices/pd-weak"' in alerts.text


def test_the_device_page_shows_the_health_in_full(world):
    farmer = world["clients"]["pd-farmer"]
    page = farmer.get("/devices/pd-weak")
    assert page.status_code == 200 and page.headers["cache-control"] == PAGE_CACHE
    assert len(page.content) < MAX_PAGE_BYTES
    html = page.text
    assert "<h1>pd-weak</h1>" in html and 'href="/fields/pd-f1"' in html
    days = _days_left(html)
    assert 2 <= days <= 3
    empty = re.search(r"切れる見込み (\d{4}-\d\d-\d\d)", html).group(1)
    today = datetime.now(TZ).date()
    assert (date.fromisoformat(empty) - today).days in (days - 1, days, days + 1)
    assert "1日に -10.00% の変化" in html
    assert "センサー pd-weak から2時間データが届いていません" in html
    assert "水位" in html and "water_level" in html and "(10分ごと)" in html
    assert "時計" in html and "品質チェック (過去3日)" in html and "指摘はありません" in html
    assert "<h2>電波</h2>" not in html  # no radio readings
    shown = re.search(r"最後に届いた時刻</dt><dd>(\S+ \S+)", html).group(1)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", shown)
    assert f"データ時刻 {shown}" in html  # the data time is the last arrival, Japan time
    assert "+09:00" not in shown and TZ.key == "Asia/Tokyo"


def test_the_field_list_shows_the_device_alerts(world):
    # (The field page itself shows its status reasons, a stale sensor or a low
    # battery among them, and links to the devices page from its header: the
    # full health of every device would cost the page more than it draws.)
    farmer = world["clients"]["pd-farmer"]
    html = farmer.get("/fields").text
    assert 'href="/devices/pd-weak">センサー pd-weak の電池があと' in html
    assert "センサー pd-weak から2時間データが届いていません" in html
    assert "pd-theirs" not in html
    field_page = farmer.get("/fields/pd-f1")
    assert 'href="/devices"' in field_page.text and len(field_page.content) < MAX_PAGE_BYTES


def test_another_farmer_gets_the_missing_page_and_sees_no_alerts_of_it(world):
    other = world["clients"]["pd-other"]
    r = other.get("/devices/pd-weak")
    assert r.status_code == 404 and "ページが見つかりません" in r.text
    assert r.headers["cache-control"] == "no-store"
    assert "pd-weak" not in other.get("/devices").text
    assert "pd-weak" not in other.get("/fields").text
    # Their own device and its low battery, on their list of fields.
    html = other.get("/fields").text
    assert 'href="/devices/pd-theirs">センサー pd-theirs の電池残量が 15% です' in html


def test_an_officer_counts_the_regions_device_alerts_only(world):
    officer = world["clients"]["pd-officer"]
    region = officer.get("/region")
    assert region.status_code == 200
    html = region.text
    assert "担当地域の機器の注意" in html and 'href="/devices?alerts=1"' in html
    assert "1 台のうち 1 台に注意があります" in html
    assert "データが届かない: <b>1 台</b>" in html and "電池がもうすぐ切れる: <b>1 台</b>" in html
    assert "電池残量が少ない" not in html
    assert 'href="/devices"' in html  # the menu's entry
    listed = officer.get("/devices?alerts=1").text
    assert 'href="/devices/pd-weak"' in listed and "pd-theirs" not in listed
    assert officer.get("/devices/pd-theirs").status_code == 404
    assert officer.get("/devices/pd-weak").status_code == 200
    far = world["clients"]["pd-far-officer"]
    html = far.get("/region").text
    assert "電池残量が少ない: <b>1 台</b>" in html and "データが届かない" not in html
    assert far.get("/devices/pd-weak").status_code == 404
    assert "pd-weak" not in far.get("/devices").text


def test_english_with_lang_en(world):
    farmer = world["clients"]["pd-farmer"]
    page = farmer.get("/devices/pd-weak?lang=en")
    assert '<html lang="en">' in page.text and page.headers["content-language"] == "en"
    assert re.search(r"Sensor pd-weak: battery empty in \d+ days", page.text)
    assert "Sensor pd-weak: nothing received for 2 h" in page.text
    assert "Reporting (last 24 h)" in page.text and "Water level" in page.text
    assert "Devices" in farmer.get("/devices").text
    assert '<html lang="ja">' in farmer.get("/devices?lang=ja").text


def test_planners_and_hostile_ids_are_refused(world, api):
    planner = world["clients"]["pd-planner"]
    r = planner.get("/devices")
    assert r.status_code == 403 and "このページはこのアカウントでは使えません" in r.text
    assert planner.get("/devices/pd-weak").status_code == 404
    farmer = world["clients"]["pd-farmer"]
    for path in ("/devices/%3Cscript%3E", "/devices/" + "x" * 300, "/devices/..%2F..%2Fetc",
                 "/devices/pd-weak'--"):
        r = farmer.get(path)
        assert r.status_code == 404, path
        assert "ページが見つかりません" in r.text and "<script>" not in r.text, path
    r = farmer.get("/devices/pd-weak%00")  # refused before any page (api/middleware.py)
    assert r.status_code == 400 and "NUL" in r.text
    for query in ("after=%3Cscript%3E", "after=' OR 1=1--", "after=" + "a" * 65,
                  "alerts=2", "alerts=yes"):
        r = farmer.get("/devices?" + query)
        assert 400 <= r.status_code < 500, query
        assert "Traceback" not in r.text and "<script>" not in r.text
    assert farmer.get("/devices?after=pd-weak").status_code == 200
    r = httpx.get(api + "/devices")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
