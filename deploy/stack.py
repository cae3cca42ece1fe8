"""The embedded stack: a private PostgreSQL+TimescaleDB cluster and a private
Mosquitto under ``AGRI_HOME``, created on the first run and reused after.

``AGRI_HOME/stack.json`` records where the servers listen and the generated
service passwords (mode 0600), so that every other command run against the
same ``AGRI_HOME`` finds them.
"""

from __future__ import annotations

import logging
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from agri.db import connect
from agri.deploy import servers
from agri.deploy.migrate import migrate
from agri.devices import broker_auth, registry
from agri.devices.credentials import new_password, new_token

logger = logging.getLogger(__name__)


@dataclass
class StackState:
    """What stack.json holds."""

    pg_port: int
    pg_password: str
    mqtt_port: int
    service_passwords: dict[str, str]
    admin_token: str
    pids: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "pg_port": self.pg_port, "pg_password": self.pg_password,
            "mqtt_port": self.mqtt_port, "service_passwords": self.service_passwords,
            "admin_token": self.admin_token, "pids": self.pids,
            "database_url": f"postgresql://agri:{self.pg_password}@127.0.0.1:{self.pg_port}/agri",
            "mqtt_host": "127.0.0.1",
            "mqtt_urls": {
                "ingest": self.mqtt_url(broker_auth.INGEST_ACCOUNT),
                "simulator": self.mqtt_url(broker_auth.SIMULATOR_ACCOUNT),
            },
        }

    def mqtt_url(self, account: str) -> str:
        return f"mqtt://{account}:{self.service_passwords[account]}@127.0.0.1:{self.mqtt_port}"


class EmbeddedStack:
    """Start, reuse and stop the private servers under ``home``."""

    def __init__(self, home: Path) -> None:
        self.home = home.resolve()
        self.state_file = self.home / "stack.json"
        self.state = self._load_or_create()
        self.postgres = servers.Postgres(self.home / "postgres", self.state.pg_port,
                                         self.state.pg_password)
        self.mosquitto = servers.Mosquitto(self.home / "mosquitto", self.state.mqtt_port)

    @property
    def database_url(self) -> str:
        return self.postgres.url

    def mqtt_url(self, account: str) -> str:
        return self.state.mqtt_url(account)

    def _load_or_create(self) -> StackState:
        if self.state_file.exists():
            raw = orjson.loads(self.state_file.read_bytes())
            return StackState(raw["pg_port"], raw["pg_password"], raw["mqtt_port"],
                              raw["service_passwords"], raw["admin_token"], raw.get("pids", {}))
        self.home.mkdir(parents=True, exist_ok=True)
        return StackState(
            pg_port=servers.free_port(), pg_password=new_password(),
            mqtt_port=servers.free_port(),
            service_passwords={a: new_password() for a in broker_auth.SERVICE_RIGHTS},
            admin_token=new_token())

    def save(self) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(self.state.to_json(), option=orjson.OPT_INDENT_2))
        tmp.chmod(0o600)
        tmp.replace(self.state_file)

    def start(self) -> None:
        """Start PostgreSQL, migrate, write the broker's auth files, start Mosquitto."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.home.chmod(0o755)
        for attr, name in (("pg_port", "postgres"), ("mqtt_port", "mosquitto")):
            if not servers.port_is_free(getattr(self.state, attr)):
                port = servers.free_port()
                logger.info("port %d for %s is taken; using %d", getattr(self.state, attr),
                            name, port)
                setattr(self.state, attr, port)
        self.postgres.port = self.state.pg_port
        self.mosquitto.port = self.state.mqtt_port
        self.postgres.init()
        self.postgres.start()
        self.state.pids["postgres"] = self.postgres.proc.pid
        with connect(self.database_url) as conn:
            applied = migrate(conn)
            if applied:
                logger.info("applied migrations: %s", ", ".join(applied))
            _ensure_admin(conn, self.state.admin_token)
        self.mosquitto.write_config()
        self.sync_broker()
        self.mosquitto.start()
        self.state.pids["mosquitto"] = self.mosquitto.proc.pid
        self.save()

    def sync_broker(self) -> None:
        write_broker_files(self.mosquitto.root, services=self.state.service_passwords,
                           database_url=self.database_url)
        self.mosquitto.reload()

    def stop(self) -> None:
        self.mosquitto.stop()
        self.postgres.stop()
        self.state.pids.clear()
        self.save()


def write_broker_files(root: Path, *, services: dict[str, str], database_url: str) -> None:
    """The broker's password file (service accounts and active devices) and ACL."""
    with connect(database_url) as conn:
        devices = registry.active_credentials(conn)
    owner = servers._service_ids()  # noqa: SLF001 - same package
    broker_auth.write_atomically(root / "passwd",
                                 broker_auth.password_text(services=services, devices=devices),
                                 owner=owner)
    broker_auth.write_atomically(root / "acl", broker_auth.acl_text(), owner=owner)


def reload_running_broker(home: Path, database_url: str) -> bool:
    """After a device change: rewrite the auth files of the embedded broker under
    ``home`` (if there is one) and tell it to re-read them. False if none."""
    state_file = home / "stack.json"
    if not state_file.exists():
        return False
    raw = orjson.loads(state_file.read_bytes())
    write_broker_files(home / "mosquitto", services=raw["service_passwords"],
                       database_url=database_url)
    pid = raw.get("pids", {}).get("mosquitto")
    if pid:
        try:
            os.kill(pid, signal.SIGHUP)
        except ProcessLookupError:
            return False
    return True


def _ensure_admin(conn, token: str) -> None:
    from agri.devices.credentials import token_digest

    conn.execute(
        """INSERT INTO users (name, role, token_hash) VALUES ('admin', 'admin', %s)
           ON CONFLICT (name) DO UPDATE SET token_hash = excluded.token_hash""",
        (token_digest(token),))
    conn.commit()
