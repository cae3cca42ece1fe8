"""Sensor quality against a real PostgreSQL+TimescaleDB: a small constructed fleet written
through ingest's writer, run_quality run twice (the same flags), readings never deleted,
readings_usable without the flagged ones, scores and reasons, flags carried from one day's
run to the next, the flag cap, hostile input (NaN and infinity, a device with one reading,
a profile the code does not know, readings of an id that is no device), the service
logins' rights; then precision and recall of stuck and dead sensors against the
simulator's injected faults for a seeded season window of more than 50 devices."""

from __future__ import annotations

import tempfile
from datetime import date, datetime

import numpy as np
import pandas as pd
import psycopg
import pytest

from agri.analytics import quality as q
from agri.analytics.quality_store import (
    QualityError,
    device_score,
    run_quality,
    usable_devices,
)
from agri.clock import TZ
from agri.devices.profiles import PROFILES
from agri.ingest.batch import Batch
from agri.ingest.writer import Writer
from tests.fix_roles import service_urls

YEAR = 2018  # a season no other test writes readings for
AS_OF, DAYS = date(YEAR, 7, 10), 3
OK = [f"qdb-ok-{i}" for i in range(1, 6)]
STUCK, DEAD, HOSTILE, ONE, ODD = "qdb-stuck", "qdb-dead", "qdb-hostile", "qdb-one", "qdb-odd"
LEGACY, GHOST = "qdb-legacy", "qdb-ghost"
PADDY = [*OK, STUCK, DEAD, HOSTILE, ONE, ODD]
STUCK_FROM, STUCK_TO = (datetime(YEAR, 7, 9, 3, 0, tzinfo=TZ),
                        datetime(YEAR, 7, 10, 12, 0, tzinfo=TZ))
DEAD_AFTER = datetime(YEAR, 7, 9, 6, 0, tzinfo=TZ)
NON_FINITE = (float("nan"), float("inf"), float("-inf"), float("nan"), float("nan"))


def _paddy_rows(rng: np.random.Generator, device: str, start: float, end: float) -> list:
    """A paddy sensor's readings every 10 minutes (battery hourly), received 2 s later."""
    t = np.arange(start + rng.integers(0, 600), end, 600.0)
    hours = (t - start) / 3600
    level = np.round(0.05 + 0.01 * np.sin(hours / 9) + rng.normal(0, 0.002, t.size), 3)
    temp = np.round(22 + 4 * np.sin(2 * np.pi * (hours - 9) / 24) + rng.normal(0, 0.1, t.size), 2)
    if device == STUCK:
        level[(t >= STUCK_FROM.timestamp()) & (t <= STUCK_TO.timestamp())] = 0.047
    if device == HOSTILE:
        temp[700:700 + len(NON_FINITE)] = NON_FINITE  # on 8 July
    keep = t < DEAD_AFTER.timestamp() if device == DEAD else np.ones(t.size, dtype=bool)
    rows = []
    for i in np.flatnonzero(keep):
        ti = float(t[i])
        rows += [(device, "water_level", ti, float(level[i]), ti + 2.0),
                 (device, "water_temp", ti, float(temp[i]), ti + 2.0)]
        if i % 6 == 0:
            rows.append((device, "battery", ti, 90.0 - hours[i] / 100, ti + 2.0))
        if device == ODD and i % 6 == 0:
            rows.append((device, "soil_ec", ti, 0.1, ti + 2.0))
    return rows


def _key_set(platform, prefix: str, kinds: tuple[str, ...] = q.KINDS) -> set[tuple]:
    return set(platform.sql(
        "SELECT device_id, metric, kind, from_time, to_time, readings FROM reading_flags "
        "WHERE device_id LIKE %s AND kind = ANY(%s)", (prefix + "%", list(kinds))))


def _count(platform, table: str, prefix: str = "qdb-") -> int:
    return platform.sql(f"SELECT count(*) FROM {table} WHERE device_id LIKE %s",
                        (prefix + "%",))[0][0]


