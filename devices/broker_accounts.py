"""MQTT accounts on the broker, made from the device registry.

The registry in the database is the one source of truth; the broker's
dynamic security plugin is told about every change (``agri devices add``,
``revoke``, ``rotate``) at once, and :func:`sync` reconciles the two after a
restore, a rebuilt broker or drift.

On the broker, each device is a client bound to its own id as MQTT client
id, with one role of its own: publish only under its id, subscribe only to
its command topic. The platform's own processes use service accounts whose
names start with :data:`RESERVED_PREFIX`, which no device id may take. Their
passwords are derived from the admin account's password, so giving the
platform the broker's admin account (``AGRI_MQTT_URL``) is enough: it
creates the rest itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

import psycopg

from agri import mqtt
from agri.devices import topics
from agri.devices.dynsec import DynSec, DynSecError, acl, role_acls

__all__ = ["DynSecError"]  # re-exported for callers that handle broker refusals

logger = logging.getLogger(__name__)

RESERVED_PREFIX = "agri-"
INGEST_ACCOUNT = "agri-ingest"
SIMULATOR_ACCOUNT = "agri-simulator"
DEVICE_ROLE_PREFIX = "agri-device-"
MANAGED = "managed by the agri platform"

# account -> the ACLs of its role. Ingest takes the shared subscriptions of
# the contract, publishes commands to devices and reads the broker's $SYS
# counters; the simulator also plays
# the LoRaWAN network servers (The Things Stack, ChirpStack) that bridge into
# the broker.
SERVICE_ACLS: Mapping[str, tuple[dict, ...]] = {
    INGEST_ACCOUNT: (
        *(acl("subscribeLiteral", topics.shared(f)) for f in topics.INGEST_FILTERS),
        *(acl("publishClientSend", f) for f in topics.INGEST_PUBLISH_FILTERS),
        acl("subscribePattern", "$SYS/#"),
    ),
    SIMULATOR_ACCOUNT: (
        *(acl("publishClientSend", f) for f in topics.SIMULATOR_PUBLISH_FILTERS),
        acl("subscribePattern", "$SYS/#"),
    ),
}
SERVICE_ACCOUNTS = {"ingest": INGEST_ACCOUNT, "simulator": SIMULATOR_ACCOUNT}


class BrokerAccountError(RuntimeError):
    """The broker's accounts cannot be changed as asked; the message says what to do."""


def is_reserved(name: str) -> bool:
    """Names of the platform's service accounts, never a device's."""
    return name.startswith(RESERVED_PREFIX)


def is_service(name: str | None) -> bool:
    """One of the platform's service accounts (not the admin, not a device)."""
    return name in SERVICE_ACCOUNTS.values()


