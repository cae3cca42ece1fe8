"""Faults the ingest must survive with nothing lost or doubled: the worker
killed mid-stream, PostgreSQL stopped under load, several workers sharing
the load and retired workers drained."""

from __future__ import annotations

import signal
import threading
import time

import orjson
import pytest

from agri.devices.topics import senml_topic
from tests.fix_stack import publisher, wait_for

pytestmark = pytest.mark.fault

READINGS_PER_PACK = 5


class Stream:
    """Publishes ``messages`` SenML packs spread over ``devices``, QoS 1, from
    a thread; every reading has its own time, so the expected rows are known."""

    def __init__(self, platform, prefix: str, *, devices: int, messages: int) -> None:
        self.ids = [f"{prefix}-{i}" for i in range(devices)]
        self.clients = [publisher(platform.device_url(d, platform.add_device(d)))
                        for d in self.ids]
        self.messages = messages
        self.sent = 0
        self.t0 = int(time.time()) - 20 * 86400
        self.thread = threading.Thread(target=self._run, daemon=True)

    @property
    def readings(self) -> int:
        return self.messages * READINGS_PER_PACK

    def _run(self) -> None:
        pending = []
        for k in range(self.messages):
            i = k % len(self.ids)
            base = self.t0 + (k // len(self.ids)) * 60
            pack = [{"bt": base, "n": "water_temp", "v": 20.0, "t": 0}] + [
                {"n": "water_temp", "v": 20.0 + j / 10, "t": j}
                for j in range(1, READINGS_PER_PACK)]
            pending.append(self.clients[i].publish(senml_topic(self.ids[i]), orjson.dumps(pack),
                                                   qos=1))
            self.sent += 1
            if len(pending) >= 2000:  # bound what is in flight
                for info in pending:
                    info.wait_for_publish(60)
                pending.clear()
        for info in pending:
            info.wait_for_publish(60)

    def start(self) -> Stream:
        self.thread.start()
        return self

    def join(self) -> None:
        self.thread.join(120)
        assert not self.thread.is_alive(), "publisher stalled"
        for c in self.clients:
            c.loop_stop()
            c.disconnect()


def _count(platform, prefix: str) -> int:
    return platform.sql("SELECT count(*) FROM readings WHERE device_id LIKE %s",
                        (prefix + "-%",))[0][0]


def _assert_exact(platform, prefix: str, stream: Stream) -> None:
    wait_for(lambda: _count(platform, prefix) >= stream.readings, timeout=120,
             what=f"{stream.readings} readings of {prefix}")
    # One row per distinct reading, and the rollups count each exactly once.
    rows = platform.sql(
        "SELECT count(*), count(DISTINCT (device_id, time)) FROM readings "
        "WHERE device_id LIKE %s", (prefix + "-%",))[0]
    assert rows == (stream.readings, stream.readings)
    hourly = platform.sql("SELECT sum(count) FROM readings_hourly WHERE device_id LIKE %s",
                          (prefix + "-%",))[0][0]
    daily = platform.sql("SELECT sum(count) FROM readings_daily WHERE device_id LIKE %s",
                         (prefix + "-%",))[0][0]
    assert hourly == daily == stream.readings


def test_ingest_killed_mid_stream_loses_and_doubles_nothing(platform):
    worker = platform.start_ingest("k1")
    stream = Stream(platform, "kill", devices=4, messages=12_000).start()
    wait_for(lambda: _count(platform, "kill") > stream.readings // 5, what="a fifth stored")
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)
    wait_for(lambda: stream.sent > stream.messages * 0.6, what="more published while down")
    worker = platform.start_ingest("k1")
    stream.join()
    try:
        _assert_exact(platform, "kill", stream)
    finally:
        platform.stop_ingest(worker)


def test_postgres_stopped_under_load_loses_and_doubles_nothing(platform):
    worker = platform.start_ingest("p1")
    stream = Stream(platform, "pgdown", devices=4, messages=12_000).start()
    wait_for(lambda: _count(platform, "pgdown") > stream.readings // 5, what="a fifth stored")
    platform.stack.postgres.stop(mode="immediate")
    wait_for(lambda: stream.sent > stream.messages * 0.6, what="more published while down")
    time.sleep(2)  # the outage itself: ingest keeps failing to write for a while
    platform.stack.postgres.start()
    stream.join()
    try:
        _assert_exact(platform, "pgdown", stream)
        assert worker.poll() is None, "ingest must ride out the outage"
    finally:
        platform.stop_ingest(worker)
    log = (platform.home / "ingest-p1.log").read_text()
    assert "retrying" in log


def test_three_workers_split_the_load_and_retired_ones_are_drained(platform):
    workers = [platform.start_ingest(w) for w in ("s1", "s2", "s3")]
    stream = Stream(platform, "share", devices=6, messages=9_000).start()
    wait_for(lambda: _count(platform, "share") > stream.readings // 4, what="a quarter stored")
    # Two workers stop while the stream goes on: their share waits for them.
    for w in workers[1:]:
        platform.stop_ingest(w, retire=False)
    stream.join()
    # Retiring them drains what their sessions hold, then ends the sessions.
    for name in ("s2", "s3"):
        platform.retire_ingest(name, idle_s=2)
    try:
        _assert_exact(platform, "share", stream)
    finally:
        platform.stop_ingest(workers[0])
    stats = dict(platform.sql("SELECT worker, (counters->>'readings_stored')::float "
                              "FROM ingest_stats WHERE worker IN ('s1', 's2', 's3')"))
    assert all(stats.get(w, 0) > 0 for w in ("s1", "s2", "s3")), stats


def test_broker_restart_keeps_what_waits_for_ingest(platform):
    """Messages queued at the broker for a stopped worker's persistent session
    survive a broker restart (persistence on) and are stored once."""
    worker = platform.start_ingest("b1")
    platform.stop_ingest(worker, retire=False)  # its session waits at the broker
    stream = Stream(platform, "brk", devices=3, messages=3_000).start()
    stream.join()
    platform.stack.mosquitto.stop()
    platform.stack.mosquitto.start()
    platform.stack.state.pids["mosquitto"] = platform.stack.mosquitto.proc.pid
    platform.stack.save()
    worker = platform.start_ingest("b1")
    try:
        _assert_exact(platform, "brk", stream)
    finally:
        platform.stop_ingest(worker)
