"""The platform's own PostgreSQL+TimescaleDB cluster and Mosquitto broker,
run as child processes under a state directory.

`agri up` and the test fixtures start their servers with these classes.
PostgreSQL refuses to run as root and Mosquitto drops privileges, so when
this runs as root the servers are started as the unprivileged system user
``SERVICE_USER`` (created when missing), which owns their directories.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from agri.db import wait_ready

logger = logging.getLogger(__name__)

SERVICE_USER = "agri"
PG_MAJOR = 15
STOP_TIMEOUT_S = 30.0
# Sized for a day of backlog of a prefecture (tens of thousands of sensors at
# 10-minute intervals, a few hundred messages/s -> tens of millions a day).
# Mosquitto's default of 1,000 drops a slow subscriber's backlog silently.
MAX_QUEUED_MESSAGES = 50_000_000
MAX_INFLIGHT_MESSAGES = 20_000
MAX_PACKET_BYTES = 4 * 1024 * 1024  # above ingest's payload limit, so ingest can reject and record


class ServerError(RuntimeError):
    """A server could not be set up or started; the message says what to check."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _service_ids() -> tuple[int, int] | None:
    """(uid, gid) to run servers as, or None when not root."""
    if os.geteuid() != 0:
        return None
    try:
        pw = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", SERVICE_USER], check=True)
        pw = pwd.getpwnam(SERVICE_USER)
    return pw.pw_uid, pw.pw_gid


def _as_service(cmd: list[str]) -> list[str]:
    ids = _service_ids()
    if ids is None:
        return cmd
    return ["setpriv", f"--reuid={ids[0]}", f"--regid={ids[1]}", "--clear-groups", *cmd]


def give_to_service(path: Path, *, mode: int | None = None) -> None:
    """Make ``path`` owned by the service user (when root) and check it can be reached."""
    if mode is not None:
        path.chmod(mode)
    ids = _service_ids()
    if ids is None:
        return
    os.chown(path, *ids)
    for parent in path.resolve().parents:
        st = parent.stat()
        if not st.st_mode & (0o100 if st.st_uid == ids[0] else 0o001):
            raise ServerError(
                f"{parent} is not searchable by the service user {SERVICE_USER!r}; "
                f"choose an AGRI_HOME outside it or run `chmod o+x {parent}`")


def _spawn(args: list[str], log_path: Path) -> subprocess.Popen:
    """Start a server as the service user, in a session of its own (Ctrl-C at
    the terminal reaches only the supervisor), its output appended to a log."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(_as_service(args), stdout=log, stderr=log,
                                start_new_session=True)


def _stop(proc: subprocess.Popen | None, sig: int, name: str) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        logger.warning("%s did not stop within %.0f s; killing pid %d", name, STOP_TIMEOUT_S,
                       proc.pid)
        proc.kill()
        proc.wait()


def pg_bindir() -> Path:
    for candidate in (Path(f"/usr/lib/postgresql/{PG_MAJOR}/bin"),):
        if (candidate / "postgres").exists():
            return candidate
    found = shutil.which("pg_config")
    if found:
        out = subprocess.run([found, "--bindir"], capture_output=True, text=True, check=True)
        return Path(out.stdout.strip())
    raise ServerError("PostgreSQL server binaries not found: run deploy/install-debian.sh")


@dataclass
class Postgres:
    """A private PostgreSQL cluster with TimescaleDB preloaded."""

    root: Path
    port: int
    password: str
    user: str = "agri"
    database: str = "agri"
    proc: subprocess.Popen | None = None

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return (f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/"
                f"{self.database}")

    def init(self) -> None:
        """Create the cluster once; later calls find it and do nothing."""
        if (self.data / "PG_VERSION").exists():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        give_to_service(self.root, mode=0o700)
        pwfile = self.root / "initdb.pw"
        pwfile.write_text(self.password)
        give_to_service(pwfile, mode=0o600)
        try:
            subprocess.run(
                _as_service([str(pg_bindir() / "initdb"), "-D", str(self.data), "-U", self.user,
                             "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8",
                             "--locale=C.UTF-8", "--no-instructions"]),
                check=True, capture_output=True, text=True)
        except subprocess.CalledProcessError as exc:
            raise ServerError(f"initdb failed: {exc.stderr.strip()}") from None
        finally:
            pwfile.unlink(missing_ok=True)

    def start(self, *, timeout_s: float = 60.0) -> None:
        settings = {
            "port": str(self.port),
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": "",
            "shared_preload_libraries": "timescaledb",
            "timescaledb.telemetry_level": "off",
            "max_connections": "200",
            "shared_buffers": "512MB",
            "max_wal_size": "4GB",
            "checkpoint_timeout": "15min",
            "timezone": "UTC",
        }
        args = [str(pg_bindir() / "postgres"), "-D", str(self.data)]
        for key, value in settings.items():
            args += ["-c", f"{key}={value}"]
        self.proc = _spawn(args, self.root / "postgres.log")
        admin = self.url.rsplit("/", 1)[0] + "/postgres"
        try:
            wait_ready(admin, timeout_s=timeout_s)
        except Exception:
            self.stop()
            tail = (self.root / "postgres.log").read_text(errors="replace")[-2000:]
            raise ServerError(f"PostgreSQL did not start; its log ends:\n{tail}") from None
        from agri.db import connect

        with connect(admin, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                  (self.database,)).fetchone()
            if not exists:
                from psycopg import sql

                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))

    def stop(self, *, mode: str = "fast") -> None:
        sig = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}[mode]
        _stop(self.proc, sig, "PostgreSQL")


@dataclass
class Mosquitto:
    """A private Mosquitto 2 broker: persistence and authentication on."""

    root: Path
    port: int
    proc: subprocess.Popen | None = None

    @property
    def config(self) -> Path:
        return self.root / "mosquitto.conf"

    @property
    def password_file(self) -> Path:
        return self.root / "passwd"

    @property
    def acl_file(self) -> Path:
        return self.root / "acl"

    def write_config(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "data").mkdir(exist_ok=True)
        give_to_service(self.root, mode=0o700)
        give_to_service(self.root / "data", mode=0o700)
        self.config.write_text(f"""\
# Generated by the platform; edits are overwritten at the next start.
per_listener_settings false
listener {self.port} 127.0.0.1
allow_anonymous false
password_file {self.password_file}
acl_file {self.acl_file}
persistence true
persistence_location {self.root / 'data'}/
autosave_interval 30
# Never drop a subscriber's backlog silently (the default of 1000 does).
max_queued_messages {MAX_QUEUED_MESSAGES}
max_queued_bytes 0
max_inflight_messages {MAX_INFLIGHT_MESSAGES}
max_packet_size {MAX_PACKET_BYTES}
# Sessions of clients that never come back (e.g. a retired ingest worker).
persistent_client_expiration 14d
sys_interval 5
log_dest stderr
log_type error
log_type warning
log_type notice
connection_messages false
""")

    def start(self, *, timeout_s: float = 30.0) -> None:
        self.proc = _spawn(["mosquitto", "-c", str(self.config)], self.root / "mosquitto.log")
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                tail = (self.root / "mosquitto.log").read_text(errors="replace")[-2000:]
                raise ServerError(f"Mosquitto exited at start; its log ends:\n{tail}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise ServerError("Mosquitto did not accept connections in time") from None
                time.sleep(0.05)

    def reload(self) -> None:
        """Re-read the password and ACL files (SIGHUP)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        _stop(self.proc, signal.SIGTERM, "Mosquitto")