def service_password(admin_password: str, account: str) -> str:
    """The password of a service account, derived from the admin's password."""
    digest = hmac.new(admin_password.encode(), f"agri service account {account}".encode(),
                      hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode()


def account_url(url: str, account: str) -> str:
    """The URL a platform process of kind ``account`` ('ingest', 'simulator')
    connects with, given the configured ``url``.

    A URL naming a service account is used as it is; any other account is
    taken for the broker's dynamic-security admin, and the service account's
    name and derived password are put in its place."""
    address = mqtt.parse_url(url)
    if address.username is None or is_service(address.username):
        return url
    name = SERVICE_ACCOUNTS[account]
    password = service_password(address.password or "", name)
    return _with_credentials(url, name, password)


def admin_url(url: str) -> str:
    """``url`` when it names an admin account; otherwise a clear error."""
    address = mqtt.parse_url(url)
    if address.username is None or is_service(address.username):
        raise BrokerAccountError(
            f"the MQTT account {address.username!r} cannot manage the broker: set "
            "AGRI_MQTT_URL to the broker's dynamic-security admin account "
            "(mosquitto_ctrl dynsec init)")
    return url


def _with_credentials(url: str, username: str, password: str) -> str:
    scheme, rest = url.split("://", 1)
    hostpart = rest.rsplit("@", 1)[-1]
    return f"{scheme}://{quote(username, safe='')}:{quote(password, safe='')}@{hostpart}"


def device_acls(device_id: str, profile: str) -> tuple[dict, ...]:
    """The role of one device: publish only its own topics (readings, events,
    answers to commands), subscribe only to its command topic."""
    publish = topics.device_publish_topics(device_id, profile)
    return (*(acl("publishClientSend", t) for t in publish),
            acl("subscribeLiteral", topics.commands_topic(device_id)))


def _device_role(device_id: str) -> str:
    return DEVICE_ROLE_PREFIX + device_id


def create_client_command(device_id: str, password: str, *,
                          username: str | None = None) -> dict:
    """A broker account of the device, bound to its id as client id, with its
    role; ``username`` is its id or, after a rotation with an overlap, its
    other username (devices/rotation.py)."""
    return {"command": "createClient", "username": username or device_id,
            "password": password, "clientid": device_id, "textdescription": MANAGED,
            "roles": [{"rolename": _device_role(device_id), "priority": 0}]}


def create_device_commands(device_id: str, profile: str, password: str, *,
                           username: str | None = None) -> list[dict]:
    return [
        {"command": "createRole", "rolename": _device_role(device_id),
         "textdescription": MANAGED, "acls": list(device_acls(device_id, profile))},
        create_client_command(device_id, password, username=username),
    ]


def delete_device_commands(device_id: str) -> list[dict]:
    """Deleting a client disconnects it at once if it is connected: both of
    the device's usernames go (devices/rotation.py), then its role."""
    from agri.devices.rotation import usernames

    return [*({"command": "deleteClient", "username": u} for u in usernames(device_id)),
            {"command": "deleteRole", "rolename": _device_role(device_id)}]


def add_device(broker: DynSec, *, device_id: str, profile: str, password: str,
               username: str | None = None) -> None:
    # A leftover device account of the same name (say, from a broker that
    # outlived the registry) must not keep its old password or rights; an
    # account that is not a device's (the admin's, a bridge's) is never touched.
    refuse_foreign(broker, [device_id])
    broker.run(*delete_device_commands(device_id), missing_ok=True)
    broker.run(*create_device_commands(device_id, profile, password, username=username))


def _is_managed_device(client: Mapping[str, object]) -> bool:
    return client.get("textdescription") == MANAGED or any(
        str(r.get("rolename", "")).startswith(DEVICE_ROLE_PREFIX)
        for r in client.get("roles", []))  # type: ignore[union-attr]


def refuse_foreign(broker: DynSec, names: list[str]) -> None:
    """Raise when one of ``names`` is a broker account that is not a device's."""
    existing = set(_list(broker, "listClients", "clients"))
    for name in names:
        if name not in existing:
            continue
        client = (broker.run({"command": "getClient", "username": name})[0] or {}).get(
            "client", {})
        if not _is_managed_device(client):
            raise BrokerAccountError(
                f"the broker has an account {name!r} that is not a device's (an admin or a "
                "bridge): choose another device id")


def remove_device(broker: DynSec, device_id: str) -> None:
    broker.run(*delete_device_commands(device_id), missing_ok=True)


def set_device_password(broker: DynSec, device_id: str, password: str, *,
                        username: str | None = None) -> None:
    """A new password; a session that logged in with the old one is ended, so
    the device must come back with the new one."""
    name = username or device_id
    broker.run({"command": "setClientPassword", "username": name, "password": password},
               {"command": "disableClient", "username": name},
               {"command": "enableClient", "username": name})


@dataclass
class SyncReport:
    """What :func:`sync` changed on the broker."""

    created_services: list[str] = field(default_factory=list)
    updated_services: list[str] = field(default_factory=list)
    updated_roles: list[str] = field(default_factory=list)
    removed_devices: list[str] = field(default_factory=list)
    missing_devices: list[str] = field(default_factory=list)
    fixed_devices: list[str] = field(default_factory=list)
    ended_credentials: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created_services or self.updated_services or self.updated_roles
                    or self.removed_devices or self.fixed_devices or self.ended_credentials)

    def lines(self) -> list[str]:
        out = [f"service account {n}: created" for n in self.created_services]
        out += [f"service account {n}: password or role restored"
                for n in dict.fromkeys(self.updated_services)]
        out += [f"role {n}: rights restored" for n in self.updated_roles]
        out += [f"device {n}: client id binding or roles restored" for n in self.fixed_devices]
        out += [f"device {n}: removed from the broker (revoked or not registered)"
                for n in self.removed_devices]
        out += [f"account {n}: an old credential whose overlap is over, ended"
                for n in self.ended_credentials]
        out += [f"device {n}: registered but has no broker account; only its password's hash "
                f"is kept: give it a new one (agri devices rotate {n}), or rebuild the broker "
                f"from agri broker export" for n in self.missing_devices]
        return out or ["broker and registry agree: nothing changed"]

    def to_json(self) -> dict:
        return {"created_services": self.created_services,
                "updated_services": list(dict.fromkeys(self.updated_services)),
                "updated_roles": self.updated_roles,
                "fixed_devices": self.fixed_devices, "removed_devices": self.removed_devices,
                "ended_credentials": self.ended_credentials,
                "missing_devices": self.missing_devices}


