"""`agri bench ingest`: a fixed workload through the real broker and ingest,
against a plain binary COPY of the same rows into the same hypertable.

Each reading's measurement time is its publish time, so the age of a reading
when its batch commits (ingest's own histogram) is the publish-to-commit
delay. The publishers write MQTT packets in bulk (``simulator/loadgen.py``) so
that the load generator is not the bottleneck; their own rate is printed too.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from agri import mqtt
from agri.db import connect
from agri.deploy.stack import EmbeddedStack
from agri.devices import registry
from agri.devices.topics import senml_topic
from agri.ingest.service import AGE_BUCKETS
from agri.ingest.writer import COPY_DIRECT, EpochSeconds, EpochSecondsDumper, copy_rows
from agri.simulator.loadgen import Publisher

DEVICES = 200
PACK_SIZE = 50
PUBLISH_WINDOW = 5_000  # QoS 1 messages in flight per publisher (packet ids must not wrap)
DRAIN_TIMEOUT_S = 600
BASELINE_BATCH = 20_000  # rows per COPY and commit, as ingest's batches
POLL_S = 0.1
STEADY_RATE = 20_000.0  # readings/s, in packs of PACK_SIZE
STEADY_READINGS = 200_000


@dataclass(frozen=True, slots=True)
class Workload:
    name: str
    messages: int
    per_message: int
    rate: float | None = None  # readings/s over all devices; None: as fast as possible

    @property
    def readings(self) -> int:
        return self.messages * self.per_message


def _publish(address: mqtt.BrokerAddress, device_id: str, messages: int, per_message: int,
             spans: list, interval_s: float | None = None) -> None:
    """One publishing device: ``messages`` SenML packs, each timed when built;
    with ``interval_s``, one pack per interval (a steady load)."""
    step_us = 10  # between the readings of one pack: every time distinct
    topic = senml_topic(device_id).encode()

    def packs():
        last_us = 0
        first = time.time()
        for k in range(messages):
            if interval_s is not None:
                time.sleep(max(0.0, first + k * interval_s - time.time()))
            now_us = max(int(time.time() * 1e6), last_us + per_message * step_us)
            last_us = now_us
            pack = [{"bt": now_us / 1e6, "n": "water_temp", "v": 20.5}] + [
                {"n": "water_level" if j % 2 else "water_temp", "v": 0.05, "t": j * step_us / 1e6}
                for j in range(1, per_message)]
            yield topic, orjson.dumps(pack)

    publisher = Publisher(host=address.host, port=address.port, client_id=f"bench-{device_id}",
                          username=address.username, password=address.password,
                          window=PUBLISH_WINDOW, chunk=1 if interval_s else None)
    start = time.time()
    acked = publisher.publish_all(packs())
    spans.append((start, time.time(), 0 if acked == messages else 1))
    publisher.close()


def _count(url: str, prefix: str) -> int:
    """Readings stored for the bench devices. Polled while ingest runs, so it
    reads the hourly rollup (a few rows, committed with the readings) where
    the platform keeps one, rather than counting the hypertable each time."""
    with connect(url) as conn:
        maintained = conn.execute("SELECT enabled FROM platform_features "
                                  "WHERE name = 'maintained_rollups'").fetchone()
        if maintained and maintained[0]:
            row = conn.execute("SELECT coalesce(sum(count), 0) FROM readings_hourly "
                               "WHERE device_id LIKE %s", (prefix + "%",)).fetchone()
        else:
            row = conn.execute("SELECT count(*) FROM readings WHERE device_id LIKE %s",
                               (prefix + "%",)).fetchone()
        return int(row[0])


def _count_raw(url: str, prefix: str) -> int:
    with connect(url) as conn:
        return conn.execute("SELECT count(*) FROM readings WHERE device_id LIKE %s",
                            (prefix + "%",)).fetchone()[0]


def _ages(url: str) -> np.ndarray:
    with connect(url) as conn:
        rows = conn.execute("SELECT counters->'age_histogram' FROM ingest_stats "
                            "WHERE worker LIKE 'bench%%'").fetchall()
    total = np.zeros(len(AGE_BUCKETS), dtype=np.int64)
    for (hist,) in rows:
        if hist:
            total += np.asarray(hist, dtype=np.int64)
    return total


def _quantile(counts: np.ndarray, q: float) -> float:
    """Upper bound of the histogram bucket holding quantile q."""
    cum = np.cumsum(counts)
    if cum[-1] == 0:
        return float("nan")
    return AGE_BUCKETS[int(np.searchsorted(cum, q * cum[-1]))]


def _run_workload(stack: EmbeddedStack, work: Workload, devices: list[str]) -> dict:
    url = stack.database_url
    before_ages = _ages(url)
    share = work.messages // len(devices)
    readings = share * len(devices) * work.per_message
    before = _count_raw(url, "bench-")
    expected = _count(url, "bench-") + readings
    address = mqtt.parse_url(stack.mqtt_url("simulator"))
    spans: list = []
    interval = (len(devices) * work.per_message / work.rate) if work.rate else None
    threads = [threading.Thread(target=_publish, args=(address, d, share, work.per_message,
                                                       spans, interval)) for d in devices]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    deadline = time.time() + DRAIN_TIMEOUT_S
    while (stored := _count(url, "bench-")) < expected and time.time() < deadline:
        time.sleep(POLL_S)
    t_done = time.time()
    # Exactness from the raw table itself, once the run is over.
    stored_raw = _count_raw(url, "bench-") - before
    pub_start = min(s for s, _, _ in spans)
    pub_end = max(e for _, e, _ in spans)
    time.sleep(2.5)  # ingest saves its histogram every 2 s
    ages = _ages(url) - before_ages
    return {
        "readings": readings, "messages": share * len(devices),
        "stored_ok": stored == expected and stored_raw == readings
                     and all(rc == 0 for *_, rc in spans),
        "readings_per_s": readings / (t_done - pub_start),
        "publisher_readings_per_s": readings / (pub_end - pub_start),
        "delay_p50_s": _quantile(ages, 0.5), "delay_p99_s": _quantile(ages, 0.99),
    }


def _copy_baseline(url: str, rows: int) -> float:
    """Rows/s of one connection's binary COPY straight into the hypertable."""
    now = time.time()
    data = [(f"copy-{i % DEVICES}", "water_temp" if i % 2 else "water_level",
             now - 86400 + i * 1e-3, 20.5, now) for i in range(rows)]
    with connect(url) as conn:
        # The same row encoding as ingest's writer, so only the path differs.
        conn.adapters.register_dumper(EpochSeconds, EpochSecondsDumper)
        cur = conn.cursor()
        start = time.perf_counter()
        for i in range(0, rows, BASELINE_BATCH):
            copy_rows(cur, COPY_DIRECT, data[i:i + BASELINE_BATCH])
            conn.commit()
        return rows / (time.perf_counter() - start)


