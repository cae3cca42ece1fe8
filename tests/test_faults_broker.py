"""Faults of the broker, counted as Jepsen counts them (tests/fault_count.py):
Mosquitto stopped (SIGTERM) and restarted under load and with a backlog
waiting for ingest loses nothing; killed (SIGKILL) it loses at most what
arrived since its last snapshot (measured); and a backlog beyond its queue
limit is dropped by the broker, counted, and shown at /metrics."""

from __future__ import annotations

import logging
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fault_count import NO_MATCHING_SUBSCRIBERS, READINGS_PER_PACK, Stream
from tests.fix_stack import Platform, api_server, own_platform, wait_for

pytestmark = pytest.mark.fault

logger = logging.getLogger(__name__)

QUEUE_LIMIT = 300  # messages the small-queue broker keeps for an absent session


def _signal_broker(platform: Platform, sig: int) -> float:
    """Send ``sig`` to the broker by its pid and wait for it to end; the time it ended."""
    proc = platform.stack.mosquitto.proc
    os.kill(proc.pid, sig)
    proc.wait(30)
    return time.time()


def _restart_broker(platform: Platform) -> None:
    platform.stack.restart(platform.stack.mosquitto)


def test_broker_restart_keeps_what_waits_for_ingest(platform):
    """Messages queued at the broker for a stopped worker's persistent session
    survive a broker restart (SIGTERM, persistence on) and are stored once."""
    worker = platform.start_ingest("b1")
    platform.stop_ingest(worker, retire=False)  # its session waits at the broker
    stream = Stream(platform, "fb-wait", devices=3, messages=3_000).start()
    stream.join()
    _signal_broker(platform, signal.SIGTERM)
    _restart_broker(platform)
    worker = platform.start_ingest("b1")
    try:
        stream.ledger.wait_all_acked_stored(platform.db_url).assert_exact()
    finally:
        platform.stop_ingest(worker)


def test_broker_restarted_while_ingest_is_away_keeps_what_devices_publish(platform):
    """The broker restarts while no worker is connected; devices publish
    before a worker comes back. Mosquitto 2.0.11 restores a stopped worker's
    session but not its shared subscriptions, so until a worker subscribes
    again it answers "no matching subscribers" (0x10): devices that send such
    messages again, as the device contract asks, lose nothing."""
    worker = platform.start_ingest("b2")
    platform.stop_ingest(worker, retire=False)
    _signal_broker(platform, signal.SIGTERM)
    _restart_broker(platform)
    stream = Stream(platform, "fb-away", devices=2, messages=200).start()
    wait_for(lambda: stream.ledger.reasons().get(NO_MATCHING_SUBSCRIBERS, 0) >= 100,
             what="the broker to answer 'no matching subscribers'")
    worker = platform.start_ingest("b2")
    try:
        stream.join()
        count = stream.ledger.wait_all_acked_stored(platform.db_url)
    finally:
        platform.stop_ingest(worker)
    count.assert_exact()
    assert count.stored == stream.readings, stream.ledger.reasons()


def test_broker_sigterm_under_load_loses_and_doubles_nothing(platform):
    """The broker stopped and started again while devices publish and ingest
    consumes: devices and ingest reconnect by themselves, what the broker
    acknowledged is stored once."""
    worker = platform.start_ingest("bt")
    stream = Stream(platform, "fb-term", devices=4, messages=12_000, rate=3_000).start()
    ledger = stream.ledger
    wait_for(lambda: ledger.stored_count(platform.db_url) > stream.readings // 5,
             what="a fifth stored")
    _signal_broker(platform, signal.SIGTERM)
    _restart_broker(platform)
    stream.join()
    try:
        count = ledger.wait_all_acked_stored(platform.db_url)
        assert worker.poll() is None, "ingest must ride out the broker restart"
        # Devices that reconnect before ingest has subscribed again are answered
        # "no matching subscribers" and send again (see the test above).
        count.assert_exact()
        logger.warning("broker SIGTERM under load: %s", count)
    finally:
        platform.stop_ingest(worker)
    assert "disconnected from the broker" in (platform.home / "ingest-bt.log").read_text()


def _autosave(config: Path) -> tuple[bool, int]:
    """(autosave_on_changes, autosave_interval) of a Mosquitto configuration."""
    text = config.read_text()
    on_changes = re.search(r"^autosave_on_changes\s+(\S+)", text, re.M)
    interval = re.search(r"^autosave_interval\s+(\d+)", text, re.M)
    assert interval, f"no autosave_interval in {config}"
    return bool(on_changes and on_changes.group(1) == "true"), int(interval.group(1))


