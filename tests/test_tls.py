"""`agri up --tls`: an MQTT TLS listener with a local CA; devices connect
with it, and a client that does not trust the CA is refused."""

from __future__ import annotations

import os
import socket
import ssl
import stat
from pathlib import Path

import orjson
import psycopg
import pytest

from agri import mqtt
from agri.deploy import servers
from agri.devices import provisioning
from agri.devices.topics import senml_topic
from tests.fix_stack import Platform, own_platform, wait_for


@pytest.fixture(scope="module")
def tls_platform():
    with own_platform("agri-tls-", tls=True) as p:
        yield p


def _tls_url(platform: Platform, device_id: str, password: str, cafile: Path | None) -> str:
    query = f"?cafile={cafile}" if cafile else ""
    return (f"mqtts://{device_id}:{password}@localhost:{platform.stack.state.tls_port}"
            f"{query}")


def test_a_device_publishes_over_tls_and_the_reading_is_stored(tls_platform):
    platform = tls_platform
    files = platform.stack.mosquitto.tls
    with psycopg.connect(platform.db_url) as conn:
        password = provisioning.add(conn, platform.admin_url(), device_id="tls-paddy",
                                    profile_name="paddy-water")
    worker = platform.start_ingest("tls")
    try:
        client = mqtt.make_client(_tls_url(platform, "tls-paddy", password, files.cafile),
                                  client_id="tls-paddy")
        mqtt.connect(client)
        client.loop_start()
        info = client.publish(senml_topic("tls-paddy"), orjson.dumps(
            [{"n": "water_temp", "u": "Cel", "v": 18.25}]), qos=1)
        info.wait_for_publish(10)
        client.disconnect()
        client.loop_stop()
        wait_for(lambda: platform.sql(
            "SELECT value FROM readings WHERE device_id = 'tls-paddy'") == [(18.25,)],
            what="the reading sent over TLS")
    finally:
        platform.stop_ingest(worker)


def _handshake(port: int, context: ssl.SSLContext) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:
        return tls.version()


def test_a_client_that_does_not_trust_the_ca_is_refused(tls_platform):
    port = tls_platform.stack.state.tls_port
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(port, ssl.create_default_context())
    trusting = ssl.create_default_context(cafile=str(tls_platform.stack.mosquitto.tls.cafile))
    assert _handshake(port, trusting) in ("TLSv1.2", "TLSv1.3")


def test_the_keys_are_private_from_their_creation(tls_platform):
    files = tls_platform.stack.mosquitto.tls
    for key in (files.keyfile, files.keyfile.with_name("ca.key")):
        st = key.stat()
        assert stat.S_IMODE(st.st_mode) == 0o600, key
    ids = servers.service_ids()
    if ids is not None:  # as root: the broker's user reads its key, nobody else
        assert files.keyfile.stat().st_uid == ids[0]
        assert files.keyfile.with_name("ca.key").stat().st_uid == os.geteuid()
    state = tls_platform.stack.state_file.stat()
    assert stat.S_IMODE(state.st_mode) == 0o600