def ensure_services(broker: DynSec, admin_password: str, report: SyncReport) -> None:
    """The platform's service accounts and roles exist with the right rights
    and their derived passwords.

    Setting a password ends the client's session, so it is set only when the
    account is new or its password changed (the admin's did): a fingerprint
    of the password in the account's description tells."""
    clients = set(_list(broker, "listClients", "clients"))
    for account, acls in SERVICE_ACLS.items():
        _ensure_role(broker, account, acls, report)
        password = service_password(admin_password, account)
        description = f"{MANAGED}; key {_fingerprint(password)}"
        if account not in clients:
            broker.run({"command": "createClient", "username": account, "password": password,
                        "textdescription": description, "roles": [{"rolename": account}]})
            report.created_services.append(account)
            continue
        client = (broker.run({"command": "getClient", "username": account})[0] or {}).get(
            "client", {})
        if client.get("textdescription") != description:
            broker.run({"command": "setClientPassword", "username": account,
                        "password": password},
                       {"command": "modifyClient", "username": account,
                        "textdescription": description})
            report.updated_services.append(account)
        if account not in {r.get("rolename") for r in client.get("roles", [])}:
            broker.run({"command": "addClientRole", "username": account, "rolename": account})
            report.updated_services.append(account)


def _fingerprint(password: str) -> str:
    """A short digest of a random password, safe to show."""
    return hashlib.sha256(f"agri fingerprint {password}".encode()).hexdigest()[:16]


def _ensure_role(broker: DynSec, name: str, acls: tuple[dict, ...], report: SyncReport,
                 found: Mapping | None | bool = True) -> None:
    """Give role ``name`` exactly ``acls``, creating it when missing;
    ``found``: its ``getRole`` answer when already asked (None: not found)."""
    want = {(a["acltype"], a["topic"], a["allow"]) for a in acls}
    if found is True:
        found = broker.run({"command": "getRole", "rolename": name}, missing_ok=True)[0]
    if found is None:
        broker.run({"command": "createRole", "rolename": name, "textdescription": MANAGED,
                    "acls": list(acls)})
        return
    have = role_acls(found)
    if have == want:
        return
    for acltype, topic, _ in have - want:
        broker.run({"command": "removeRoleACL", "rolename": name, "acltype": acltype,
                    "topic": topic})
    for a in acls:
        if (a["acltype"], a["topic"], a["allow"]) not in have:
            broker.run({"command": "addRoleACL", "rolename": name, **a})
    report.updated_roles.append(name)


