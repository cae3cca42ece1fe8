"""Device profiles as data: the shipped TOML files are the profiles the
platform had in code; every mistake in a file is refused naming the file,
the key and what is wrong; a profile in AGRI_PROFILES_DIR can be registered;
a metric's stored unit never changes; the water gate's readings go through
the real checks."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import orjson
import psycopg
import pytest

from agri.deploy import migrate as migrate_module
from agri.deploy.migrate import MIGRATIONS, MigrationError, migrate
from agri.devices import profiles
from agri.devices.codecs import decode_senml_json
from agri.devices.profiles import (
    DEVICE_FORMATS,
    FORMATS,
    METRICS,
    PROFILES,
    Argument,
    Metric,
    ProfileError,
    folders,
    load,
)
from agri.devices.topics import Format
from agri.ingest.validate import TimeLimits, profile_metrics, validate
from agri.settings import Settings

# What devices/profiles.py held in code before the profiles became files:
# name -> (unit, low, high, accepted units and factors, vb accepted).
BEFORE_METRICS = {
    "water_level": ("m", -0.30, 0.50, {"cm": Fraction(1, 100), "mm": Fraction(1, 1000)}, False),
    "water_temp": ("Cel", -5.0, 50.0, {}, False),
    "battery": ("%EL", 0.0, 100.0, {}, False),
    "air_temp": ("Cel", -40.0, 50.0, {}, False),
    "rel_humidity": ("%RH", 0.0, 100.0, {}, False),
    "precipitation": ("mm", 0.0, 200.0, {"m": Fraction(1000)}, False),
    "wind_speed": ("m/s", 0.0, 75.0, {"km/h": Fraction(5, 18)}, False),
    "wind_direction": ("deg", 0.0, 360.0, {}, False),
    "solar_radiation": ("W/m2", 0.0, 1500.0, {}, False),
    "sunshine_duration": ("s", 0.0, 3600.0, {}, False),
    "leaf_wetness": ("/", 0.0, 1.0, {"%": Fraction(1, 100)}, True),
    "soil_moisture": ("/", 0.0, 1.0, {"%": Fraction(1, 100)}, False),
    "soil_temp": ("Cel", -20.0, 50.0, {}, False),
    "soil_ec": ("S/m", 0.0, 2.0, {}, False),
}
# name -> (intervals, flights)
BEFORE_PROFILES = {
    "paddy-water": ({"water_level": 600, "water_temp": 600, "battery": 3600}, False),
    "weather-station": ({"air_temp": 600, "rel_humidity": 600, "precipitation": 600,
                         "wind_speed": 600, "wind_direction": 600, "solar_radiation": 600,
                         "sunshine_duration": 3600, "leaf_wetness": 600, "battery": 3600},
                        False),
    "soil": ({"soil_moisture": 1800, "soil_temp": 1800, "soil_ec": 1800, "battery": 3600},
             False),
    "drone": ({}, True),
}
NOW = 1_754_017_200.0
LIMITS = TimeLimits(max_age_s=86_400, max_future_s=600)


# ---------------------------------------------------------------------------
# The shipped files


def test_the_shipped_files_are_the_profiles_the_code_had():
    assert list(METRICS)[:len(BEFORE_METRICS)] == list(BEFORE_METRICS)
    for name, (unit, low, high, convert, boolean) in BEFORE_METRICS.items():
        m = METRICS[name]
        assert (m.unit, m.low, m.high, dict(m.convert), m.boolean) == \
            (unit, low, high, convert, boolean), name
        assert all(type(f) is Fraction for f in m.convert.values())
    assert list(PROFILES)[:len(BEFORE_PROFILES)] == list(BEFORE_PROFILES)
    for name, (intervals, flights) in BEFORE_PROFILES.items():
        p = PROFILES[name]
        assert (dict(p.intervals_s), p.flights, p.version) == (intervals, flights, 1), name
        assert p.battery == ("battery" if intervals else None)
        assert p.formats == (("events", "flights") if flights else DEVICE_FORMATS)


def test_the_formats_are_those_of_the_topic_scheme():
    assert set(FORMATS) == {f.value for f in Format}
    assert set(DEVICE_FORMATS) == set(FORMATS) - {"flights"}


def test_the_water_gate_profile():
    gate = PROFILES["water-gate"]
    assert dict(gate.intervals_s) == {"gate_position": 600, "gate_state": 600,
                                      "supply_level": 600, "battery": 3600}
    assert (gate.version, gate.battery, gate.flights) == (1, "battery", False)
    assert gate.optional == {"supply_level"}
    assert all(not p.optional for name, p in PROFILES.items() if name != "water-gate")
    assert (METRICS["gate_position"].unit, METRICS["gate_position"].low,
            METRICS["gate_position"].high) == ("%", 0.0, 100.0)
    assert METRICS["gate_state"].boolean and METRICS["supply_level"].unit == "m"
    assert list(gate.commands) == ["set_gate", "set_target_level", "set_interval", "reboot"]
    assert dict(gate.commands["set_gate"].args) == {
        "position": Argument("position", 0.0, 100.0, "%")}
    level = METRICS["water_level"]
    assert dict(gate.commands["set_target_level"].args) == {
        "level": Argument("level", level.low, level.high, "m")}
    assert dict(gate.commands["set_interval"].args) == {
        "seconds": Argument("seconds", 60.0, 86400.0, "s", integer=True)}
    assert dict(gate.commands["reboot"].args) == {}


def _gate(pack: list[dict]):
    gate = PROFILES["water-gate"]
    records, errors = decode_senml_json(orjson.dumps(pack), now=NOW)
    assert errors == []
    return validate(records, device_id="gate-1", profile=gate, metrics=profile_metrics(gate),
                    received=NOW, limits=LIMITS)


def test_the_water_gate_takes_its_senml_and_refuses_an_impossible_opening():
    rows, errors = _gate([
        {"bn": "gate-1:", "bt": NOW, "n": "gate_position", "u": "%", "v": 35},
        {"n": "gate_state", "vb": True},
        {"n": "supply_level", "u": "cm", "v": 42},
        {"n": "battery", "u": "%EL", "v": 81}])
    assert errors == []
    assert [(m, v) for _, m, _, v, _ in rows] == [
        ("gate_position", 35.0), ("gate_state", 1.0), ("supply_level", 0.42), ("battery", 81.0)]
    # supply_level is optional: a gate without a canal sensor just leaves it out.
    rows, errors = _gate([{"bn": "gate-1:", "bt": NOW, "n": "gate_state", "vb": False},
                          {"n": "gate_position", "u": "%", "v": 120}])
    assert [(m, v) for _, m, _, v, _ in rows] == [("gate_state", 0.0)]
    assert [reason for _, reason, _ in errors] == [
        "gate_position = 120 % is outside the physical range 0..100 %"]


# ---------------------------------------------------------------------------
# Mistakes in files

GOOD_PROFILE = """\
name = "test-probe"
version = 2
description = "a test probe"
battery = "battery"
formats = ["senml"]

