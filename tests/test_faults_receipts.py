"""Delivery receipts under a broker crash: store-and-forward devices
(simulator/store_forward.py) publish while ingest is away, Mosquitto is
killed (SIGKILL) with their messages acknowledged but not delivered, and
after the restart the devices ask which of their readings are committed,
send the missing ones again and end with every reading stored once."""

from __future__ import annotations

import signal
import threading
import time

import orjson
import pytest

from agri.devices import receipts
from agri.devices.topics import commands_topic, events_topic
from agri.simulator.store_forward import StoreAndForward
from tests.fix_stack import wait_for
from tests.test_faults_broker import _restart_broker, _signal_broker

pytestmark = pytest.mark.fault

DEVICES = 4
PACKS = 750  # per device: 3,000 messages, 6,000 readings
RATE = 1000.0  # messages/s, all devices together


def _stored(platform, ids: list[str]) -> int:
    (n,), = platform.sql("SELECT count(*) FROM readings WHERE device_id = ANY(%s)", (ids,))
    return n


def test_store_and_forward_devices_lose_nothing_when_the_broker_is_killed(
        platform, record_property):
    ids = [f"sf-{i}" for i in range(DEVICES)]
    devices = [StoreAndForward(platform.device_url(d, platform.add_device(d, "paddy-water")), d)
               for d in ids]
    worker = platform.start_ingest("sf")
    platform.stop_ingest(worker, retire=False)  # its session keeps what arrives
    start = time.time() - 3 * 3600
    for d in devices:
        d.__enter__()
    try:
        for k in range(PACKS):
            for d in devices:
                d.measure(start + k * 10.0, {"water_level": 0.05, "water_temp": 20.0})
            time.sleep(DEVICES / RATE)
        wait_for(lambda: all(d.acknowledged() for d in devices), timeout=30,
                 what="the broker to acknowledge every pack")
        _signal_broker(platform, signal.SIGKILL)
        _restart_broker(platform)
        worker = platform.start_ingest("sf")
        try:
            # What the broker delivered after the crash, before any receipt.
            settled = []

            def quiet() -> bool:
                settled.append(_stored(platform, ids))
                return len(settled) > 20 and settled[-1] == settled[-21]

            wait_for(quiet, timeout=60, what="ingest to store what survived the crash")
            survived = settled[-1] // 2
            results: dict[str, bool] = {}
            threads = [threading.Thread(target=lambda d=d: results.__setitem__(
                d.device_id, d.settle(timeout_s=90))) for d in devices]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        finally:
            platform.stop_ingest(worker)
    finally:
        for d in devices:
            d.__exit__(None, None, None)
    lost_at_crash = DEVICES * PACKS - survived
    resent = sum(d.resent for d in devices)
    figure = (f"{lost_at_crash} of {DEVICES * PACKS} acknowledged packs lost by the killed "
              f"broker; {resent} sent again after receipts; every buffer empty: "
              f"{all(results.values())}")
    record_property("receipts_broker_kill", figure)
    assert all(results.values()), figure
    assert _stored(platform, ids) == DEVICES * PACKS * 2, figure  # each exactly once
    per_time = platform.sql("SELECT count(*) FROM readings WHERE device_id = ANY(%s) "
                            "GROUP BY device_id, time HAVING count(*) <> 2", (ids,))
    assert per_time == [], figure


def test_a_receipt_names_what_is_missing_and_only_for_the_asking_device(platform, ingest):
    own, other = "sf-ask", "sf-other"
    creds = {d: platform.add_device(d, "paddy-water") for d in (own, other)}
    now = float(int(time.time()) - 600)
    got: list[dict] = []
    client = platform.device_client(own, creds[own])
    client.on_message = lambda c, u, m: got.append(receipts.parse_answer(m.payload))
    client.subscribe(commands_topic(own), qos=1)
    pack = orjson.dumps([{"bn": f"{own}:", "bt": now, "n": "water_temp", "v": 20.0}])
    client.publish(f"agri/v1/devices/{own}/senml", pack, qos=1).wait_for_publish(10)
    # The other device stores a reading at a time the first one asks about.
    intruder = platform.device_client(other, creds[other])
    intruder.publish(f"agri/v1/devices/{other}/senml", orjson.dumps(
        [{"bn": f"{other}:", "bt": now + 60, "n": "water_temp", "v": 20.0}]),
        qos=1).wait_for_publish(10)
    wait_for(lambda: _stored(platform, [own, other]) == 2, what="both readings")
    client.publish(events_topic(own), receipts.request([now, now + 60]),
                   qos=1).wait_for_publish(10)
    wait_for(lambda: got, what="the receipt")
    assert got[0] == {"asked": 2, "stored": 1, "committed_until": now, "missing": [now + 60]}
    for bad in (b'{"type": "receipt"}', b'{"type": "receipt", "times": "all"}',
                orjson.dumps({"type": "receipt", "times": [now] * (receipts.MAX_TIMES + 1)}),
                b'{"type": "receipt", "times": [-5]}'):
        client.publish(events_topic(own), bad, qos=1).wait_for_publish(10)
    rows = wait_for(lambda: (r := platform.sql(
        "SELECT reason FROM rejects WHERE device_id = %s ORDER BY id", (own,))) and len(r) >= 4
        and r, what="the refused receipt requests")
    assert all("receipt" in reason for (reason,) in rows[-4:])
    assert platform.sql("SELECT count(*) FROM device_events WHERE device_id = %s",
                        (own,)) == [(0,)]
    for c in (client, intruder):
        c.loop_stop()
        c.disconnect()
