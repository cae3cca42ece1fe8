"""`agri bench api`: read latency of the API on a season of data, rollups
against the raw readings in the same run.

On an embedded stack of its own (as `agri up` starts it, in a temporary
folder), the bench

1. simulates a season (1 May to 31 October of the latest season that is
   over) of ``--fields`` paddies with their devices (simulator/sensors.py:
   a paddy-water sensor on most fields, a weather station per block, a soil
   probe on some), and loads it through the backfill path (the fields,
   owners and devices registered as `agri simulate backfill` registers
   them; the readings written by ingest's own writer, rollups included):
   every second reading of the metrics reported every 10 minutes, that is
   20-minute data, about 40 million readings for 1,000 fields. The fleet's
   devices are split over ``LOAD_PROCESSES`` writer processes;
2. starts `agri api` as a process of its own (``--workers`` processes), and an officer whose region
   is every municipality of the season (with an API token and a page
   session);
3. offers each endpoint ``--rate`` requests/s from ``CLIENTS`` concurrent
   clients (one connection each) for ``--duration`` seconds, on an open-loop
   schedule: request i is due at i / rate whatever the answers before it,
   and its latency counts from when it was due, so a slow server cannot
   hide its queue. Each request names a random field. The endpoints: the
   field detail (``/api/v1/fields/{id}``), its conditions, a season-long
   daily series of its water level (``bucket=1d``, 184 buckets), and the
   HTML field page (``/fields/{id}``) when the app has it;
4. searches for the highest rate at which each endpoint's p99 stays under
   its target (``TARGETS_MS``), doubling or halving from ``--rate`` over
   shorter runs;
5. times the season-long daily series as the API computes it from the
   daily rollup against the same buckets computed from the raw readings
   (series.bucket_points with source=RAW), one query at a time on the same
   connection over the same fields, checking that both give the same counts.

With ``--to-today`` the season's readings are moved by whole days so that its
last day is today (up to now): the field page then draws its 7-day charts
and the conditions are fresh, as during a season. Without it, a season that
ended before today leaves the page's 7-day charts empty.

With ``--home DIR`` the stack and its season stay in DIR, and a later run
with the same ``--fields``, ``--days`` and ``--seed`` measures them again
without loading. Before each endpoint's load, ``SEQUENTIAL_REQUESTS``
requests one at a time give its unloaded p50; the machine's load average
is printed beside (other work on the machine shows in every figure).

The last line printed is one JSON object: ``bench``, the figures of each
endpoint, ``baseline`` (the raw readings' daily series) and ``ratio``
(rollup p50 / raw p50 of the daily series).
"""

from __future__ import annotations

import asyncio
import logging
import math
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import httpx
import numpy as np
import orjson

from agri.clock import TZ, today_local
from agri.db import connect
from agri.deploy.servers import free_port
from agri.deploy.stack import EmbeddedStack
from agri.settings import Settings

logger = logging.getLogger(__name__)

CLIENTS = 20
LOAD_PROCESSES = 2
TARGETS_MS = {"conditions": 20.0, "daily_series": 30.0, "field_detail": 100.0,
              "field_page": 100.0}
HTML_TARGET_BYTES = 60 * 1024
SEARCH_STEPS = 4  # doublings or halvings of the rate when searching
SEARCH_MIN_S = 2.0
# A run stops at OVERRUN times its duration plus OVERRUN_S; requests not answered by
# then count as errors (a server that far behind fails the run anyway).
OVERRUN, OVERRUN_S = 3.0, 30.0
BASELINE_QUERIES = 100
SEQUENTIAL_REQUESTS = 50  # one at a time, before each endpoint's load
START_TIMEOUT_S = 60.0
THIN_INTERVAL_S = 600  # metrics reported this often keep every second reading
SEASON_DAYS = 184  # 1 May to 31 October


