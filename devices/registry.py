"""The device registry: SQL for devices, one place."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.rows import class_row

from agri.devices.broker_accounts import RESERVED_PREFIX, is_reserved
from agri.devices.credentials import hash_password, new_password
from agri.devices.profiles import profile
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

    def to_json(self) -> dict:
        return {"device_id": self.id, "profile": self.profile, "field": self.field_id,
                "owner": self.owner, "dev_eui": self.dev_eui,
                "created_at": self.created_at.isoformat(),
                "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None}


COLUMNS = "id, profile, field_id, owner, dev_eui, created_at, revoked_at"


def add_device(conn: psycopg.Connection, *, device_id: str, profile_name: str,
               field_id: str | None = None, owner: str | None = None,
               dev_eui: str | None = None) -> str:
    """Register a device; returns its password (shown once, only its hash is kept)."""
    if not DEVICE_ID_RE.fullmatch(device_id):
        raise RegistryError(f"device id {device_id!r} must match {DEVICE_ID_RE.pattern}")
    if is_reserved(device_id):
        raise RegistryError(f"device ids starting with {RESERVED_PREFIX!r} are kept for the "
                            "platform's own accounts; choose another id")
    profile(profile_name)  # raises UnknownProfile with the choices
    if dev_eui is not None:
        dev_eui = dev_eui.lower()
    password = new_password()
    try:
        with conn.transaction():
            if field_id is not None and not conn.execute(
                    "SELECT 1 FROM fields WHERE id = %s", (field_id,)).fetchone():
                raise RegistryError(f"no field {field_id!r}: import it with `agri fields import`")
            conn.execute(
                "INSERT INTO devices (id, profile, field_id, owner, dev_eui, password_hash) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                (device_id, profile_name, field_id, owner, dev_eui, hash_password(password)))
    except psycopg.errors.UniqueViolation:
        raise RegistryError(f"device {device_id!r} (or its DevEUI) is already registered") \
            from None
    except psycopg.errors.CheckViolation:
        raise RegistryError("DevEUI must be 16 hexadecimal digits") from None
    return password


def get_device(conn: psycopg.Connection, device_id: str) -> Device | None:
    with conn.cursor(row_factory=class_row(Device)) as cur:
        return cur.execute(f"SELECT {COLUMNS} FROM devices WHERE id = %s",
                           (device_id,)).fetchone()


def list_devices(conn: psycopg.Connection, *, field_id: str | None = None) -> list[Device]:
    with conn.cursor(row_factory=class_row(Device)) as cur:
        return cur.execute(
            f"SELECT {COLUMNS} FROM devices WHERE %(f)s::text IS NULL OR field_id = %(f)s "
            "ORDER BY id", {"f": field_id}).fetchall()


def active_credentials(conn: psycopg.Connection) -> list[tuple[str, str]]:
    """(id, password hash) of every device the broker should let in."""
    return conn.execute("SELECT id, password_hash FROM devices WHERE revoked_at IS NULL "
                        "ORDER BY id").fetchall()


def new_device_password(conn: psycopg.Connection, device_id: str) -> str:
    """Replace an active device's password; returns the new one (shown once)."""
    password = new_password()
    cur = conn.execute("UPDATE devices SET password_hash = %s WHERE id = %s "
                       "AND revoked_at IS NULL", (hash_password(password), device_id))
    if cur.rowcount != 1:
        raise RegistryError(f"no active device {device_id!r}")
    return password


def revoke_device(conn: psycopg.Connection, device_id: str) -> bool:
    """Revoke; False if there is no such device. Revoking twice is harmless."""
    with conn.transaction():
        cur = conn.execute(
            "UPDATE devices SET revoked_at = coalesce(revoked_at, now()) WHERE id = %s",
            (device_id,))
    return cur.rowcount == 1
