"""`agri bench water`: a season of paddies with and without the platform's water
control, on a stack of its own.

The simulator draws the season (weather, fields, crop and heading, the farmers'
water plans); each field gets its target band (analytics/water_band.daily_band
around the simulated heading, stored in field_water_bands), a paddy-water
sensor and a supply gate; every ``DRAIN_GATE_EVERY``-th field a drain gate too;
control mode ``hold``. Gates are simulated devices on their own MQTT accounts
(simulator/gates.py); the water is the stepped loop of simulator/paddy_loop.py.

Run 1 (control on), on a simulated clock, each step: the sensors publish the
level through Mosquitto at the simulated time; the bench waits until ingest
has stored them, calls ``agri.water.service.run_once(now=simulated time)``,
waits until ingest's sender has delivered the queued commands and the gates
have answered, takes the gates' positions into the loop and advances it.
Before a field's band starts (puddling, before transplanting) its farmer
keeps the gates.

Run 2 (control off): the same season and seed, the gates left to the farmers
(the simulator's own management, as in simulate_water), the readings also
through the broker into the database.

The share of field-hours in band is computed from the stored readings against
the stored bands (water_band.compare). The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

FIELDS = 50
SEED = 7
YEAR = 2025
STEP_MIN = 20
DRAIN_GATE_EVERY = 3  # every third field has a drain gate
FAIL_RATE = 0.02  # of the gates' moves
GATE_REPORT_EVERY_H = 6  # simulated hours between the gates' periodic reports
WEIR_ABOVE_BAND_M = 0.0  # with control, the farmer sets the outlet boards to the band's top
WINDOW_AFTER_FINAL_DRAIN_DAYS = 3
STORED_TIMEOUT_S = 60.0
ANSWER_TIMEOUT_S = 30.0
POLL_S = 0.005
SUBSCRIBE_TIMEOUT_S = 60.0
MAX_AGE_DAYS = "36500"  # the bench's ingest takes readings of any simulated season
# The bench waits for each step's readings: its ingest commits small batches at once.
INGEST_BATCH_SECONDS = "0.02"
ON, OFF = "ws-on-", "ws-off-"  # sensor ids of the two runs
SUPPLY, DRAIN = "wg-s-", "wg-d-"
_PLAN_STREAM = 11


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fields", type=int, default=FIELDS,
                        help=f"paddies, each with a sensor and a supply gate (default {FIELDS})")
    parser.add_argument("--days", type=int, default=None,
                        help="simulated days from --start (default: from the first "
                             "transplanting to final drainage)")
    parser.add_argument("--start", type=date.fromisoformat, default=None,
                        help="first simulated day, YYYY-MM-DD (default: the first transplanting)")
    parser.add_argument("--step-min", type=int, default=STEP_MIN,
                        help=f"simulated minutes a step (a divisor of 60, default {STEP_MIN})")
    parser.add_argument("--seed", type=int, default=SEED, help=f"default {SEED}")
    parser.add_argument("--year", type=int, default=YEAR, help=f"default {YEAR}")
    parser.add_argument("--fail-rate", type=float, default=FAIL_RATE,
                        help=f"share of gate moves that fail (default {FAIL_RATE:g})")


# -- the season -----------------------------------------------------------------------------
@dataclass
class Season:
    """The simulated season the two runs share, and the window they run over."""

    weather: Any
    fields: list
    plans: list
    cover: list
    bands: dict  # field id -> [BandDay]
    first: int  # day index (of plans[0].days) of the window's first day
    last: int  # ... one after the window's last day
    has_drain: Any

    @property
    def days(self):
        return self.plans[0].days

    def window(self) -> tuple[date, date]:
        return self.days[self.first].date(), self.days[self.last - 1].date()


def simulate(*, fields: int, seed: int, year: int, start: date | None = None,
             days: int | None = None) -> Season:
    """The season of ``fields`` paddies (crop and water solved together) and its window."""
    import numpy as np

    from agri.analytics import agronomy as ag
    from agri.analytics import water_band
    from agri.simulator.crop import daily_weather
    from agri.simulator.season import crop_and_water, season_fields
    from agri.simulator.weather import simulate_weather

    weather = simulate_weather(year=year, seed=seed)
    field_list = season_fields(fields=fields, seed=seed, year=year)

    def stream(f, part: int):
        return np.random.default_rng([seed, year, _PLAN_STREAM, zlib.crc32(f.id.encode()), part])

    growth, water = crop_and_water(field_list, weather, stream)
    daily = daily_weather(weather)
    tmean = {d.date(): float(v) for d, v in daily["tmean"].items()}
    plans = [water[f.id].plan for f in field_list]
    bands = {}
    last_day = None
    for f in field_list:
        heading = growth[f.id].phenology.heading or date(year, *ag.PREFECTURE_HEADING_END)
        final = heading + timedelta(days=ag.FINAL_DRAIN_MIN_DAYS_AFTER_HEADING)
        end = final + timedelta(days=WINDOW_AFTER_FINAL_DRAIN_DAYS)
        bands[f.id] = water_band.daily_band(transplanted_on=f.transplanted_on, heading=heading,
                                            days=(f.transplanted_on, end), cold_days=tmean)
        last_day = end if last_day is None else max(last_day, end)
    season_days = plans[0].days
    first_day = start or min(f.transplanted_on for f in field_list)
    first = (first_day - season_days[0].date()).days
    last = (first + days) if days else (last_day - season_days[0].date()).days + 1
    if not 0 <= first < last <= len(season_days):
        raise SystemExit(f"the window {first_day} + {days} days is outside the season "
                         f"{season_days[0].date()} .. {season_days[-1].date()}")
    has_drain = np.arange(len(field_list)) % DRAIN_GATE_EVERY == 0
    return Season(weather, field_list, plans,
                  [growth[f.id].canopy_cover() for f in field_list], bands, first, last,
                  has_drain)


def band_crest(season: Season):
    """Outlet weirs with control: the band's top on band days (open on drained ones);
    the farmers' weirs elsewhere (a NaN here: the loop keeps the farmer's)."""
    import numpy as np

    from agri.analytics.water_band import DRAINED_PHASES

    crest = np.full((len(season.fields), len(season.days)), np.nan)
    index = {d.date(): k for k, d in enumerate(season.days)}
    for i, f in enumerate(season.fields):
        for b in season.bands[f.id]:
            if b.day in index:
                crest[i, index[b.day]] = (0.0 if b.phase in DRAINED_PHASES
                                          else b.high_m + WEIR_ABOVE_BAND_M)
    return crest


def band_start(season: Season):
    import numpy as np

    return np.array([(min(b.day for b in season.bands[f.id]) - season.days[0].date()).days
                     for f in season.fields])


# -- the platform side ---------------------------------------------------------------------
def register(url: str, admin_url: str, season: Season) -> dict[str, str]:
    """Fields, bands, sensors, gates (with their roles) and hold mode; the gates'
    passwords."""
    from agri.api.field_registry import import_fields, parse_features
    from agri.db import connect
    from agri.devices import provisioning
    from agri.simulator.fields import fields_geojson

    passwords = {}
    with connect(url) as conn:
        import_fields(conn, parse_features(fields_geojson(season.fields)), create_owners=True)
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO field_water_bands (field_id, day, low_m, high_m, phase, "
                "computed_for) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (field_id, day) "
                "DO UPDATE SET low_m = excluded.low_m, high_m = excluded.high_m, "
                "phase = excluded.phase",
                [(fid, b.day, b.low_m, b.high_m, str(b.phase), season.days[season.first].date())
                 for fid, band in season.bands.items() for b in band])
        sensors = [(f"{run}{i}", "paddy-water", f.id, None, f.owner)
                   for i, f in enumerate(season.fields) for run in (ON, OFF)]
        provisioning.add_many(conn, admin_url, sensors)
        for i, f in enumerate(season.fields):
            roles = [(SUPPLY, "supply")] + ([(DRAIN, "drain")] if season.has_drain[i] else [])
            for prefix, role in roles:
                gate = f"{prefix}{i}"
                passwords[gate] = provisioning.add(conn, admin_url, device_id=gate,
                                                   profile_name="water-gate", field_id=f.id,
                                                   owner=f.owner)
                conn.execute("UPDATE devices SET gate_role = %s WHERE id = %s", (role, gate))
            conn.execute("INSERT INTO water_control (field_id, mode, updated_by) "
                         "VALUES (%s, 'hold', 'admin') ON CONFLICT (field_id) "
                         "DO UPDATE SET mode = 'hold'", (f.id,))
        conn.commit()
    return passwords


def start_ingest(home: Path, stack_home: Path, worker: str = "bench-water"
                 ) -> subprocess.Popen:
    log = home / f"ingest-{worker}.log"
    with open(log, "ab") as f:
        proc = subprocess.Popen(
            [sys.executable, "-m", "agri.cli", "ingest", "--worker", worker],
            env={"AGRI_HOME": str(stack_home), "PATH": "/usr/bin:/bin",
                 "AGRI_MAX_AGE_DAYS": MAX_AGE_DAYS,
                 "AGRI_INGEST_BATCH_SECONDS": INGEST_BATCH_SECONDS},
            stdout=f, stderr=f)
    deadline = time.time() + SUBSCRIBE_TIMEOUT_S
    while "subscribed (" not in log.read_text() and proc.poll() is None:
        if time.time() > deadline:
            raise RuntimeError(f"ingest did not subscribe: see {log}")
        time.sleep(0.1)
    if proc.poll() is not None:
        raise RuntimeError(f"ingest ended: {log.read_text()[-2000:]}")
    return proc


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(POLL_S)


def _loop(season: Season, step_min: int, *, control: bool):
    import numpy as np

    from agri.simulator.paddy_loop import PaddyLoop, canals_of

    loop = PaddyLoop(season.plans, season.weather, step_min=step_min, farmers=True,
                     canal=canals_of(season.fields),
                     area_m2=np.array([f.polygon.area for f in season.fields]),
                     has_drain=season.has_drain, canopy_cover=season.cover)
    loop.run_until(season.first)
    if control:
        crest = band_crest(season)
        farmer_crest = np.stack([np.where(p.mode == 1, p.high_m + 0.02, 0.0)
                                 for p in season.plans])
        loop.crest_m = np.where(np.isnan(crest), farmer_crest, crest)
    return loop


def _levels(prefix: str, t: float, levels, temps) -> list[tuple[str, bytes]]:
    from agri.devices.topics import senml_topic
    from agri.simulator.encoders import senml_pack

    return [(senml_topic(f"{prefix}{i}"),
             senml_pack(f"{prefix}{i}", t, {"water_level": ("m", round(float(v), 4)),
                                             "water_temp": ("Cel", round(float(c), 2))}))
            for i, (v, c) in enumerate(zip(levels, temps, strict=True))]


@dataclass
class RunStats:
    steps: int = 0
    commands: int = 0
    seconds: float = 0.0
    wait_stored_s: float = 0.0
    run_once_s: float = 0.0
    wait_gates_s: float = 0.0
    failed_moves: int = 0


def run_control(season: Season, *, url: str, simulator_url: str, device_url, passwords,
                step_min: int, fail_rate: float, seed: int) -> RunStats:
    """Run 1: the platform holds the bands through the gates."""
    from agri.db import connect
    from agri.simulator.gates import GateBehaviour, GateFleet, SimGate
    from agri.simulator.publish import Publisher
    from agri.water.service import run_once

    loop = _loop(season, step_min, control=True)
    starts = band_start(season)
    clock = [loop.now.timestamp()]
    gates = [SimGate(device_url(g, pw), g, clock=lambda: clock[0],
                     behaviour=GateBehaviour(fail_rate=fail_rate, seed=seed))
             for g, pw in passwords.items()]
    n = len(season.fields)
    supply = [f"{SUPPLY}{i}" for i in range(n)]
    drain = {i: f"{DRAIN}{i}" for i in range(n) if season.has_drain[i]}
    stats = RunStats()
    report_every = GATE_REPORT_EVERY_H * 60 // step_min
    t_start = time.perf_counter()
    with connect(url, autocommit=True) as conn, \
            Publisher(simulator_url, client_id="bench-water-on") as pub, \
            GateFleet(gates) as fleet:
        first_command = conn.execute(
            "SELECT coalesce(max(id), 0) FROM device_commands").fetchone()[0]
        while loop.day_index < season.last:
            loop.farmers = loop.day_index < starts
            t = loop.now.timestamp()
            clock[0] = t
            for topic, payload in _levels(ON, t, loop.level_m, loop.state.temp_c):
                pub.publish(topic, payload)
            pub.drain()
            t0 = time.perf_counter()
            _wait(lambda t=t: conn.execute(
                "SELECT count(*) FROM readings WHERE metric = 'water_level' AND time = "
                "to_timestamp(%s) AND device_id LIKE %s", (t, ON + "%")).fetchone()[0] >= n,
                STORED_TIMEOUT_S, "the step's readings to be stored")
            t1 = time.perf_counter()
            before = conn.execute("SELECT coalesce(max(id), 0) FROM device_commands").fetchone()[0]
            run_once(conn, now=datetime.fromtimestamp(t, tz=loop.now.tzinfo))
            t2 = time.perf_counter()
            queued = conn.execute("SELECT count(*) FROM device_commands WHERE id > %s",
                                  (before,)).fetchone()[0]
            if queued:
                _wait(lambda b=before: conn.execute(
                    "SELECT count(*) FROM device_commands WHERE id > %s "
                    "AND status IN ('queued', 'sent')", (b,)).fetchone()[0] == 0
                    and fleet.settled(), ANSWER_TIMEOUT_S, "the gates' answers")
            t3 = time.perf_counter()
            stats.wait_stored_s += t1 - t0
            stats.run_once_s += t2 - t1
            stats.wait_gates_s += t3 - t2
            for i, gid in enumerate(supply):
                loop.supply[i] = fleet.gates[gid].position
            for i, gid in drain.items():
                loop.drain[i] = fleet.gates[gid].position
            if stats.steps % report_every == 0:
                fleet.report_all(t)
            loop.advance()
            stats.steps += 1
        pub.drain()
        stats.commands = conn.execute("SELECT count(*) FROM device_commands WHERE id > %s",
                                      (first_command,)).fetchone()[0]
        stats.failed_moves = sum(g.failed_moves for g in gates)
    stats.seconds = time.perf_counter() - t_start
    return stats


def run_farmers(season: Season, *, url: str, simulator_url: str, step_min: int) -> RunStats:
    """Run 2: the same season, the gates left to the farmers; readings through the broker."""
    from agri.db import connect
    from agri.simulator.publish import Publisher

    loop = _loop(season, step_min, control=False)
    stats = RunStats()
    t_start = time.perf_counter()
    n = len(season.fields)
    with Publisher(simulator_url, client_id="bench-water-off") as pub:
        while loop.day_index < season.last:
            for topic, payload in _levels(OFF, loop.now.timestamp(), loop.level_m,
                                          loop.state.temp_c):
                pub.publish(topic, payload)
            loop.advance()
            stats.steps += 1
        pub.drain()
    with connect(url) as conn:
        _wait(lambda: conn.execute(
            "SELECT count(*) FROM readings WHERE metric = 'water_level' AND device_id LIKE %s",
            (OFF + "%",)).fetchone()[0] >= n * stats.steps, STORED_TIMEOUT_S * 5,
            "run 2's readings to be stored")
    stats.seconds = time.perf_counter() - t_start
    return stats


def in_band(url: str, season: Season, prefix: str) -> tuple[float, int, dict[str, float]]:
    """(share of field-hours in band, field-hours, share by phase) of the window, from
    the stored readings of the run's sensors against the stored bands."""
    import pandas as pd

    from agri.analytics import water_band
    from agri.clock import TZ
    from agri.db import connect

    first, last = season.window()
    as_of = datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=TZ)
    inside = hours = 0
    by_phase: dict[str, list[int]] = {}
    with connect(url) as conn:
        for i, f in enumerate(season.fields):
            band = [water_band.BandDay(d, lo, hi, water_band.Phase(ph), "stored")
                    for d, lo, hi, ph in conn.execute(
                        "SELECT day, low_m, high_m, phase FROM field_water_bands "
                        "WHERE field_id = %s AND day BETWEEN %s AND %s ORDER BY day",
                        (f.id, first, last))]
            rows = conn.execute("SELECT time, value FROM readings WHERE device_id = %s "
                                "AND metric = 'water_level' ORDER BY time",
                                (f"{prefix}{i}",)).fetchall()
            if not band:
                continue
            level = pd.Series([v for _, v in rows],
                              index=pd.DatetimeIndex([t for t, _ in rows]), dtype=float)
            status = water_band.compare(band, level, as_of=as_of)
            for d in status.days:
                inside += d.hours_inside
                hours += d.hours
                counts = by_phase.setdefault(str(d.phase), [0, 0])
                counts[0] += d.hours_inside
                counts[1] += d.hours
    shares = {p: round(i / h, 3) for p, (i, h) in by_phase.items() if h}
    return (inside / hours if hours else float("nan")), hours, shares