@pytest.fixture(scope="module")
def fleet(platform):
    """The small fleet's readings, stored as ingest stores them (with the rollups)."""
    rng = np.random.default_rng(3)
    start = datetime(YEAR, 7, 4, tzinfo=TZ).timestamp()
    end = datetime(YEAR, 7, 11, tzinfo=TZ).timestamp()
    with psycopg.connect(platform.db_url) as conn:
        conn.execute("INSERT INTO device_profiles (name, description, metrics) "
                     "VALUES ('legacy-probe', 'a profile of an earlier version', '{}') "
                     "ON CONFLICT DO NOTHING")
        for device in PADDY:
            conn.execute("INSERT INTO devices (id, profile, password_hash) "
                         "VALUES (%s, 'paddy-water', 'x') ON CONFLICT DO NOTHING", (device,))
        conn.execute("INSERT INTO devices (id, profile, password_hash) "
                     "VALUES (%s, 'legacy-probe', 'x') ON CONFLICT DO NOTHING", (LEGACY,))
    rows = [r for d in PADDY if d != ONE for r in _paddy_rows(rng, d, start, end)]
    rows += [(ONE, "water_level", datetime(YEAR, 7, 10, 10, tzinfo=TZ).timestamp(), 0.05,
              datetime(YEAR, 7, 10, 10, tzinfo=TZ).timestamp() + 2)]
    rows += [(d, m, t, v, r) for d in (LEGACY, GHOST)
             for (_, m, t, v, r) in _paddy_rows(rng, d, start, end)[-300:]]
    writer = Writer(platform.db_url)
    try:
        writer.write(Batch(rows=rows))
    finally:
        writer.close()
    return len(rows)


@pytest.fixture(scope="module")
def first_run(platform, fleet):
    readings = _count(platform, "readings")
    with psycopg.connect(platform.db_url) as conn:
        summary = run_quality(conn, as_of=AS_OF, days=DAYS)
    assert _count(platform, "readings") == readings == fleet
    return summary


def test_run_flags_the_faults_and_scores_the_days(platform, first_run):
    s = first_run
    assert s.devices == len(PADDY) and s.flags_dropped == 0
    assert s.skipped == {"unknown_profile": 1, "unregistered": 1, "unknown_metric": 1}
    # on as_of: the stuck sensor has its last 12 h back; one reading is no day's data
    assert s.unusable == (DEAD, ONE)
    stuck = platform.sql("SELECT device_id, metric, from_time, to_time, detail FROM reading_flags "
                         "WHERE device_id LIKE 'qdb-%%' AND kind = 'stuck'")
    assert len(stuck) == 1 and stuck[0][:2] == (STUCK, "water_level")
    assert STUCK_FROM <= stuck[0][2] < STUCK_FROM + pd.Timedelta(minutes=10)
    assert STUCK_TO - pd.Timedelta(minutes=10) < stuck[0][3] <= STUCK_TO
    assert stuck[0][4] == {"value": 0.047, "why": "flat"}
    silent = platform.sql("SELECT device_id, from_time, detail->>'open' FROM reading_flags "
                          "WHERE device_id LIKE 'qdb-%%' AND kind = 'silent' ORDER BY 1")
    assert [(d, o) for d, _, o in silent] == [(DEAD, "true"), (ONE, "true")]
    assert DEAD_AFTER - pd.Timedelta(minutes=11) < silent[0][1] < DEAD_AFTER
    non_finite = platform.sql("SELECT sum((detail->>'non_finite')::int) FROM reading_flags "
                              "WHERE device_id = %s AND kind = 'range'", (HOSTILE,))
    assert non_finite == [(len(NON_FINITE),)]
    assert not platform.sql("SELECT 1 FROM reading_flags WHERE device_id = ANY(%s)",
                            ([LEGACY, GHOST],))
    # one row per device and day from its first reading on: the one-reading device has one
    days = dict(platform.sql("SELECT device_id, count(*) FROM device_quality "
                             "WHERE device_id LIKE 'qdb-%%' GROUP BY 1"))
    assert days == {**{d: DAYS for d in PADDY if d != ONE}, ONE: 1}


def test_scores_and_reasons_say_which_sensor_may_be_broken(platform, first_run):
    with psycopg.connect(platform.db_url) as conn:
        on_9th = usable_devices(conn, date(YEAR, 7, 9), "paddy-water")
        assert set(OK) <= on_9th and STUCK not in on_9th and DEAD not in on_9th
        assert usable_devices(conn, AS_OF, "weather-station") == set()
        assert STUCK in usable_devices(conn, AS_OF) and DEAD not in usable_devices(conn, AS_OF)
        dead = device_score(conn, DEAD, AS_OF)
        stuck = device_score(conn, STUCK, date(YEAR, 7, 9))
        ok = device_score(conn, OK[0], AS_OF)
        assert device_score(conn, GHOST, AS_OF) is None
    assert dead.score == 0.0 and not dead.usable
    assert dead.reasons[0]["text"].startswith("silent since 2018-07-09 05:")
    assert stuck.score < q.USABLE_SCORE and not stuck.usable
    assert "water_level stuck at 0.047 m since 2018-07-09 03:0" in stuck.reasons[0]["text"]
    assert ok.usable and ok.score > 0.95 and 0 <= ok.anomaly_score <= 1


