"""`agri bench alerts`: the delay from a reading that crosses a threshold to
the alert's email being accepted by a real SMTP server, on an embedded stack
of its own with many paddy sensors reporting at their real interval.

Every device reports its paddy water level once per interval, the devices
spread evenly over it (10,000 devices every 10 minutes: ~16.7 readings/s).
A share of the devices, on fields whose owners have email on, report the
water gone (below the soil surface while the day's band wants water): each
such reading opens a water-gone alert and its email. The delay counts from
the reading's measurement time (its publish time) to the delivery's
``sent_at`` (set when the SMTP server accepted the message); the baseline is
ingest's own delay from publish to the reading being stored, in the same run.

Devices are registered in the registry only and publish through the
simulator's account (few connections): the broker's per-device accounts
are not what is measured, and creating 10,000 of them takes minutes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

DEVICES = 10_000
INTERVAL_S = 600.0
DURATION_S = 300.0
CROSSING_SHARE = 0.02  # of the devices reporting during the run
OWNERS = 20  # farmers; every other one has email on
FIELDS_PREFIX = "bench-f"
DEVICES_PREFIX = "bench-a"
PUBLISHERS = 8  # connections of the simulator account
IN_BAND_M = 0.045
GONE_M = -0.02
BAND = (0.03, 0.06)
DRAIN_S = 120.0  # after the last reading, for the last emails
SUBSCRIBE_TIMEOUT_S = 60.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--devices", type=int, default=DEVICES,
                        help=f"paddy sensors (default {DEVICES})")
    parser.add_argument("--duration", type=float, default=DURATION_S,
                        help=f"seconds of readings (default {DURATION_S:g})")
    parser.add_argument("--interval", type=float, default=INTERVAL_S,
                        help=f"seconds between two readings of a device (default "
                             f"{INTERVAL_S:g})")
    parser.add_argument("--crossing", type=float, default=CROSSING_SHARE,
                        help="share of the reporting devices whose water is gone "
                             f"(default {CROSSING_SHARE:g})")
    parser.add_argument("--publishers", type=int, default=PUBLISHERS,
                        help=f"MQTT connections publishing (default {PUBLISHERS})")


def _setup(url: str, *, devices: int, interval: float, duration: float,
           crossing: float) -> tuple[list[tuple[str, float, bool]], int]:
    """Owners, fields with today's band, devices and preferences; returns
    (device, first offset s, crosses) per device and how many cross."""
    from datetime import timedelta

    from agri.api.accounts import add_user
    from agri.clock import today_local
    from agri.db import connect
    from agri.devices.profiles import profile

    owners = [f"bench-owner-{i:02d}" for i in range(OWNERS)]
    emailed = set(owners[::2])
    square = json.dumps({"type": "Polygon", "coordinates": [[[140.5, 40.6], [140.51, 40.6],
                                                             [140.51, 40.61], [140.5, 40.6]]]})
    today = today_local()
    version = profile("paddy-water").version
    plan = []
    reporting = [i for i in range(devices) if i * interval / devices < duration]
    eligible = [i for i in reporting if owners[i % OWNERS] in emailed]
    step = max(1, round(len(eligible) / max(1, round(crossing * len(reporting)))))
    crossers = set(eligible[::step][:max(1, round(crossing * len(reporting)))])
    with connect(url) as conn:
        for o in owners:
            add_user(conn, name=o, role="farmer")
            conn.execute("INSERT INTO alert_preferences (user_name, email, email_on) "
                         "VALUES (%s, %s, %s)", (o, f"{o}@bench.example", o in emailed))
        with conn.cursor() as cur:
            with cur.copy("COPY fields (id, name, owner, cultivar, municipality, geometry) "
                          "FROM STDIN") as copy:
                for i in range(devices):
                    copy.write_row((f"{FIELDS_PREFIX}{i:05d}", f"bench {i}",
                                    owners[i % OWNERS], "masshigura", "Bench", square))
            with cur.copy("COPY field_water_bands (field_id, day, low_m, high_m, phase, "
                          "computed_for) FROM STDIN") as copy:
                for i in range(devices):
                    for d in (today - timedelta(days=1), today, today + timedelta(days=1)):
                        copy.write_row((f"{FIELDS_PREFIX}{i:05d}", d, *BAND, "flooded", today))
            with cur.copy("COPY devices (id, profile, profile_version, field_id, password_hash) "
                          "FROM STDIN") as copy:
                for i in range(devices):
                    # No broker account: the devices publish through the simulator's.
                    copy.write_row((f"{DEVICES_PREFIX}{i:05d}", "paddy-water", version,
                                    f"{FIELDS_PREFIX}{i:05d}", "!bench-no-login"))
        conn.commit()
    for i in range(devices):
        plan.append((f"{DEVICES_PREFIX}{i:05d}", i * interval / devices, i in crossers))
    return plan, len(crossers)


def _publish(address, plan: list[tuple[str, float, bool]], *, start: float, interval: float,
             duration: float, client_id: str, counts: list) -> None:
    import orjson

    from agri.devices.topics import senml_topic
    from agri.simulator.loadgen import Publisher

    schedule = sorted((offset + k * interval, device, crosses)
                      for device, offset, crosses in plan
                      for k in range(int((duration - offset) // interval) + 1)
                      if offset + k * interval < duration)

    def packs():
        for at, device, crosses in schedule:
            time.sleep(max(0.0, start + at - time.time()))
            value = GONE_M if crosses else IN_BAND_M
            yield senml_topic(device).encode(), orjson.dumps(
                [{"bt": time.time(), "n": "water_level", "v": value}])

    publisher = Publisher(host=address.host, port=address.port, client_id=client_id,
                          username=address.username, password=address.password, chunk=1)
    counts.append(publisher.publish_all(packs()))
    publisher.close()


def _smtp(home: Path):
    """A real SMTP server process (aiosmtpd) accepting every message."""
    from agri.deploy.smtp_sink import start_server

    return start_server(home / "smtp")


def _wait_subscribed(log: Path, proc: subprocess.Popen) -> None:
    deadline = time.time() + SUBSCRIBE_TIMEOUT_S
    while "subscribed (" not in log.read_text() and proc.poll() is None:
        if time.time() > deadline:
            raise RuntimeError(f"ingest did not subscribe: see {log}")
        time.sleep(0.1)


def _measure(url: str) -> dict:
    from agri.db import connect

    with connect(url) as conn:
        delays = [r[0] for r in conn.execute(
            """SELECT extract(epoch FROM d.sent_at - a.observed_at)::float8
               FROM alert_deliveries d JOIN alerts a ON a.id = d.alert_id
               WHERE d.status = 'sent' AND d.event = 'opened' AND a.rule = 'water-gone'""")]
        alerts = conn.execute("SELECT count(*) FROM alerts WHERE rule = 'water-gone'"
                              ).fetchone()[0]
        readings = conn.execute("SELECT count(*) FROM readings WHERE device_id LIKE %s",
                                (DEVICES_PREFIX + "%",)).fetchone()[0]
        statuses = dict(conn.execute("SELECT status, count(*) FROM alert_deliveries "
                                     "GROUP BY status").fetchall())
    return {"delays": delays, "alerts": alerts, "readings": readings, "statuses": statuses}


def _q(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(q * len(xs)))], 3)


def run(args) -> int:
    from agri import mqtt
    from agri.alerts import service
    from agri.deploy.bench_ingest import _ages, _quantile
    from agri.deploy.stack import EmbeddedStack
    from agri.settings import Settings

    base = Path(tempfile.mkdtemp(prefix="agri-bench-alerts-"))
    base.chmod(0o755)
    stack = EmbeddedStack(base / "home")
    ingest = smtp = None
    stop = threading.Event()
    ok = False
    try:
        stack.start()
        t0 = time.time()
        plan, crossers = _setup(stack.database_url, devices=args.devices,
                                interval=args.interval, duration=args.duration,
                                crossing=args.crossing)
        setup_s = time.time() - t0
        smtp = _smtp(base)
        log = base / "ingest.log"
        with open(log, "ab") as f:
            ingest = subprocess.Popen(
                [sys.executable, "-m", "agri.cli", "ingest", "--worker", "bench-alerts"],
                env={"AGRI_HOME": str(stack.home), "PATH": "/usr/bin:/bin"},
                stdout=f, stderr=f)
        _wait_subscribed(log, ingest)
        settings = Settings(home=stack.home, smtp_url=smtp.url)
        engine = threading.Thread(target=service.serve, args=(settings, stop), daemon=True)
        engine.start()
        address = mqtt.parse_url(stack.mqtt_url("simulator"))
        start = time.time() + 1.0
        counts: list = []
        parts = [plan[k::args.publishers] for k in range(args.publishers)]
        threads = [threading.Thread(target=_publish, args=(address, part), kwargs={
            "start": start, "interval": args.interval, "duration": args.duration,
            "client_id": f"bench-alerts-pub{k}", "counts": counts})
            for k, part in enumerate(parts) if part]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        published = sum(counts)
        deadline = time.time() + DRAIN_S
        while time.time() < deadline:
            m = _measure(stack.database_url)
            if m["readings"] >= published and len(m["delays"]) >= crossers:
                break
            time.sleep(0.5)
        time.sleep(2.5)  # ingest saves its age histogram every 2 s
        m = _measure(stack.database_url)
        ages = _ages(stack.database_url)
        received = len(smtp.messages())
        ok = m["readings"] == published and len(m["delays"]) == crossers == received
    finally:
        stop.set()
        if ingest is not None:
            ingest.terminate()
            ingest.wait(30)
        if smtp is not None:
            smtp.stop()
        stack.stop()
        if ok:
            shutil.rmtree(base, ignore_errors=True)
        else:
            print(f"not every reading or email arrived: logs kept in {base}")
    base_p50, base_p99 = _quantile(ages, 0.5), _quantile(ages, 0.99)
    p50, p99 = _q(m["delays"], 0.5), _q(m["delays"], 0.99)
    result = {
        "bench": "alerts", "devices": args.devices, "interval_s": args.interval,
        "duration_s": args.duration, "readings": m["readings"], "published": published,
        "readings_per_s": round(published / args.duration, 1), "alerts": m["alerts"],
        "crossing": crossers, "emails_received": received, "deliveries": m["statuses"],
        "delay_p50_s": p50, "delay_p99_s": p99,
        "delay_mean_s": round(statistics.fmean(m["delays"]), 3) if m["delays"] else None,
        "baseline": "ingest: publish to stored (histogram bucket bound)",
        "baseline_p50_s": base_p50, "baseline_p99_s": base_p99,
        "ratio_p50": round(p50 / base_p50, 2) if p50 and base_p50 else None,
        "ratio_p99": round(p99 / base_p99, 2) if p99 and base_p99 else None,
        "setup_s": round(setup_s, 1), "ok": ok,
    }
    rows = [("devices", args.devices), ("readings published", published),
            ("readings stored", m["readings"]), ("readings/s", result["readings_per_s"]),
            ("water-gone alerts", m["alerts"]), ("emails accepted", received),
            ("reading -> email p50 (s)", p50), ("reading -> email p99 (s)", p99),
            ("baseline: ingest p50 (s)", base_p50), ("baseline: ingest p99 (s)", base_p99),
            ("ratio p50", result["ratio_p50"]), ("ratio p99", result["ratio_p99"])]
    for name, value in rows:
        print(f"{name:28} {value}")
    print(json.dumps(result))
    return 0 if ok else 1
