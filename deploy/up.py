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
from agri.signals import stop_on_signals

logger = logging.getLogger(__name__)

RESTART_MIN_S = 1.0
RESTART_MAX_S = 30.0
CHILD_STOP_S = 20.0
READY_TIMEOUT_S = 90.0
CREDENTIALS_EVERY_S = 60.0  # old device credentials whose overlap is over are ended


@dataclass
class Child:
    """A platform process (ingest, api, simulator), restarted if it dies."""

    name: str
    args: list[str]
    env: dict[str, str]
    as_service: bool = True
    proc: subprocess.Popen | None = None
    backoff: float = RESTART_MIN_S
    started_at: float = field(default=0.0)
    restart_at: float | None = None  # when a dead child is started again

    def start(self) -> None:
        # As root, the platform's processes run as the service user, like the servers.
        cmd = [sys.executable, "-m", "agri.cli", *self.args]
        self.proc = subprocess.Popen(servers.as_service(cmd) if self.as_service else cmd,
                                     env=self.env, start_new_session=True)
        self.started_at = time.monotonic()

    def check(self) -> None:
        """Restart a dead child after its back-off, without blocking the
        supervisor (Ctrl-C must stop everything at once)."""
        if self.proc is None or self.proc.poll() is None:
            return
        now = time.monotonic()
        if self.restart_at is None:
            if now - self.started_at > 60:
                self.backoff = RESTART_MIN_S
            logger.warning("%s exited with %s; restarting in %.0f s", self.name,
                           self.proc.returncode, self.backoff)
            self.restart_at = now + self.backoff
            self.backoff = min(self.backoff * 2, RESTART_MAX_S)
        elif now >= self.restart_at:
            self.restart_at = None
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


def run_up(settings: Settings, *, simulate: bool, api_port: int | None,
           tls: bool = False) -> int:
    stop = stop_on_signals()
    base = {k: v for k, v in os.environ.items()
            if k not in ("AGRI_DATABASE_URL", "AGRI_MQTT_URL")}
    base["AGRI_HOME"] = str(settings.home.resolve())
    stack = None
    if not (settings.database_url and settings.mqtt_url):
        stack = EmbeddedStack(settings.home, tls=tls)
        stack.start()
        logger.info("embedded stack under %s", stack.home)

        def env(db: str, mqtt: str | None) -> dict[str, str]:
            # Each process gets only its own accounts, in its environment
            # (stack.json stays readable by the supervisor alone).
            out = {**base, "AGRI_DATABASE_URL": stack.database_url_for(db)}
            if mqtt is not None:
                out["AGRI_MQTT_URL"] = stack.mqtt_url(mqtt)
            return out
    else:
        from agri.db import connect
        from agri.deploy.migrate import migrate

        with connect(settings.db_url()) as conn:
            migrate(conn)

        def env(db: str, mqtt: str | None) -> dict[str, str]:
            return dict(os.environ)
    port = api_port or (settings.api_port if servers.port_is_free(settings.api_port)
                        else servers.free_port())
    started_at = time.time()
    children = [Child("ingest", ["ingest"], env("ingest", "ingest")),
                Child("api", ["api", "--port", str(port)], _api_env(env("api", None), stack,
                                                                    settings, port)),
                # The daily analytics and new images (analytics login, no MQTT).
                Child("analytics", ["analytics", "serve"], env("analytics", None)),
                # Rules on new readings and on a schedule; email and LINE (no MQTT).
                Child("alerts", ["alerts", "serve"], env("alerts", None)),
                # Hold depth and timers: commands through the database's queue.
                Child("water", ["water", "serve"], env("water", None))]
    if simulate:
        # The simulator registers its fleet (owner login, admin broker account).
        children.append(Child("simulator", ["simulate", "live"], env("owner", "admin")))
    as_service = _service_can_run_platform()
    if not as_service:
        logger.warning("the service user %r cannot run the platform from %s (a folder on the "
                       "way is closed to it): ingest, the API and the simulator run as %s; "
                       "install the platform where that user can read it",
                       servers.SERVICE_USER, sys.prefix, os.environ.get("USER", "root"))
        for child in children:
            child.as_service = False
    if simulate:
        # The simulator writes its season under AGRI_HOME/simulator: a folder
        # of the user it runs as.
        season_dir = settings.home.resolve() / "simulator"
        season_dir.mkdir(parents=True, exist_ok=True)
        if as_service:
            servers.give_to_service(season_dir, mode=0o700)
    try:
        for child in children:
            child.start()
        _wait_ready(port, children, stop, since=started_at)
        _announce(settings, stack, port, simulate)
        credentials_at = time.monotonic()
        while not stop.wait(0.5):
            for child in children:
                child.check()
            if stack is not None and time.monotonic() - credentials_at >= CREDENTIALS_EVERY_S:
                credentials_at = time.monotonic()
                try:
                    stack.end_expired_credentials()
                except Exception as exc:  # noqa: BLE001 - tried again next time
                    logger.warning("could not end expired device credentials: %s", exc)
            if stack is not None:
                for server in (stack.postgres, stack.mosquitto):
                    if server.proc is not None and server.proc.poll() is not None:
                        logger.error("%s exited; restarting it", type(server).__name__)
                        stack.restart(server)
    finally:
        print("\nstopping ...", flush=True)
        for child in reversed(children):
            child.stop()
        if stack is not None:
            stack.stop()
        print("stopped.", flush=True)
    return 0


