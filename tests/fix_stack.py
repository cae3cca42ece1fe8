"""Session fixtures: a real PostgreSQL+TimescaleDB cluster and a real
Mosquitto, started as processes under a temporary AGRI_HOME exactly as
`agri up` starts them; ingest workers as real `agri ingest` processes."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from agri import mqtt
from agri.deploy.stack import EmbeddedStack
from agri.devices import provisioning
from agri.devices.broker_accounts import is_service

DEADLINE_S = 60.0


def wait_for(predicate: Callable[[], object], *, timeout: float = DEADLINE_S,
             what: str = "condition") -> object:
    """Poll ``predicate`` until truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


@dataclass
class Platform:
    stack: EmbeddedStack
    home: Path
    admin_token: str

    @property
    def db_url(self) -> str:
        return self.stack.database_url

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGRI_")}
        env["AGRI_HOME"] = str(self.home)
        env.update(extra)
        return env

    def sql(self, query: str, params: tuple | dict = ()) -> list[tuple]:
        with psycopg.connect(self.db_url) as conn:
            return conn.execute(query, params).fetchall()

    def add_device(self, device_id: str, profile: str = "paddy-water", **kw) -> str:
        """Register a device and create its broker account, as `agri devices add` does."""
        with psycopg.connect(self.db_url) as conn:
            return provisioning.add(conn, self.stack.mqtt_url("admin"), device_id=device_id,
                                    profile_name=profile, **kw)

    def add_bridge(self, name: str, kind: str, application: str,
                   tenant: str | None = None) -> str:
        """Register a LoRaWAN bridge with its broker account, as `agri bridges
        add` does; returns its password."""
        from agri.devices import bridges

        with psycopg.connect(self.db_url) as conn:
            return bridges.add(conn, self.stack.mqtt_url("admin"), name=name, kind=kind,
                               application=application, tenant=tenant)[1]

    def device_url(self, device_id: str, password: str) -> str:
        return f"mqtt://{device_id}:{password}@127.0.0.1:{self.stack.state.mqtt_port}"

    def device_client(self, device_id: str, password: str) -> object:
        """A connected publisher for a device, with its own id as client id."""
        return publisher(self.device_url(device_id, password), client_id=device_id)

    def simulator_url(self) -> str:
        return self.stack.mqtt_url("simulator")

    def admin_url(self) -> str:
        return self.stack.mqtt_url("admin")

    def cli(self, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "agri.cli", *args], env=self.env(**env),
                              capture_output=True, text=True, check=check, timeout=120)

    def start_ingest(self, worker: str = "1", **env: str) -> subprocess.Popen:
        path = self.home / f"ingest-{worker}.log"
        offset = path.stat().st_size if path.exists() else 0
        log = open(path, "ab")  # noqa: SIM115
        proc = subprocess.Popen([sys.executable, "-m", "agri.cli", "ingest", "--worker", worker],
                                env=self.env(**env), stdout=log, stderr=log)
        log.close()
        wait_for(lambda: _subscribed(path, offset) or proc.poll() is not None,
                 what=f"ingest worker {worker} to subscribe")
        assert proc.poll() is None, (self.home / f"ingest-{worker}.log").read_text()
        proc.worker = worker  # type: ignore[attr-defined]
        return proc

    def stop_ingest(self, proc: subprocess.Popen, *, retire: bool = True) -> None:
        """Stop a worker; unless told otherwise also retire it (drain and end its
        session), so that the shared subscription holds nothing for it later."""
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        if retire:
            self.retire_ingest(proc.worker)  # type: ignore[attr-defined]

    def retire_ingest(self, worker: str, idle_s: float = 1.0) -> None:
        self.cli("ingest", "--worker", worker, "--retire", "--retire-after-idle", str(idle_s))


def _subscribed(log: Path, offset: int) -> bool:
    """The worker started after ``offset`` in its log has subscribed."""
    with open(log, "rb") as f:
        f.seek(offset)
        return b"subscribed (" in f.read()


@contextmanager
def own_platform(prefix: str = "agri-test-", *, tls: bool = False,
                 max_queued_messages: int | None = None) -> Iterator[Platform]:
    """An embedded stack of its own, started, and removed afterwards (kept
    with AGRI_TEST_KEEP)."""
    # A folder of its own (not pytest's rotating tmp folders, which other
    # pytest runs may clean up), reachable by the servers' unprivileged user.
    base = Path(tempfile.mkdtemp(prefix=prefix))
    base.chmod(0o755)
    stack = EmbeddedStack(base / "home", tls=tls)
    if max_queued_messages is not None:
        stack.mosquitto.max_queued_messages = max_queued_messages
    stack.start()
    try:
        yield Platform(stack, stack.home, stack.new_admin_token)
    finally:
        stack.stop()
        if not os.environ.get("AGRI_TEST_KEEP"):
            shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def platform() -> Iterator[Platform]:
    with own_platform() as p:
        yield p


@pytest.fixture
def ingest(platform) -> Iterator[subprocess.Popen]:
    proc = platform.start_ingest()
    try:
        yield proc
    finally:
        platform.stop_ingest(proc)


@pytest.fixture
def scratch_db(platform) -> Iterator[str]:
    """A new, empty database on the test cluster; its URL."""
    name = f"scratch_{secrets.token_hex(4)}"
    with psycopg.connect(platform.db_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield platform.db_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(platform.db_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def publisher(url: str, client_id: str | None = None) -> object:
    """A connected client; a device's client id is its own id unless told otherwise."""
    if client_id is None:
        username = mqtt.parse_url(url).username or ""
        client_id = "" if is_service(username) else username
    client = mqtt.make_client(url, client_id=client_id)
    mqtt.connect(client)
    client.loop_start()
    return client


def api_answers(response) -> bool:
    """The API is up: /healthz answers with the database reachable (a 503
    may still name a stale ingest worker or a broker that is away)."""
    try:
        return response.status_code in (200, 503) and response.json().get("database") == "ok"
    except ValueError:
        return False


@contextmanager
def api_server(platform: Platform, **env: str) -> Iterator[str]:
    """A real `agri api` process of ``platform`` with extra settings ``env``
    (AGRI_...); yields its base URL."""
    import httpx

    from agri.deploy.servers import free_port

    port = free_port()
    with open(platform.home / "api.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "agri.cli", "api", "--port", str(port)],
                                env=platform.env(**env), stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return api_answers(httpx.get(base + "/healthz", timeout=1))
        except httpx.HTTPError:
            return proc.poll() is not None

    try:
        wait_for(up, what="the API to answer /healthz")
        assert proc.poll() is None, (platform.home / "api.log").read_text()
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


@pytest.fixture(scope="session")
def api(platform) -> Iterator[str]:
    with api_server(platform) as base:
        yield base
