"""End to end through the real broker and the real database: several devices,
duplicates, out-of-order and late readings, and a set of bad messages."""

from __future__ import annotations

import time
from pathlib import Path

import cbor2
import httpx
import orjson
import psycopg
import pytest

from agri.api.field_registry import import_fields, parse_features
from agri.devices.topics import chirpstack_uplink_topic, senml_topic, tts_uplink_topic
from tests.fix_stack import publisher, wait_for

VECTORS = Path(__file__).resolve().parents[2] / "shared" / "vectors"
FIELD = {
    "type": "FeatureCollection",
    "features": [{
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [[
            [140.4600, 40.6000], [140.4604, 40.6000], [140.4604, 40.6009],
            [140.4600, 40.6009], [140.4600, 40.6000]]]},
        "properties": {"id": "e2e-field", "name": "E2E 1", "owner": "e2e-farmer",
                       "cultivar": "seiten-no-hekireki", "transplanted_on": "2026-05-20",
                       "municipality": "Hirosaki"},
    }],
}


def field_at(fid: str, owner: str, municipality: str, lon: float) -> dict:
    """FIELD as another field: its id, owner and municipality, moved east to ``lon``."""
    data = orjson.loads(orjson.dumps(FIELD))
    feature = data["features"][0]
    feature["properties"].update(id=fid, name=fid, owner=owner, municipality=municipality)
    ring = feature["geometry"]["coordinates"][0]
    shift = lon - ring[0][0]
    feature["geometry"]["coordinates"] = [[[x + shift, y] for x, y in ring]]
    return data


def publish(client, topic: str, payload: bytes) -> None:
    info = client.publish(topic, payload, qos=1)
    info.wait_for_publish(10)
    assert info.rc == 0


E2E_CS_APP = "9d4e2b71-3a5c-4f8e-b1d2-6c7a8e9f0a1b"


@pytest.fixture(scope="module")
def devices(platform):
    with psycopg.connect(platform.db_url) as conn:
        import_fields(conn, parse_features(FIELD), create_owners=True)
    platform.add_bridge("e2e-tts", "tts", "paddy", "aomori")
    platform.add_bridge("e2e-cs", "chirpstack", E2E_CS_APP)
    platform.add_bridge("e2e-tts-example", "tts", "app1", "tenant1")
    creds = {
        "e2e-paddy-1": platform.add_device("e2e-paddy-1", "paddy-water", field_id="e2e-field"),
        "e2e-paddy-2": platform.add_device("e2e-paddy-2", "paddy-water"),
        "e2e-ws-1": platform.add_device("e2e-ws-1", "weather-station", field_id="e2e-field"),
        # LoRaWAN devices, behind their network servers' bridges (below).
        "e2e-tts-1": platform.add_device("e2e-tts-1", "paddy-water", bridge="e2e-tts"),
        "e2e-cs-1": platform.add_device("e2e-cs-1", "soil", dev_eui="00a1b2c3d4e5f601",
                                        bridge="e2e-cs"),
        # The device of The Things Stack's published MQTT example.
        "dev1": platform.add_device("dev1", "paddy-water", bridge="e2e-tts-example"),
    }
    return creds