def _service_can_run_platform() -> bool:
    """Whether the service user (when running as root) can start this Python
    and import the platform."""
    if servers.service_ids() is None:
        return True
    probe = subprocess.run(servers.as_service([sys.executable, "-c", "import agri.cli"]),
                           capture_output=True, timeout=60, check=False)
    return probe.returncode == 0


def _wait_ready(port: int, children: list[Child], stop: threading.Event, *,
                since: float) -> None:
    """Until the API answers and an ingest worker of this run (one that
    reported after ``since``, a Unix time) has reported in."""
    import httpx

    deadline = time.monotonic() + READY_TIMEOUT_S
    while not stop.is_set() and time.monotonic() < deadline:
        for child in children:
            child.check()
        try:
            health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json()
            # "stale" may be a worker of an earlier run that was never retired.
            if health.get("status") in ("ok", "stale") and _reported_since(health, since):
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.2)
    if not stop.is_set():
        logger.warning("the platform is not ready after %.0f s; see the logs above",
                       READY_TIMEOUT_S)


def _reported_since(health: dict, since: float) -> bool:
    now = time.time()
    for info in (health.get("ingest_workers") or {}).values():
        age = info.get("last_report_s")
        if age is not None and now - float(age) >= since:
            return True
    return False


def _api_env(env: dict[str, str], stack: EmbeddedStack | None, settings: Settings,
             port: int) -> dict[str, str]:
    """The API's environment: where the pages are reached (sign-in links) and,
    on the embedded stack, the broker's address for /healthz (no account: the
    API publishes nothing)."""
    env = dict(env)
    env.setdefault("AGRI_PUBLIC_URL", settings.public_url or f"http://127.0.0.1:{port}")
    if stack is not None:
        env["AGRI_MQTT_URL"] = f"mqtt://127.0.0.1:{stack.state.mqtt_port}"
    return env


def _announce(settings: Settings, stack: EmbeddedStack | None, port: int, simulate: bool) -> None:
    lines = ["", "agri platform is running", f"  API        http://127.0.0.1:{port}/  "
             f"(OpenAPI: /openapi.json, health: /healthz)"]
    if stack is not None:
        lines.append(f"  MQTT       127.0.0.1:{stack.state.mqtt_port}  (register a device: "
                     f"agri devices add --id ID --profile paddy-water)")
        if stack.mosquitto.tls is not None:
            lines.append(f"  MQTT TLS   127.0.0.1:{stack.state.tls_port}  "
                         f"(CA certificate: {stack.mosquitto.tls.cafile})")
        lines.append(f"  database   {stack.database_url.split('@')[1]}")
        if stack.new_admin_token:
            lines.append(f"  log in     http://127.0.0.1:{port}/login  user admin, password "
                         f"{stack.new_admin_password}  (change it at first login)")
            lines.append(f"  API token  Authorization: Bearer {stack.new_admin_token}   "
                         f"(user admin; both shown this once)")
        else:
            lines.append(f"  log in     http://127.0.0.1:{port}/login as admin with the password "
                         "shown at the first start (lost it? agri users password admin; "
                         "a new API token: agri users token admin --rotate)")
        lines.append(f"  state      {stack.home}")
    else:
        lines.append("  log in     create a user: agri users add --name NAME --role admin")
    if simulate:
        lines.append("  simulator  publishing a season: paddy water sensors, weather stations, "
                     "soil probes and drones (SenML and LoRaWAN uplinks)")
    lines.append("  Ctrl-C stops everything")
    print("\n".join(lines), flush=True)