@dataclass
class Result:
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    sizes: list[int] = field(default_factory=list)
    codes: Counter = field(default_factory=Counter)  # of the errors: HTTP status or exception

    def quantile(self, q: float) -> float | None:
        return float(np.quantile(self.latencies_ms, q)) if self.latencies_ms else None

    def summary(self, rate: float, target: float | None) -> dict:
        p50, p99 = self.quantile(0.5), self.quantile(0.99)
        out = {"rate": rate, "requests": len(self.latencies_ms) + self.errors,
               "errors": self.errors, "p50_ms": _r(p50), "p99_ms": _r(p99)}
        if self.codes:
            out["error_kinds"] = {str(k): v for k, v in self.codes.items()}
        if target is not None:
            out["target_p99_ms"] = target
            out["meets_target"] = self.meets(target)
        if self.sizes:
            out["bytes_max"] = max(self.sizes)
            out["bytes_p50"] = int(np.median(self.sizes))
        return out

    def meets(self, target: float) -> bool:
        p99 = self.quantile(0.99)
        return self.errors == 0 and p99 is not None and p99 < target


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def season_year(today: date) -> int:
    """The latest season whose May-October is over."""
    return today.year if (today.month, today.day) > (10, 31) else today.year - 1


# -- loading ---------------------------------------------------------------------------------
def _keep(metric_interval: int, t: float) -> bool:
    return metric_interval != THIN_INTERVAL_S or int(t // THIN_INTERVAL_S) % 2 == 0


def _load_part(args: tuple) -> tuple[int, float]:
    """One writer process: the rows of its share of the fleet's devices (what
    ingest would store of their messages, as Fleet.iter_rows), thinned to
    20-minute data, through ingest's writer. Runs in a forked child."""
    url, device_ids, start_s, end_s, shift_s, until_s = args
    from agri.devices.profiles import PROFILES
    from agri.ingest.batch import Batch
    from agri.ingest.writer import Writer

    fleet = _FLEET
    profiles = {d.id: PROFILES[d.profile].intervals_s for d in fleet.devices}
    writer = Writer(url)
    written, began, chunk = 0, time.perf_counter(), []
    try:
        for _, _, meta in fleet.messages(start_s, end_s, devices=set(device_ids)):
            if meta.duplicate:
                continue
            intervals = profiles[meta.device]
            chunk += [(meta.device, m, t + shift_s, v, meta.publish_s + shift_s)
                      for m, t, v, ok in meta.readings
                      if ok and _keep(intervals[m], t) and t + shift_s <= until_s]
            if len(chunk) >= 50_000:
                written += writer.write(Batch(rows=chunk)).stored
                chunk = []
        if chunk:
            written += writer.write(Batch(rows=chunk)).stored
    finally:
        writer.close()
    return written, time.perf_counter() - began


_FLEET = None  # the fleet, inherited by the forked writer processes


def load(settings: Settings, *, fields: int, days: int, seed: int, out: Path,
         to_today: bool = False) -> dict:
    """Simulate and load the season; returns what was loaded. ``to_today``: the
    readings moved by whole days so that the season's last day is today (and
    nothing later than now is loaded), as the pages see a season under way."""
    global _FLEET
    from agri.simulator.publish import register
    from agri.simulator.season import simulate_season
    from agri.simulator.sensors import DAY_S, Fleet

    year = season_year(today_local())
    began = time.perf_counter()
    season = simulate_season(fields=fields, seed=seed, year=year, out=out, surveys=False,
                             scenes=False, lab_samples=0)
    fleet = Fleet(season, seed=seed, prefix="bench")
    simulated_s = time.perf_counter() - began
    register(settings, fleet)
    start_s = fleet.span[0]
    end_s = min(fleet.span[1], start_s + days * DAY_S)
    ids = [d.id for d in fleet.devices]
    shares = [ids[i::LOAD_PROCESSES] for i in range(LOAD_PROCESSES)]
    shift_s, until_s = 0.0, end_s
    if to_today:
        last = datetime.fromtimestamp(end_s - 1, TZ).date()
        shift_s, until_s = (today_local() - last).days * DAY_S, time.time()
    _FLEET = fleet
    began = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(LOAD_PROCESSES) as pool:
        parts = pool.map(_load_part, [(settings.db_url(), s, start_s, end_s, shift_s, until_s)
                                      for s in shares])
    load_s = time.perf_counter() - began
    _FLEET = None
    rows = sum(n for n, _ in parts)
    with connect(settings.db_url()) as conn:
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        stored = conn.execute("SELECT count(*) FROM readings WHERE device_id LIKE 'bench-%'"
                              ).fetchone()[0]
        rolled = conn.execute("SELECT coalesce(sum(count), 0)::bigint FROM readings_daily "
                              "WHERE device_id LIKE 'bench-%'").fetchone()[0]
    paddies = [d.field for d in fleet.devices if d.profile == "paddy-water"]
    return {"year": year, "fields": len(season.fields), "devices": len(fleet.devices),
            "paddy_sensors": len(paddies), "weather_stations": sum(
                d.profile == "weather-station" for d in fleet.devices),
            "readings": rows, "readings_stored": stored, "readings_in_daily_rollup": rolled,
            "load_s": round(load_s, 1), "simulate_s": round(simulated_s, 1),
            "load_rows_per_s": round(rows / load_s), "database_mb": round(size / 2**20),
            "first": datetime.fromtimestamp(start_s + shift_s, TZ).isoformat(),
            "end": datetime.fromtimestamp(end_s + shift_s, TZ).isoformat(),
            "moved_days": round(shift_s / DAY_S),
            "paddy_fields": sorted(set(paddies)),
            "municipalities": sorted({f.municipality for f in season.fields})}


# -- the API ---------------------------------------------------------------------------------
def start_api(stack: EmbeddedStack, log: Path, *, workers: int = 1
              ) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {"AGRI_HOME": str(stack.home), "PATH": "/usr/bin:/bin"}
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "agri.cli", "api", "--port", str(port),
                                 "--workers", str(workers)],
                                env=env, stdout=out, stderr=out)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code in (200, 503):
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.terminate()
    raise RuntimeError(f"agri api did not answer within {START_TIMEOUT_S:.0f} s: see {log}")


