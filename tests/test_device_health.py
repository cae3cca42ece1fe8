"""Device health through a real `agri api` over readings written by ingest's
writer (and, for a clock ingest refuses, through MQTT and a real ingest
worker): whole-hour clock offsets and small ones, the battery's predicted
empty date, silence, regularity with missing intervals, quality flags,
radio, who sees which device's health, hostile ids, and a list read in the
same number of queries for one device or many."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, date, datetime, timedelta

import httpx
import orjson
import psycopg
import pytest

from agri.api.accounts import add_user
from agri.api.queries import device_health
from agri.clock import TZ
from agri.devices.topics import senml_topic
from agri.ingest.batch import Batch
from agri.ingest.writer import Writer
from tests.fix_stack import wait_for
from tests.test_ingest_e2e import publish

STEP = 600  # paddy-water's water_level and water_temp interval
DAY = 86400
JAPAN_BUG = ("clock off by +9 h: the device probably sends Japan local time as UTC; "
             "send UTC (or an offset)")


def _write(platform, rows) -> None:
    batch = Batch()
    batch.rows = list(rows)
    writer = Writer(platform.db_url)
    try:
        writer.write(batch)
    finally:
        writer.close()


def _regular(device: str, *, start: float, end: float, step: float = STEP,
             metrics=("water_level", "water_temp"), skew: float = 0.0, value: float = 0.05):
    """Readings every ``step`` s received from ``start`` to ``end``, stamped ``skew`` s off."""
    rows = []
    t = end
    while t >= start:
        rows += [(device, m, t + skew, value, t) for m in metrics]
        t -= step
    return rows


@pytest.fixture(scope="module")
def world(platform, api):
    tokens = {"admin": platform.admin_token}
    with psycopg.connect(platform.db_url) as conn:
        for name, role in (("dh-owner", "farmer"), ("dh-other", "farmer"),
                           ("dh-dev", "developer"), ("dh-planner", "planner")):
            tokens[name] = add_user(conn, name=name, role=role).token
    for device in ("dh-skew9", "dh-skew3", "dh-behind3", "dh-battery", "dh-flat",
                   "dh-fast", "dh-silent", "dh-gaps", "dh-flagged", "dh-radio"):
        platform.add_device(device, "paddy-water", owner="dh-owner")
    platform.add_device("dh-theirs", "paddy-water", owner="dh-other")
    platform.add_device("dh-proto", "soil", owner="dh-dev")
    now = time.time()
    rows = []
    rows += _regular("dh-skew9", start=now - 7200, end=now, skew=9 * 3600)
    rows += _regular("dh-skew3", start=now - 7200, end=now, skew=180)
    rows += _regular("dh-behind3", start=now - 7200, end=now, skew=-180)
    rows += _regular("dh-theirs", start=now - 7200, end=now)
    rows += _regular("dh-proto", start=now - 7200, end=now, step=1800, metrics=("soil_temp",))
    # Battery: hourly for 7 days, 2 %/day down to 50 % now (empty in 25 days);
    # flat at 90 %; 10 %/day down to 25 % (empty in 2.5 days).
    for device, slope, level in (("dh-battery", 2.0, 50.0), ("dh-flat", 0.0, 90.0),
                                 ("dh-fast", 10.0, 25.0)):
        rows += [(device, "battery", now - h * 3600, level + slope * h / 24, now - h * 3600)
                 for h in range(7 * 24 - 1, -1, -1)]
    rows += _regular("dh-battery", start=now - 3600, end=now)
    # Silent: regular until five intervals (and a bit) ago.
    rows += _regular("dh-silent", start=now - 7200, end=now - 5 * STEP - 100)
    # Gaps: water_level in the middle of each of the last day's 144 intervals
    # but 10 in a row (slots 40-49) and 5 scattered; water_temp in all of them.
    start = now - DAY
    missing = set(range(40, 50)) | {3, 77, 100, 120, 140}
    for k in range(DAY // STEP):
        t = start + (k + 0.5) * STEP
        if k not in missing:
            rows.append(("dh-gaps", "water_level", t, 0.05, t))
        rows.append(("dh-gaps", "water_temp", t, 22.0, t))
    rows += _regular("dh-flagged", start=now - 3600, end=now)
    rows += _regular("dh-radio", start=now - 3600, end=now)
    rows += [("dh-radio", "rssi", now - i * STEP, -100.0 - i, now - i * STEP) for i in range(5)]
    rows += [("dh-radio", "snr", now - i * STEP, 5.0 - i, now - i * STEP) for i in range(5)]
    _write(platform, rows)
    with psycopg.connect(platform.db_url) as conn:
        conn.execute("INSERT INTO reading_flags (device_id, metric, kind, from_time, to_time, "
                     "readings, excludes, detail) VALUES ('dh-flagged', 'water_level', 'stuck', "
                     "now() - interval '6 hours', now() - interval '1 hour', 30, true, '{}')")
    return {"tokens": tokens, "now": now}


def _get(api: str, token: str, path: str, **params) -> httpx.Response:
    return httpx.get(api + path, headers={"Authorization": f"Bearer {token}"}, params=params,
                     timeout=30)


def _health(api, world, device: str, who: str = "dh-owner") -> dict:
    response = _get(api, world["tokens"][who], f"/api/v1/devices/{device}/health")
    assert response.status_code == 200, response.text
    return response.json()


def _codes(health: dict) -> set[str]:
    return {a["code"] for a in health["alerts"]}


def test_a_clock_nine_hours_ahead_is_japan_time_sent_as_utc(api, world):
    health = _health(api, world, "dh-skew9")
    clock = health["clock"]
    assert clock["whole_hours"] == 9
    assert abs(clock["skew_s"] - 9 * 3600) < 1
    assert clock["reason"]["code"] == "clock_whole_hours"
    assert clock["reason"]["text"]["en"] == JAPAN_BUG
    alert = next(a for a in health["alerts"] if a["code"] == "clock_whole_hours")
    assert alert["severity"] == "critical" and health["status"] == "critical"
    assert "日本時間" in alert["text"]["ja"]
    # Readings stamped 9 h ahead are not "measured" yet: last seen is their arrival.
    assert health["last_seen"]["measured_at"] is None
    assert health["last_seen"]["age_s"] < 120


def test_a_clock_off_by_three_minutes_is_not_a_time_zone_bug(api, world):
    ahead = _health(api, world, "dh-skew3")
    assert 170 < ahead["clock"]["skew_s"] < 190
    assert ahead["clock"]["whole_hours"] is None
    assert ahead["clock"]["reason"]["code"] == "clock_skew"
    assert "local time" not in ahead["clock"]["reason"]["text"]["en"]
    assert "clock_whole_hours" not in _codes(ahead)
    # Three minutes behind arrival is delivery, not a clock.
    behind = _health(api, world, "dh-behind3")
    assert -190 < behind["clock"]["skew_s"] < -170
    assert behind["clock"]["reason"] is None and not {"clock_skew", "clock_whole_hours"} & \
        _codes(behind)


def test_a_clock_ingest_refuses_is_recognised_from_its_rejects(platform, ingest, api, world):
    """Ingest stores nothing stamped 9 h ahead: the health reads the refused times."""
    password = platform.add_device("dh-mqtt9", "paddy-water", owner="dh-owner")
    client = platform.device_client("dh-mqtt9", password)
    try:
        for i in range(4):
            pack = [{"bt": time.time() + 9 * 3600, "n": "water_level", "u": "m", "v": 0.05},
                    {"n": "water_temp", "u": "Cel", "v": 21.0 + i}]
            publish(client, senml_topic("dh-mqtt9"), orjson.dumps(pack))
    finally:
        client.loop_stop()
        client.disconnect()
    wait_for(lambda: platform.sql("SELECT count(*) FROM rejects WHERE device_id = 'dh-mqtt9'")
             == [(8,)], what="the refused records")
    assert platform.sql("SELECT count(*) FROM readings WHERE device_id = 'dh-mqtt9'") == [(0,)]
    health = _health(api, world, "dh-mqtt9")
    assert health["clock"]["whole_hours"] == 9 and health["clock"]["samples"] == 8
    assert health["clock"]["refused_24h"] == 8
    assert health["clock"]["reason"]["text"]["en"] == JAPAN_BUG
    assert {"clock_whole_hours", "never_heard"} <= _codes(health)


def test_a_battery_falling_two_percent_a_day_gets_its_empty_date(api, world):
    health = _health(api, world, "dh-battery")
    battery = health["battery"]
    assert battery["slope_pct_per_day"] == pytest.approx(-2.0, abs=0.01)
    assert battery["readings_7d"] == 7 * 24 and battery["value"] == pytest.approx(50.0)
    truth = datetime.fromtimestamp(world["now"] + 25 * DAY, TZ).date()
    predicted = date.fromisoformat(battery["predicted_empty"])
    assert abs((predicted - truth).days) <= 1
    assert not {"battery_low", "battery_running_out"} & _codes(health)  # 25 days away

    flat = _health(api, world, "dh-flat")["battery"]
    assert flat["predicted_empty"] is None and abs(flat["slope_pct_per_day"]) < 0.01

    fast = _health(api, world, "dh-fast")
    truth = datetime.fromtimestamp(world["now"] + 2.5 * DAY, TZ).date()
    assert abs((date.fromisoformat(fast["battery"]["predicted_empty"]) - truth).days) <= 1
    severities = {a["code"]: a["severity"] for a in fast["alerts"]}
    assert severities["battery_running_out"] == "critical"  # within 3 days
    assert "battery_low" not in severities  # 25 % is not under conditions.BATTERY_LOW_PCT


def test_a_device_silent_for_five_intervals_is_flagged(api, world):
    health = _health(api, world, "dh-silent")
    silent = next(a for a in health["alerts"] if a["code"] == "silent")
    assert silent["severity"] == "warning"
    assert "5 reporting intervals" in silent["text"]["en"]
    assert health["last_seen"]["age_s"] > 5 * STEP
    assert "silent" not in _codes(_health(api, world, "dh-skew3"))


def test_regularity_counts_the_missing_intervals(api, world):
    health = _health(api, world, "dh-gaps")
    level = health["regularity"]["metrics"]["water_level"]
    assert (level["expected"], level["received"], level["intervals_with_reading"]) == \
        (144, 129, 129)
    assert level["share"] == pytest.approx(129 / 144, abs=1e-3)
    assert level["longest_gap_s"] == pytest.approx(11 * STEP, abs=1)
    temp = health["regularity"]["metrics"]["water_temp"]
    assert (temp["expected"], temp["received"], temp["intervals_with_reading"]) == \
        (144, 144, 144)
    battery = health["regularity"]["metrics"]["battery"]
    assert (battery["expected"], battery["received"], battery["intervals_with_reading"],
            battery["longest_gap_s"]) == (24, 0, 0, DAY)
    # 90 % of water_level's intervals is above REGULARITY_MIN_SHARE: no gap alert for it.
    assert all("water_level" not in a["text"]["en"] for a in health["alerts"])


def test_quality_flags_and_radio(api, world):
    flagged = _health(api, world, "dh-flagged")
    assert [(f["metric"], f["kind"], f["readings"]) for f in flagged["quality_flags"]] == \
        [("water_level", "stuck", 30)]
    alert = next(a for a in flagged["alerts"] if a["code"] == "quality_flagged")
    assert "water_level stuck" in alert["text"]["en"] and alert["severity"] == "warning"

    radio = _health(api, world, "dh-radio")["radio"]
    assert radio["rssi"]["latest"] == -100.0 and radio["rssi"]["unit"] == "dBm"
    assert radio["rssi"]["median_24h"] == -102.0 and radio["rssi"]["readings_24h"] == 5
    assert radio["snr"]["latest"] == 5.0 and radio["snr"]["median_24h"] == 3.0
    assert _health(api, world, "dh-flagged")["radio"] is None


def test_only_who_sees_the_device_sees_its_health(api, world):
    tokens = world["tokens"]
    path = "/api/v1/devices/dh-theirs/health"
    assert _get(api, tokens["dh-owner"], path).status_code == 404
    assert _get(api, tokens["dh-other"], path).status_code == 200
    assert _get(api, tokens["dh-dev"], path).status_code == 404
    assert _get(api, tokens["dh-planner"], path).status_code == 404
    assert _get(api, tokens["admin"], path).status_code == 200
    assert _get(api, tokens["dh-dev"], "/api/v1/devices/dh-proto/health").status_code == 200
    assert httpx.get(api + path).status_code == 401

    def listed(who: str) -> set[str]:
        response = _get(api, tokens[who], "/api/v1/devices/health", limit=200)
        assert response.status_code == 200, response.text
        return {item["device"] for item in response.json()["items"]}

    assert listed("dh-dev") == {"dh-proto"}
    assert listed("dh-other") == {"dh-theirs"}
    mine = listed("dh-owner")
    assert "dh-theirs" not in mine and "dh-proto" not in mine and {"dh-skew9", "dh-gaps"} <= mine
    response = _get(api, tokens["dh-planner"], "/api/v1/devices/health")
    assert response.status_code == 403, response.text


def test_the_list_is_paged_with_the_alerts(api, world):
    token = world["tokens"]["dh-owner"]
    seen, cursor = [], None
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        body = _get(api, token, "/api/v1/devices/health", **params).json()
        assert len(body["items"]) <= 3
        seen += [item["device"] for item in body["items"]]
        cursor = body["next"]
        if cursor is None:
            break
    assert seen == sorted(seen) and len(seen) == len(set(seen))
    assert {"dh-skew9", "dh-silent", "dh-gaps"} <= set(seen)
    one = _get(api, token, "/api/v1/devices/health", limit=200).json()["items"]
    alerts = {item["device"]: {a["code"] for a in item["alerts"]} for item in one}
    assert "clock_whole_hours" in alerts["dh-skew9"] and "silent" in alerts["dh-silent"]
    assert alerts["dh-gaps"] == set()


@pytest.mark.parametrize("path", [
    "/api/v1/devices/%00/health", "/api/v1/devices/" + "x" * 5000 + "/health",
    "/api/v1/devices/%2500/health", "/api/v1/devices/dh-skew9%00/health",
    "/api/v1/devices/..%2Fdh-skew9/health", "/api/v1/devices/health?cursor=%00",
    "/api/v1/devices/health?cursor=" + "x" * 500, "/api/v1/devices/health?limit=0",
    "/api/v1/devices/health?limit=100000", "/api/v1/devices/health?limit=%00"])
def test_hostile_input_is_a_client_error(api, world, path):
    response = httpx.get(api + path, timeout=30,
                         headers={"Authorization": f"Bearer {world['tokens']['admin']}"})
    assert 400 <= response.status_code < 500, (path[:80], response.status_code, response.text)


class _Counting:
    """A connection that counts the queries run through it."""

    def __init__(self, conn) -> None:
        self.conn, self.queries = conn, 0

    async def execute(self, *args, **kwargs):
        self.queries += 1
        return await self.conn.execute(*args, **kwargs)


def test_many_devices_take_as_many_queries_as_one(platform, world):
    async def queries(ids: list[str]) -> tuple[int, list[dict]]:
        async with await psycopg.AsyncConnection.connect(platform.db_url) as conn:
            rows = await (await conn.execute(
                "SELECT id, profile, field_id, revoked_at FROM devices WHERE id = ANY(%s) "
                "ORDER BY id", (ids,))).fetchall()
            counting = _Counting(conn)
            health = await device_health.health_of(counting, rows, max_future_s=600)
            return counting.queries, health

    one, _ = asyncio.run(queries(["dh-gaps"]))
    many, health = asyncio.run(queries(
        ["dh-gaps", "dh-skew9", "dh-battery", "dh-radio", "dh-proto", "dh-silent"]))
    assert many == one <= 6
    assert [h["device"] for h in health] == sorted(h["device"] for h in health)
    assert datetime.fromisoformat(health[0]["as_of"]) <= datetime.now(UTC) + timedelta(seconds=1)