SAVE_SLACK_S = 1.0  # a snapshot of a small store takes well under this


def test_broker_killed_loses_at_most_its_autosave_window(platform, record_property):
    """Mosquitto keeps queued messages in memory and writes a snapshot of them
    every ``autosave_interval`` seconds (or changes, with
    ``autosave_on_changes``); killed outright it loses what it acknowledged to
    devices since the last snapshot. Measured with ingest away (the messages
    wait in its session at the broker), under the configuration in force:
    what is lost must be within that window, and nothing older."""
    on_changes, interval = _autosave(platform.stack.mosquitto.config)
    worker = platform.start_ingest("bk")
    platform.stop_ingest(worker, retire=False)
    rate = 200  # messages/s, steady
    # Long enough for snapshots to be taken while the stream runs.
    seconds = 5.0 if on_changes else 2 * (interval + 1) + 2
    stream = Stream(platform, "fb-kill", devices=4, messages=int(rate * seconds),
                    rate=rate).start()
    stream.join()
    killed_at = _signal_broker(platform, signal.SIGKILL)
    _restart_broker(platform)
    worker = platform.start_ingest("bk")
    try:
        count = stream.ledger.wait_settled(platform.db_url)
    finally:
        platform.stop_ingest(worker)
    count.assert_exact(lost=len(count.lost))  # nothing doubled or made up, rollups exact
    lost = [m for m in stream.ledger.messages if m.acked and set(m.keys) & count.lost]
    assert len(count.lost) == len(lost) * READINGS_PER_PACK, "a message was lost in part"
    window = (killed_at - min(m.acked_at for m in lost)) if lost else 0.0
    figure = (f"broker SIGKILL with autosave_interval {interval}"
              f"{' changes' if on_changes else ' s'}: {len(lost)} of "
              f"{len(stream.ledger.messages)} acknowledged messages lost, "
              f"the oldest acknowledged {window:.2f} s before the kill, at {rate} messages/s")
    logger.warning("%s", figure)
    record_property("broker_sigkill_loss", figure)
    if on_changes:
        # Each queued message is a change: at most one interval of messages.
        assert len(lost) <= interval, figure
    else:
        # Mosquitto saves when more than the interval has passed (whole seconds).
        assert window <= interval + 1 + SAVE_SLACK_S, figure


# -- a broker with a small queue limit -----------------------------------------

@pytest.fixture(scope="module")
def small_queue() -> Iterator[Platform]:
    """A stack of its own whose broker keeps only QUEUE_LIMIT messages for a
    session that is away."""
    with own_platform("agri-test-queue-", max_queued_messages=QUEUE_LIMIT) as p:
        yield p


def _metric(base: str, name: str, worker: str) -> float | None:
    text = httpx.get(base + "/metrics", timeout=5).text
    found = re.search(rf'^{name}{{worker="{worker}"}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else None


def test_ingest_away_beyond_the_queue_limit_counts_what_the_broker_dropped(small_queue):
    """Ingest away while devices publish more than the broker's queue limit:
    the broker acknowledges every message and keeps only the limit. What it
    dropped is exactly what is lost; its counter reaches /metrics, and the
    worker's log says so."""
    platform = small_queue
    worker = platform.start_ingest("q1")
    platform.stop_ingest(worker, retire=False)
    stream = Stream(platform, "fq-over", devices=2, messages=3 * QUEUE_LIMIT).start()
    stream.join()
    dropped_expected = stream.messages - QUEUE_LIMIT
    with api_server(platform) as base:
        worker = platform.start_ingest("q1")
        try:
            count = stream.ledger.wait_settled(platform.db_url)
            # $SYS values are published every sys_interval.
            dropped = wait_for(
                lambda: (_metric(base, "agri_ingest_broker_dropped_messages", "q1") or 0)
                >= dropped_expected
                and _metric(base, "agri_ingest_broker_dropped_messages", "q1"),
                timeout=30, what="the broker's dropped counter at /metrics")
        finally:
            platform.stop_ingest(worker)
    assert count.acked == stream.readings, stream.ledger.reasons()
    assert dropped == dropped_expected
    count.assert_exact(lost=dropped_expected * READINGS_PER_PACK)
    log = (platform.home / "ingest-q1.log").read_text()
    assert re.search(r"broker (has )?dropped \d+ messages", log), (
        "the worker's log does not say that the broker dropped messages")