def make_officer(url: str, municipalities: list[str]) -> tuple[str, str | None]:
    """An officer of every municipality: API token, and a page session cookie
    (None when the app has no page sessions)."""
    from agri.api.accounts import add_user, rotate_token

    with connect(url) as conn:
        if conn.execute("SELECT 1 FROM users WHERE name = 'bench-officer'").fetchone():
            token = rotate_token(conn, "bench-officer")  # a stack kept from an earlier run
        else:
            token = add_user(conn, name="bench-officer", role="officer",
                             regions=municipalities).token
        conn.execute("UPDATE users SET must_change_password = false "
                     "WHERE name = 'bench-officer'")
        conn.commit()
    try:
        from agri.api import sessions
    except ImportError:
        return token, None

    async def session() -> str:
        from psycopg import AsyncConnection

        async with await AsyncConnection.connect(url, autocommit=True) as conn:
            return await sessions.start_session(conn, "bench-officer", via="password")

    return token, asyncio.run(session())


# -- load generation -------------------------------------------------------------------------
async def offer(base: str, headers: dict, paths: list[str], *, rate: float,
                duration: float, html: bool = False) -> Result:
    """``rate`` requests/s for ``duration`` s from CLIENTS clients, open loop."""
    total = max(1, round(rate * duration))
    schedule: list[list[tuple[float, str]]] = [[] for _ in range(CLIENTS)]
    for i in range(total):
        schedule[i % CLIENTS].append((i / rate, paths[i % len(paths)]))
    result = Result()
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    # The clients and their connections are made (one request each, not
    # counted) before the schedule starts: the figures are the server's, not
    # the cost of setting up a client.
    clients = [httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=30)
               for _ in range(CLIENTS)]
    await asyncio.gather(*(c.get(paths[i % len(paths)]) for i, c in enumerate(clients)),
                         return_exceptions=True)
    t0 = time.perf_counter() + 0.05

    async def client(c: httpx.AsyncClient, items: list[tuple[float, str]]) -> None:
        try:
            for at, path in items:
                delay = t0 + at - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                try:
                    r = await c.get(path)
                except httpx.HTTPError as exc:
                    result.errors += 1
                    result.codes[type(exc).__name__] += 1
                    continue
                if r.status_code != 200:
                    result.errors += 1
                    result.codes[r.status_code] += 1
                    continue
                result.latencies_ms.append((time.perf_counter() - t0 - at) * 1000)
                if html:
                    result.sizes.append(len(r.content))
        finally:
            await c.aclose()

    tasks = [asyncio.ensure_future(client(c, items))
             for c, items in zip(clients, schedule, strict=True)]
    _, late = await asyncio.wait(tasks, timeout=duration * OVERRUN + OVERRUN_S)
    for task in late:  # a server this far behind: what is left counts as errors
        task.cancel()
    await asyncio.gather(*late, return_exceptions=True)
    unanswered = total - len(result.latencies_ms) - result.errors
    if unanswered:
        result.errors += unanswered
        result.codes["unanswered"] += unanswered
    return result