def _list(broker: DynSec, command: str, key: str) -> list[str]:
    data = broker.run({"command": command, "verbose": False})[0] or {}
    return list(data.get(key, []))


def sync(broker: DynSec, conn: psycopg.Connection, *, admin_password: str) -> SyncReport:
    """Make the broker's accounts what the registry says; report the changes.
    Old credentials whose overlap is over are ended first (devices/rotation.py)."""
    from agri.devices import bridges, registry, rotation

    report = SyncReport()
    ensure_services(broker, admin_password, report)
    report.ended_credentials = rotation.end_expired(conn, broker)
    # Devices behind a LoRaWAN bridge have no account of their own
    # (devices/bridges.py); bridges' accounts are reserved names, left alone.
    bridged = bridges.bridged_devices(conn)
    active = {d.id: d for d in registry.list_devices(conn)
              if d.revoked_at is None and d.id not in bridged}
    live = {u: d for u, d in rotation.live_usernames(conn).items() if d not in bridged}
    names_of: dict[str, list[str]] = {}
    for username, device_id in sorted(live.items()):
        names_of.setdefault(device_id, []).append(username)
    keep = set(live) | {d for d in active if d not in names_of}
    current = rotation.current_usernames(conn)
    clients = set(_list(broker, "listClients", "clients"))
    roles = set(_list(broker, "listRoles", "roles"))
    # Clients before roles: a role deleted while a client still has it leaves
    # Mosquitto 2.0 with a dangling reference.
    for name in sorted(clients):
        if name in keep or is_reserved(name):
            continue
        info = broker.run({"command": "getClient", "username": name})[0] or {}
        if _is_managed_device(info.get("client", {})):
            broker.run({"command": "deleteClient", "username": name}, missing_ok=True)
            report.removed_devices.append(name)
    for name in sorted(roles):
        if name.startswith(DEVICE_ROLE_PREFIX) and name[len(DEVICE_ROLE_PREFIX):] not in active:
            broker.run({"command": "deleteRole", "rolename": name}, missing_ok=True)
    checked = []
    for device_id, device in sorted(active.items()):
        if current.get(device_id, device_id) in clients:
            checked.append((device_id, device))
        else:
            report.missing_devices.append(device_id)
    # Every role and account read in a few control messages, not two round
    # trips a device: a fleet of thousands syncs in seconds.
    found_roles = broker.run(*({"command": "getRole", "rolename": _device_role(d)}
                               for d, _ in checked), missing_ok=True)
    accounts = [(d, n) for d, _ in checked for n in names_of.get(d) or [d] if n in clients]
    found_clients = dict(zip(accounts, broker.run(
        *({"command": "getClient", "username": n} for _, n in accounts), missing_ok=True),
        strict=True))
    for (device_id, device), role in zip(checked, found_roles, strict=True):
        _ensure_role(broker, _device_role(device_id), device_acls(device_id, device.profile),
                     report, role)
        fixed = [_fix_client(broker, device_id, n, found_clients[device_id, n])
                 for n in names_of.get(device_id) or [device_id] if (device_id, n) in found_clients]
        if any(fixed):
            report.fixed_devices.append(device_id)
    for line in report.lines():
        logger.info("broker sync: %s", line)
    return report


def _fix_client(broker: DynSec, device_id: str, username: str, info: Mapping | None) -> bool:
    """Bind a device's account to its client id and role alone, enabled; True
    when something had to change. ``info``: its ``getClient`` answer (None:
    the account went meanwhile, which the next sync reports)."""
    if info is None:
        return False
    client = info.get("client", {})
    role = _device_role(device_id)
    wrong_roles = [r["rolename"] for r in client.get("roles", []) if r["rolename"] != role]
    fixed = False
    if client.get("clientid") != device_id:
        broker.run({"command": "setClientId", "username": username, "clientid": device_id})
        fixed = True
    for other in wrong_roles:
        broker.run({"command": "removeClientRole", "username": username, "rolename": other})
        fixed = True
    if role not in {r["rolename"] for r in client.get("roles", [])}:
        broker.run({"command": "addClientRole", "username": username, "rolename": role})
        fixed = True
    if client.get("groups"):
        for group in client["groups"]:
            broker.run({"command": "removeGroupClient", "groupname": group["groupname"],
                        "username": username})
        fixed = True
    if client.get("disabled"):
        broker.run({"command": "enableClient", "username": username})
        fixed = True
    return fixed


