"""The water control page of a field through a real `agri api` and real
sessions: the owner sees the mode, today's band and level, the gates and
the log, changes the mode and the timer, commands a gate (a queued
set_gate command, an override of the automatic mode, a log row) and gives
control back; a farmer with a share only reads; another farmer gets 404
and an officer of another region too; hostile input and missing CSRF are
refused with nothing stored."""

from __future__ import annotations

import psycopg
import pytest

from agri.api.field_registry import import_fields, parse_features
from agri.clock import today_local
from tests.fix_pages import login
from tests.test_browser import Phone, artifacts, chromium  # noqa: F401 - fixtures
from tests.test_pages_officer import field, make_people

TOWN, OTHER_TOWN = "Nakadomari", "Tsuruta"
MAX_PAGE_BYTES = 60_000
WATER = "/fields/pw-f1/water"


@pytest.fixture(scope="module")
def world(platform, api):
    with psycopg.connect(platform.db_url) as conn:
        people = make_people(conn, [
            ("pw-farmer", "farmer", []), ("pw-other", "farmer", []), ("pw-heir", "farmer", []),
            ("pw-officer", "officer", [TOWN]), ("pw-far-officer", "officer", [OTHER_TOWN])])
        import_fields(conn, parse_features({"type": "FeatureCollection", "features": [
            field("pw-f1", "中泊 水の田", "pw-farmer", TOWN, 140.4300, 41.0000)]}))
        conn.execute("INSERT INTO field_shares (field_id, grantee, granted_by) "
                     "VALUES ('pw-f1', 'pw-heir', 'pw-farmer')")
        conn.execute("INSERT INTO field_water_bands (field_id, day, low_m, high_m, phase, "
                     "computed_for) VALUES ('pw-f1', %s, 0.03, 0.06, 'tillering', %s)",
                     (today_local(), today_local()))
        conn.execute("INSERT INTO field_water_status (field_id, computed_for, state, "
                     "latest_level_m, latest_at) VALUES ('pw-f1', %s, 'inside', 0.045, now())",
                     (today_local(),))
    platform.add_device("pw-gate", "water-gate", field_id="pw-f1", owner="pw-farmer")
    with psycopg.connect(platform.db_url) as conn:
        conn.execute("INSERT INTO readings (device_id, metric, time, value, received_at) "
                     "VALUES ('pw-gate', 'gate_position', now(), 25, now())")
        for n in range(25):  # more decisions than one page holds
            conn.execute("INSERT INTO water_control_log (field_id, device_id, action, position,"
                         " reason, actor) VALUES ('pw-f1', 'pw-gate', 'hold-back', NULL, %s, "
                         "'agri-water')", (f"水位は目標内 {n}",))
    clients = {name: login(api, name, made.password) for name, made in people.items()}
    return {"people": people, "clients": clients}


def _counts(platform) -> tuple:
    return platform.sql(
        "SELECT (SELECT count(*) FROM device_commands WHERE device_id = 'pw-gate'), "
        "(SELECT count(*) FROM water_control_log WHERE field_id = 'pw-f1'), "
        "(SELECT count(*) FROM water_control WHERE field_id = 'pw-f1'), "
        "(SELECT coalesce(string_agg(mode || schedule::text || "
        "coalesce(override_by, '-'), ''), '') FROM water_control WHERE field_id = 'pw-f1')")[0]


def test_the_owner_sees_mode_band_level_gates_and_log(world):
    page = world["clients"]["pw-farmer"].get(WATER)
    assert page.status_code == 200 and len(page.content) < MAX_PAGE_BYTES
    html = page.text
    assert "水管理 中泊 水の田" in html and '<p class="big">手動</p>' in html
    assert "今日の目標 3.0〜6.0 cm" in html and "最新の水位 4.5 cm" in html
    assert 'href="/devices/pw-gate"' in html and "給水口" in html and "開き 25%" in html
    assert html.count('name="position"') == 5 and "水位は目標内 24" in html
    assert "水位は目標内 4" not in html and "前の記録" in html  # the next page of the log
    assert 'href="/fields/pw-f1/water"' in world["clients"]["pw-farmer"].get(
        "/fields/pw-f1").text
    english = world["clients"]["pw-farmer"].get(WATER + "?lang=en").text
    assert "Water control" in english and "target 3.0–6.0 cm" in english
    world["clients"]["pw-farmer"].get(WATER + "?lang=ja")


