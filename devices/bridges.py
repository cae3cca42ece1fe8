"""LoRaWAN network servers that bridge one application into the broker.

A bridge is a The Things Stack (``tts``) or ChirpStack (``chirpstack``)
application whose network server connects to the broker as
``agri-bridge-NAME`` (the ``agri-`` prefix is kept from device ids, so no
device can take the name), with that name as its client id and a role of its
own: publish only the application's uplinks, subscribe only to its
downlinks (devices/topics.py ``tts_bridge_filters``,
``chirpstack_bridge_filters``). Its password is random, shown once and kept
hashed as device passwords are.

Devices behind a bridge (``devices.bridge``) have no broker account of their
own; ingest accepts their uplinks only through their bridge's application
(ingest/pipeline.py). The registry and the broker change together, or
neither does, as for devices (devices/provisioning.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.rows import class_row

from agri.devices import broker_accounts, topics
from agri.devices.credentials import hash_password, new_password
from agri.devices.dynsec import DynSec, acl

PREFIX = broker_accounts.RESERVED_PREFIX + "bridge-"
KINDS = ("tts", "chirpstack")
KIND_NAMES = {"tts": "The Things Stack", "chirpstack": "ChirpStack"}
NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
TTS_ID_RE = re.compile(r"[a-z0-9](?:-?[a-z0-9]){2,35}")  # application and tenant ids
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
SHOWN_MAX = 80  # characters of a refused value quoted back


class BridgeError(ValueError):
    """A bridge cannot be added or used as asked; the message says why."""


@dataclass(frozen=True, slots=True)
class Bridge:
    name: str
    kind: str
    application: str
    tenant: str | None
    created_at: datetime
    revoked_at: datetime | None

    @property
    def username(self) -> str:
        """Its MQTT username, which is also its client id."""
        return PREFIX + self.name

    @property
    def status(self) -> str:
        return "revoked" if self.revoked_at else "active"

    @property
    def topic_application(self) -> str:
        """The application as its topics name it (``app@tenant``, ``app``, the UUID)."""
        if self.kind == "tts":
            return topics.tts_application(self.application, self.tenant)
        return self.application

    @property
    def filters(self) -> tuple[str, str]:
        """(the uplinks it may publish, the downlinks it may subscribe to)."""
        if self.kind == "tts":
            return topics.tts_bridge_filters(self.application, self.tenant)
        return topics.chirpstack_bridge_filters(self.application)

    def to_json(self) -> dict:
        publish, subscribe = self.filters
        return {"name": self.name, "kind": self.kind, "application": self.application,
                "tenant": self.tenant, "username": self.username, "client_id": self.username,
                "publish": [publish], "subscribe": [subscribe],
                "created_at": self.created_at.isoformat(),
                "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
                "status": self.status}


COLUMNS = "name, kind, application, tenant, created_at, revoked_at"


def _shown(value: str) -> str:
    return repr(value[:SHOWN_MAX] + ("…" if len(value) > SHOWN_MAX else ""))


def check(*, name: str, kind: str, application: str,
          tenant: str | None) -> tuple[str, str | None]:
    """Raise BridgeError unless these may make a bridge; returns the
    application and tenant as stored (a ChirpStack UUID in lower case)."""
    if not NAME_RE.fullmatch(name):
        raise BridgeError(f"bridge name {_shown(name)} must match {NAME_RE.pattern} (lower-case "
                          "letters, digits and '-', up to 40)")
    if kind not in KINDS:
        raise BridgeError(f"bridge kind is one of {', '.join(KINDS)}, not {_shown(kind)}")
    if kind == "tts":
        if not TTS_ID_RE.fullmatch(application):
            raise BridgeError(f"The Things Stack application id {_shown(application)} must "
                              f"match {TTS_ID_RE.pattern} (3 to 36 lower-case letters, digits "
                              "and single '-')")
        if tenant is not None and not TTS_ID_RE.fullmatch(tenant):
            raise BridgeError(f"The Things Stack tenant id {_shown(tenant)} must match "
                              f"{TTS_ID_RE.pattern}")
        return application, tenant
    if tenant is not None:
        raise BridgeError("a ChirpStack bridge has no tenant (--tenant is for The Things Stack)")
    if not UUID_RE.fullmatch(application.lower()):
        raise BridgeError(f"ChirpStack application id {_shown(application)} must be the "
                          "application's UUID (8-4-4-4-12 hexadecimal digits)")
    return application.lower(), None


def bridge_acls(bridge: Bridge) -> tuple[dict, ...]:
    """Its role: publish its application's uplinks, subscribe to its downlinks;
    everything else is refused (the broker's default)."""
    publish, subscribe = bridge.filters
    return (acl("publishClientSend", publish), acl("subscribePattern", subscribe))


def create_commands(bridge: Bridge, password: str) -> list[dict]:
    return [
        {"command": "createRole", "rolename": bridge.username,
         "textdescription": broker_accounts.MANAGED, "acls": list(bridge_acls(bridge))},
        {"command": "createClient", "username": bridge.username, "password": password,
         "clientid": bridge.username, "textdescription": broker_accounts.MANAGED,
         "roles": [{"rolename": bridge.username, "priority": 0}]},
    ]


def delete_commands(name: str) -> list[dict]:
    """Deleting the client disconnects it at once if it is connected; then its role."""
    return [{"command": "deleteClient", "username": PREFIX + name},
            {"command": "deleteRole", "rolename": PREFIX + name}]


def add(conn: psycopg.Connection, admin_url: str, *, name: str, kind: str, application: str,
        tenant: str | None = None) -> tuple[Bridge, str]:
    """Register a bridge and create its broker account; returns it and its
    password (shown once, only its hash is kept)."""
    application, tenant = check(name=name, kind=kind, application=application, tenant=tenant)
    admin_url = broker_accounts.admin_url(admin_url)
    password = new_password()
    with DynSec(admin_url) as broker, conn.transaction():
        try:
            with conn.transaction(), conn.cursor(row_factory=class_row(Bridge)) as cur:
                bridge = cur.execute(
                    "INSERT INTO lorawan_bridges (name, kind, application, tenant, "
                    f"password_hash) VALUES (%s, %s, %s, %s, %s) RETURNING {COLUMNS}",
                    (name, kind, application, tenant, hash_password(password))).fetchone()
        except psycopg.errors.UniqueViolation as exc:
            if "one_per_application" in (exc.diag.constraint_name or ""):
                raise BridgeError(f"{KIND_NAMES[kind]} application {application!r}"
                                  f"{f' of tenant {tenant!r}' if tenant else ''} has an active "
                                  "bridge already (agri bridges list)") from None
            raise BridgeError(f"bridge {name!r} exists already (a name is never given twice, "
                              "revoked ones included)") from None
        # A leftover account of the same name (a broker that outlived the
        # registry) must not keep its old password or rights.
        broker.run(*delete_commands(name), missing_ok=True)
        broker.run(*create_commands(bridge, password))
    return bridge, password


def get_bridge(conn: psycopg.Connection, name: str) -> Bridge | None:
    with conn.cursor(row_factory=class_row(Bridge)) as cur:
        return cur.execute(f"SELECT {COLUMNS} FROM lorawan_bridges WHERE name = %s",
                           (name,)).fetchone()


def list_bridges(conn: psycopg.Connection) -> list[Bridge]:
    with conn.cursor(row_factory=class_row(Bridge)) as cur:
        return cur.execute(f"SELECT {COLUMNS} FROM lorawan_bridges ORDER BY name").fetchall()


def device_counts(conn: psycopg.Connection) -> dict[str, int]:
    """Bridge name -> how many active devices are behind it."""
    return dict(conn.execute("SELECT bridge, count(*) FROM devices WHERE bridge IS NOT NULL "
                             "AND revoked_at IS NULL GROUP BY bridge").fetchall())


def revoke(conn: psycopg.Connection, admin_url: str, name: str) -> bool:
    """Revoke; a connected bridge is disconnected at once and refused from then
    on. False if there is no such bridge. Revoking twice is harmless. Its
    devices stay behind it: their uplinks have no way in until they are
    attached to another bridge."""
    admin_url = broker_accounts.admin_url(admin_url)
    with DynSec(admin_url) as broker, conn.transaction():
        cur = conn.execute("UPDATE lorawan_bridges SET revoked_at = coalesce(revoked_at, now()) "
                           "WHERE name = %s", (name,))
        if cur.rowcount != 1:
            return False
        broker.run(*delete_commands(name), missing_ok=True)
        return True


def check_attachable(conn: psycopg.Connection, name: str, *, dev_eui: str | None) -> Bridge:
    """The active bridge ``name`` a device with ``dev_eui`` may be put behind;
    BridgeError otherwise (a ChirpStack bridge knows its devices by DevEUI)."""
    bridge = get_bridge(conn, name)
    if bridge is None:
        raise BridgeError(f"no bridge {_shown(name)}: add it with `agri bridges add`")
    if bridge.revoked_at is not None:
        raise BridgeError(f"bridge {name!r} is revoked")
    if bridge.kind == "chirpstack" and not dev_eui:
        raise BridgeError(f"bridge {name!r} is ChirpStack, which names devices by DevEUI: "
                          "register the device with its DevEUI (--dev-eui)")
    return bridge


def attach(conn: psycopg.Connection, admin_url: str, *, name: str, device_id: str) -> Bridge:
    """Put a registered, active device behind bridge ``name``: its uplinks are
    accepted only through that bridge's application, and its own broker
    account (it never connects itself) is removed, disconnecting it."""
    admin_url = broker_accounts.admin_url(admin_url)
    with DynSec(admin_url) as broker, conn.transaction():
        row = conn.execute("SELECT dev_eui, revoked_at FROM devices WHERE id = %s FOR UPDATE",
                           (device_id,)).fetchone()
        if row is None:
            raise BridgeError(f"no device {_shown(device_id)}: register it with "
                              "`agri devices add`")
        if row[1] is not None:
            raise BridgeError(f"device {device_id!r} is revoked")
        bridge = check_attachable(conn, name, dev_eui=row[0])
        conn.execute("UPDATE devices SET bridge = %s WHERE id = %s", (name, device_id))
        broker_accounts.remove_device(broker, device_id)
    return bridge


def bridged_devices(conn: psycopg.Connection) -> set[str]:
    """Ids of the devices behind a bridge (no broker account of their own)."""
    return {r[0] for r in conn.execute("SELECT id FROM devices WHERE bridge IS NOT NULL")}



def active_hashes(conn: psycopg.Connection) -> list[tuple[Bridge, str]]:
    """The active bridges with their password hashes (for ``agri broker export``)."""
    rows = conn.execute(f"SELECT {COLUMNS}, password_hash FROM lorawan_bridges "
                        "WHERE revoked_at IS NULL ORDER BY name").fetchall()
    return [(Bridge(*r[:-1]), r[-1]) for r in rows]
