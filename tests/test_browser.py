"""Each role's main task in Debian's Chromium at a phone's size, against a
real `agri api`: a farmer finds the field that needs water and reads its
advice (also with JavaScript off), an officer publishes an advisory that the
farmer then sees, a planner exports the KPI CSV and it holds the right
counts. On every page visited: no horizontal scrolling and no serious or
critical axe-core violation; a screenshot of each is kept in the folder the
test prints ($AGRI_TEST_ARTIFACTS, else a folder under pytest's basetemp).

The browser may reach only the API under test: any other request (a basemap
tile, a font) is aborted and would fail the page's check.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from agri.api.field_registry import import_fields, parse_features
from agri.clock import today_local
from tests.test_pages_officer import draft, field, make_people

pytestmark = pytest.mark.browser

TOWN = "Fukaura"
TOWN_JA = "深浦町"
YEAR = 2032  # a fiscal year no other test counts in
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 3,
         "is_mobile": True, "has_touch": True, "locale": "ja-JP"}
BAD_IMPACTS = ("serious", "critical")
TIMEOUT_MS = 15_000  # a step of a page that takes longer fails


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    where = os.environ.get("AGRI_TEST_ARTIFACTS")
    folder = Path(where) / "browser" if where else tmp_path_factory.mktemp("browser")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nbrowser screenshots in {folder}")  # noqa: T201 - where to find the artifacts
    return folder


@pytest.fixture(scope="module")
def world(platform):
    today = today_local()
    with psycopg.connect(platform.db_url) as conn:
        people = make_people(conn, [("pb-farmer", "farmer", []),
                                    ("pb-officer", "officer", [TOWN]),
                                    ("pb-planner", "planner", [])])
        import_fields(conn, parse_features({"type": "FeatureCollection", "features": [
            field("pb-wet", "深浦 上の田", "pb-farmer", TOWN, 139.9300, 40.6500),
            field("pb-dry", "深浦 下の田", "pb-farmer", TOWN, 139.9310, 40.6500)]}))
        with conn.transaction():
            for n in range(7):
                conn.execute("INSERT INTO field_water_bands (field_id, day, low_m, high_m, "
                             "phase, computed_for) VALUES ('pb-dry', %s, 0.03, 0.06, "
                             "'tillering', %s)", (today - timedelta(days=n), today))
            conn.execute("INSERT INTO field_water_status (field_id, computed_for, state, "
                         "off_hours, share_inside, latest_level_m) VALUES "
                         "('pb-dry', %s, 'below', 9, 0.2, 0.015), "
                         "('pb-wet', %s, 'inside', 0, 1.0, 0.05)", (today, today))
            advice = draft(conn, "pb:water:dry", TOWN, ["pb-dry"], "水を入れてください 深浦")
            conn.execute("UPDATE advisories SET status = 'published', published_at = now() "
                         "WHERE id = %s", (advice,))
            conn.execute("INSERT INTO advisory_publications (advisory_id, target, field_ids, "
                         "published_by) VALUES (%s, 'fields', '{pb-dry}', 'pb-officer')",
                         (advice,))
            review = draft(conn, "pb:water:wet", TOWN, ["pb-wet"], "中干しの準備 深浦")
            for n, status in enumerate(("active", "active", "ended", "planned")):
                conn.execute(
                    "INSERT INTO initiatives (name, kind, municipality, started_on, status, "
                    "recorded_by, updated_by) VALUES (%s, 'iot_sensor', %s, %s, %s, "
                    "'pb-planner', 'pb-planner')",
                    (f"深浦の実証 {n}", TOWN, f"{YEAR}-06-0{n + 1}", status))
    platform.add_device("pb-paddy", "paddy-water", field_id="pb-dry")
    with psycopg.connect(platform.db_url) as conn, conn.cursor() as cur:
        # A day of 20-minute readings, written with COPY as ingest writes them.
        times = conn.execute("SELECT now() - make_interval(mins => 20 * g) FROM "
                             "generate_series(0, 71) g").fetchall()
        with cur.copy("COPY readings (device_id, metric, time, value, received_at) "
                      "FROM STDIN") as copy:
            for (at,) in times:
                copy.write_row(("pb-paddy", "water_level", at, 0.015, at))
                copy.write_row(("pb-paddy", "water_temp", at, 22.5, at))
    return {"people": people, "review": review}


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("Debian's chromium is not installed at /usr/bin/chromium")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                    args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


class Phone:
    """A phone-sized browser context that checks every page it shows."""

    def __init__(self, browser, base: str, folder: Path, role: str, *, javascript=True):
        self.base, self.folder, self.role = base, folder, role
        self.javascript = javascript
        self.context = browser.new_context(java_script_enabled=javascript,
                                           accept_downloads=True, **PHONE)
        self.outside: list[str] = []
        self.context.route("**/*", self._only_the_api)
        self.context.set_default_timeout(TIMEOUT_MS)
        self.page = self.context.new_page()
        self.shots = 0

    def _only_the_api(self, route) -> None:
        if route.request.url.startswith(self.base):
            route.continue_()
        else:
            self.outside.append(route.request.url)
            route.abort()

    def check(self, what: str) -> None:
        """Screenshot, no horizontal scrolling, no serious axe violation."""
        from axe_playwright_python.sync_playwright import Axe

        page = self.page
        self.shots += 1
        page.screenshot(path=self.folder / f"{self.role}-{self.shots:02d}-{what}.png",
                        full_page=True)
        width = page.evaluate("document.scrollingElement.scrollWidth")
        inner = page.evaluate("window.innerWidth")
        assert width <= inner, f"{self.role} {what}: scrolls sideways ({width} > {inner})"
        if not self.javascript:
            # axe-core runs on the page's own timers, which do not run with
            # JavaScript off: the same pages are checked with it on.
            assert not self.outside, f"{self.role} {what} asked outside: {self.outside}"
            return
        results = Axe().run(page)
        bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
               for v in results.response["violations"] if v["impact"] in BAD_IMPACTS]
        assert not bad, f"{self.role} {what} ({page.url}): {bad}"
        assert not self.outside, f"{self.role} {what} asked outside the site: {self.outside}"

    def sign_in(self, name: str, password: str) -> None:
        page = self.page
        page.goto(self.base + "/login")
        self.check("login")
        page.fill("#name", name)
        page.fill("#password", password)
        page.click("button[type=submit]")
        page.wait_for_load_state()

    def close(self) -> None:
        self.context.close()


def farmer_task(phone: Phone, world) -> None:
    """Find the field that needs water and read its advice."""
    phone.sign_in("pb-farmer", world["people"]["pb-farmer"].password)
    page = phone.page
    page.goto(phone.base + "/fields")
    phone.check("fields")
    first = page.locator("p.notice a").first
    assert "深浦 下の田" in first.inner_text()
    first.click()
    page.wait_for_url("**/fields/pb-dry")
    phone.check("field")
    assert "水を入れてください 深浦" in page.inner_text("main")
    assert "水が足りません" in page.inner_text("main")
    page.click("header a[href='/devices']")
    page.wait_for_url("**/devices")
    phone.check("devices")
    page.click("a[href='/devices/pb-paddy']")
    page.wait_for_url("**/devices/pb-paddy")
    phone.check("device")
    assert "pb-paddy" in page.inner_text("h1")


def test_a_farmer_finds_the_dry_field_and_reads_the_advice(chromium, api, world, artifacts):
    phone = Phone(chromium, api, artifacts, "farmer")
    try:
        farmer_task(phone, world)
    finally:
        phone.close()


def test_the_farmers_task_works_without_javascript(chromium, api, world, artifacts):
    phone = Phone(chromium, api, artifacts, "farmer-nojs", javascript=False)
    try:
        farmer_task(phone, world)
    finally:
        phone.close()


def test_an_officer_publishes_and_the_farmer_then_sees_it(chromium, api, world, artifacts,
                                                          platform):
    phone = Phone(chromium, api, artifacts, "officer")
    try:
        phone.sign_in("pb-officer", world["people"]["pb-officer"].password)
        page = phone.page
        page.goto(api + "/region")
        phone.check("region")
        assert "深浦 上の田" in page.inner_text("main")
        page.goto(api + "/devices?alerts=1")
        phone.check("devices")
        page.goto(api + "/advisories")
        phone.check("advisories")
        page.click("text=中干しの準備 深浦")
        page.wait_for_url(f"**/advisories/{world['review']}")
        phone.check("advisory")
        page.click("form[action$='/publish'] button[type=submit]")
        page.wait_for_url(f"**/advisories/{world['review']}?done=published")
        phone.check("published")
        assert "公開しました" in page.inner_text("main")
    finally:
        phone.close()
    assert platform.sql("SELECT field_ids FROM advisory_publications WHERE advisory_id = %s",
                        (world["review"],)) == [(["pb-wet"],)]
    farmer = Phone(chromium, api, artifacts, "farmer-after")
    try:
        farmer.sign_in("pb-farmer", world["people"]["pb-farmer"].password)
        farmer.page.goto(api + "/fields/pb-wet")
        farmer.check("field")
        assert "中干しの準備 深浦" in farmer.page.inner_text("main")
    finally:
        farmer.close()


def test_a_planner_exports_the_kpi_csv(chromium, api, world, artifacts):
    phone = Phone(chromium, api, artifacts, "planner")
    try:
        phone.sign_in("pb-planner", world["people"]["pb-planner"].password)
        page = phone.page
        page.goto(f"{api}/kpis?year={YEAR}")
        phone.check("kpis")
        with page.expect_download() as waiting:
            page.click("a[href^='/kpis.csv']")
        body = Path(waiting.value.path()).read_bytes()
        page.goto(api + "/open-data")
        phone.check("open-data")
    finally:
        phone.close()
    assert body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"), newline="")))
    mine = [r for r in rows if r["市町村"] in (TOWN, TOWN_JA)
            and r["指標"] == "「農業×Tech：アグリテック」の取組数"]
    assert [(r["種別"], int(r["件数"])) for r in mine] == [("IoTセンサー", 3)]


def test_a_developer_checks_a_prototype_in_the_sandbox(chromium, api, platform, artifacts):
    with psycopg.connect(platform.db_url) as conn:
        people = make_people(conn, [("pb-dev", "developer", [])])
    platform.add_device("pb-proto", "paddy-water", owner="pb-dev", prototype=True,
                        organisation="深浦センサー")
    phone = Phone(chromium, api, artifacts, "developer")
    try:
        phone.sign_in("pb-dev", people["pb-dev"].password)
        page = phone.page
        page.goto(api + "/sandbox")
        phone.check("sandbox")
        page.click("form[action='/sandbox/pb-proto/check'] button[type=submit]")
        page.wait_for_url("**/sandbox/pb-proto")
        phone.check("report")
        assert "不合格" in page.inner_text("main")  # it sent nothing yet
    finally:
        phone.close()
