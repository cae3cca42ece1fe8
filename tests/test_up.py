"""`agri up` as a user runs it: first start, a device publishing, Ctrl-C,
and a second start that finds the same data."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import httpx
import orjson

from agri.deploy.servers import SERVICE_USER, free_port
from tests.fix_stack import publisher, wait_for


class Up:
    def __init__(self, home: Path, port: int, *extra: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGRI_")}
        env["AGRI_HOME"] = str(home)
        self.env = env
        self.lines: list[str] = []
        self.proc = subprocess.Popen([sys.executable, "-m", "agri.cli", "up", "--api-port",
                                      str(port), *extra], env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        wait_for(lambda: "Ctrl-C stops everything" in self.text or self.proc.poll() is not None,
                 timeout=120, what="agri up to be ready")
        assert self.proc.poll() is None, self.text

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def cli(self, *args: str) -> str:
        return subprocess.run([sys.executable, "-m", "agri.cli", *args], env=self.env,
                              capture_output=True, text=True, check=True, timeout=60).stdout

    def interrupt(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(60)
        self.reader.join(10)
        self.proc.stdout.close()
        return code


def _children(parent: int) -> dict[int, str]:
    """pid -> platform command (ingest, api, analytics, simulate) of ``parent``'s children."""
    found = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines()
                          if ":\t" in line)
            cmdline = (status.parent / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(fields.get("PPid", "0")) == parent and b"agri.cli" in cmdline:
            found[int(status.parent.name)] = cmdline[cmdline.index(b"agri.cli") + 1].decode()
    return found


def test_up_runs_everything_and_keeps_data_across_restarts():
    home = Path(tempfile.mkdtemp(prefix="agri-up-"))
    home.chmod(0o755)
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    try:
        up = Up(home / "state", port)
        token = re.search(r"Bearer (\S+)", up.text).group(1)
        assert re.search(r"user admin, password (\S+)", up.text), up.text
        mqtt_port = int(re.search(r"MQTT\s+127\.0\.0\.1:(\d+)", up.text).group(1))
        assert f"http://127.0.0.1:{port}/" in up.text
        assert httpx.get(f"{api}/healthz").json()["status"] == "ok"

        # Another command on the same AGRI_HOME finds the servers by itself.
        device = orjson.loads(up.cli("devices", "add", "--id", "up-paddy", "--profile",
                                     "paddy-water", "--json"))
        assert device["username"] == "up-paddy" and len(device["password"]) >= 16
        client = publisher(f"mqtt://up-paddy:{device['password']}@127.0.0.1:{mqtt_port}",
                           client_id="up-paddy")
        client.publish("agri/v1/devices/up-paddy/senml",
                       orjson.dumps([{"n": "water_temp", "u": "Cel", "v": 21.5}]),
                       qos=1).wait_for_publish(10)
        client.loop_stop()
        client.disconnect()
        headers = {"Authorization": f"Bearer {token}"}

        def points():
            r = httpx.get(f"{api}/api/v1/devices/up-paddy/series",
                          params={"metric": "water_temp"}, headers=headers)
            return r.json()["points"] if r.status_code == 200 else None

        assert wait_for(points, what="the reading through ingest")[0]["value"] == 21.5
        if os.geteuid() == 0 and "cannot run the platform from" not in up.text:
            # As root, the platform's own processes drop to the service user.
            service_uid = pwd.getpwnam(SERVICE_USER).pw_uid
            children = _children(up.proc.pid)
            assert {"ingest", "api", "analytics"} <= set(children.values()), children
            for pid in children:
                uid = int(next(line for line in Path(f"/proc/{pid}/status").read_text()
                               .splitlines() if line.startswith("Uid:")).split()[1])
                assert uid == service_uid, (children[pid], uid)
        pids = orjson.loads((home / "state" / "stack.json").read_bytes())["pids"]
        assert up.interrupt() == 0
        assert "stopped." in up.text
        for pid in pids.values():  # the servers are gone, not orphaned
            assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(
                f"/proc/{pid}/status").read_text().lower()

        up = Up(home / "state", port)
        assert "Bearer" not in up.text, "the admin token is shown only when it is created"
        assert "password admin" in up.text
        assert "agri users token admin --rotate" in up.text
        assert points()[0]["value"] == 21.5
        assert httpx.get(f"{api}/api/v1/devices/up-paddy/series", params={
            "metric": "water_temp"}).status_code == 401
        assert up.interrupt() == 0
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_up_simulate_publishes_a_living_season():
    """The README's first command: the simulator runs (as the service user
    when root), its fleet's readings are stored, and Ctrl-C stops at once."""
    import time

    import psycopg

    home = Path(tempfile.mkdtemp(prefix="agri-up-sim-"))
    home.chmod(0o755)
    try:
        up = Up(home / "state", free_port(), "--simulate")
        url = orjson.loads((home / "state" / "stack.json").read_bytes())["database_url"]

        def stored() -> int:
            with psycopg.connect(url) as conn:
                return conn.execute("SELECT count(*) FROM readings").fetchone()[0]

        wait_for(lambda: stored() > 100, timeout=120, what="the simulated fleet's readings")
        assert "simulator exited" not in up.text, up.text[-3000:]
        assert "simulate" in _children(up.proc.pid).values()
        began = time.monotonic()
        assert up.interrupt() == 0
        assert time.monotonic() - began < 30
    finally:
        shutil.rmtree(home, ignore_errors=True)
