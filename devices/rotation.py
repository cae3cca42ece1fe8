"""Rotating a device's credential with an overlap.

Mosquitto's dynamic security keeps one password per broker account, so a
device cannot have two passwords at once under one username. A rotation
with an overlap therefore gives the new password to the device's other
username (``<id>.b`` when it uses ``<id>``, and back): the two accounts
share the device's role and are both bound to its id as MQTT client id, so
either logs in as the same device, with the same rights, but never both at
once. The old credential keeps working until ``previous_until``; then
:func:`end_expired` (run by ``agri broker sync`` and, under ``agri up``, every
minute) deletes its account, which disconnects a session still using it.

A rotation without an overlap replaces the password of the username in use
and ends any earlier credential at once, as before.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

from agri.devices import broker_accounts, registry
from agri.devices.credentials import hash_password, new_password
from agri.devices.dynsec import DynSec

logger = logging.getLogger(__name__)

ALIAS_SUFFIX = ".b"  # never part of a device id (devices/topics.py DEVICE_ID_RE)
MAX_OVERLAP = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class Credential:
    """What a device connects with after a rotation (shown once)."""

    username: str
    password: str
    old_username: str
    old_until: datetime | None  # None: the old credential stopped at once

    def to_json(self) -> dict:
        return {"username": self.username, "password": self.password,
                "old_username": self.old_username,
                "old_until": self.old_until.isoformat() if self.old_until else None}


def usernames(device_id: str) -> tuple[str, str]:
    """The two broker usernames a device may have."""
    return device_id, device_id + ALIAS_SUFFIX


def other(device_id: str, username: str) -> str:
    a, b = usernames(device_id)
    return b if username == a else a


def current_usernames(conn: psycopg.Connection) -> dict[str, str]:
    """device id -> the username of its current credential, of active devices."""
    return dict(conn.execute("SELECT id, coalesce(mqtt_username, id) FROM devices "
                             "WHERE revoked_at IS NULL").fetchall())


_LIVE = """SELECT id, coalesce(mqtt_username, id), previous_username, previous_until > now()
FROM devices WHERE revoked_at IS NULL"""


def live_usernames(conn: psycopg.Connection) -> dict[str, str]:
    """username -> device id of every credential of an active device the broker
    should let in (the old one only while its overlap lasts)."""
    out: dict[str, str] = {}
    for device_id, username, previous, lasting in conn.execute(_LIVE).fetchall():
        out[username] = device_id
        if previous is not None and lasting:
            out[previous] = device_id
    return out


def live_hashes(conn: psycopg.Connection) -> dict[str, tuple[str, str]]:
    """username -> (device id, password hash) of the same credentials, for a
    broker rebuilt from the registry (the owner's login alone reads hashes)."""
    rows = conn.execute(
        "SELECT id, coalesce(mqtt_username, id), password_hash, previous_username, "
        "previous_password_hash, previous_until > now() FROM devices "
        "WHERE revoked_at IS NULL AND password_hash IS NOT NULL").fetchall()
    out: dict[str, tuple[str, str]] = {}
    for device_id, username, stored, previous, previous_hash, lasting in rows:
        out[username] = (device_id, stored)
        if previous is not None and lasting:
            out[previous] = (device_id, previous_hash)
    return out


def rotate(conn: psycopg.Connection, admin_url: str, device_id: str, *,
           overlap: timedelta = timedelta(0)) -> Credential:
    """A new credential for an active device. With ``overlap`` the old one
    keeps working that long; without, it stops at once and a session logged
    in with it is ended."""
    if not timedelta(0) <= overlap <= MAX_OVERLAP:
        raise registry.RegistryError(
            f"an overlap is 0 to {MAX_OVERLAP.days} days, not {overlap}")
    admin_url = broker_accounts.admin_url(admin_url)
    with DynSec(admin_url) as broker, conn.transaction():
        row = conn.execute(
            "SELECT profile, coalesce(mqtt_username, id), password_hash, previous_username, "
            "revoked_at, bridge FROM devices WHERE id = %s FOR UPDATE", (device_id,)).fetchone()
        if row is None:
            raise registry.RegistryError(f"no device {device_id!r}")
        profile, username, stored, previous, revoked_at, bridge = row
        if revoked_at is not None:
            raise registry.RegistryError(f"device {device_id!r} is revoked; register a new one")
        if bridge is not None:
            raise registry.RegistryError(
                f"device {device_id!r} talks through the LoRaWAN bridge {bridge!r} and has no "
                f"broker account of its own: rotate the network server's keys, or give the "
                f"bridge a new account (agri bridges revoke, then add)")
        password = new_password()
        if not overlap:
            conn.execute("UPDATE devices SET password_hash = %s, previous_username = NULL, "
                         "previous_password_hash = NULL, previous_until = NULL WHERE id = %s",
                         (hash_password(password), device_id))
            if previous is not None:
                broker.run({"command": "deleteClient", "username": previous}, missing_ok=True)
            try:
                broker_accounts.set_device_password(broker, device_id, password,
                                                    username=username)
            except broker_accounts.DynSecError:
                # Not on the broker (a rebuilt broker, say): create its account.
                broker_accounts.add_device(broker, device_id=device_id, profile=profile,
                                           password=password, username=username)
            return Credential(username, password, username, None)
        new = other(device_id, username)
        until = conn.execute(
            "UPDATE devices SET mqtt_username = %s, password_hash = %s, previous_username = %s, "
            "previous_password_hash = %s, previous_until = now() + %s WHERE id = %s "
            "RETURNING previous_until",
            (new, hash_password(password), username, stored, overlap, device_id)).fetchone()[0]
        # The other username's account, if an earlier overlap left it, goes first.
        broker.run({"command": "deleteClient", "username": new}, missing_ok=True)
        broker.run(broker_accounts.create_client_command(device_id, password, username=new))
        logger.info("device %s: new credential %s; %s works until %s", device_id, new,
                    username, until.isoformat())
        return Credential(new, password, username, until)


def end_expired(conn: psycopg.Connection, broker: DynSec) -> list[str]:
    """End the old credentials whose overlap is over: delete their broker
    accounts (disconnecting them) and forget them. Returns the usernames.
    A login that may not change the registry (ingest's) ends none."""
    ended = []
    try:
        with conn.transaction():
            rows = conn.execute(
                "SELECT id, previous_username FROM devices WHERE previous_until <= now() "
                "OR (previous_until IS NOT NULL AND revoked_at IS NOT NULL) "
                "FOR UPDATE").fetchall()
            for device_id, username in rows:
                broker.run({"command": "deleteClient", "username": username}, missing_ok=True)
                conn.execute("UPDATE devices SET previous_username = NULL, "
                             "previous_password_hash = NULL, previous_until = NULL "
                             "WHERE id = %s", (device_id,))
                logger.info("device %s: old credential %s ended (its overlap is over)",
                            device_id, username)
                ended.append(username)
    except psycopg.errors.InsufficientPrivilege:
        logger.warning("old device credentials are ended with the registry owner's login: "
                       "run agri broker sync")
        return []
    return ended