def test_exactly_the_distinct_good_readings_are_stored(platform, ingest, api, devices):
    now = int(time.time())
    expected: set[tuple[str, str, int, float]] = set()
    p1 = platform.device_client("e2e-paddy-1", devices["e2e-paddy-1"])
    p2 = platform.device_client("e2e-paddy-2", devices["e2e-paddy-2"])
    ws = platform.device_client("e2e-ws-1", devices["e2e-ws-1"])
    sim = publisher(platform.simulator_url())

    # paddy-1: a pack per 10 minutes, water level in cm (converted to m).
    packs = []
    for k in range(6):
        t = now - 3600 + 600 * k
        pack = [{"bn": "urn:dev:mac:0024befffe804ff1:", "bt": t, "n": "water_level", "u": "cm",
                 "v": 4 + k}, {"n": "water_temp", "u": "Cel", "v": 18.5 + k}]
        packs.append(pack)
        expected |= {("e2e-paddy-1", "water_level", t, (4 + k) * 0.01),
                     ("e2e-paddy-1", "water_temp", t, 18.5 + k)}
    latest_t = now - 3600 + 600 * 5
    # Out of order, then every pack again (duplicates), then a late backfill of
    # readings two days old with other values: stored, but not "latest".
    for pack in [packs[3], packs[0], packs[5], packs[1], packs[4], packs[2], *packs]:
        publish(p1, senml_topic("e2e-paddy-1"), orjson.dumps(pack))
    backfill = [{"bt": now - 2 * 86400 + 600 * i, "n": "water_level", "v": 0.12}
                for i in range(3)]
    publish(p1, senml_topic("e2e-paddy-1"), orjson.dumps(backfill))
    expected |= {("e2e-paddy-1", "water_level", now - 2 * 86400 + 600 * i, 0.12)
                 for i in range(3)}

    # paddy-2 speaks CBOR with integer labels (RFC 8428 section 6).
    cbor_pack = [{-3: now - 120, 0: "water_temp", 1: "Cel", 2: 21.25},
                 {0: "water_level", 1: "mm", 2: 35, 6: 60}]
    publish(p2, senml_topic("e2e-paddy-2", cbor=True), cbor2.dumps(cbor_pack))
    expected |= {("e2e-paddy-2", "water_temp", now - 120, 21.25),
                 ("e2e-paddy-2", "water_level", now - 60, 0.035)}

    # Weather station, and a partly bad pack: the good records are kept.
    partly_bad = (b'[{"bt": %d, "n": "air_temp", "u": "Cel", "v": 22.5},'
                  b'{"n": "rel_humidity", "u": "%%RH", "v": NaN},'
                  b'{"n": "wind_speed", "u": "m/s", "v": 2.5},'
                  b'{"n": "air_temp", "u": "K", "v": 295.0, "t": 1},'
                  b'{"n": "soil_ec", "v": 0.1, "t": 2},'
                  b'{"n": "rel_humidity", "u": "%%RH", "v": 140, "t": 3},'
                  b'{"n": "leaf_wetness", "vb": true, "t": 4}]') % (now - 300)
    publish(ws, senml_topic("e2e-ws-1"), partly_bad)
    expected |= {("e2e-ws-1", "air_temp", now - 300, 22.5),
                 ("e2e-ws-1", "wind_speed", now - 300, 2.5),
                 ("e2e-ws-1", "leaf_wetness", now - 296, 1.0)}

    # LoRaWAN devices bridged by their network servers.
    tts = {"end_device_ids": {"device_id": "e2e-tts-1"},
           "received_at": "2026-01-01T00:00:00Z",
           "uplink_message": {"decoded_payload": {"water_level": 0.061, "water_temp": 19.0},
                              "received_at": _rfc3339(now - 30)}}
    publish(sim, tts_uplink_topic(app="paddy", tenant="aomori", device_id="e2e-tts-1"),
            orjson.dumps(tts))
    expected |= {("e2e-tts-1", "water_level", now - 30, 0.061),
                 ("e2e-tts-1", "water_temp", now - 30, 19.0)}
    cs = {"deviceInfo": {"devEui": "00a1b2c3d4e5f601"}, "time": _rfc3339(now - 45),
          "object": {"soil_moisture": 0.41, "soil_temp": 17.5, "soil_ec": 0.05}}
    publish(sim, chirpstack_uplink_topic(application_id=E2E_CS_APP, dev_eui="00a1b2c3d4e5f601"),
            orjson.dumps(cs))
    expected |= {("e2e-cs-1", m, now - 45, v)
                 for m, v in (("soil_moisture", 0.41), ("soil_temp", 17.5), ("soil_ec", 0.05))}

    # Messages that are bad as a whole.
    bad = [
        (p1, senml_topic("e2e-paddy-1"), b'[{"n": "water_level", "v": 0.05', "malformed JSON"),
        (p1, senml_topic("e2e-paddy-1", cbor=True), b"\xff\x00\x13", "malformed CBOR"),
        (p1, senml_topic("e2e-paddy-1"), b"{}", "non-empty array"),
        (p1, senml_topic("e2e-paddy-1"), b"x" * 300_000, "exceeds the limit"),
        (sim, senml_topic("e2e-ghost"), orjson.dumps([{"n": "water_level", "v": 0.1}]),
         "unknown device"),
        (sim, tts_uplink_topic(app="app1", tenant="tenant1", device_id="dev1"),
         (VECTORS / "tts" / "mqtt-uplink-example.json").read_bytes()
         if VECTORS.exists() else b'{"uplink_message": {}}', "no decoded_payload"),
    ]
    # Records that are bad one by one (each alone in its pack).
    for pack, reason in [
        ([{"bt": now + 3600, "n": "water_level", "v": 0.05}], "ahead of the server"),
        ([{"bt": now * 1000, "n": "water_level", "v": 0.05}], "looks like milliseconds"),
        ([{"bt": now - 40 * 86400, "n": "water_level", "v": 0.05}], "days old"),
        ([{"bt": now, "n": "ph", "v": 6.5}], "unknown metric 'ph'"),
        ([{"bt": now, "n": "water_temp", "u": "Cel", "v": 99.0}], "physical range"),
        ([{"bt": now, "n": "water_temp", "vs": "warm"}], "not text"),
    ]:
        bad.append((p1, senml_topic("e2e-paddy-1"), orjson.dumps(pack), reason))
    for client, topic, payload, _ in bad:
        publish(client, topic, payload)
    expected_reasons = [r for *_, r in bad] + [
        "NaN", "unit 'K' not accepted", "unknown metric 'soil_ec'", "physical range"]

    def stored():
        rows = platform.sql("SELECT device_id, metric, extract(epoch FROM time)::bigint, value "
                            "FROM readings WHERE device_id LIKE 'e2e-%%'")
        return rows if len(rows) >= len(expected) else None

    def rejected():
        rows = platform.sql("SELECT reason FROM rejects WHERE topic LIKE '%%e2e-%%' "
                            "OR device_id = 'dev1'")
        return rows if len(rows) >= len(expected_reasons) else None

    wait_for(stored, what="the good readings")
    reasons = [r[0] for r in wait_for(rejected, what="the rejects")]
    # A sentinel published after every other message was acknowledged by the
    # broker reaches ingest after them: once it is stored, all of them are.
    publish(p2, senml_topic("e2e-paddy-2"), orjson.dumps([{"bt": now, "n": "battery",
                                                            "v": 99}]))
    wait_for(lambda: platform.sql("SELECT 1 FROM readings WHERE device_id = 'e2e-paddy-2' "
                                  "AND metric = 'battery'"), what="the sentinel")
    expected.add(("e2e-paddy-2", "battery", now, 99.0))
    reasons = [r[0] for r in rejected() or []]
    rows = platform.sql("SELECT device_id, metric, extract(epoch FROM time)::bigint, value "
                        "FROM readings WHERE device_id LIKE 'e2e-%%'")
    got = {(d, m, int(t), round(v, 9)) for d, m, t, v in rows}
    assert len(rows) == len(got), "a reading was stored twice"
    assert got == {(d, m, t, round(v, 9)) for d, m, t, v in expected}
    assert len(reasons) == len(expected_reasons)
    for reason in expected_reasons:
        assert any(reason in r for r in reasons), (reason, reasons)

    # The rejects are there for the operator and the developer, with payloads.
    token = platform.admin_token
    headers = {"Authorization": f"Bearer {token}"}
    body = httpx.get(f"{api}/api/v1/rejects", params={"device": "e2e-paddy-1"},
                     headers=headers).json()
    assert {"received_at", "topic", "device_id", "reason", "payload"} <= body["items"][0].keys()

    # "Latest" is by measurement time: the backfill does not replace the value.
    cond = httpx.get(f"{api}/api/v1/fields/e2e-field/conditions", headers=headers).json()
    level = cond["metrics"]["water_level"]
    assert level["value"] == pytest.approx(0.09)
    assert level["measured_at"].startswith(
        time.strftime("%Y-%m-%dT%H:%M", time.gmtime(latest_t + 9 * 3600)))
    assert level["unit"] == "m" and level["status"] == "ok"
    assert cond["metrics"]["air_temp"]["value"] == 22.5

    # The series reads back in the canonical unit, raw and bucketed.
    series = httpx.get(f"{api}/api/v1/devices/e2e-paddy-1/series", headers=headers,
                       params={"metric": "water_level", "start": _rfc3339(now - 3 * 86400),
                               "end": _rfc3339(now + 60)}).json()
    assert series["unit"] == "m" and len(series["points"]) == 9
    daily = httpx.get(f"{api}/api/v1/devices/e2e-paddy-1/series", headers=headers,
                      params={"metric": "water_level", "bucket": "1d",
                              "start": _rfc3339(now - 3 * 86400), "end": _rfc3339(now + 86400)}
                      ).json()
    assert sum(p["count"] for p in daily["points"]) == 9
    assert all(p["t"].endswith("+09:00") for p in daily["points"])

    metrics = httpx.get(f"{api}/metrics").text
    assert 'agri_ingest_readings_duplicate_total{worker="1"}' in metrics
    for c in (p1, p2, ws, sim):
        c.loop_stop()
        c.disconnect()


def _rfc3339(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
