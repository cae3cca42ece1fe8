"""`agri up`: the embedded default, or given servers, plus ingest, API and
(optionally) the simulator as supervised child processes, until Ctrl-C."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from agri.deploy import servers
from agri.deploy.stack import EmbeddedStack
from agri.settings import Settings

logger = logging.getLogger(__name__)

RESTART_MIN_S = 1.0
RESTART_MAX_S = 30.0
CHILD_STOP_S = 20.0
READY_TIMEOUT_S = 90.0


@dataclass
class Child:
    """A platform process (ingest, api, simulator), restarted if it dies."""

    name: str
    args: list[str]
    env: dict[str, str]
    proc: subprocess.Popen | None = None
    backoff: float = RESTART_MIN_S
    started_at: float = field(default=0.0)

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "agri.cli", *self.args],
                                     env=self.env, start_new_session=True)
        self.started_at = time.monotonic()

    def check(self) -> None:
        if self.proc is None or self.proc.poll() is None:
            return
        code = self.proc.returncode
        if time.monotonic() - self.started_at > 60:
            self.backoff = RESTART_MIN_S
        logger.warning("%s exited with %s; restarting in %.0f s", self.name, code, self.backoff)
        time.sleep(self.backoff)
        self.backoff = min(self.backoff * 2, RESTART_MAX_S)
        self.start()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(CHILD_STOP_S)
        except subprocess.TimeoutExpired:
            logger.warning("%s did not stop in time; killing it", self.name)
            self.proc.kill()
            self.proc.wait()


def run_up(settings: Settings, *, simulate: bool, api_port: int | None) -> int:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    env = dict(os.environ)
    env["AGRI_HOME"] = str(settings.home.resolve())
    stack = None
    if not (settings.database_url and settings.mqtt_url):
        stack = EmbeddedStack(settings.home)
        stack.start()
        logger.info("embedded stack under %s", stack.home)
    else:
        from agri.db import connect
        from agri.deploy.migrate import migrate

        with connect(settings.db_url()) as conn:
            migrate(conn)
    port = api_port or (settings.api_port if servers.port_is_free(settings.api_port)
                        else servers.free_port())
    children = [Child("ingest", ["ingest"], env),
                Child("api", ["api", "--port", str(port)], env)]
    if simulate:
        children.append(Child("simulator", ["simulate", "live"], env))
    try:
        for child in children:
            child.start()
        _wait_ready(port, children, stop)
        _announce(settings, stack, port, simulate)
        while not stop.wait(0.5):
            for child in children:
                child.check()
            if stack is not None:
                for server in (stack.postgres, stack.mosquitto):
                    if server.proc is not None and server.proc.poll() is not None:
                        logger.error("%s exited; restarting it", type(server).__name__)
                        server.start()
    finally:
        print("\nstopping ...", flush=True)
        for child in reversed(children):
            child.stop()
        if stack is not None:
            stack.stop()
        print("stopped.", flush=True)
    return 0


def _wait_ready(port: int, children: list[Child], stop: threading.Event) -> None:
    """Until the API answers and an ingest worker has reported in."""
    import httpx

    deadline = time.monotonic() + READY_TIMEOUT_S
    while not stop.is_set() and time.monotonic() < deadline:
        for child in children:
            child.check()
        try:
            health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json()
            if health.get("status") == "ok" and health.get("ingest_workers"):
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.2)
    if not stop.is_set():
        logger.warning("the platform is not ready after %.0f s; see the logs above",
                       READY_TIMEOUT_S)


def _announce(settings: Settings, stack: EmbeddedStack | None, port: int, simulate: bool) -> None:
    lines = ["", "agri platform is running", f"  API        http://127.0.0.1:{port}/  "
             f"(OpenAPI: /openapi.json, health: /healthz)"]
    if stack is not None:
        lines += [f"  MQTT       127.0.0.1:{stack.state.mqtt_port}  (register a device: "
                  f"agri devices add --id ID --profile paddy-water)",
                  f"  database   {stack.database_url.split('@')[1]}",
                  f"  log in     Authorization: Bearer {stack.state.admin_token}   (user admin)",
                  f"  state      {stack.home}"]
    else:
        lines.append("  log in     create a user: agri users add --name NAME --role admin")
    if simulate:
        lines.append("  simulator  publishing a season: paddy water sensors, weather stations, "
                     "soil probes and drones (SenML and LoRaWAN uplinks)")
    lines.append("  Ctrl-C stops everything")
    print("\n".join(lines), flush=True)