def search(base: str, headers: dict, paths: list[str], *, rate: float, duration: float,
           target: float, first: Result, html: bool = False) -> float | None:
    """The highest rate (of ``rate`` times powers of two) at which p99 < target."""
    seconds = max(SEARCH_MIN_S, duration / 2)
    if first.meets(target):
        best, r = rate, rate
        for _ in range(SEARCH_STEPS):
            r *= 2
            if not asyncio.run(offer(base, headers, paths, rate=r, duration=seconds,
                                     html=html)).meets(target):
                break
            best = r
        return best
    r = rate
    for _ in range(SEARCH_STEPS):
        r /= 2
        if asyncio.run(offer(base, headers, paths, rate=r, duration=seconds,
                             html=html)).meets(target):
            return r
    return None


# -- rollups against raw ---------------------------------------------------------------------
def rollup_vs_raw(url: str, devices: list[str], first: str, end: str, *, seed: int) -> dict:
    """p50 of the season-long daily series from the rollup and from the raw
    readings, one query at a time over the same devices; the answers must agree."""
    from datetime import timedelta

    from psycopg import AsyncConnection

    from agri.api.queries import series

    start_t, end_t = datetime.fromisoformat(first), datetime.fromisoformat(end)
    picks = random.Random(seed).choices(devices, k=BASELINE_QUERIES)

    async def run() -> dict:
        times: dict[str, list[float]] = {series.DAILY: [], series.RAW: []}
        mismatches = 0
        async with await AsyncConnection.connect(url, autocommit=True) as conn:
            for device in picks:
                answers = {}
                for source in (series.DAILY, series.RAW):
                    t = time.perf_counter()
                    points, _, _ = await series.bucket_points(
                        conn, devices=[device], metric="water_level", start=start_t,
                        end=end_t, width=timedelta(days=1), source=source)
                    times[source].append((time.perf_counter() - t) * 1000)
                    answers[source] = [(p["t"], p["count"]) for p in points]
                mismatches += answers[series.DAILY] != answers[series.RAW]
        return {"rollup_p50_ms": _r(float(np.median(times[series.DAILY]))),
                "raw_p50_ms": _r(float(np.median(times[series.RAW]))),
                "queries": len(picks), "mismatches": mismatches}

    return asyncio.run(run())


