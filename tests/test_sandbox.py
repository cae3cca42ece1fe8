"""The sandbox (devices/conformance.py, docs/sandbox.md) end to end: two
prototypes publish through the real broker with their own credentials and a
real ingest stores or rejects what they send. The clean one passes every
check; the faulty one (a wrong unit, milliseconds for seconds, a clock nine
hours ahead, a stuck value, missing intervals, commands left unanswered)
gets a report that names each fault with what to change. Reports are
stored; another developer neither reads nor runs them; the KPIs count the
prototypes and their first passing report by year and organisation."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import httpx
import orjson
import psycopg
import pytest

from agri.api.field_registry import import_fields, parse_features
from agri.clock import today_local
from agri.devices.topics import acks_topic, commands_topic, senml_topic
from tests.fix_pages import login
from tests.fix_stack import wait_for
from tests.test_ingest_e2e import field_at, publish
from tests.test_pages_officer import make_people

TOWN = "SbxTown"
ORG = "Tsugaru Sensors"
CLEAN, FAULTY, OTHERS = "sbx-clean", "sbx-faulty", "sbx-others"
SPAN = 30  # intervals of 10 minutes sent back to 5 hours ago
WINDOW_MIN = "360"


def _h(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


class AnsweringDevice:
    """A device connected with its own credentials that answers each command
    it receives with "done"."""

    def __init__(self, platform, device_id: str, password: str, *, answers: bool):
        self.id, self.answers, self.got = device_id, answers, []
        self.subscribed = threading.Event()
        self.client = platform.device_client(device_id, password)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.subscribe(commands_topic(device_id), qos=1)
        assert self.subscribed.wait(10)

    def _on_message(self, client, userdata, msg) -> None:
        command = orjson.loads(msg.payload)
        self.got.append(command)
        if self.answers:
            client.publish(acks_topic(self.id), orjson.dumps(
                {"id": command["id"], "status": "done"}), qos=1)

    def send(self, pack: list[dict]) -> None:
        publish(self.client, senml_topic(self.id), orjson.dumps(pack))


def _clean_packs(now: int) -> list[list[dict]]:
    packs = []
    for k in range(SPAN):
        t = now - 600 * (SPAN - 1 - k) - 30
        pack = [{"bt": t, "n": "water_level", "u": "m", "v": round(0.05 + 0.001 * k, 3)},
                {"n": "water_temp", "u": "Cel", "v": round(18.0 + 0.1 * k, 2)}]
        if k % 6 == 0:
            pack.append({"n": "battery", "u": "%EL", "v": 90 - k / 10})
        packs.append(pack)
    return packs


def _faulty_packs(now: int) -> list[list[dict]]:
    packs = []
    for k in range(SPAN):
        t = now - 600 * (SPAN - 1 - k) - 30
        # water_temp stuck at 21.0; water_level missing in 12 of 30 intervals
        pack = [{"bt": t, "n": "water_temp", "u": "Cel", "v": 21.0}]
        if not 10 <= k < 22:
            pack.append({"n": "water_level", "u": "m", "v": round(0.05 + 0.001 * k, 3)})
        if k % 6 == 0:
            pack.append({"n": "battery", "u": "%EL", "v": 90 - k / 10})
        packs.append(pack)
    # inches, which the platform does not convert: record 1 is rejected
    packs.append([{"bt": now - 30, "n": "battery", "u": "%EL", "v": 87.0},
                  {"n": "water_level", "u": "in", "v": 2.0}])
    # milliseconds for seconds
    packs.append([{"bt": now * 1000, "n": "water_level", "u": "m", "v": 0.07}])
    return packs


def _nine_hours_ahead(now: int) -> list[list[dict]]:
    """Japan local time sent as UTC: every record 9 h ahead, refused."""
    return [[{"bt": now + 9 * 3600 + j, "n": "water_level", "u": "m", "v": 0.06},
             {"n": "water_temp", "u": "Cel", "v": 20.0 + j},
             {"n": "battery", "u": "%EL", "v": 86.0},
             {"t": 1, "n": "water_temp", "u": "Cel", "v": 20.5 + j},
             {"t": 2, "n": "water_level", "u": "m", "v": 0.061}]
            for j in range(5)]


@pytest.fixture(scope="module")
def world(platform, api):
    with psycopg.connect(platform.db_url) as conn:
        people = make_people(conn, [("sbx-dev", "developer", []),
                                    ("sbx-dev-2", "developer", []),
                                    ("sbx-planner", "planner", [])])
        import_fields(conn, parse_features(field_at("sbx-f1", "sbx-farmer", TOWN, 140.80)),
                      create_owners=True)
    creds = {d: platform.add_device(d, "paddy-water", field_id="sbx-f1", owner="sbx-dev",
                                    prototype=True, organisation=ORG)
             for d in (CLEAN, FAULTY)}
    platform.add_device(OTHERS, "paddy-water", field_id="sbx-f1", owner="sbx-dev-2",
                        prototype=True, organisation="Other Lab")
    # A developer's device that is not a prototype: not counted.
    platform.add_device("sbx-plain", "paddy-water", field_id="sbx-f1", owner="sbx-dev")

    worker = platform.start_ingest("sbx")
    try:
        now = int(time.time())
        clean = AnsweringDevice(platform, CLEAN, creds[CLEAN], answers=True)
        faulty = AnsweringDevice(platform, FAULTY, creds[FAULTY], answers=False)
        for pack in _clean_packs(now):
            clean.send(pack)
        for pack in _faulty_packs(now):
            faulty.send(pack)
        wait_for(lambda: platform.sql(
            "SELECT count(*) FROM readings WHERE device_id = %s", (FAULTY,))[0][0] >= 54,
            what="the faulty prototype's readings")
        time.sleep(1.1)  # the refused clock is what the device sent last
        for pack in _nine_hours_ahead(int(time.time())):
            faulty.send(pack)
        # A command to each: the clean one answers, the faulty one never does.
        token = people["sbx-dev"].token
        for device in (CLEAN, FAULTY):
            r = httpx.post(f"{api}/api/v1/devices/{device}/commands", headers=_h(token),
                           json={"name": "reboot", "expires_in_s": 600})
            assert r.status_code == 202, r.text
        wait_for(lambda: platform.sql("SELECT status FROM device_commands WHERE device_id = %s",
                                      (CLEAN,)) == [("done",)], what="the clean answer")
        wait_for(lambda: faulty.got, what="the faulty prototype to receive its command")
        wait_for(lambda: platform.sql(
            "SELECT count(*) FROM rejects WHERE device_id = %s", (FAULTY,))[0][0] >= 27,
            what="the faulty prototype's rejects")
        wait_for(lambda: platform.sql(
            "SELECT count(*) FROM readings WHERE device_id = %s", (CLEAN,))[0][0] >= 65,
            what="the clean prototype's readings")
        for device in (clean, faulty):
            device.client.loop_stop()
            device.client.disconnect()
    finally:
        platform.stop_ingest(worker)
    return {"people": people, "creds": creds}


def _cli_check(platform, device: str) -> tuple[int, dict]:
    done = platform.cli("devices", "check", device, "--minutes", WINDOW_MIN, "--json",
                        check=False)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, orjson.loads(done.stdout)


def _by_check(report: dict) -> dict:
    return {c["check"]: c for c in report["checks"]}


def test_a_clean_prototype_passes_every_check(platform, world):
    code, report = _cli_check(platform, CLEAN)
    checks = _by_check(report)
    assert code == 0 and report["passed"], orjson.dumps(report).decode()
    statuses = {name: c["status"] for name, c in checks.items()}
    # Duplicates are counted by ingest per worker, not per device: said, not invented.
    assert statuses == {"accepted": "pass", "rejected": "pass", "regularity": "pass",
                        "clock": "pass", "stuck": "pass", "duplicates": "not_measured",
                        "payload_sizes": "pass", "commands": "pass"}
    assert checks["accepted"]["figures"]["readings"] == 65
    assert checks["regularity"]["figures"]["metrics"]["water_level"]["missing"] == 0
    assert checks["commands"]["figures"] == {"sent": 1, "answered": 1,
                                             "by_status": {"done": 1}}
    assert checks["payload_sizes"]["figures"]["accepted_recorded"] is False
    stored = platform.sql("SELECT passed, jsonb_array_length(checks), created_by "
                          "FROM conformance_reports WHERE id = %s", (report["id"],))
    assert stored == [(True, 8, None)]


def test_a_faulty_prototype_gets_each_fault_named(platform, world):
    code, report = _cli_check(platform, FAULTY)
    checks = _by_check(report)
    assert code == 1 and not report["passed"]
    failed = {name for name, c in checks.items() if c["status"] == "fail"}
    assert failed == {"rejected", "regularity", "clock", "stuck", "commands"}, failed

    codes = checks["rejected"]["figures"]["by_code"]
    assert set(codes) == {"unit-not-accepted", "time-in-milliseconds", "time-in-future"}
    assert codes["unit-not-accepted"]["count"] == 1
    assert codes["unit-not-accepted"]["record_index"] == 1
    assert "unit 'in' not accepted for water_level" in codes["unit-not-accepted"][
        "latest_reason"]
    assert codes["time-in-milliseconds"]["count"] == 1
    assert codes["time-in-future"]["count"] == 25
    docs = {ch["doc"] for ch in checks["rejected"]["change"]}
    assert docs == {f"docs/device-developers.md#{c}" for c in codes}

    # Nine hours ahead: the whole-hours case, Japan time sent as UTC.
    clock = checks["clock"]
    assert clock["figures"]["whole_hours"] == 9
    assert "Japan local time as UTC" in clock["summary"]["en"]
    assert "send UTC" in clock["change"][0]["en"]

    stuck = checks["stuck"]["figures"]["runs"]
    assert [(r["metric"], r["value"], r["readings"]) for r in stuck] == [("water_temp", 21.0,
                                                                         SPAN)]
    assert "water_temp stuck at 21.0" in checks["stuck"]["change"][0]["en"]

    level = checks["regularity"]["figures"]["metrics"]["water_level"]
    assert level["intervals_with_reading"] == 18
    assert level["missing"] == level["expected"] - 18 >= 11
    assert "water_level" in checks["regularity"]["summary"]["en"]
    assert "send one every 10 min" in checks["regularity"]["change"][0]["en"]

    assert checks["commands"]["figures"]["answered"] == 0
    assert "subscribe to agri/v1/devices/sbx-faulty/commands" in checks["commands"][
        "change"][0]["en"]
    sizes = checks["payload_sizes"]["figures"]
    assert sizes["rejected_messages"] == 27 and sizes["too_large"] == 0

    # The text report names the same, a check a line.
    text = platform.cli("devices", "check", FAULTY, "--minutes", WINDOW_MIN, check=False)
    assert text.returncode == 1
    for words in ("FAIL          clock", "clock off by +9 h", "unit-not-accepted (record 1)",
                  "time-in-milliseconds", "water_temp stuck", "overall: FAIL"):
        assert words in text.stdout, (words, text.stdout)


def test_the_api_runs_and_keeps_reports_for_the_owner_only(platform, api, world):
    people = world["people"]
    owner, other = _h(people["sbx-dev"].token), _h(people["sbx-dev-2"].token)
    before = platform.sql("SELECT count(*) FROM conformance_reports WHERE device_id = %s",
                          (CLEAN,))[0][0]
    r = httpx.post(f"{api}/api/v1/devices/{CLEAN}/conformance", headers=owner,
                   params={"minutes": WINDOW_MIN}, timeout=30)
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["passed"] and made["created_by"] == "sbx-dev"
    body = httpx.get(f"{api}/api/v1/devices/{CLEAN}/conformance", headers=owner).json()
    assert body["latest"]["id"] == made["id"] and body["organisation"] == ORG
    assert body["first_passed_at"] is not None and len(body["history"]) == before + 1

    # Another developer: neither reads nor runs it, and nothing is stored.
    for method in ("GET", "POST"):
        r = httpx.request(method, f"{api}/api/v1/devices/{CLEAN}/conformance", headers=other)
        assert r.status_code == 404, r.text
    assert httpx.post(f"{api}/api/v1/devices/{OTHERS}/conformance",
                      headers=owner).status_code == 404
    assert platform.sql("SELECT count(*) FROM conformance_reports WHERE device_id = %s",
                        (CLEAN,))[0][0] == before + 1
    # Hostile input: a 4xx that says what is wrong, never a 500.
    for path, params in [("sbx-clean'--", {}), ("%00", {}), ("x" * 300, {}),
                         (CLEAN, {"minutes": "0"}), (CLEAN, {"minutes": "99999999"}),
                         (CLEAN, {"minutes": "ten"})]:
        r = httpx.post(f"{api}/api/v1/devices/{path}/conformance", headers=owner,
                       params=params)
        assert 400 <= r.status_code < 500, (path, params, r.status_code)


def test_kpis_count_prototypes_and_first_passes_by_year_and_organisation(api, world,
                                                                          platform):
    _cli_check(platform, CLEAN)  # a second pass: still one prototype passed
    planner = _h(world["people"]["sbx-planner"].token)
    year = today_local().year
    body = httpx.get(f"{api}/api/v1/kpis", headers=planner,
                     params={"municipality": TOWN, "year_basis": "calendar"}).json()
    cells = {(r["year"], r["indicator"], r["kind"]): r["count"] for r in body["rows"]
             if r["indicator"].startswith("iot_prototypes")}
    assert cells == {(year, "iot_prototypes", ORG): 2,
                     (year, "iot_prototypes", "Other Lab"): 1,
                     (year, "iot_prototypes_passed", ORG): 1}
    csv = httpx.get(f"{api}/api/v1/kpis.csv", headers=planner,
                    params={"municipality": TOWN, "year_basis": "calendar"})
    assert f"{year},{TOWN},適合確認に合格した試作品の数,{ORG},プラットフォーム観測,1" in \
        csv.content.decode("utf-8-sig")


def test_the_sandbox_pages(api, world):
    people = world["people"]
    dev = login(api, "sbx-dev", people["sbx-dev"].password)
    page = dev.get("/sandbox")
    assert page.status_code == 200, page.text[:300]
    assert CLEAN in page.text and FAULTY in page.text and OTHERS not in page.text
    assert "試作機の確認" in page.text and "sbx-plain" not in page.text
    r = dev.form("/sandbox", f"/sandbox/{FAULTY}/check", minutes="360")
    assert r.status_code == 303 and r.headers["location"] == f"/sandbox/{FAULTY}"
    report = dev.get(f"/sandbox/{FAULTY}")
    assert report.status_code == 200
    for words in ("不合格", "時計が +9 h ずれています", "unit-not-accepted", "water_temp",
                  "docs/device-developers.md#time-in-milliseconds"):
        assert words in report.text, words
    english = dev.get(f"/sandbox/{FAULTY}?lang=en").text
    assert "clock off by +9 h" in english and "What to change" in english
    # Without the form's token, nothing is run.
    assert dev.post(f"/sandbox/{FAULTY}/check", data={"minutes": "60"}).status_code == 403

    other = login(api, "sbx-dev-2", people["sbx-dev-2"].password)
    assert FAULTY not in other.get("/sandbox").text
    assert other.get(f"/sandbox/{FAULTY}").status_code == 404
    csrf = other.csrf("/sandbox")
    assert other.post(f"/sandbox/{FAULTY}/check",
                      data={"csrf": csrf, "minutes": "60"}).status_code == 404
    for hostile in ("..%2f..%2fetc", "x" * 300, "sbx-faulty%00", "%3Cscript%3E"):
        assert 400 <= dev.get(f"/sandbox/{hostile}").status_code < 500, hostile
    planner = login(api, "sbx-planner", people["sbx-planner"].password)
    assert planner.get("/sandbox").status_code == 403


def test_follow_prints_each_new_reject_then_checks_again(platform, ingest, world, tmp_path):
    out, err = tmp_path / "out", tmp_path / "err"
    with out.open("w") as o, err.open("w") as e:
        proc = subprocess.Popen([sys.executable, "-m", "agri.cli", "devices", "check", FAULTY,
                                 "--minutes", "5", "--follow", "--every", "0.2"],
                                env=platform.env(), stdout=o, stderr=e)
    try:
        wait_for(lambda: "following" in err.read_text(), what="the follow to start")
        device = platform.device_client(FAULTY, world["creds"][FAULTY])
        publish(device, senml_topic(FAULTY), orjson.dumps(
            [{"n": "water_temp", "u": "Cel", "v": 20.0}, {"n": "water_level", "u": "in",
                                                          "v": 1.0}]))
        device.loop_stop()
        device.disconnect()
        wait_for(lambda: "rejected record 1" in out.read_text(), what="the new reject")
        assert "unit 'in' not accepted for water_level" in out.read_text()
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 1, err.read_text()
    assert out.read_text().count("overall: FAIL") == 2
