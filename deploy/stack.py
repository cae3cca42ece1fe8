"""The embedded stack of `agri up`: a private PostgreSQL+TimescaleDB cluster
and a private Mosquitto under ``AGRI_HOME``, created on the first run and
reused after.

``AGRI_HOME`` itself belongs to whoever runs `agri up`; the servers' own
folders (``postgres/``, ``mosquitto/``) belong to the service user when run
as root, and nothing is written into those from outside them. Configuration
and logs are in ``AGRI_HOME/run/``. ``AGRI_HOME/stack.json`` (mode 0600)
records where the servers listen and the generated passwords, so that every
other command run against the same ``AGRI_HOME`` finds them.

The broker is set up as in production: the dynamic security plugin with an
admin account, from which the platform creates its service and device
accounts (:mod:`agri.devices.broker_accounts`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from agri.db import connect
from agri.deploy import db_roles, servers
from agri.deploy.migrate import migrate
from agri.devices import broker_accounts
from agri.devices.credentials import new_password
from agri.devices.dynsec import DynSec

logger = logging.getLogger(__name__)

ADMIN_ACCOUNT = "agri-admin"


@dataclass
class StackState:
    """What stack.json holds."""

    pg_port: int
    pg_password: str
    mqtt_port: int
    mqtt_admin_password: str
    db_passwords: dict[str, str]
    tls_port: int | None = None
    pids: dict[str, int] = field(default_factory=dict)

    @classmethod
    def new(cls) -> StackState:
        return cls(pg_port=servers.free_port(), pg_password=new_password(),
                   mqtt_port=servers.free_port(), mqtt_admin_password=new_password(),
                   db_passwords={s: new_password() for s in db_roles.SERVICE_ROLES})

    @classmethod
    def from_json(cls, raw: dict) -> StackState:
        # A service added since the stack was made gets its password now.
        passwords = {s: raw["db_passwords"].get(s) or new_password()
                     for s in db_roles.SERVICE_ROLES}
        return cls(raw["pg_port"], raw["pg_password"], raw["mqtt_port"],
                   raw["mqtt_admin_password"], passwords, raw.get("tls_port"),
                   raw.get("pids", {}))

    @property
    def database_url(self) -> str:
        return f"postgresql://agri:{self.pg_password}@127.0.0.1:{self.pg_port}/agri"

    def mqtt_url(self, account: str = "admin") -> str:
        admin = f"mqtt://{ADMIN_ACCOUNT}:{self.mqtt_admin_password}@127.0.0.1:{self.mqtt_port}"
        return admin if account == "admin" else broker_accounts.account_url(admin, account)

    def to_json(self) -> dict:
        owner = self.database_url
        return {
            "pg_port": self.pg_port, "pg_password": self.pg_password,
            "mqtt_port": self.mqtt_port, "mqtt_admin_password": self.mqtt_admin_password,
            "db_passwords": self.db_passwords, "tls_port": self.tls_port, "pids": self.pids,
            "database_url": owner,
            "database_urls": {"owner": owner, **{
                s: db_roles.login_url(owner, s, pw) for s, pw in self.db_passwords.items()}},
            "mqtt_host": "127.0.0.1",
            "mqtt_urls": {a: self.mqtt_url(a)
                          for a in ("admin", *broker_accounts.SERVICE_ACCOUNTS)},
        }


class EmbeddedStack:
    """Start, reuse and stop the private servers under ``home``."""

    def __init__(self, home: Path, *, tls: bool = False) -> None:
        self.home = home.resolve()
        self.state_file = self.home / "stack.json"
        self.run_dir = self.home / "run"
        self.new_admin_token: str | None = None  # set when this run created the admin
        self.new_admin_password: str | None = None
        self.state = self._load_or_create()
        if tls and self.state.tls_port is None:
            self.state.tls_port = servers.free_port()
        self.tls = tls
        self.postgres = servers.Postgres(self.home / "postgres", self.state.pg_port,
                                         self.state.pg_password, self.run_dir)
        self.mosquitto = servers.Mosquitto(self.home / "mosquitto", self.state.mqtt_port,
                                           self.run_dir)

    @property
    def database_url(self) -> str:
        return self.postgres.url

    def database_url_for(self, service: str) -> str:
        return self.state.to_json()["database_urls"][service]

    def mqtt_url(self, account: str = "admin") -> str:
        return self.state.mqtt_url(account)

    def _load_or_create(self) -> StackState:
        if self.state_file.exists():
            return StackState.from_json(orjson.loads(self.state_file.read_bytes()))
        self.home.mkdir(parents=True, exist_ok=True)
        return StackState.new()

    def save(self) -> None:
        servers.write_private(self.state_file,
                              orjson.dumps(self.state.to_json(), option=orjson.OPT_INDENT_2))

    def start(self) -> None:
        """Start PostgreSQL, migrate, set up the service logins, start
        Mosquitto, and bring its accounts in line with the registry."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.home.chmod(0o755)
        self.run_dir.mkdir(exist_ok=True)
        self.run_dir.chmod(0o755)
        for attr, name in (("pg_port", "postgres"), ("mqtt_port", "mosquitto"),
                           ("tls_port", "mqtt tls")):
            port = getattr(self.state, attr)
            if port is not None and not servers.port_is_free(port):
                new = servers.free_port()
                logger.info("port %d for %s is taken; using %d", port, name, new)
                setattr(self.state, attr, new)
        self.postgres.port = self.state.pg_port
        self.mosquitto.port = self.state.mqtt_port
        self.postgres.init()
        self.postgres.start()
        self.state.pids["postgres"] = self.postgres.proc.pid
        with connect(self.database_url) as conn:
            applied = migrate(conn)
            if applied:
                logger.info("applied migrations: %s", ", ".join(applied))
            db_roles.ensure_logins(conn, self.state.db_passwords)
            admin = _ensure_admin(conn)
            if admin is not None:
                self.new_admin_token, self.new_admin_password = admin.token, admin.password
        if self.tls:
            from agri.deploy.tls import make_local_ca

            self.mosquitto.tls = make_local_ca(self.home / "tls",
                                               key_owner=servers.service_ids())
            self.mosquitto.tls_port = self.state.tls_port
        self.mosquitto.prepare(admin_user=ADMIN_ACCOUNT,
                               admin_password=self.state.mqtt_admin_password)
        self.mosquitto.start()
        self.state.pids["mosquitto"] = self.mosquitto.proc.pid
        self.save()
        self.sync_broker()

    def sync_broker(self) -> broker_accounts.SyncReport:
        with connect(self.database_url) as conn, DynSec(self.mqtt_url()) as broker:
            return broker_accounts.sync(broker, conn,
                                        admin_password=self.state.mqtt_admin_password)

    def end_expired_credentials(self) -> list[str]:
        """End the old device credentials whose overlap is over (devices/rotation.py)."""
        from agri.devices import rotation

        with connect(self.database_url) as conn, DynSec(self.mqtt_url()) as broker:
            return rotation.end_expired(conn, broker)

    def restart(self, server: servers.Postgres | servers.Mosquitto) -> None:
        """Start a server that died again, and record its new pid."""
        server.start()
        self.state.pids["postgres" if server is self.postgres else "mosquitto"] = server.proc.pid
        self.save()

    def stop(self) -> None:
        self.mosquitto.stop()
        self.postgres.stop()
        self.state.pids.clear()
        self.save()


def _ensure_admin(conn):
    """Create the user ``admin`` on the first run; its token and initial
    password (returned) are shown once. Later runs leave it alone (``agri
    users token admin --rotate`` and ``agri users password admin`` replace
    lost ones)."""
    from agri.api.accounts import add_user

    if conn.execute("SELECT 1 FROM users WHERE name = 'admin'").fetchone():
        return None
    admin = add_user(conn, name="admin", role="admin", regions=[])
    conn.commit()
    return admin