[metrics]
water_level = 600
battery = 3600
"""


def _extra(tmp_path: Path, files: dict[str, str]) -> Path:
    extra = tmp_path / "extra"
    extra.mkdir(exist_ok=True)
    for name, text in files.items():
        (extra / name).write_text(text)
    return extra


def _error(tmp_path: Path, files: dict[str, str]) -> str:
    extra = _extra(tmp_path, files)
    with pytest.raises(ProfileError) as caught:
        load(folders(extra))
    return str(caught.value).replace(f"AGRI_PROFILES_DIR={extra}", "EXTRA")


def test_a_good_extra_folder_adds_its_metrics_and_profiles(tmp_path):
    extra = _extra(tmp_path, {
        "metrics.toml": '[canal_flow]\nunit = "m3/s"\nlow = 0\nhigh = 5\n'
                        'description = "flow"\naccept = { "l/s" = "1/1000" }\n',
        "probe.toml": GOOD_PROFILE.replace("water_level = 600", "canal_flow = 900")})
    metrics, found = load(folders(extra))
    assert list(found) == [*PROFILES, "test-probe"]
    assert metrics["canal_flow"] == Metric("canal_flow", "m3/s", 0.0, 5.0, "flow",
                                           {"l/s": Fraction(1, 1000)})
    probe = found["test-probe"]
    assert (dict(probe.intervals_s), probe.version, probe.formats) == (
        {"canal_flow": 900, "battery": 3600}, 2, ("senml",))


def _metric(**spec: str) -> str:
    base = {"unit": '"m"', "low": "0", "high": "1", "description": '"x"', **spec}
    return "[test_metric]\n" + "".join(f"{k} = {v}\n" for k, v in base.items() if v)


BAD_FILES = {
    "unknown metric": (
        {"p.toml": GOOD_PROFILE.replace("water_level", "water_lvl")},
        "EXTRA/p.toml: metrics.water_lvl: unknown metric 'water_lvl': define it in "
        "metrics.toml first"),
    "unit not SenML": (
        {"metrics.toml": _metric(unit='"meters"')},
        "EXTRA/metrics.toml: test_metric.unit: 'meters' is not a SenML unit (RFC 8428 "
        "section 12.1, RFC 8798), e.g. 'm', 'Cel', '%EL', '/'"),
    "accepted unit not SenML": (
        {"metrics.toml": _metric(accept='{ inch = "254/10000" }')},
        "EXTRA/metrics.toml: test_metric.accept.inch: 'inch' is not a SenML unit (RFC 8428 "
        "section 12.1, RFC 8798), e.g. 'm', 'Cel', '%EL', '/'"),
    "low not below high": (
        {"metrics.toml": _metric(low="1", high="1")},
        "EXTRA/metrics.toml: test_metric: low (1) must be below high (1)"),
    "range not a number": (
        {"metrics.toml": _metric(high='"10"')},
        "EXTRA/metrics.toml: test_metric.high: must be a finite number, not '10'"),
    "interval zero": (
        {"p.toml": GOOD_PROFILE.replace("= 600", "= 0")},
        "EXTRA/p.toml: metrics.water_level: must be a positive whole number, not 0"),
    "interval fractional": (
        {"p.toml": GOOD_PROFILE.replace("= 600", "= 600.5")},
        "EXTRA/p.toml: metrics.water_level: must be a positive whole number, not 600.5"),
    "factor not exact": (
        {"metrics.toml": _metric(accept="{ cm = 0.01 }")},
        "EXTRA/metrics.toml: test_metric.accept.cm: factor 0.01 is not exact: write a "
        "positive integer or a fraction in quotes, such as \"1/100\""),
    "factor zero": (
        {"metrics.toml": _metric(accept='{ cm = "0/100" }')},
        "EXTRA/metrics.toml: test_metric.accept.cm: factor '0/100' is not exact: write a "
        "positive integer or a fraction in quotes, such as \"1/100\""),
    "canonical unit accepted again": (
        {"metrics.toml": _metric(accept="{ m = 1 }")},
        "EXTRA/metrics.toml: test_metric.accept.m: 'm' is the canonical unit; list only "
        "other units"),
    "duplicate profile name": (
        {"p.toml": GOOD_PROFILE.replace("test-probe", "soil")},
        "EXTRA/p.toml: name: profile 'soil' is already defined in "
        "devices/profiles/3-soil.toml"),
    "unknown payload format": (
        {"p.toml": GOOD_PROFILE.replace('["senml"]', '["senml", "lora"]')},
        "EXTRA/p.toml: formats: unknown payload format 'lora'; choose among senml, "
        "senml-cbor, events, acks, flights, tts-uplink, chirpstack-uplink"),
    "no formats": (
        {"p.toml": GOOD_PROFILE.replace('["senml"]', "[]")},
        "EXTRA/p.toml: formats: must be a non-empty list of payload formats, not list"),
    "battery not a metric of the profile": (
        {"p.toml": GOOD_PROFILE.replace('battery = "battery"', 'battery = "air_temp"')},
        "EXTRA/p.toml: battery: 'air_temp' is not one of this profile's metrics "
        "(water_level, battery)"),
    "optional not a metric of the profile": (
        {"p.toml": GOOD_PROFILE.replace('battery = "battery"',
                                        'battery = "battery"\noptional = ["air_temp"]')},
        "EXTRA/p.toml: optional: 'air_temp' is not one of this profile's metrics "
        "(water_level, battery)"),
    "optional not a list": (
        {"p.toml": GOOD_PROFILE.replace('battery = "battery"',
                                        'battery = "battery"\noptional = "battery"')},
        "EXTRA/p.toml: optional: must be a list of this profile's metrics, not 'battery'"),
    "changes a metric's canonical unit": (
        {"metrics.toml": '[water_level]\nunit = "cm"\nlow = -30\nhigh = 50\n'
                         'description = "paddy water"\n'},
        "EXTRA/metrics.toml: water_level.unit: changes the canonical unit of water_level "
        "from 'm' (devices/profiles/metrics.toml) to 'cm': readings stored in 'm' would be "
        "misread; choose a new metric name"),
    "redefines a metric": (
        {"metrics.toml": '[battery]\nunit = "%EL"\nlow = 0\nhigh = 90\n'
                         'description = "battery"\n'},
        "EXTRA/metrics.toml: battery: already defined in devices/profiles/metrics.toml; "
        "choose another name"),
    "flights without the format": (
        {"p.toml": GOOD_PROFILE.replace('formats = ["senml"]',
                                        'formats = ["senml"]\nflights = true')},
        "EXTRA/p.toml: flights: flights = true goes with the format 'flights' in formats, "
        "and only with it"),
    "version zero": (
        {"p.toml": GOOD_PROFILE.replace("version = 2", "version = 0")},
        "EXTRA/p.toml: version: must be a positive whole number, not 0"),
    "missing key": (
        {"p.toml": GOOD_PROFILE.replace("version = 2\n", "")},
        "EXTRA/p.toml: version: missing"),
    "misspelt key": (
        {"p.toml": GOOD_PROFILE.replace("battery = \"battery\"", "batery = \"battery\"")},
        "EXTRA/p.toml: batery: unknown key; expected battery, commands, description, "
        "downlink_port, flights, formats, metrics, name, optional, version"),
    "downlink port outside LoRaWAN's application ports": (
        {"p.toml": GOOD_PROFILE.replace('formats = ["senml"]',
                                        'formats = ["senml"]\ndownlink_port = 224')},
        "EXTRA/p.toml: downlink_port: must be a LoRaWAN application port, a whole number "
        "from 1 to 223, not 224"),
    "downlink port not a number": (
        {"p.toml": GOOD_PROFILE.replace('formats = ["senml"]',
                                        'formats = ["senml"]\ndownlink_port = "10"')},
        "EXTRA/p.toml: downlink_port: must be a LoRaWAN application port, a whole number "
        "from 1 to 223, not '10'"),
    "bad name": (
        {"p.toml": GOOD_PROFILE.replace("test-probe", "Test Probe")},
        "EXTRA/p.toml: name: 'Test Probe': a profile name is lower case letters, digits and "
        "-, at most 48 (pattern [a-z][a-z0-9-]{0,47})"),
    "command argument range": (
        {"p.toml": GOOD_PROFILE + "[commands.set_interval]\n"
                                  "seconds = { low = 600, high = 60 }\n"},
        "EXTRA/p.toml: commands.set_interval.seconds: low (600) must be below high (60)"),
    "command argument of an unknown metric": (
        {"p.toml": GOOD_PROFILE + "[commands.set_gate]\nposition = { metric = \"gate\" }\n"},
        "EXTRA/p.toml: commands.set_gate.position.metric: unknown metric 'gate'"),
    "not TOML": (
        {"p.toml": "name = \n"},
        "EXTRA/p.toml: not valid TOML: Invalid value (at line 1, column 8)"),
}


@pytest.mark.parametrize("case", BAD_FILES, ids=str)
def test_each_mistake_is_refused_naming_file_key_and_problem(tmp_path, case):
    files, message = BAD_FILES[case]
    assert _error(tmp_path, files) == message


def test_the_extra_folder_must_be_a_folder(tmp_path):
    with pytest.raises(ProfileError, match=r"AGRI_PROFILES_DIR=.*/nowhere: not a folder$"):
        load(folders(tmp_path / "nowhere"))


def test_a_bad_file_stops_every_command_with_its_message_and_no_traceback(tmp_path):
    extra = _extra(tmp_path, {"p.toml": GOOD_PROFILE.replace("= 600", "= -5")})
    for argv in (["-c", "import agri.devices.profiles"], ["-m", "agri.cli", "db", "migrate"]):
        done = subprocess.run([sys.executable, *argv], capture_output=True, text=True,
                              env={"AGRI_PROFILES_DIR": str(extra), "PATH": "/usr/bin:/bin",
                                   "AGRI_HOME": str(tmp_path / "home")}, timeout=60)
        assert done.returncode == 2, done.stderr
        assert done.stderr == (f"agri: device profiles: AGRI_PROFILES_DIR={extra}/p.toml: "
                               f"metrics.water_level: must be a positive whole number, "
                               f"not -5\n")


# ---------------------------------------------------------------------------
# The database: a profile of the extra folder, versions, stored units


def test_a_profile_of_the_extra_folder_is_registrable_after_migrate(platform, scratch_db,
                                                                     tmp_path):
    extra = _extra(tmp_path, {
        "metrics.toml": '[test_canal_flow]\nunit = "m3/s"\nlow = 0\nhigh = 5\n'
                        'description = "flow in the supply canal"\n',
        "probe.toml": GOOD_PROFILE.replace("water_level = 600", "test_canal_flow = 900")
                                  .replace("version = 2", "version = 3")})
    env = {"AGRI_DATABASE_URL": scratch_db, "AGRI_PROFILES_DIR": str(extra)}
    platform.cli("db", "migrate", **env)
    # Without the folder the profile is unknown, and says which there are.
    refused = platform.cli("devices", "add", "--id", "pf-probe-0", "--profile", "test-probe",
                           check=False, AGRI_DATABASE_URL=scratch_db)
    assert refused.returncode == 2
    assert refused.stderr.startswith("agri: unknown profile 'test-probe'; choose one of: "
                                     "paddy-water")
    added = platform.cli("devices", "add", "--id", "pf-probe-1", "--profile", "test-probe",
                         "--json", **env)
    assert orjson.loads(added.stdout)["device_id"] == "pf-probe-1"
    added = platform.cli("devices", "add", "--id", "pf-gate-1", "--profile", "water-gate", **env)
    with psycopg.connect(scratch_db) as conn:
        assert conn.execute("SELECT id, profile, profile_version FROM devices ORDER BY id"
                            ).fetchall() == [("pf-gate-1", "water-gate", 1),
                                             ("pf-probe-1", "test-probe", 3)]
        stored = conn.execute("SELECT metrics FROM device_profiles WHERE name = 'test-probe'"
                              ).fetchone()[0]
        assert stored["test_canal_flow"] == {"unit": "m3/s", "low": 0.0, "high": 5.0,
                                             "interval_s": 900}


def test_a_metric_keeps_the_unit_its_readings_are_stored_in(scratch_db, monkeypatch):
    with psycopg.connect(scratch_db) as conn:
        migrate(conn, settings=Settings())
        assert conn.execute("SELECT unit FROM metric_units WHERE metric = 'water_level'"
                            ).fetchone() == ("m",)
        changed = {**METRICS, "water_level": Metric("water_level", "cm", -30, 50, "depth")}
        monkeypatch.setattr(migrate_module, "METRICS", changed)
        with pytest.raises(MigrationError,
                           match="the device profiles were not synced, nothing of them was "
                                 "changed: profile paddy-water: metric water_level is stored "
                                 "in m, the profile files now say cm"):
            migrate(conn, settings=Settings())
        # Nothing of the refused copy was kept.
        stored = conn.execute("SELECT metrics -> 'water_level' ->> 'unit' FROM device_profiles "
                              "WHERE name = 'paddy-water'").fetchone()
        assert stored == ("m",)
        # A range or an accepted unit may change: stored readings are in the same unit.
        wider = {**METRICS, "water_level": Metric("water_level", "m", -0.5, 0.8, "depth")}
        monkeypatch.setattr(migrate_module, "METRICS", wider)
        migrate(conn, settings=Settings())


def test_an_existing_database_keeps_its_devices_as_version_1_and_its_units(scratch_db,
                                                                            tmp_path):
    before = tmp_path / "migrations"
    before.mkdir()
    for entry in MIGRATIONS.iterdir():
        if entry.name.endswith(".sql") and not entry.name.startswith("016_"):
            (before / entry.name).write_text(entry.read_text())
    with psycopg.connect(scratch_db) as conn:
        migrate(conn, directory=before, settings=Settings())
        conn.execute("INSERT INTO devices (id, profile, password_hash) "
                     "VALUES ('old-1', 'soil', 'x')")
        migrate(conn, settings=Settings())
        assert conn.execute("SELECT profile_version FROM devices WHERE id = 'old-1'"
                            ).fetchone() == (1,)
        units = dict(conn.execute("SELECT metric, unit FROM metric_units").fetchall())
        assert units == {name: m.unit for name, m in METRICS.items()}


def test_the_profiles_module_reads_the_setting(tmp_path, monkeypatch):
    extra = _extra(tmp_path, {"probe.toml": GOOD_PROFILE})
    monkeypatch.setenv("AGRI_PROFILES_DIR", str(extra))
    _, found = profiles._load_at_start()
    assert "test-probe" in found
    assert Settings().profiles_dir == extra