ADMIN_ROLE_ACLS = (
    acl("publishClientSend", "$CONTROL/dynamic-security/#"),
    acl("publishClientReceive", "$CONTROL/dynamic-security/#"),
    acl("subscribePattern", "$CONTROL/dynamic-security/#"),
    acl("publishClientReceive", "$SYS/#"),
    acl("subscribePattern", "$SYS/#"),
)


def export_file(conn: psycopg.Connection, *, admin_user: str, admin_password: str) -> dict:
    """The dynamic security plugin's file for a broker built from nothing:
    the admin account, the service accounts, the active LoRaWAN bridges
    (devices/bridges.py) and every active device with the password hash the
    registry keeps (the plugin and the registry use the same
    PBKDF2-SHA512 scheme), so devices keep their passwords. Start the broker
    with this file in place of the one ``mosquitto_ctrl dynsec init`` makes."""
    from agri.devices import registry, rotation
    from agri.devices.credentials import hash_password, split_hash

    def client(username: str, stored: str, roles: list[str], **extra: object) -> dict:
        iterations, salt, digest = split_hash(stored)
        return {"username": username, "textdescription": MANAGED, "password": digest,
                "salt": salt, "iterations": iterations,
                "roles": [{"rolename": r} for r in roles], **extra}

    clients = [client(admin_user, hash_password(admin_password), ["admin"])]
    roles = [{"rolename": "admin", "acls": list(ADMIN_ROLE_ACLS)}]
    for account, acls in SERVICE_ACLS.items():
        password = service_password(admin_password, account)
        clients.append({**client(account, hash_password(password), [account]),
                        "textdescription": f"{MANAGED}; key {_fingerprint(password)}"})
        roles.append({"rolename": account, "textdescription": MANAGED, "acls": list(acls)})
    from agri.devices import bridges

    for bridge, stored in bridges.active_hashes(conn):
        clients.append(client(bridge.username, stored, [bridge.username],
                              clientid=bridge.username))
        roles.append({"rolename": bridge.username, "textdescription": MANAGED,
                      "acls": list(bridges.bridge_acls(bridge))})
    bridged = bridges.bridged_devices(conn)  # no account of their own
    live = {u: v for u, v in rotation.live_hashes(conn).items() if v[0] not in bridged}
    with_credential = {device_id for device_id, _ in live.values()}
    for username, (device_id, stored) in sorted(live.items()):
        try:
            clients.append(client(username, stored, [_device_role(device_id)],
                                  clientid=device_id))
        except ValueError:
            # Not a hash the broker can check: left out, and said (rotate it).
            logger.warning("device %s: its stored password is not a PBKDF2-SHA512 hash; "
                           "left out of the export (agri devices rotate %s)", device_id,
                           device_id)
            with_credential.discard(device_id)
    for device in registry.list_devices(conn):
        if device.revoked_at is not None or device.id not in with_credential:
            continue
        roles.append({"rolename": _device_role(device.id), "textdescription": MANAGED,
                      "acls": list(device_acls(device.id, device.profile))})
    return {"clients": clients, "groups": [], "roles": roles,
            "defaultACLAccess": {"publishClientSend": False, "publishClientReceive": True,
                                 "subscribe": False, "unsubscribe": True}}


def admin_password(url: str) -> str:
    return mqtt.parse_url(url).password or ""
