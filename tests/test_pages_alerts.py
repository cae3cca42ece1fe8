"""The alert pages through a real `agri api` and real sessions, over alerts
and deliveries inserted as the alert service writes them: a farmer sees the
alerts of their fields and devices (open first, severity in colour, symbol
and words, delivery per channel), a farmer with a share too, another farmer
none; an officer their region's, filtered by town and state; a planner is
refused. The settings page validates, stores and refuses hostile input and
forms without CSRF; the LINE code is stored hashed for 30 minutes."""

from __future__ import annotations

import hashlib
import re

import psycopg
import pytest

from agri.api.field_registry import import_fields, parse_features
from tests.fix_pages import login
from tests.test_browser import Phone, artifacts, chromium  # noqa: F401 - fixtures
from tests.test_pages_officer import field, make_people

TOWN, OTHER_TOWN = "Imabetsu", "Kazamaura"
MAX_PAGE_BYTES = 60_000


@pytest.fixture(scope="module")
def world(platform, api):
    with psycopg.connect(platform.db_url) as conn:
        people = make_people(conn, [
            ("pa-farmer", "farmer", []), ("pa-other", "farmer", []), ("pa-heir", "farmer", []),
            ("pa-officer", "officer", [TOWN]), ("pa-far-officer", "officer", [OTHER_TOWN]),
            ("pa-planner", "planner", [])])
        import_fields(conn, parse_features({"type": "FeatureCollection", "features": [
            field("pa-f1", "今別 一番", "pa-farmer", TOWN, 140.4800, 41.1800),
            field("pa-k1", "風間浦 よその田", "pa-other", OTHER_TOWN, 140.9800, 41.4800)]}))
        conn.execute("INSERT INTO field_shares (field_id, grantee, granted_by) "
                     "VALUES ('pa-f1', 'pa-heir', 'pa-farmer')")
    platform.add_device("pa-sensor", "paddy-water", field_id="pa-f1", owner="pa-farmer")
    with psycopg.connect(platform.db_url) as conn:
        ids = {}
        for key, rule, severity, fid, dev, evidence, cleared in (
                ("pa:gone", "water-gone", "urgent", "pa-f1", None,
                 '{"level_m": -0.01, "since": "2026-07-15T05:00:00+09:00"}', False),
                ("pa:battery", "battery-low", "warning", None, "pa-sensor",
                 '{"battery_pct": 12}', True),
                ("pa:theirs", "water-out-of-band", "warning", "pa-k1", None,
                 '{"level_m": 0.09, "low_m": 0.03, "high_m": 0.06}', False)):
            ids[key] = conn.execute(
                "INSERT INTO alerts (key, rule, severity, field_id, device_id, evidence, "
                "observed_at, cleared_at) VALUES (%s, %s, %s, %s, %s, %s, now(), "
                "CASE WHEN %s THEN now() END) RETURNING id",
                (key, rule, severity, fid, dev, evidence, cleared)).fetchone()[0]
        conn.execute("INSERT INTO alert_deliveries (alert_id, user_name, channel, event, status) "
                     "VALUES (%s, 'pa-farmer', 'email', 'opened', 'sent'), "
                     "(%s, 'pa-farmer', 'line', 'opened', 'held'), "
                     "(%s, 'pa-farmer', 'email', 'opened', 'failed')",
                     (ids["pa:gone"], ids["pa:gone"], ids["pa:battery"]))
    clients = {name: login(api, name, made.password) for name, made in people.items()}
    return {"people": people, "clients": clients, "ids": ids}


def _cards(html: str) -> list[str]:
    return re.findall(r'<li class="card[^"]*">(.*?)</li>', html, re.S)


def test_the_farmer_sees_their_alerts_open_first_with_delivery(world):
    page = world["clients"]["pa-farmer"].get("/alerts")
    assert page.status_code == 200 and len(page.content) < MAX_PAGE_BYTES
    assert page.headers["content-language"] == "ja" and page.headers["etag"]
    cards = _cards(page.text)
    assert len(cards) == 2 and "よその田" not in page.text
    gone, battery = cards
    assert '<span class="badge b-red">' in gone and "緊急" in gone and "水がありません" in gone
    assert 'href="/fields/pa-f1"' in gone and "今別 一番" in gone
    assert "水位 -0.01 m・開始 7/15 05:00" in gone
    assert "メール 送信済み" in gone and "LINE 保留(静かな時間)" in gone
    assert "解消" in battery and 'href="/devices/pa-sensor"' in battery
    assert "メール 失敗" in battery and "LINE 未設定" in battery and "電池 12%" in battery
    assert 'href="/alerts"' in page.text  # the header's link
    again = world["clients"]["pa-farmer"].get("/alerts",
                                              headers={"If-None-Match": page.headers["etag"]})
    assert again.status_code == 304
    english = world["clients"]["pa-farmer"].get("/alerts?lang=en")
    assert "Urgent" in english.text and "the paddy has no water" in english.text
    assert "Email Sent" in english.text and english.headers["content-language"] == "en"
    back = world["clients"]["pa-farmer"].get("/alerts?lang=ja")  # the switch is kept
    assert back.headers["content-language"] == "ja"


