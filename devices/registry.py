"""The device registry: SQL for devices, one place."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.rows import class_row

from agri.devices.broker_accounts import RESERVED_PREFIX, is_reserved
from agri.devices.credentials import hash_password, new_password
from agri.devices.profiles import PROFILES, profile
from agri.devices.topics import DEVICE_ID_RE


class RegistryError(ValueError):
    """A device cannot be registered or changed as asked; the message says why."""


@dataclass(frozen=True, slots=True)
class Device:
    id: str
    profile: str
    field_id: str | None
    owner: str | None
    dev_eui: str | None
    created_at: datetime
    revoked_at: datetime | None

    @property
    def status(self) -> str:
        return "revoked" if self.revoked_at else "active"

    def to_json(self, *, last_seen: datetime | None = None) -> dict:
        """``last_seen``: the device's latest reading (see :func:`last_seen`)."""
        return {"device_id": self.id, "profile": self.profile, "field": self.field_id,
                "owner": self.owner, "dev_eui": self.dev_eui,
                "created_at": self.created_at.isoformat(),
                "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
                "status": self.status,
                "last_seen": last_seen.isoformat() if last_seen else None}


COLUMNS = "id, profile, field_id, owner, dev_eui, created_at, revoked_at"

ORGANISATION_MAX = 200  # characters of a prototype's organisation (018_prototypes.sql)
GATE_ROLES = ("supply", "drain")  # a water gate's place on its field (020_water_control.sql)

# (id, profile, field, DevEUI, owner) of a device to register.
NewDevice = tuple[str, str, str | None, str | None, str | None]


def check_id(device_id: str) -> None:
    """Raise RegistryError unless ``device_id`` may name a new device."""
    if not DEVICE_ID_RE.fullmatch(device_id):
        raise RegistryError(f"device id {device_id!r} must match {DEVICE_ID_RE.pattern}")
    if is_reserved(device_id):
        raise RegistryError(f"device ids starting with {RESERVED_PREFIX!r} are kept for the "
                            "platform's own accounts; choose another id")


def add_device(conn: psycopg.Connection, *, device_id: str, profile_name: str,
               field_id: str | None = None, owner: str | None = None,
               dev_eui: str | None = None, prototype: bool = False,
               organisation: str | None = None, gate_role: str | None = None,
               bridge: str | None = None) -> str:
    """Register a device with its profile's current version; returns its
    password (shown once, only its hash is kept). ``prototype``: a device
    under test in the sandbox, built by ``organisation`` (docs/sandbox.md).
    ``gate_role``: a water gate's place on its field, supply or drain
    (docs/water-control.md). ``bridge``: the LoRaWAN bridge whose
    application its uplinks come through (devices/bridges.py)."""
    check_id(device_id)
    if gate_role is not None and gate_role not in GATE_ROLES:
        raise RegistryError(f"gate role is one of {', '.join(GATE_ROLES)}, not {gate_role!r}")
    if organisation is not None and not 1 <= len(organisation.strip()) <= ORGANISATION_MAX:
        raise RegistryError(f"organisation must be 1 to {ORGANISATION_MAX} characters")
    version = profile(profile_name).version  # raises UnknownProfile with the choices
    if dev_eui is not None:
        dev_eui = dev_eui.lower()
    password = new_password()
    try:
        with conn.transaction():
            if field_id is not None and not conn.execute(
                    "SELECT 1 FROM fields WHERE id = %s", (field_id,)).fetchone():
                raise RegistryError(f"no field {field_id!r}: import it with `agri fields import`")
            conn.execute(
                "INSERT INTO devices (id, profile, profile_version, field_id, owner, dev_eui, "
                "password_hash, prototype, organisation, gate_role) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (device_id, profile_name, version, field_id, owner, dev_eui,
                 hash_password(password), prototype,
                 organisation.strip() if organisation else None, gate_role))
            if bridge is not None:
                _set_bridge(conn, [device_id], bridge, dev_euis=[dev_eui])
    except psycopg.errors.UniqueViolation:
        raise RegistryError(f"device {device_id!r} (or its DevEUI) is already registered") \
            from None
    except psycopg.errors.CheckViolation:
        raise RegistryError("DevEUI must be 16 hexadecimal digits") from None
    return password


def add_devices(conn: psycopg.Connection, devices: list[NewDevice], *,
                bridge: str | None = None) -> list[str]:
    """Register many devices in the caller's transaction (one pipelined round
    of inserts); returns their passwords in order (shown once, only their
    hashes are kept). Rows are expected checked (``devices/device_import.py``);
    a device or DevEUI registered meanwhile, or a field or owner gone
    meanwhile, is a RegistryError and registers none."""
    rows = []
    passwords = []
    for device_id, profile_name, field_id, dev_eui, owner in devices:
        check_id(device_id)
        version = profile(profile_name).version
        password = new_password()
        passwords.append(password)
        rows.append((device_id, profile_name, version, field_id, owner,
                     dev_eui.lower() if dev_eui else None, hash_password(password)))
    try:
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO devices (id, profile, profile_version, field_id, owner, dev_eui, "
                "password_hash) VALUES (%s, %s, %s, %s, %s, %s, %s)", rows)
            if bridge is not None:
                _set_bridge(conn, [d[0] for d in devices], bridge,
                            dev_euis=[d[3] for d in devices])
    except psycopg.errors.UniqueViolation as exc:
        raise RegistryError(f"a device id or DevEUI was registered meanwhile "
                            f"({exc.diag.message_detail}); nothing was registered") from None
    except psycopg.errors.ForeignKeyViolation as exc:
        raise RegistryError(f"a field or owner is not known ({exc.diag.message_detail}); "
                            "nothing was registered") from None
    except psycopg.errors.CheckViolation:
        raise RegistryError("DevEUI must be 16 hexadecimal digits") from None
    return passwords