# -- the bench -------------------------------------------------------------------------------
def bench(stack, home: Path, *, fields: int, seed: int, year: int, start: date | None,
          days: int | None, step_min: int, fail_rate: float) -> dict:
    """Both runs on a started ``stack``; the figures."""
    t0 = time.perf_counter()
    season = simulate(fields=fields, seed=seed, year=year, start=start, days=days)
    passwords = register(stack.database_url, stack.mqtt_url("admin"), season)
    setup_s = time.perf_counter() - t0
    port = stack.state.mqtt_port
    ingest = start_ingest(home, stack.home)
    try:
        on = run_control(season, url=stack.database_url, simulator_url=stack.mqtt_url("simulator"),
                         device_url=lambda d, pw: f"mqtt://{d}:{pw}@127.0.0.1:{port}",
                         passwords=passwords, step_min=step_min, fail_rate=fail_rate, seed=seed)
        off = run_farmers(season, url=stack.database_url,
                          simulator_url=stack.mqtt_url("simulator"), step_min=step_min)
    finally:
        ingest.terminate()
        ingest.wait(30)
    x, hours, x_phase = in_band(stack.database_url, season, ON)
    y, _, y_phase = in_band(stack.database_url, season, OFF)
    first, last = season.window()
    return {"bench": "water", "in_band_with_control": round(x, 4),
            "in_band_without_control": round(y, 4), "fields": fields, "hours": hours,
            "commands": on.commands, "ratio": round(x / y, 4) if y else None,
            "first_day": first.isoformat(), "last_day": last.isoformat(),
            "step_min": step_min, "steps": on.steps, "drain_gates": int(season.has_drain.sum()),
            "fail_rate": fail_rate, "failed_moves": on.failed_moves,
            "step_s": round(on.seconds / max(on.steps, 1), 4),
            "wait_stored_s": round(on.wait_stored_s / max(on.steps, 1), 4),
            "run_once_s": round(on.run_once_s / max(on.steps, 1), 4),
            "wait_gates_s": round(on.wait_gates_s / max(on.steps, 1), 4),
            "control_run_s": round(on.seconds, 1), "farmer_run_s": round(off.seconds, 1),
            "setup_s": round(setup_s, 1),
            "by_phase_with_control": x_phase, "by_phase_without_control": y_phase}


