"""Adding, rotating and revoking devices: the registry and the broker change
together, or neither does.

Each change runs in one database transaction that commits only once the
broker has taken it, so the registry never says a device is active (or
revoked) while the broker thinks otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import psycopg

from agri.devices import broker_accounts, registry
from agri.devices.dynsec import DynSec, DynSecError

logger = logging.getLogger(__name__)


def add(conn: psycopg.Connection, admin_url: str, *, device_id: str, profile_name: str,
        field_id: str | None = None, owner: str | None = None,
        dev_eui: str | None = None, prototype: bool = False,
        organisation: str | None = None, gate_role: str | None = None,
        bridge: str | None = None) -> str:
    """Register a device and create its broker account; returns its password
    (shown once, only its hash is kept). ``prototype``, ``organisation``,
    ``gate_role``: see registry.add_device. ``bridge``: a LoRaWAN device
    behind that bridge (devices/bridges.py), which gets no broker account:
    the password returned is of no use to it."""
    admin_url = broker_accounts.admin_url(admin_url)
    with DynSec(admin_url) as broker:
        with conn.transaction():
            password = registry.add_device(conn, device_id=device_id, profile_name=profile_name,
                                           field_id=field_id, owner=owner, dev_eui=dev_eui,
                                           prototype=prototype, organisation=organisation,
                                           gate_role=gate_role, bridge=bridge)
            if bridge is not None:
                # It never connects itself: no account, and no leftover one.
                broker_accounts.refuse_foreign(broker, [device_id])
                broker_accounts.remove_device(broker, device_id)
                return password
            broker_accounts.add_device(broker, device_id=device_id, profile=profile_name,
                                       password=password)
        return password


def add_many(conn: psycopg.Connection, admin_url: str,
             devices: list[registry.NewDevice], *, bridge: str | None = None) -> int:
    """Register (id, profile, field, DevEUI, owner) devices and create their broker
    accounts, in one transaction and one broker connection; the passwords are
    not kept anywhere (for devices whose messages arrive through a service
    account, such as the simulator's fleet). Returns how many. ``bridge``:
    LoRaWAN devices behind that bridge (devices/bridges.py), registered
    without broker accounts."""
    if bridge is not None:
        with conn.transaction():
            return len(registry.add_devices(conn, devices, bridge=bridge))
    return len(import_devices(conn, admin_url, devices))


def import_devices(conn: psycopg.Connection, admin_url: str,
                   devices: list[registry.NewDevice],
                   bridges: Sequence[str | None] | None = None) -> list[tuple[str, str | None]]:
    """Register (id, profile, field, DevEUI, owner) devices and create their
    broker accounts, all or none: one transaction, which commits only once
    the broker took every account, and one broker connection. ``bridges``:
    the LoRaWAN bridge of each device (None: its own MQTT account), in the
    same order; a device behind one gets no account. Returns (device id,
    password) of each, in order, the password None for a bridged device
    (shown once, only the hashes are kept). Check the rows first
    (``devices/device_import.py``) to name each bad one; here a bad row only
    fails the whole."""
    if not devices:
        return []
    bridges = list(bridges) if bridges is not None else [None] * len(devices)
    own = [d for d, b in zip(devices, bridges, strict=True) if b is None]
    behind: dict[str, list[registry.NewDevice]] = {}
    for device, bridge in zip(devices, bridges, strict=True):
        if bridge is not None:
            behind.setdefault(bridge, []).append(device)
    admin_url = broker_accounts.admin_url(admin_url)
    with DynSec(admin_url) as broker, conn.transaction():
        ids = [d[0] for d in devices]
        broker_accounts.refuse_foreign(broker, ids)
        passwords = dict(zip((d[0] for d in own), registry.add_devices(conn, own),
                             strict=True))
        for bridge, group in behind.items():
            registry.add_devices(conn, group, bridge=bridge)
        leftovers: list[dict] = []
        creates: list[dict] = []
        for device_id in ids:
            leftovers += broker_accounts.delete_device_commands(device_id)
        for device_id, profile, *_ in own:
            creates += broker_accounts.create_device_commands(device_id, profile,
                                                              passwords[device_id])
        broker.run(*leftovers, missing_ok=True)
        try:
            broker.run(*creates)
        except DynSecError:
            # The registry rolls back: the accounts made before the refusal
            # must not outlive it (agri broker sync would remove them too).
            try:
                broker.run(*leftovers, missing_ok=True)
            except DynSecError as exc:
                logger.warning("could not remove the broker accounts of a failed import "
                               "(%s); agri broker sync removes them", exc)
            raise
    return [(device_id, passwords.get(device_id)) for device_id in ids]


def rotate(conn: psycopg.Connection, admin_url: str, device_id: str) -> str:
    """A new password for an active device; the old one stops working at once
    and a session logged in with it is ended (with an overlap:
    devices/rotation.py)."""
    from agri.devices import rotation

    return rotation.rotate(conn, admin_url, device_id).password


def revoke(conn: psycopg.Connection, admin_url: str, device_id: str) -> bool:
    """Revoke; a connected device is disconnected at once. False if there is
    no such device. Revoking twice is harmless."""
    admin_url = broker_accounts.admin_url(admin_url)
    with DynSec(admin_url) as broker, conn.transaction():
        if not registry.revoke_device(conn, device_id):
            return False
        broker_accounts.remove_device(broker, device_id)
        return True