def test_readings_usable_leaves_out_exactly_the_flagged_readings(platform, first_run):
    total = _count(platform, "readings")
    covered = platform.sql("""SELECT count(*) FROM readings r WHERE r.device_id LIKE 'qdb-%%'
        AND EXISTS (SELECT FROM reading_flags f WHERE f.excludes AND f.device_id = r.device_id
                    AND f.metric = r.metric AND r.time BETWEEN f.from_time AND f.to_time)""")[0][0]
    stuck_readings = platform.sql("SELECT readings FROM reading_flags WHERE device_id = %s "
                                  "AND kind = 'stuck'", (STUCK,))[0][0]
    assert covered >= stuck_readings + len(NON_FINITE)
    assert _count(platform, "readings_usable") == total - covered
    assert platform.sql("SELECT count(*) FROM readings_usable WHERE device_id LIKE 'qdb-%%' "
                        "AND value IN ('NaN', 'Infinity', '-Infinity')") == [(0,)]
    assert platform.sql("SELECT count(*) FROM readings_usable WHERE device_id = %s AND "
                        "metric = 'water_level' AND time BETWEEN %s AND %s",
                        (STUCK, STUCK_FROM, STUCK_TO)) == [(0,)]


def test_a_second_run_stores_the_same_flags(platform, first_run):
    flags, scores = _key_set(platform, "qdb-"), _count(platform, "device_quality")
    readings = _count(platform, "readings")
    with psycopg.connect(platform.db_url) as conn:
        again = run_quality(conn, as_of=AS_OF, days=DAYS)
    assert _key_set(platform, "qdb-") == flags and sum(again.flags.values()) == len(flags)
    assert again.flags == first_run.flags
    assert _count(platform, "device_quality") == scores
    assert _count(platform, "readings") == readings


def test_day_by_day_runs_carry_a_flag_on_instead_of_starting_another(platform, first_run):
    kinds = ("stuck", "silent")
    whole = _key_set(platform, "qdb-", kinds)
    with psycopg.connect(platform.db_url) as conn:
        for day in (8, 9, 10):
            run_quality(conn, as_of=date(YEAR, 7, day), days=1)
    day_by_day = _key_set(platform, "qdb-", kinds)
    assert {k[:4] for k in day_by_day} == {k[:4] for k in whole}  # one row each, same span
    with psycopg.connect(platform.db_url) as conn:
        run_quality(conn, as_of=AS_OF, days=DAYS)
    assert _key_set(platform, "qdb-", kinds) == whole


def test_flags_beyond_the_cap_are_counted_not_stored(platform, first_run, monkeypatch):
    found = sum(first_run.flags.values())
    monkeypatch.setattr(q, "MAX_FLAGS_PER_RUN", 3)
    with psycopg.connect(platform.db_url) as conn:
        capped = run_quality(conn, as_of=AS_OF, days=DAYS)
    assert sum(capped.flags.values()) == 3 and capped.flags_dropped == found - 3
    monkeypatch.undo()
    with psycopg.connect(platform.db_url) as conn:
        assert sum(run_quality(conn, as_of=AS_OF, days=DAYS).flags.values()) == found


def test_a_window_out_of_bounds_is_refused(platform):
    with psycopg.connect(platform.db_url) as conn:
        for days in (0, -1, 63):
            with pytest.raises(QualityError, match="covers 1 to 62 days"):
                run_quality(conn, as_of=AS_OF, days=days)


def test_an_empty_window_stores_nothing(platform):
    with psycopg.connect(platform.db_url) as conn:
        s = run_quality(conn, as_of=date(1999, 1, 1), days=1)
    assert (s.devices, s.readings, s.flags, s.unusable) == (0, 0, {}, ())