def _report(r: dict) -> None:
    print(f"水管理ベンチマーク / water control benchmark: {r['fields']} fields, "
          f"{r['first_day']} .. {r['last_day']}, {r['step_min']} min steps "
          f"({r['steps']} steps), {r['drain_gates']} drain gates, gate failures "
          f"{r['fail_rate']:g}")
    print(f"{'run':24} {'in band':>8} {'field-hours':>12} {'commands':>9} {'seconds':>8}")
    print(f"{'制御あり / control on':24} {r['in_band_with_control']:>8.3f} {r['hours']:>12} "
          f"{r['commands']:>9} {r['control_run_s']:>8.0f}")
    print(f"{'制御なし / control off':24} {r['in_band_without_control']:>8.3f} {r['hours']:>12} "
          f"{'-':>9} {r['farmer_run_s']:>8.0f}")
    print("in band by phase (control on, off):")
    for phase, share in r["by_phase_with_control"].items():
        print(f"  {phase:24} {share:>8.3f} {r['by_phase_without_control'].get(phase, 0):>8.3f}")
    print(f"per step (control on): {r['step_s']:.3f} s = stored {r['wait_stored_s']:.3f} s + "
          f"run_once {r['run_once_s']:.3f} s + gates {r['wait_gates_s']:.3f} s + rest")
    print(json.dumps(r, ensure_ascii=False))


def run(args) -> int:
    from agri.deploy.stack import EmbeddedStack

    # Stopped by a signal, the stack is still stopped (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    base = Path(tempfile.mkdtemp(prefix="agri-bench-water-"))
    base.chmod(0o755)
    stack = EmbeddedStack(base / "home")
    ok = False
    try:
        stack.start()
        result = bench(stack, base, fields=args.fields, seed=args.seed, year=args.year,
                       start=args.start, days=args.days, step_min=args.step_min,
                       fail_rate=args.fail_rate)
        ok = True
    finally:
        stack.stop()
        if ok:
            shutil.rmtree(base, ignore_errors=True)
        else:
            print(f"the bench failed: logs kept in {base}", file=sys.stderr)
    _report(result)
    return 0
