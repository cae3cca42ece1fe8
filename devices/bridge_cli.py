"""``agri bridges``: broker accounts of LoRaWAN network servers (The Things
Stack, ChirpStack), each limited to its own application, and the devices
behind them (devices/bridges.py, docs/operations.md)."""

from __future__ import annotations

import sys

import orjson

from agri.devices import bridges


def register(subparsers) -> None:
    p = subparsers.add_parser("bridges", help="LoRaWAN network servers: broker accounts "
                              "limited to their own application")
    sub = p.add_subparsers(dest="action", required=True)
    a = sub.add_parser("add", help="add a bridge and print its MQTT password once")
    a.add_argument("name", help="lower-case letters, digits and '-' (its MQTT username is "
                   f"{bridges.PREFIX}NAME)")
    a.add_argument("--kind", required=True, choices=bridges.KINDS)
    a.add_argument("--application", required=True,
                   help="The Things Stack application id, or the ChirpStack application UUID")
    a.add_argument("--tenant", help="The Things Stack tenant (the topics' APP@TENANT), e.g. ttn")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_add)
    a = sub.add_parser("list", help="the bridges, their applications and devices")
    a.add_argument("--json", action="store_true", help="one JSON list")
    a.set_defaults(func=cmd_list)
    a = sub.add_parser("revoke", help="revoke a bridge: disconnected, and refused by the "
                       "broker from now on")
    a.add_argument("name")
    a.set_defaults(func=cmd_revoke)
    a = sub.add_parser("attach", help="put a registered device behind a bridge: its uplinks "
                       "are accepted only through the bridge's application, and its own "
                       "broker account is removed")
    a.add_argument("name", help="the bridge")
    a.add_argument("device_id")
    a.set_defaults(func=cmd_attach)


def _db(settings):
    from agri.db import connect

    return connect(settings.db_url())


def _print_json(obj: object) -> None:
    sys.stdout.write(orjson.dumps(obj).decode() + "\n")


def cmd_add(args, settings) -> int:
    with _db(settings) as conn:
        bridge, password = bridges.add(conn, settings.broker_url("admin"), name=args.name,
                                       kind=args.kind, application=args.application,
                                       tenant=args.tenant)
    if args.json:
        _print_json({**bridge.to_json(), "password": password})
        return 0
    publish, subscribe = bridge.filters
    print(f"bridge {bridge.name} added ({bridges.KIND_NAMES[bridge.kind]} application "
          f"{bridge.topic_application})")
    print(f"MQTT username and client id: {bridge.username}")
    print(f"MQTT password: {password}   (shown once: store it in the network server now)")
    print(f"may publish uplinks to {publish}")
    print(f"may subscribe to downlinks on {subscribe}")
    print(f"put devices behind it with: agri bridges attach {bridge.name} DEVICE_ID")
    return 0


def cmd_list(args, settings) -> int:
    with _db(settings) as conn:
        found = bridges.list_bridges(conn)
        counts = bridges.device_counts(conn)
    if args.json:
        _print_json([{**b.to_json(), "devices": counts.get(b.name, 0)} for b in found])
        return 0
    for b in found:
        print(f"{b.name:24} {b.kind:10} {b.topic_application:40} {b.status:8} "
              f"{counts.get(b.name, 0)} devices")
    return 0


def cmd_revoke(args, settings) -> int:
    with _db(settings) as conn:
        if not bridges.revoke(conn, settings.broker_url("admin"), args.name):
            print(f"no bridge {args.name!r}", file=sys.stderr)
            return 1
    print(f"bridge {args.name} revoked: disconnected, and refused by the broker from now on")
    return 0


def cmd_attach(args, settings) -> int:
    with _db(settings) as conn:
        bridge = bridges.attach(conn, settings.broker_url("admin"), name=args.name,
                                device_id=args.device_id)
    print(f"device {args.device_id} is behind bridge {bridge.name}: its uplinks are accepted "
          f"only on {bridge.filters[0]}; it has no broker account of its own")
    return 0
