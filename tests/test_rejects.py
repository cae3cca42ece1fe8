"""Rejects stay bounded whatever a device sends: a prefix of an oversized
payload with its size and hash, a bounded number of rows per message, and
pages of /api/v1/rejects bounded in bytes as well as in items."""

from __future__ import annotations

import hashlib
import time

import httpx
import orjson
import psycopg
import pytest

from agri.api.accounts import add_user
from agri.deploy.servers import MAX_PACKET_BYTES
from agri.devices.topics import senml_topic
from agri.ingest.rejects import MAX_ROWS_PER_MESSAGE, PAYLOAD_PREFIX_BYTES
from agri.settings import Settings
from tests.fix_stack import publisher, wait_for

MAX_PAYLOAD = Settings.model_fields["max_payload_bytes"].default
OVERSIZED = 50
# Just under the broker's packet limit: room for the fixed header and topic.
HUGE = MAX_PACKET_BYTES - 1024


def publish(client, topic: str, payload: bytes) -> None:
    info = client.publish(topic, payload, qos=1)
    info.wait_for_publish(60)
    assert info.rc == 0


def rejects_of(platform, device: str) -> list[tuple]:
    return platform.sql(
        "SELECT octet_length(payload), payload_size, payload_sha256, reason, record_index, "
        "payload FROM rejects WHERE device_id = %s ORDER BY id", (device,))


@pytest.fixture(scope="module")
def people(platform):
    with psycopg.connect(platform.db_url) as conn:
        tokens = {name: add_user(conn, name=name, role="developer").token
                  for name in ("rej-dev", "rej-other-dev")}
    tokens["admin"] = platform.admin_token
    return tokens


def pages(api, token: str, **params) -> tuple[list[dict], list[int]]:
    """Every item of /api/v1/rejects, following ``next``; and each page's size."""
    items, sizes, cursor = [], [], None
    while True:
        query = dict(params, **({"cursor": cursor} if cursor else {}))
        r = httpx.get(f"{api}/api/v1/rejects", params=query, timeout=60,
                      headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
        sizes.append(len(r.content))
        body = r.json()
        items += body["items"]
        cursor = body["next"]
        if cursor is None:
            return items, sizes


def test_oversized_payloads_keep_a_bounded_prefix_and_pages_stay_small(platform, ingest, api,
                                                                       people):
    device = "rej-huge"
    client = publisher(platform.device_url(device, platform.add_device(device, owner="rej-dev")),
                       device)
    payloads = [bytes([65 + k % 26]) * (HUGE - k) for k in range(OVERSIZED)]
    for payload in payloads:
        publish(client, senml_topic(device), payload)
    client.loop_stop()
    client.disconnect()
    rows = wait_for(lambda: (r := rejects_of(platform, device)) and len(r) >= OVERSIZED and r,
                    timeout=120, what=f"{OVERSIZED} rejects of {device}")
    assert len(rows) == OVERSIZED
    for (kept, size, digest, reason, _, prefix), payload in zip(rows, payloads, strict=True):
        assert kept == PAYLOAD_PREFIX_BYTES and size == len(payload)
        assert bytes(digest) == hashlib.sha256(payload).digest()
        assert bytes(prefix) == payload[:PAYLOAD_PREFIX_BYTES]
        assert f"payload of {len(payload)} bytes exceeds the limit of {MAX_PAYLOAD}" in reason

    # The API pages by bytes as well as by count: asking for 1000 items gets
    # pages of at most about a megabyte, and all 50 rejects across them.
    items, sizes = pages(api, people["admin"], device=device, limit=1000)
    assert len(items) == OVERSIZED and max(sizes) < 2 * 1024 * 1024
    assert {i["payload_size"] for i in items} == {len(p) for p in payloads}
    assert all(i["payload_truncated"] and len(i["payload"]) == PAYLOAD_PREFIX_BYTES
               for i in items)
    assert items[0]["payload_sha256"] == hashlib.sha256(payloads[-1]).hexdigest()

    # Its developer sees them; another developer, with a valid token, sees none.
    own, _ = pages(api, people["rej-dev"], device=device)
    assert len(own) == OVERSIZED
    other, _ = pages(api, people["rej-other-dev"], device=device)
    assert other == []


def test_a_pack_of_bad_records_yields_bounded_rows_and_a_summary(platform, ingest, api, people):
    device = "rej-pack"
    client = publisher(platform.device_url(device, platform.add_device(device)), device)
    now = int(time.time())
    bad_metric, bad_range = 3000, 1500
    pack = ([{"bt": now, "n": "water_temp", "v": 20.5}]
            + [{"n": f"no-such-metric-{i}", "v": 1, "t": -i - 1} for i in range(bad_metric)]
            + [{"n": "water_temp", "v": 90 + i / 1000, "t": -i - 1} for i in range(bad_range)])
    payload = orjson.dumps(pack)
    assert len(payload) < MAX_PAYLOAD
    publish(client, senml_topic(device), payload)
    # A sentinel after it: once stored, the pack was handled.
    publish(client, senml_topic(device), orjson.dumps([{"bt": now, "n": "battery", "v": 50}]))
    client.loop_stop()
    client.disconnect()
    wait_for(lambda: platform.sql("SELECT 1 FROM readings WHERE device_id = %s AND "
                                  "metric = 'battery'", (device,)), what="the sentinel")
    assert platform.sql("SELECT value FROM readings WHERE device_id = %s AND "
                        "metric = 'water_temp'", (device,)) == [(20.5,)]
    rows = rejects_of(platform, device)
    assert len(rows) == MAX_ROWS_PER_MESSAGE + 1
    assert [r[4] for r in rows[:-1]] == list(range(1, MAX_ROWS_PER_MESSAGE + 1))
    *_, reason, index, body = rows[-1]
    more = bad_metric + bad_range - MAX_ROWS_PER_MESSAGE
    assert index is None and reason.startswith(f"{more} more records of this message")
    summary = orjson.loads(bytes(body))
    assert summary["more_rejected"] == more
    assert sorted(summary["reasons"].values()) == [bad_range, bad_metric - MAX_ROWS_PER_MESSAGE]
    assert any(k.startswith("unknown metric") for k in summary["reasons"])
    assert any("physical range" in k for k in summary["reasons"])


def test_rejects_refuse_hostile_paging(api, people):
    headers = {"Authorization": f"Bearer {people['admin']}"}
    for params in ({"cursor": "x"}, {"limit": 0}, {"limit": 100_000}, {"cursor": "1e999"},
                   {"cursor": -5}, {"cursor": 2**63}):
        r = httpx.get(f"{api}/api/v1/rejects", params=params, headers=headers)
        assert r.status_code == 422, (params, r.text)
    r = httpx.get(f"{api}/api/v1/rejects", params={"device": "x" * 10_000}, headers=headers)
    assert r.status_code == 200 and r.json()["items"] == []
