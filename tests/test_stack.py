"""The embedded stack's own defences: one Mosquitto template, nothing written
as root into the service user's folders, pids kept current, concurrent
device registrations, and a CLI that does not hide a broken import."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
import pytest

from agri.deploy import broker_config, servers
from tests.fix_stack import publisher

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def test_production_config_is_the_templates_rendering():
    assert (DEPLOY / "mosquitto" / "production.conf").read_text() == broker_config.production()


def test_the_embedded_broker_uses_the_same_template(platform):
    text = platform.stack.mosquitto.config.read_text()
    template = (DEPLOY / "mosquitto" / "mosquitto.conf.template").read_text()
    first = template.splitlines()[5]  # a line without placeholders
    assert first in text and "plugin_opt_config_file" in text
    assert "password_file" not in text and "acl_file" not in text
    assert f"listener {platform.stack.state.mqtt_port} 127.0.0.1" in text


@pytest.mark.skipif(os.geteuid() != 0, reason="the service user exists only when run as root")
def test_links_planted_by_the_service_user_are_never_followed(platform, tmp_path):
    """The service user owns postgres/ and mosquitto/; whatever links it puts
    there, a restart run as root writes nothing through them."""
    target = tmp_path / "target"
    target.write_text("untouched")
    target.chmod(0o644)
    ids = servers.service_ids()
    planted = []
    for folder in (platform.stack.postgres.root, platform.stack.mosquitto.root):
        for name in ("mosquitto.conf", "mosquitto.log", "postgres.log", "initdb.pw", "passwd",
                     "acl", "stack.json", "mosquitto.tmp"):
            link = folder / name
            if not link.exists():
                subprocess.run(servers.as_service(["ln", "-s", str(target), str(link)]),
                               check=True)
                planted.append(link)
    assert ids is not None and planted
    try:
        platform.stack.mosquitto.stop()
        platform.stack.mosquitto.prepare(admin_user="agri-admin",
                                         admin_password=platform.stack.state.mqtt_admin_password)
        platform.stack.restart(platform.stack.mosquitto)
        platform.stack.save()
        assert target.read_text() == "untouched"
    finally:
        for link in planted:
            link.unlink(missing_ok=True)


def test_a_restarted_server_has_its_new_pid_recorded(platform):
    old = platform.stack.mosquitto.proc.pid
    platform.stack.mosquitto.stop()
    platform.stack.restart(platform.stack.mosquitto)
    saved = orjson.loads(platform.stack.state_file.read_bytes())["pids"]["mosquitto"]
    assert saved == platform.stack.mosquitto.proc.pid != old


def test_concurrent_device_registrations_all_reach_the_broker(platform):
    ids = [f"stack-conc-{i}" for i in range(8)]

    def add(device_id: str) -> dict:
        return orjson.loads(platform.cli("devices", "add", "--id", device_id, "--profile",
                                         "soil", "--json").stdout)

    with ThreadPoolExecutor(len(ids)) as pool:
        added = list(pool.map(add, ids))
    for device in added:
        client = publisher(platform.device_url(device["device_id"], device["password"]))
        info = client.publish(f"agri/v1/devices/{device['device_id']}/events", b"{}", qos=1)
        info.wait_for_publish(10)
        client.disconnect()
        client.loop_stop()
    assert platform.sql("SELECT count(*) FROM devices WHERE id LIKE 'stack-conc-%%'") == [(8,)]


def test_a_broken_simulator_import_is_not_hidden():
    code = ("import sys; sys.modules['agri.simulator.cli'] = None\n"
            "from agri.cli import main\nmain(['--help'])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0 and "agri.simulator.cli" in result.stderr


def test_devices_without_a_broker_say_so(platform):
    env = {"AGRI_MQTT_URL": "mqtt://admin:pw@127.0.0.1:1", "AGRI_DATABASE_URL": platform.db_url}
    result = platform.cli("devices", "add", "--id", "stack-nobroker", "--profile", "soil",
                          check=False, **env)
    assert result.returncode == 2 and "cannot reach the MQTT broker" in result.stderr
    assert platform.sql("SELECT count(*) FROM devices WHERE id = 'stack-nobroker'") == [(0,)]
