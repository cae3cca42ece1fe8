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
from agri.deploy import broker_config

logger = logging.getLogger(__name__)

SERVICE_USER = "agri"
PG_MAJOR = 15
STOP_TIMEOUT_S = 30.0
MAX_PACKET_BYTES = broker_config.MAX_PACKET_BYTES


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


def service_ids() -> tuple[int, int] | None:
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


def as_service(cmd: list[str]) -> list[str]:
    """``cmd`` run as the service user when this runs as root."""
    ids = service_ids()
    if ids is None:
        return cmd
    return ["setpriv", f"--reuid={ids[0]}", f"--regid={ids[1]}", "--clear-groups", *cmd]


_as_service = as_service
_service_ids = service_ids


def give_to_service(path: Path, *, mode: int | None = None) -> None:
    """Make ``path`` owned by the service user (when root) and check it can be reached."""
    if mode is not None:
        path.chmod(mode)
    ids = service_ids()
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
    conf_dir: Path
    user: str = "agri"
    database: str = "agri"
    proc: subprocess.Popen | None = None

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.conf_dir / "postgres.log"

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
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        pwfile = self.conf_dir / "initdb.pw"
        write_private(pwfile, self.password, owner=service_ids())
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
        self.proc = _spawn(args, self.log)
        admin = self.url.rsplit("/", 1)[0] + "/postgres"
        try:
            wait_ready(admin, timeout_s=timeout_s)
        except Exception:
            self.stop()
            tail = self.log.read_text(errors="replace")[-2000:]
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
    """A private Mosquitto 2 broker: persistence on, accounts and rights from
    the dynamic security plugin (managed by the platform).

    ``root`` belongs to the service user (the broker writes its persistence
    and dynamic-security files there); the configuration and the log are
    written by the supervisor into ``conf_dir``, which the service user cannot
    change, so nothing running as root ever writes into a folder it owns.
    """

    root: Path
    port: int
    conf_dir: Path
    tls: broker_config.TlsFiles | None = None
    tls_port: int | None = None
    max_queued_messages: int = broker_config.MAX_QUEUED_MESSAGES
    autosave_interval: int = broker_config.AUTOSAVE_INTERVAL_S
    proc: subprocess.Popen | None = None

    @property
    def config(self) -> Path:
        return self.conf_dir / "mosquitto.conf"

    @property
    def log(self) -> Path:
        return self.conf_dir / "mosquitto.log"

    @property
    def dynsec_file(self) -> Path:
        return self.root / "dynamic-security.json"

    def prepare(self, *, admin_user: str, admin_password: str) -> None:
        """Folders, the configuration, and on the first run the plugin's file
        with its admin account (``mosquitto_ctrl dynsec init``, the standard
        way; run as the service user, who owns the folder)."""
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        self.root.mkdir(parents=True, exist_ok=True)
        give_to_service(self.root, mode=0o700)
        data = self.root / "data"
        if not data.exists():
            subprocess.run(_as_service(["mkdir", "-m", "700", str(data)]), check=True)
        text = broker_config.render(
            bind="127.0.0.1", port=self.port, data_dir=str(data),
            dynsec_file=str(self.dynsec_file), plugin=broker_config.plugin_path(),
            tls=self.tls, tls_port=self.tls_port or broker_config.MQTTS_PORT,
            max_queued_messages=self.max_queued_messages,
            autosave_interval=self.autosave_interval)
        write_private(self.config, text, mode=0o644)
        if not self.dynsec_file.exists():
            try:
                subprocess.run(_as_service(["mosquitto_ctrl", "dynsec", "init",
                                            str(self.dynsec_file), admin_user, admin_password]),
                               check=True, capture_output=True, text=True)
            except subprocess.CalledProcessError as exc:
                raise ServerError(f"mosquitto_ctrl dynsec init failed: "
                                  f"{(exc.stderr or exc.stdout).strip()}") from None

    def start(self, *, timeout_s: float = 30.0) -> None:
        self.proc = _spawn(["mosquitto", "-c", str(self.config)], self.log)
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                tail = self.log.read_text(errors="replace")[-2000:]
                raise ServerError(f"Mosquitto exited at start; its log ends:\n{tail}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise ServerError("Mosquitto did not accept connections in time") from None
                time.sleep(0.05)

    def stop(self) -> None:
        _stop(self.proc, signal.SIGTERM, "Mosquitto")


def write_private(path: Path, text: str | bytes, *, mode: int = 0o600,
                  owner: tuple[int, int] | None = None) -> None:
    """Write ``path`` atomically, created with ``mode`` from the start (never
    readable by others, not even for an instant), never following a link."""
    data = text.encode() if isinstance(text, str) else text
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        if owner is not None:
            os.fchown(fd, *owner)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