# -- the bench -------------------------------------------------------------------------------
def run(args) -> int:
    """`agri bench api`: print the figures, then one JSON object as the last line."""
    if (args.fields < 1 or args.rate <= 0 or args.duration <= 0 or args.workers < 1
            or not 1 <= args.days <= 184):
        print("agri bench api: --fields, --rate, --duration and --workers must be positive "
              "and --days between 1 and 184", file=sys.stderr)
        return 2
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request
    keep = args.home is not None
    home = Path(args.home) if keep else Path(tempfile.mkdtemp(prefix="agri-bench-api-"))
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o755)
    stack = EmbeddedStack(home / "home")
    api = None
    ok = False
    done = home / "loaded.json"  # what a kept stack holds: reused when it matches
    tag = {"fields": args.fields, "days": args.days, "seed": args.seed}
    if args.to_today:
        tag["to_today"] = True
    reuse = done.exists() and orjson.loads(done.read_bytes()).get("tag") == tag
    if not reuse and (done.exists() or (home / "season").exists()):
        print(f"agri bench api: {home} holds another run's data: choose an empty --home",
              file=sys.stderr)
        return 2
    try:
        stack.start()
        settings = Settings(home=stack.home, database_url=None, mqtt_url=None)
        if reuse:
            loaded = orjson.loads(done.read_bytes())["loaded"]
            print(f"reusing the season loaded in {home}", flush=True)
        else:
            print(f"simulating and loading {args.fields} fields, {args.days} days of the "
                  "season ...", flush=True)
            loaded = load(settings, fields=args.fields, days=args.days, seed=args.seed,
                          out=home / "season", to_today=args.to_today)
            if keep:
                done.write_bytes(orjson.dumps({"tag": tag, "loaded": loaded}))
        print(f"loaded {loaded['readings']:,} readings of {loaded['devices']} devices "
              f"({loaded['paddy_sensors']} paddy sensors, {loaded['weather_stations']} weather "
              f"stations) on {loaded['fields']} fields in {loaded['load_s']} s "
              f"({loaded['load_rows_per_s']:,} rows/s through ingest's writer, "
              f"{LOAD_PROCESSES} processes); database {loaded['database_mb']:,} MB", flush=True)
        api, base = start_api(stack, home / "api.log", workers=args.workers)
        token, cookie = make_officer(stack.database_url, loaded["municipalities"])
        report = {"api_workers": args.workers, **measure(base, token, cookie, loaded, args)}
        report["baseline"] = rollup_vs_raw(
            stack.database_url,
            [f"bench-pw-{f}" for f in loaded["paddy_fields"]], loaded["first"], loaded["end"],
            seed=args.seed)
        base_line = report["baseline"]
        report["ratio"] = (round(base_line["rollup_p50_ms"] / base_line["raw_p50_ms"], 3)
                           if base_line["raw_p50_ms"] else None)
        print(f"daily series of the season in SQL, one query at a time: rollup p50 "
              f"{base_line['rollup_p50_ms']} ms, raw readings p50 {base_line['raw_p50_ms']} ms "
              f"(ratio {report['ratio']}); answers differing: {base_line['mismatches']} of "
              f"{base_line['queries']}")
        ok = True
    finally:
        if api is not None:
            api.send_signal(signal.SIGTERM)
            api.wait(30)
        stack.stop()
        if ok and not keep:
            shutil.rmtree(home, ignore_errors=True)
        elif not ok:
            print(f"the bench failed: logs kept in {home}", file=sys.stderr)
    loaded.pop("paddy_fields")
    loaded.pop("municipalities")
    print(orjson.dumps({"bench": "api", "load": loaded, **report}).decode())
    return 0


