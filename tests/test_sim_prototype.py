"""`agri simulate device`: a reference device of any profile with chosen
faults, played with the device's own credentials through the real broker
and ingest; the sandbox's check passes the clean one and names each fault
of the faulty ones. The packs themselves: every metric of every profile in
its unit and range, and each fault as documented."""

from __future__ import annotations

import subprocess
import sys

import httpx
import orjson
import psycopg
import pytest

from agri.api.field_registry import import_fields, parse_features
from agri.devices.profiles import METRICS, PROFILES, profile
from agri.simulator import prototype
from tests.fix_stack import wait_for
from tests.test_ingest_e2e import field_at
from tests.test_pages_officer import make_people

NOW = 1_754_000_000.0


@pytest.mark.parametrize("name", sorted(n for n in PROFILES if profile(n).metrics))
def test_clean_packs_carry_every_metric_in_unit_and_range(name):
    p = profile(name)
    packs = prototype.packs(name, now=NOW, count=24)
    seen = {r["n"] for pack in packs for r in pack}
    assert seen == set(p.metrics)
    times = [pack[0]["bt"] for pack in packs]
    base = min(p.intervals_s.values())
    assert times == sorted(times) and times[-1] < NOW and times[1] - times[0] == base
    for pack in packs:
        for r in pack:
            m = METRICS[r["n"]]
            assert r["u"] == m.unit and m.low <= r["v"] <= m.high, r


def test_each_fault_breaks_what_it_says():
    clean = prototype.packs("paddy-water", now=NOW, count=30)
    ahead = prototype.packs("paddy-water", now=NOW, count=30, faults=["clock-9h"])
    assert [p[0]["bt"] - c[0]["bt"] for p, c in zip(ahead, clean, strict=True)] == [9 * 3600] * 30
    gaps = prototype.packs("paddy-water", now=NOW, count=30, faults=["gaps"])
    assert len(gaps) == 30 - 12
    stuck = prototype.packs("paddy-water", now=NOW, count=30, faults=["stuck"])
    assert len({r["v"] for p in stuck for r in p if r["n"] == "water_temp"}) == 1
    assert len({r["v"] for p in clean for r in p if r["n"] == "water_temp"}) > 10
    assert len({r["v"] for p in stuck for r in p if r["n"] == "water_level"}) > 10
    unit = prototype.packs("paddy-water", now=NOW, count=30, faults=["wrong-unit"])
    assert unit[-1][0]["u"] not in {METRICS[unit[-1][0]["n"]].unit,
                                    *METRICS[unit[-1][0]["n"]].convert}
    ms = prototype.packs("paddy-water", now=NOW, count=30, faults=["milliseconds"])
    assert ms[-1][0]["bt"] > 1e12 and ms[0][0]["bt"] < 1e10
    both = prototype.packs("paddy-water", now=NOW, count=30, faults=["milliseconds",
                                                                      "wrong-unit"])
    assert both[-2][0]["bt"] > 1e12 and both[-1][0]["bt"] < 1e10
    with pytest.raises(prototype.PrototypeError, match="unknown fault 'x'"):
        prototype.packs("paddy-water", now=NOW, faults=["x"])


@pytest.fixture(scope="module")
def devices(platform, api):
    with psycopg.connect(platform.db_url) as conn:
        people = make_people(conn, [("spt-dev", "developer", [])])
        import_fields(conn, parse_features(field_at("spt-f1", "spt-farmer", "SptTown", 140.9)),
                      create_owners=True)
    creds = {d: platform.add_device(d, prof, field_id="spt-f1", owner="spt-dev",
                                    prototype=True, organisation="Ref Lab")
             for d, prof in (("spt-clean", "paddy-water"), ("spt-faulty", "paddy-water"),
                             ("spt-ahead", "paddy-water"), ("spt-station", "weather-station"))}
    return {"token": people["spt-dev"].token, "creds": creds}