def test_a_share_reads_the_fields_alerts_another_farmer_none(world):
    heir = world["clients"]["pa-heir"].get("/alerts").text
    assert "水がありません" in heir and "よその田" not in heir
    other = world["clients"]["pa-other"].get("/alerts").text
    assert "今別 一番" not in other and "pa-sensor" not in other and "よその田" in other


def test_officers_see_their_region_filtered(world):
    officer = world["clients"]["pa-officer"]
    html = officer.get("/alerts").text
    assert "今別 一番" in html and "よその田" not in html and len(_cards(html)) == 2
    assert len(_cards(officer.get("/alerts?state=open").text)) == 1
    assert len(_cards(officer.get(f"/alerts?state=cleared&municipality={TOWN}").text)) == 1
    far = world["clients"]["pa-far-officer"].get(f"/alerts?municipality={TOWN}").text
    assert "今別 一番" not in far and "よその田" in far
    assert officer.get("/alerts?state=<script>").status_code == 422
    assert world["clients"]["pa-planner"].get("/alerts").status_code == 403


def _prefs(platform, user: str):
    return platform.sql("SELECT email, email_on, line_on, rules, quiet_start::text, "
                        "quiet_end::text FROM alert_preferences WHERE user_name = %s", (user,))


def test_settings_are_saved_and_shown(world, platform):
    farmer = world["clients"]["pa-farmer"]
    page = farmer.get("/me/alerts")
    assert page.status_code == 200 and "静かな時間" in page.text and "水門が応答しない" in page.text
    assert "緊急の通知" in page.text
    r = farmer.form("/me/alerts", email="taro@example.jp", email_on="1",
                    rules=["water-gone", "cold-ahead"], quiet_start="21:00", quiet_end="06:00")
    assert r.status_code == 303 and r.headers["location"] == "/me/alerts?saved=1"
    assert _prefs(platform, "pa-farmer") == [("taro@example.jp", True, False,
                                              ["water-gone", "cold-ahead"], "21:00:00",
                                              "06:00:00")]
    shown = farmer.get("/me/alerts?saved=1").text
    assert "保存しました" in shown and 'value="taro@example.jp"' in shown
    assert 'value="21:00"' in shown


@pytest.mark.parametrize(("fields", "says"), [
    ({"email": "a" * 5000 + "@example.jp"}, "メールアドレスが長すぎます"),
    ({"email": "<script>alert(1)</script>@x.jp"}, "メールアドレスの形が正しくありません"),
    ({"email": "", "email_on": "1"}, "メールアドレスを入れてください"),
    ({"quiet_start": "25:00", "quiet_end": "06:00"}, "00:00〜23:59"),
    ({"quiet_start": "22:00"}, "両方"),
    ({"quiet_start": "22:00", "quiet_end": "22:00"}, "同じ時刻"),
    ({"rules": ["<script>"]}, "知らない種類"),
    ({"line_on": "1"}, "LINEアカウントを連携"),
])
def test_hostile_settings_get_a_clear_error_and_nothing_is_stored(world, platform, fields,
                                                                  says):
    farmer = world["clients"]["pa-other"]
    before = _prefs(platform, "pa-other")
    r = farmer.form("/me/alerts", **fields)
    assert r.status_code == 400 and says in r.text and "<script>alert" not in r.text
    assert _prefs(platform, "pa-other") == before


def test_forms_without_csrf_are_refused(world, platform):
    farmer = world["clients"]["pa-heir"]
    r = farmer.post("/me/alerts", data={"email": "x@example.jp"})
    assert r.status_code == 403 and "ページが古くなりました" in r.text
    r = farmer.post("/me/alerts/line-code", data={"csrf": "forged"})
    assert r.status_code == 403
    assert _prefs(platform, "pa-heir") == []
    assert platform.sql("SELECT count(*) FROM line_link_codes WHERE user_name = 'pa-heir'") \
        == [(0,)]


def test_a_line_code_is_shown_once_and_stored_hashed(world, platform):
    farmer = world["clients"]["pa-farmer"]
    r = farmer.form("/me/alerts", action="/me/alerts/line-code")
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    assert "LINEで公式アカウントを友だち追加し、このコードを送ってください" in r.text
    code = re.search(r'<span class="big">([A-Z0-9-]+)</span>', r.text).group(1)
    digest = hashlib.sha256(code.replace("-", "").encode()).hexdigest()
    rows = platform.sql("SELECT code_hash, round(extract(epoch FROM expires_at - now()) / 60) "
                        "FROM line_link_codes WHERE user_name = 'pa-farmer' AND used_at IS NULL")
    assert rows == [(digest, 30)]


@pytest.mark.browser
def test_the_alert_pages_pass_axe_on_a_phone(chromium, api, world, artifacts):  # noqa: F811
    phone = Phone(chromium, api, artifacts, "alerts")
    try:
        phone.sign_in("pa-farmer", world["people"]["pa-farmer"].password)
        phone.page.goto(api + "/alerts")
        phone.check("alerts")
        phone.page.click("a[href='/me/alerts']")
        phone.page.wait_for_url("**/me/alerts")
        phone.check("alert-settings")
        phone.page.click("form[action='/me/alerts/line-code'] button")
        phone.page.wait_for_load_state()
        phone.check("line-code")
        assert "このコードを送ってください" in phone.page.inner_text("main")
    finally:
        phone.close()
