"""The API reads from a streaming replica (AGRI_DATABASE_READ_URL) and, when
the replica is gone, from the primary."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx
import psycopg
import pytest

from agri.api.accounts import add_user
from agri.db import wait_ready
from agri.deploy import servers
from agri.deploy.db_roles import login_url
from agri.ingest.batch import Batch
from agri.ingest.writer import Writer
from tests.fix_roles import service_urls
from tests.fix_stack import api_answers, wait_for

# Settings a hot standby must hold at least at the primary's values.
STANDBY_AT_LEAST = ("max_connections", "max_worker_processes", "max_wal_senders",
                    "max_prepared_transactions", "max_locks_per_transaction")


class Replica:
    """A hot standby of the test cluster, built with pg_basebackup -R."""

    def __init__(self, platform, root: Path) -> None:
        self.platform = platform
        self.root = root
        self.port = servers.free_port()
        self.proc: subprocess.Popen | None = None
        primary = platform.db_url
        self.url = primary.replace(f":{platform.stack.state.pg_port}/", f":{self.port}/")
        with psycopg.connect(primary) as conn:
            self.settings = {name: conn.execute(f"SHOW {name}").fetchone()[0]
                             for name in STANDBY_AT_LEAST}

    def build(self) -> None:
        servers.give_to_service(self.root, mode=0o700)
        result = subprocess.run(
            servers._as_service([str(servers.pg_bindir() / "pg_basebackup"), "-D",
                                 str(self.root / "data"), "-R", "-X", "stream", "-c", "fast",
                                 "--no-sync", "-d", self.platform.db_url]),
            capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr

    def start(self) -> None:
        settings = {"port": str(self.port), "listen_addresses": "127.0.0.1",
                    "unix_socket_directories": "", "shared_preload_libraries": "timescaledb",
                    "timescaledb.telemetry_level": "off", "shared_buffers": "128MB",
                    "hot_standby": "on", "timezone": "UTC", **self.settings}
        args = [str(servers.pg_bindir() / "postgres"), "-D", str(self.root / "data")]
        for key, value in settings.items():
            args += ["-c", f"{key}={value}"]
        with open(self.root / "postgres.log", "ab") as log:
            self.proc = subprocess.Popen(servers._as_service(args), stdout=log, stderr=log,
                                         start_new_session=True)
        wait_ready(self.url, timeout_s=60)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            self.proc.wait(30)

    def sql(self, query: str) -> list[tuple]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            return conn.execute(query).fetchall()


@pytest.fixture
def replica(platform) -> Iterator[Replica]:
    root = Path(tempfile.mkdtemp(prefix="replica-", dir=platform.home.parent))
    replica = Replica(platform, root)
    try:
        replica.build()
        replica.start()
        yield replica
    finally:
        replica.stop()
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def api_process(platform, **env: str) -> Iterator[str]:
    port = servers.free_port()
    log_path = platform.home / f"api-{port}.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "agri.cli", "api", "--port", str(port)],
                                env=platform.env(**env), stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return api_answers(httpx.get(base + "/healthz", timeout=2))
        except httpx.HTTPError:
            return proc.poll() is not None

    try:
        wait_for(up, what="the API to answer /healthz")
        assert proc.poll() is None, log_path.read_text()
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def _write(platform, device: str, times: list[float]) -> None:
    batch = Batch()
    now = time.time()
    batch.rows = [(device, "water_temp", t, 20.0, now) for t in times]
    writer = Writer(platform.db_url)
    writer.write(batch)
    writer.close()


class Reader:
    """How many water_temp readings of one device the API returns."""

    def __init__(self, base: str, token: str, device: str, start: float) -> None:
        self.url = f"{base}/api/v1/devices/{device}/series"
        self.headers = {"Authorization": f"Bearer {token}"}
        self.params = {"metric": "water_temp",
                       "start": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(start)),
                       "end": time.strftime("%Y-%m-%dT%H:%M:%S+00:00",
                                            time.gmtime(start + 7200))}

    def get(self) -> httpx.Response:
        return httpx.get(self.url, headers=self.headers, params=self.params, timeout=30)

    def count(self) -> int:
        response = self.get()
        assert response.status_code == 200, response.text
        return len(response.json()["points"])


@pytest.mark.fault
def test_api_reads_from_the_replica_and_from_the_primary_when_it_is_gone(platform, replica):
    device = "replica-dev-1"
    platform.add_device(device)
    with psycopg.connect(platform.db_url) as conn:
        token = add_user(conn, name="replica-admin", role="admin").token
    start = time.time() - 3600
    _write(platform, device, [start + i for i in range(10)])
    api_urls = service_urls(platform)
    replica_url = login_url(replica.url, "api", unquote(urlsplit(api_urls["api"]).password))
    # The replica replays the user and the readings.
    wait_for(lambda: replica.sql(
        f"SELECT count(*) FROM readings WHERE device_id = '{device}'") == [(10,)],
        what="the replica to replay the readings")
    assert replica.sql("SELECT pg_is_in_recovery()") == [(True,)]

    with api_process(platform, AGRI_DATABASE_URL=api_urls["api"],
                     AGRI_DATABASE_READ_URL=replica_url) as base:
        reader = Reader(base, token, device, start)
        assert reader.count() == 10
        # Replay paused: the primary has 15 readings, the replica still 10.
        replica.sql("SELECT pg_wal_replay_pause()")
        wait_for(lambda: replica.sql("SELECT pg_get_wal_replay_pause_state()") == [("paused",)],
                 what="replay to pause")
        _write(platform, device, [start + 100 + i for i in range(5)])
        assert platform.sql("SELECT count(*) FROM readings WHERE device_id = %s",
                            (device,)) == [(15,)]
        assert [reader.count() for _ in range(5)] == [10] * 5  # only the replica says 10
        replica.sql("SELECT pg_wal_replay_resume()")
        wait_for(lambda: reader.count() == 15, what="the API to see the replayed readings")

        # The replica gone: reads come from the primary, each answered.
        replica.stop()
        _write(platform, device, [start + 200])
        took = []
        for _ in range(5):
            t0 = time.monotonic()
            assert reader.count() == 16
            took.append(time.monotonic() - t0)
        assert max(took) < 5.0, took  # the first waits for the replica at most ~1 s

        # Back: reads go to the replica again (replay paused there, so it lags).
        replica.start()
        wait_for(lambda: replica.sql(
            f"SELECT count(*) FROM readings WHERE device_id = '{device}'") == [(16,)],
            what="the restarted replica to catch up")
        replica.sql("SELECT pg_wal_replay_pause()")
        wait_for(lambda: replica.sql("SELECT pg_get_wal_replay_pause_state()") == [("paused",)],
                 what="replay to pause")
        _write(platform, device, [start + 300])
        wait_for(lambda: reader.count() == 16, what="the API to read from the replica again")
        replica.sql("SELECT pg_wal_replay_resume()")


def test_api_with_an_unreachable_replica_reads_from_the_primary(platform):
    device = "replica-dev-2"
    platform.add_device(device)
    with psycopg.connect(platform.db_url) as conn:
        token = add_user(conn, name="replica-admin-2", role="admin").token
    start = time.time() - 3600
    _write(platform, device, [start + i for i in range(3)])
    api_url = service_urls(platform)["api"]
    nowhere = api_url.replace(f":{platform.stack.state.pg_port}/", f":{servers.free_port()}/")
    with api_process(platform, AGRI_DATABASE_URL=api_url, AGRI_DATABASE_READ_URL=nowhere) as base:
        reader = Reader(base, token, device, start)
        assert [reader.count() for _ in range(3)] == [3, 3, 3]
        # Hostile input is still answered as usual, from the primary.
        response = httpx.get(reader.url, headers=reader.headers,
                             params={"metric": "water_temp'; DROP TABLE readings; --"},
                             timeout=30)
        assert response.status_code == 422
        other = httpx.get(reader.url, headers={"Authorization": "Bearer not-a-token"},
                          params=reader.params, timeout=30)
        assert other.status_code == 401