def _play(platform, device: str, password: str, prof: str, *faults: str,
          listen: float = 0.0, more: tuple[str, ...] = ()) -> subprocess.Popen:
    args = [sys.executable, "-m", "agri.cli", "simulate", "device", "--id", device,
            "--profile", prof, "--listen", str(listen), "--json", *more,
            *(x for f in faults for x in ("--fault", f))]
    return subprocess.Popen(args, env=platform.env(AGRI_DEVICE_PASSWORD=password),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _check(platform, device: str) -> dict:
    done = platform.cli("devices", "check", device, "--minutes", "360", "--json", check=False)
    assert done.returncode in (0, 1), done.stderr
    report = orjson.loads(done.stdout)
    return {c["check"]: c for c in report["checks"]} | {"passed": report["passed"]}


def test_reference_devices_are_judged_by_the_sandbox(platform, api, devices):
    creds, token = devices["creds"], devices["token"]
    worker = platform.start_ingest("spt")
    try:
        playing = {
            "spt-clean": _play(platform, "spt-clean", creds["spt-clean"], "paddy-water",
                               listen=25),
            "spt-faulty": _play(platform, "spt-faulty", creds["spt-faulty"], "paddy-water",
                                "wrong-unit", "milliseconds", "stuck", "gaps", "no-answers",
                                listen=25),
            # A clock is judged on what was measured about when it was sent.
            "spt-ahead": _play(platform, "spt-ahead", creds["spt-ahead"], "paddy-water",
                               "clock-9h", more=("--count", "6", "--interval", "1")),
            "spt-station": _play(platform, "spt-station", creds["spt-station"],
                                 "weather-station"),
        }
        wait_for(lambda: platform.sql(
            "SELECT count(*) FROM readings WHERE device_id = 'spt-faulty'")[0][0] > 0,
            what="the faulty device's readings")
        for device in ("spt-clean", "spt-faulty"):
            r = httpx.post(f"{api}/api/v1/devices/{device}/commands",
                           headers={"Authorization": f"Bearer {token}"},
                           json={"name": "reboot", "expires_in_s": 600})
            assert r.status_code == 202, r.text
        wait_for(lambda: platform.sql("SELECT status FROM device_commands WHERE device_id = "
                                      "'spt-clean'") == [("done",)], what="the clean answer")
        out = {}
        for device, proc in playing.items():
            stdout, stderr = proc.communicate(timeout=90)
            assert proc.returncode == 0, stderr
            out[device] = orjson.loads(stdout)
        assert out["spt-faulty"]["commands"] == 1 and out["spt-faulty"]["answered"] == 0
        wait_for(lambda: platform.sql(
            "SELECT count(*) FROM rejects WHERE device_id = 'spt-ahead'")[0][0] >= 6,
            what="the refused clock")
        wait_for(lambda: platform.sql(
            "SELECT count(*) FROM readings WHERE device_id = 'spt-station'")[0][0] >=
            out["spt-station"]["records"], what="the station's readings")
    finally:
        platform.stop_ingest(worker)

    clean = _check(platform, "spt-clean")
    assert clean["passed"], {k: v["status"] for k, v in clean.items() if k != "passed"}
    station = _check(platform, "spt-station")
    assert station["passed"] or {k for k, v in station.items()
                                 if k != "passed" and v["status"] == "fail"} == {"commands"}
    assert station["accepted"]["status"] == "pass"

    faulty = _check(platform, "spt-faulty")
    failed = {k for k, v in faulty.items() if k != "passed" and v["status"] == "fail"}
    assert failed == {"rejected", "regularity", "stuck", "commands"}, failed
    assert set(faulty["rejected"]["figures"]["by_code"]) == {"unit-not-accepted",
                                                            "time-in-milliseconds"}
    ahead = _check(platform, "spt-ahead")
    assert ahead["clock"]["status"] == "fail"
    assert ahead["clock"]["figures"]["whole_hours"] == 9