def measure(base: str, token: str, cookie: str | None, loaded: dict, args) -> dict:
    rng = random.Random(args.seed)
    fields = loaded["paddy_fields"]
    picks = [rng.choice(fields) for _ in range(max(1, round(args.rate * args.duration)))]
    first, end = loaded["first"], loaded["end"]
    query = httpx.QueryParams({"metric": "water_level", "bucket": "1d", "start": first,
                               "end": end})
    bearer = {"Authorization": f"Bearer {token}"}
    endpoints = {
        "field_detail": ([f"/api/v1/fields/{f}" for f in picks], bearer, False),
        "conditions": ([f"/api/v1/fields/{f}/conditions" for f in picks], bearer, False),
        "daily_series": ([f"/api/v1/fields/{f}/series?{query}" for f in picks], bearer, False),
    }
    page_note = None
    if cookie is None:
        page_note = "the app has no page sessions"
    else:
        from agri.api.sessions import COOKIE

        jar = {"Cookie": f"{COOKIE}={cookie}"}
        probe = httpx.get(f"{base}/fields/{fields[0]}", headers=jar, timeout=30)
        if probe.status_code == 200 and probe.headers.get("content-type", "").startswith(
                "text/html"):
            endpoints["field_page"] = ([f"/fields/{f}" for f in picks], jar, True)
        else:
            page_note = f"GET /fields/{{id}} answered {probe.status_code}: no field page"
    print(f"{CLIENTS} clients, open loop, {args.rate:g} requests/s for {args.duration:g} s "
          f"per endpoint; latency from when each request was due")
    print(f"{'endpoint':14} {'requests':>8} {'errors':>6} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'target':>7} {'ok':>5} {'max rate under target':>22}")
    out: dict = {"rate": args.rate, "duration_s": args.duration, "clients": CLIENTS}
    out["load_average_before"] = [round(x, 2) for x in os.getloadavg()]
    for name, (paths, headers, html) in endpoints.items():
        alone = sequential(base, headers, paths[:SEQUENTIAL_REQUESTS])
        first_run = asyncio.run(offer(base, headers, paths, rate=args.rate,
                                      duration=args.duration, html=html))
        target = TARGETS_MS[name]
        summary = first_run.summary(args.rate, target)
        summary["max_rate_under_target"] = search(base, headers, paths, rate=args.rate,
                                                  duration=args.duration, target=target,
                                                  first=first_run, html=html)
        if html and first_run.sizes:
            summary["html_target_bytes"] = HTML_TARGET_BYTES
            summary["html_meets_target"] = max(first_run.sizes) < HTML_TARGET_BYTES
        summary["one_client_p50_ms"] = alone
        out[name] = summary
        best = summary["max_rate_under_target"]
        print(f"{name:14} {summary['requests']:>8} {summary['errors']:>6} "
              f"{_fmt(summary['p50_ms']):>8} {_fmt(summary['p99_ms']):>8} {target:>7g} "
              f"{str(summary['meets_target']):>5} "
              f"{'none' if best is None else f'{best:g}/s':>22}", flush=True)
        if html and first_run.sizes:
            print(f"{'':14} HTML {max(first_run.sizes) / 1024:.1f} KB at most "
                  f"(target {HTML_TARGET_BYTES // 1024} KB)")
    if page_note:
        out["field_page"] = {"note": page_note}
        print(f"field page: {page_note}")
    out["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print("one client, one request at a time, p50 ms: " + ", ".join(
        f"{n} {out[n]['one_client_p50_ms']}" for n in endpoints) + "; load average "
        f"{out['load_average_before'][0]} before, {out['load_average_after'][0]} after")
    return out


def sequential(base: str, headers: dict, paths: list[str]) -> float | None:
    """p50 (ms) of requests sent one at a time on one connection."""
    times = []
    with httpx.Client(base_url=base, headers=headers, timeout=30) as c:
        for path in paths:
            t = time.perf_counter()
            if c.get(path).status_code == 200:
                times.append((time.perf_counter() - t) * 1000)
    return _r(float(np.median(times))) if times else None


def _fmt(x: float | None) -> str:
    return "-" if x is None or math.isnan(x) else f"{x:.1f}"