def test_service_logins(platform, first_run):
    urls = service_urls(platform)
    flags = _key_set(platform, "qdb-")
    with psycopg.connect(urls["analytics"]) as conn:  # the analytics' own login runs it
        assert run_quality(conn, as_of=AS_OF, days=DAYS).flags == first_run.flags
    assert _key_set(platform, "qdb-") == flags
    with psycopg.connect(urls["api"]) as conn:
        for view in ("reading_flags", "device_quality", "readings_usable"):
            assert conn.execute(f"SELECT count(*) FROM {view}").fetchone()[0] > 0
    for url, statement in (
            (urls["api"], "DELETE FROM reading_flags"),
            (urls["api"], "UPDATE device_quality SET score = 1"),
            (urls["api"], "INSERT INTO reading_flags (device_id, metric, kind, from_time, "
                          "to_time, readings, excludes) VALUES ('x', 'y', 'stuck', now(), "
                          "now(), 0, true)"),
            (urls["ingest"], "SELECT count(*) FROM device_quality"),
            (urls["ingest"], "DELETE FROM reading_flags"),
            (urls["analytics"], "DELETE FROM readings"),
            (urls["analytics"], "UPDATE readings SET value = 0")):
        with psycopg.connect(url) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)
    assert platform.sql("SELECT count(*) FROM reading_flags WHERE device_id LIKE 'qdb-%%'")[0][0]


# --- accuracy against the simulator's injected faults ---------------------------------------

SIM_YEAR, SIM_SEED, SIM_FIELDS = 2019, 5, 50
SIM_WINDOW = (date(SIM_YEAR, 6, 10), date(SIM_YEAR, 7, 20))  # first and last day checked
SIM_LOAD_FROM = date(SIM_YEAR, 5, 17)  # the drift baseline's hourly means and the context
TARGET = 0.9


def _overlaps(a0: float, a1: float, b0: float, b1: float) -> bool:
    return a0 <= b1 and b0 <= a1


@pytest.mark.slow
def test_stuck_and_dead_sensors_against_the_simulators_faults(platform):
    from agri.simulator.season import simulate_season
    from agri.simulator.sensors import DECIMALS, NOISE_SD, FaultRates, Fleet, local_midnight

    season = simulate_season(fields=SIM_FIELDS, seed=SIM_SEED, year=SIM_YEAR, surveys=False,
                             out=tempfile.mkdtemp(prefix="quality-season-"))
    # more batteries die than the default 5 %, so that dead devices are counted in tens
    fleet = Fleet(season, seed=SIM_SEED, rates=FaultRates(battery_death=0.2), prefix="qacc")
    assert len(fleet.devices) >= 50
    with psycopg.connect(platform.db_url) as conn:
        for d in fleet.devices:
            conn.execute("INSERT INTO devices (id, profile, password_hash) VALUES (%s, %s, 'x') "
                         "ON CONFLICT DO NOTHING", (d.id, d.profile))
    ws = local_midnight(SIM_WINDOW[0])
    we = local_midnight(SIM_WINDOW[1]) + 86_400
    writer = Writer(platform.db_url)
    try:
        for rows in fleet.iter_rows(local_midnight(SIM_LOAD_FROM), we, chunk_rows=100_000):
            writer.write(Batch(rows=rows))
    finally:
        writer.close()
    conn = psycopg.connect(platform.db_url)
    try:
        summary = run_quality(conn, as_of=SIM_WINDOW[1],
                              days=(SIM_WINDOW[1] - SIM_WINDOW[0]).days + 1)
        heard = {r[0] for r in conn.execute(
            "SELECT DISTINCT device_id FROM readings_daily WHERE device_id LIKE 'qacc-%%'")}
        flags = conn.execute(
            "SELECT device_id, metric, kind, extract(epoch FROM from_time)::float8, "
            "extract(epoch FROM to_time)::float8 FROM reading_flags "
            "WHERE device_id LIKE 'qacc-%%' AND kind IN ('stuck', 'silent')").fetchall()

        def stored_times(f) -> np.ndarray:
            rows = conn.execute(
                "SELECT extract(epoch FROM time)::float8 FROM readings WHERE device_id = %s "
                "AND metric = %s AND time >= to_timestamp(%s) AND time < to_timestamp(%s)",
                (f.device, f.metric, max(f.start_s, ws), min(f.end_s, we))).fetchall()
            return np.array([r[0] for r in rows])

        def detectable(f) -> bool:
            """The sensor reported through at least half of the episode, and the truth
            moved away from the stuck value (by 1.5 x the larger of 3 noise SDs and the
            sent resolution, one tipping-bucket step for rain) at a fifth of those times.
            A sensor stuck at the value the truth kept anyway (no rain, a dry paddy's
            floor, night) harms nothing and no check can tell."""
            t = stored_times(f)
            interval = PROFILES[fleet.device(f.device).profile].intervals_s[f.metric]
            if t.size < max(2, 0.5 * (min(f.end_s, we) - max(f.start_s, ws)) / interval):
                return False
            tolerance = 0.25 if f.metric == "precipitation" else 1.5 * max(
                3 * NOISE_SD.get(f.metric, 0.0), 10.0 ** -DECIMALS[f.metric])
            truth = fleet.truth(fleet.device(f.device), f.metric, t)
            return float(np.mean(np.abs(truth - f.value) > tolerance)) >= 0.2

        figures = {}
        for kind, truth_kinds in (("stuck", ("stuck",)), ("silent", ("offline", "battery-death"))):
            # (a battery dead before the first day loaded leaves nothing to notice)
            truth = [f for f in fleet.faults if f.kind in truth_kinds and f.device in heard
                     and _overlaps(f.start_s, f.end_s, ws, we)]
            found = [f for f in flags if f[2] == kind and _overlaps(f[3], f[4], ws, we)]

            def match(flag, fault, kind=kind) -> bool:
                return (flag[0] == fault.device and (kind == "silent" or flag[1] == fault.metric)
                        and _overlaps(flag[3], flag[4], fault.start_s, fault.end_s))

            hits = [f for f in found if any(match(f, t) for t in truth)]
            targets = [t for t in truth if detectable(t)] if kind == "stuck" else truth
            caught = [t for t in targets if any(match(f, t) for f in found)]
            figures[kind] = (len(hits) / max(len(found), 1), len(caught) / max(len(targets), 1))
            caught_all = sum(any(match(f, t) for f in found) for t in truth)
            print(f"{kind}: precision {len(hits)}/{len(found)} = {figures[kind][0]:.3f}, "
                  f"recall {len(caught)}/{len(targets)} = {figures[kind][1]:.3f} "
                  f"(of every episode in the window: {caught_all}/{len(truth)})")
            assert len(targets) >= 20, f"too few {kind} episodes to measure"
    finally:
        conn.close()
    print(f"run_quality: {summary.devices} devices, {summary.readings} readings, "
          f"{summary.days} days, {summary.seconds:.1f} s; flags {summary.flags}")
    for kind, (precision, recall) in figures.items():
        assert precision >= TARGET and recall >= TARGET, (kind, precision, recall)