def run_bench(args, settings) -> int:
    home = Path(tempfile.mkdtemp(prefix="agri-bench-"))
    home.chmod(0o755)
    stack = EmbeddedStack(home / "home")
    workers = []
    results: dict = {}
    try:
        stack.start()
        devices = [f"bench-{i:04d}" for i in range(DEVICES)]
        with connect(stack.database_url) as conn:
            for d in devices:
                registry.add_device(conn, device_id=d, profile_name="paddy-water")
        env = {"AGRI_HOME": str(stack.home), "PATH": "/usr/bin:/bin"}
        for i in range(args.workers):
            log = open(home / f"ingest-{i}.log", "ab")  # noqa: SIM115
            workers.append(subprocess.Popen(
                [sys.executable, "-m", "agri.cli", "ingest", "--worker", f"bench{i}"],
                env=env, stdout=log, stderr=log))
        deadline = time.time() + 60
        while time.time() < deadline and not all(
                "subscribed (" in (home / f"ingest-{i}.log").read_text()
                for i in range(args.workers)):
            time.sleep(0.1)
        modes = ["single", "pack"] if args.mode == "both" else [args.mode]
        for mode in modes:
            per = 1 if mode == "single" else PACK_SIZE
            work = Workload(mode, args.readings // per, per)
            results[mode] = _run_workload(stack, work, devices[:args.publishers])
        # The delay a steady load sees (the runs above measure a burst, whose
        # delay is mostly waiting in the broker's queue).
        steady = Workload("steady", STEADY_READINGS // PACK_SIZE, PACK_SIZE, STEADY_RATE)
        results["steady"] = _run_workload(stack, steady, devices[:args.publishers])
        baseline = _copy_baseline(stack.database_url, args.readings)
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(30)
        stack.stop()
        if all(r["stored_ok"] for r in results.values()):
            shutil.rmtree(home, ignore_errors=True)
        else:
            print(f"not every reading was stored: logs kept in {home}")
    _report(results, baseline, args)
    return 0


def _report(results: dict, baseline: float, args) -> None:
    print(f"ingest benchmark: {args.workers} ingest workers, {args.publishers} devices "
          f"publishing at QoS 1, broker and database on this machine")
    print(f"{'workload':10} {'readings':>9} {'readings/s':>11} {'publisher/s':>12} "
          f"{'p50 delay':>10} {'p99 delay':>10} {'exact':>6} {'vs COPY':>8}")
    for mode, r in results.items():
        print(f"{mode:10} {r['readings']:>9} {r['readings_per_s']:>11,.0f} "
              f"{r['publisher_readings_per_s']:>12,.0f} {r['delay_p50_s']:>9.3f}s "
              f"{r['delay_p99_s']:>9.3f}s {str(r['stored_ok']):>6} "
              f"{r['readings_per_s'] / baseline:>8.2f}")
    print(f"{'COPY':10} {args.readings:>9} {baseline:>11,.0f}   (binary COPY, one connection, "
          f"same hypertable and indexes)")
    print("delays are upper bounds of the histogram buckets holding p50/p99; single and pack "
          "publish their whole workload at once, steady paces packs at "
          f"{STEADY_RATE:,.0f} readings/s")
    main = results.get("pack") or results.get("single") or next(iter(results.values()))
    print(orjson.dumps({
        "bench": "ingest", **{m: {k: round(v, 4) if isinstance(v, float) else v
                                  for k, v in r.items()} for m, r in results.items()},
        "baseline": {"copy_rows_per_s": round(baseline)},
        "ratio": round(main["readings_per_s"] / baseline, 3),
    }).decode())