def _set_bridge(conn: psycopg.Connection, ids: list[str], bridge: str, *,
                dev_euis: list[str | None]) -> None:
    """Put the devices just inserted behind ``bridge`` (devices/bridges.py)."""
    from agri.devices import bridges

    try:  # a ChirpStack bridge takes only devices with a DevEUI
        bridges.check_attachable(conn, bridge, dev_eui=dev_euis[0] if all(dev_euis) else None)
    except bridges.BridgeError as exc:
        raise RegistryError(str(exc)) from None
    conn.execute("UPDATE devices SET bridge = %s WHERE id = ANY(%s)", (bridge, ids))


def may_register(conn: psycopg.Connection) -> bool:
    """Whether this connection's login may register devices (the API's own
    login reads the registry only unless it was granted more)."""
    return bool(conn.execute(
        "SELECT bool_and(has_column_privilege('devices', c, 'INSERT')) FROM unnest("
        "ARRAY['id', 'profile', 'profile_version', 'field_id', 'owner', 'dev_eui', "
        "'password_hash']) AS c"
    ).fetchone()[0])


def registered(conn: psycopg.Connection, ids: Iterable[str],
               dev_euis: Iterable[str]) -> tuple[set[str], set[str]]:
    """Which of ``ids`` and of (lower-case) ``dev_euis`` devices already use,
    revoked ones included (an id is never given twice)."""
    taken_ids = {r[0] for r in conn.execute(
        "SELECT id FROM devices WHERE id = ANY(%s)", (list(ids),))}
    taken_euis = {r[0] for r in conn.execute(
        "SELECT dev_eui FROM devices WHERE dev_eui = ANY(%s)", (list(dev_euis),))}
    return taken_ids, taken_euis


def known_fields_and_users(conn: psycopg.Connection, field_ids: Iterable[str],
                           users: Iterable[str]) -> tuple[set[str], set[str]]:
    """Which of ``field_ids`` are fields and which of ``users`` are users."""
    fields = {r[0] for r in conn.execute(
        "SELECT id FROM fields WHERE id = ANY(%s)", (list(field_ids),))}
    names = {r[0] for r in conn.execute(
        "SELECT name FROM users WHERE name = ANY(%s)", (list(users),))}
    return fields, names


_LAST_SEEN = """SELECT k.device_id, max(r.time)
FROM unnest(%s::text[], %s::text[]) AS k(device_id, metric)
CROSS JOIN LATERAL (
    SELECT time FROM readings
    WHERE device_id = k.device_id AND metric = k.metric
      AND time <= now() + make_interval(secs => %s)
    ORDER BY time DESC LIMIT 1) r
GROUP BY k.device_id"""


def last_seen(conn: psycopg.Connection, devices: Iterable[Device], *,
              max_future_s: float) -> dict[str, datetime]:
    """The time of each device's latest reading, for those with one (as the
    API's device list has it): one index probe per metric of its profile;
    readings further ahead than ingest accepts now do not count yet."""
    pairs = [(d.id, m) for d in devices for m in PROFILES[d.profile].metrics]
    if not pairs:
        return {}
    return dict(conn.execute(_LAST_SEEN, ([d for d, _ in pairs], [m for _, m in pairs],
                                          max_future_s)).fetchall())


def get_device(conn: psycopg.Connection, device_id: str) -> Device | None:
    with conn.cursor(row_factory=class_row(Device)) as cur:
        return cur.execute(f"SELECT {COLUMNS} FROM devices WHERE id = %s",
                           (device_id,)).fetchone()


def list_devices(conn: psycopg.Connection, *, field_id: str | None = None) -> list[Device]:
    with conn.cursor(row_factory=class_row(Device)) as cur:
        return cur.execute(
            f"SELECT {COLUMNS} FROM devices WHERE %(f)s::text IS NULL OR field_id = %(f)s "
            "ORDER BY id", {"f": field_id}).fetchall()


def revoke_device(conn: psycopg.Connection, device_id: str) -> bool:
    """Revoke; False if there is no such device. Revoking twice is harmless."""
    with conn.transaction():
        cur = conn.execute(
            "UPDATE devices SET revoked_at = coalesce(revoked_at, now()) WHERE id = %s",
            (device_id,))
    return cur.rowcount == 1