def test_a_share_only_reads_and_outsiders_get_404(world, platform):
    before = _counts(platform)
    heir = world["clients"]["pw-heir"]
    html = heir.get(WATER).text
    assert "見るだけで、水門は操作できません" in html and 'name="position"' not in html
    token = heir.csrf("/me/alerts")
    assert heir.post(WATER + "/gates/pw-gate", data={"csrf": token,
                                                     "position": "50"}).status_code == 403
    assert heir.post(WATER + "/mode", data={"csrf": token, "mode": "hold"}).status_code == 403
    for name in ("pw-other", "pw-far-officer"):
        other = world["clients"][name]
        assert other.get(WATER).status_code == 404
        token = other.csrf("/me/alerts")
        for action, data in (("/gates/pw-gate", {"position": "50"}), ("/mode", {"mode": "hold"}),
                             ("/resume", {}), ("/schedule", {"open_1": "05:00",
                                                             "close_1": "06:00"})):
            r = other.post(WATER + action, data={"csrf": token, **data})
            assert r.status_code == 404, (name, action)
    assert _counts(platform) == before


@pytest.mark.parametrize(("path", "data", "says"), [
    ("/gates/pw-gate", {"position": "150"}, "0〜100 %"),
    ("/gates/pw-gate", {"position": "<script>"}, "0〜100 %"),
    ("/mode", {"mode": "<script>alert(1)</script>"}, "モードを選んでください"),
    ("/schedule", {"open_1": "25:00", "close_1": "06:00"}, "00:00〜23:59"),
    ("/schedule", {"open_1": "05:00"}, "両方入れてください"),
])
def test_hostile_input_is_refused_and_nothing_stored(world, platform, path, data, says):
    before = _counts(platform)
    r = world["clients"]["pw-farmer"].form(WATER, action=WATER + path, **data)
    assert r.status_code == 400 and says in r.text and "<script>alert" not in r.text
    assert _counts(platform) == before


def test_missing_csrf_is_refused(world, platform):
    before = _counts(platform)
    r = world["clients"]["pw-farmer"].post(WATER + "/gates/pw-gate", data={"position": "50"})
    assert r.status_code == 403 and "ページが古くなりました" in r.text
    assert _counts(platform) == before


def test_the_owner_sets_a_mode_a_timer_moves_a_gate_and_resumes(world, platform):
    farmer = world["clients"]["pw-farmer"]
    r = farmer.form(WATER, action=WATER + "/schedule", open_1="05:00", close_1="07:00",
                    open_2="16:00", close_2="17:30")
    assert r.status_code == 303
    r = farmer.form(WATER, action=WATER + "/mode", mode="schedule")
    assert r.status_code == 303 and r.headers["location"] == WATER + "?done=mode"
    assert platform.sql("SELECT mode, schedule, override_at FROM water_control "
                        "WHERE field_id = 'pw-f1'") == [
        ("schedule", [{"open": "05:00", "close": "07:00"}, {"open": "16:00", "close": "17:30"}],
         None)]
    r = farmer.form(WATER, action=WATER + "/gates/pw-gate", position="75")
    assert r.status_code == 303
    command = platform.sql("SELECT id, name, args, requested_by, status FROM device_commands "
                           "WHERE device_id = 'pw-gate' ORDER BY id DESC LIMIT 1")[0]
    assert command[1:] == ("set_gate", {"position": 75.0}, "pw-farmer", "queued")
    assert platform.sql("SELECT override_by FROM water_control WHERE field_id = 'pw-f1' "
                        "AND override_at IS NOT NULL") == [("pw-farmer",)]
    assert platform.sql("SELECT action, position, actor, reason, command_id FROM "
                        "water_control_log WHERE field_id = 'pw-f1' ORDER BY id DESC "
                        "LIMIT 1") == [
        ("set", 75.0, "pw-farmer", "manual: pw-farmer set the gate to 75 %; automatic control "
         "waits until the mode is set again", command[0])]
    html = farmer.get(WATER + "?done=set").text
    assert "手動操作中です" in html and "自動に戻す" in html
    assert "最後の指示 75.0% ・ 送信待ち" in html
    r = farmer.form(WATER, action=WATER + "/resume")
    assert r.status_code == 303
    assert platform.sql("SELECT mode, override_at FROM water_control "
                        "WHERE field_id = 'pw-f1'") == [("schedule", None)]
    assert "手動操作中です" not in farmer.get(WATER).text


def test_an_officer_of_the_region_may_change_the_mode(world, platform):
    officer = world["clients"]["pw-officer"]
    r = officer.form(WATER, action=WATER + "/mode", mode="hold")
    assert r.status_code == 303
    assert platform.sql("SELECT mode, updated_by FROM water_control "
                        "WHERE field_id = 'pw-f1'") == [("hold", "pw-officer")]
    assert "モードを「水位保持」にしました" in officer.get(WATER).text


@pytest.mark.browser
def test_the_water_page_passes_axe_on_a_phone(chromium, api, world, artifacts):  # noqa: F811
    phone = Phone(chromium, api, artifacts, "water")
    try:
        phone.sign_in("pw-farmer", world["people"]["pw-farmer"].password)
        phone.page.goto(api + WATER)
        phone.check("water")
        phone.page.click("form[action$='/gates/pw-gate'] button[value='50']")
        phone.page.wait_for_url("**/water?done=set")
        phone.check("water-set")
    finally:
        phone.close()