def test_a_gate_without_its_optional_canal_sensor_is_scored_on_what_it_has(platform):
    """The water gate's supply_level is optional: a gate that never sends it
    scores as well as its other metrics; one that sends it and then stops does not."""
    year, gate, gate_lost = 2017, "qgate-no-canal", "qgate-canal-lost"
    start = datetime(year, 7, 4, tzinfo=TZ).timestamp()
    end = datetime(year, 7, 7, tzinfo=TZ).timestamp()
    with psycopg.connect(platform.db_url) as conn:
        for device in (gate, gate_lost):
            conn.execute("INSERT INTO devices (id, profile, password_hash) "
                         "VALUES (%s, 'water-gate', 'x') ON CONFLICT DO NOTHING", (device,))
    rows = []
    for device in (gate, gate_lost):
        for i, t in enumerate(np.arange(start + 17, end, 600.0)):
            t = float(t)
            rows += [(device, "gate_position", t, 40.0 + i % 7, t + 2),
                     (device, "gate_state", t, 1.0, t + 2)]
            if device == gate_lost and t < start + 86400:  # its canal sensor fails on day 1
                rows.append((device, "supply_level", t, 0.4 + 0.001 * (i % 5), t + 2))
            if i % 6 == 0:
                rows.append((device, "battery", t, 80.0 - i / 500, t + 2))
    writer = Writer(platform.db_url)
    try:
        writer.write(Batch(rows=rows))
    finally:
        writer.close()
    last = date(year, 7, 6)
    with psycopg.connect(platform.db_url) as conn:
        run_quality(conn, as_of=last, days=2)
        whole = device_score(conn, gate, last)
        lost = device_score(conn, gate_lost, last)
    assert PROFILES["water-gate"].optional == {"supply_level"}
    assert whole.usable and whole.score > 0.95, whole.reasons
    assert lost.score < whole.score and not lost.usable, lost
