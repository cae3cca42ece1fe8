"""The ``agri`` command. Each subcommand is a thin shell over a module."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from pathlib import Path

import orjson

from agri.api.accounts import Role
from agri.deploy.db_roles import RoleError
from agri.deploy.migrate import MigrationError
from agri.devices.broker_accounts import BrokerAccountError
from agri.devices.dynsec import DynSecError
from agri.settings import SettingsError, load

logger = logging.getLogger("agri")


def _print_json(obj: object) -> None:
    sys.stdout.write(orjson.dumps(obj).decode() + "\n")


def _db(settings):
    from agri.db import connect

    return connect(settings.db_url())


def cmd_up(args, settings) -> int:
    from agri.deploy.up import run_up

    return run_up(settings, simulate=args.simulate, api_port=args.api_port, tls=args.tls)


def cmd_db_migrate(args, settings) -> int:
    from agri.deploy.migrate import migrate

    with _db(settings) as conn:
        applied = migrate(conn, settings=settings)
    print(f"applied: {', '.join(applied)}" if applied else "database is up to date")
    return 0


def cmd_ingest(args, settings) -> int:
    from agri.ingest.service import IngestService

    if args.worker:
        settings = settings.model_copy(update={"ingest_worker": args.worker})
    settings = _as_service_account(settings, "ingest", sync=not args.retire)
    service = IngestService(settings)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: service.stop())
    service.run(retire_after_idle_s=args.retire_after_idle if args.retire else None)
    return 0


def _as_service_account(settings, account: str, *, sync: bool = False):
    """Settings whose AGRI_MQTT_URL names the service account ``account``.

    Given the broker's admin account instead, the platform makes its own
    accounts from it (and, with ``sync``, brings the device accounts in line
    with the registry first)."""
    from agri.devices import broker_accounts

    if not settings.mqtt_url:
        return settings
    url = broker_accounts.account_url(settings.mqtt_url, account)
    if url != settings.mqtt_url and sync:
        from agri.devices.dynsec import DynSec

        with _db(settings) as conn, DynSec(settings.mqtt_url) as broker:
            broker_accounts.sync(broker, conn,
                                 admin_password=broker_accounts.admin_password(settings.mqtt_url))
    return settings.model_copy(update={"mqtt_url": url})


def cmd_api(args, settings) -> int:
    import uvicorn

    from agri.api.app import create_app

    host = args.host or settings.api_host
    port = args.port if args.port is not None else settings.api_port
    if settings.public_url is None:  # sign-in links name the port really served
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104 - a comparison
        settings = settings.model_copy(update={"public_url": f"http://{shown}:{port}"})
    if args.workers > 1:
        # Each worker process builds its own app (and pools) from the
        # environment; they share the listening socket.
        os.environ["AGRI_PUBLIC_URL"] = settings.public_url
        uvicorn.run("agri.api.app:create_app", factory=True, host=host, port=port,
                    workers=args.workers, log_level="info", access_log=False)
        return 0
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info", access_log=False)
    return 0


def cmd_devices(args, settings) -> int:
    from agri.devices import provisioning, registry

    with _db(settings) as conn:
        if args.action == "add":
            password = provisioning.add(conn, settings.broker_url("admin"), device_id=args.id,
                                        profile_name=args.profile, field_id=args.field,
                                        owner=args.owner, dev_eui=args.dev_eui,
                                        prototype=args.prototype,
                                        organisation=args.organisation,
                                        gate_role=args.gate_role)
            if args.json:
                _print_json({"device_id": args.id, "username": args.id, "password": password})
            else:
                print(f"device {args.id} registered (profile {args.profile})")
                _print_credentials(args.id, password)
        elif args.action == "rotate":
            from datetime import timedelta

            from agri.clock import TZ
            from agri.devices import rotation

            cred = rotation.rotate(conn, settings.broker_url("admin"), args.id,
                                   overlap=timedelta(hours=args.overlap_hours))
            if args.json:
                _print_json({"device_id": args.id, **cred.to_json()})
                return 0
            if cred.old_until is None:
                print(f"device {args.id}: new password; the old one no longer works")
            else:
                print(f"device {args.id}: new credential; the old one ({cred.old_username}) "
                      f"works until {cred.old_until.astimezone(TZ):%Y-%m-%d %H:%M} Asia/Tokyo")
            _print_credentials(args.id, cred.password, username=cred.username)
        elif args.action == "import":
            return _import_devices(args, settings, conn)
        elif args.action == "check":
            device = registry.get_device(conn, args.id)
            if device is None:
                print(f"no device {args.id!r}", file=sys.stderr)
                return 1
            return _check_device(args, settings, device)
        elif args.action == "list":
            devices = registry.list_devices(conn, field_id=args.field)
            seen = registry.last_seen(conn, devices, max_future_s=settings.max_future_s)
            if args.json:
                _print_json([d.to_json(last_seen=seen.get(d.id)) for d in devices])
            for d in devices if not args.json else ():
                last = seen[d.id].isoformat(timespec="seconds") if d.id in seen else "never"
                print(f"{d.id:24} {d.profile:16} {d.field_id or '-':16} {d.status:8} {last}")
        elif args.action == "show":
            device = registry.get_device(conn, args.id)
            if device is None:
                print(f"no device {args.id!r}", file=sys.stderr)
                return 1
            seen = registry.last_seen(conn, [device], max_future_s=settings.max_future_s)
            _print_json(device.to_json(last_seen=seen.get(device.id)))
        elif args.action == "revoke":
            if not provisioning.revoke(conn, settings.broker_url("admin"), args.id):
                print(f"no device {args.id!r}", file=sys.stderr)
                return 1
            print(f"device {args.id} revoked: disconnected, and refused by the broker from now on")
    return 0


def _check_device(args, settings, device) -> int:
    """The conformance check of ``device`` (devices/conformance.py), stored;
    with --follow, its new rejects as they arrive until Ctrl-C, then the
    check again. Exit 0 when it passed, 1 when a check failed."""
    import asyncio

    import psycopg

    from agri.devices import conformance

    if not 1 <= args.minutes <= conformance.MAX_MINUTES:
        print(f"agri: --minutes must be 1 to {conformance.MAX_MINUTES}", file=sys.stderr)
        return 2

    async def check(conn) -> dict:
        report = await conformance.run(conn, device.id, device.profile, minutes=args.minutes,
                                       max_payload_bytes=settings.max_payload_bytes,
                                       created_by=None)
        if args.json:
            _print_json(report)
        else:
            print("\n".join(conformance.lines(report)), flush=True)
        return report

    async def follow(conn) -> None:
        cur = await conn.execute("SELECT coalesce(max(id), 0) FROM rejects WHERE device_id = %s",
                                 (device.id,))
        after = (await cur.fetchone())[0]
        print(f"following {device.id}: new rejects as they arrive; Ctrl-C to check again "
              "and stop", file=sys.stderr, flush=True)
        try:
            while True:
                await asyncio.sleep(args.every)
                for reject_id, received, reason, index, size in await conformance.rejects_after(
                        conn, device.id, after):
                    after = reject_id
                    at = "" if index is None else f" record {index}"
                    print(f"{received.isoformat(timespec='seconds')} rejected{at} ({size} bytes):"
                          f" {reason}", flush=True)
        except asyncio.CancelledError:
            pass

    async def main() -> bool:
        async with await psycopg.AsyncConnection.connect(
                settings.db_url(), autocommit=True, options="-c timezone=UTC") as conn:
            report = await check(conn)
            if args.follow:
                task = asyncio.ensure_future(follow(conn))
                loop = asyncio.get_running_loop()
                loop.add_signal_handler(signal.SIGINT, task.cancel)
                loop.add_signal_handler(signal.SIGTERM, task.cancel)
                await task
                report = await check(conn)
            return report["passed"]

    return 0 if asyncio.run(main()) else 1


def _import_devices(args, settings, conn) -> int:
    from agri.devices import device_import, provisioning

    path = Path(args.file)
    try:
        with path.open("rb") as f:
            data = f.read(device_import.MAX_BYTES + 1)
    except OSError as exc:
        print(f"agri: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    rows = device_import.parse_csv(data)
    device_import.check(conn, rows)
    started = time.monotonic()
    imported = provisioning.import_devices(conn, settings.broker_url("admin"),
                                           [r.device() for r in rows], [r.bridge for r in rows])
    shown = device_import.credentials(rows, imported)
    if args.json:
        _print_json(shown)
        return 0
    print(f"imported {len(imported)} devices in {time.monotonic() - started:.1f} s; each "
          "connects with its id as MQTT username and client id, and the password below "
          "(shown once: store them in the devices now)")
    width = max(len("id"), *(len(d) for d, _ in imported))
    print(f"{'id':{width}}  password")
    for d in shown:
        password = d["password"] or f"(none: its uplinks come through bridge {d['bridge']})"
        print(f"{d['device_id']:{width}}  {password}")
    return 0


def _print_credentials(device_id: str, password: str, *, username: str | None = None) -> None:
    from agri.devices.topics import senml_topic

    if username and username != device_id:
        print(f"MQTT username: {username}   client id: {device_id}")
    else:
        print(f"MQTT username and client id: {device_id}")
    print(f"MQTT password: {password}   (shown once: store it in the device now)")
    print(f"publish SenML to {senml_topic(device_id)}")


def cmd_broker_sync(args, settings) -> int:
    from agri.devices import broker_accounts
    from agri.devices.dynsec import DynSec

    url = broker_accounts.admin_url(settings.broker_url("admin"))
    with _db(settings) as conn, DynSec(url) as broker:
        report = broker_accounts.sync(broker, conn,
                                      admin_password=broker_accounts.admin_password(url))
    if args.json:
        _print_json(report.to_json())
    else:
        print("\n".join(report.lines()))
    return 1 if report.missing_devices else 0


def cmd_broker_export(args, settings) -> int:
    from agri.deploy.servers import write_private
    from agri.devices import broker_accounts
    from agri.mqtt import parse_url

    url = broker_accounts.admin_url(settings.broker_url("admin"))
    address = parse_url(url)
    with _db(settings) as conn:
        content = broker_accounts.export_file(conn, admin_user=address.username,
                                              admin_password=address.password or "")
    out = Path(args.out)
    write_private(out, orjson.dumps(content, option=orjson.OPT_INDENT_2))
    devices = sum(1 for c in content["clients"] if "clientid" in c)
    print(f"wrote {out}: the admin {address.username}, the service accounts and {devices} "
          "devices with their stored password hashes; start the broker with it as its "
          "plugin_opt_config_file")
    return 0


def cmd_users_add(args, settings) -> int:
    from agri.api.accounts import add_user

    with _db(settings) as conn:
        new = add_user(conn, name=args.name, role=args.role, regions=args.region)
    if args.json:
        _print_json({"user": new.name, "role": str(new.role), "token": new.token,
                     "password": new.password})
    else:
        print(f"user {new.name} ({new.role}) created")
        print(f"API token: {new.token}   (shown once)")
        print("use it as: Authorization: Bearer <token>")
        print(f"initial password for the pages: {new.password}   (shown once; "
              "to be changed at first login)")
    return 0


def cmd_users_token(args, settings) -> int:
    from agri.api.accounts import rotate_token

    if not args.rotate:
        print("tokens are stored hashed and cannot be shown again; "
              f"replace it with: agri users token {args.name} --rotate", file=sys.stderr)
        return 2
    with _db(settings) as conn:
        token = rotate_token(conn, args.name)
    if args.json:
        _print_json({"user": args.name, "token": token})
    else:
        print(f"user {args.name}: new API token {token}   (shown once; the old one no longer "
              "works)")
    return 0


def cmd_users_password(args, settings) -> int:
    from agri.api.accounts import reset_password

    with _db(settings) as conn:
        password = reset_password(conn, args.name)
    if args.json:
        _print_json({"user": args.name, "password": password})
    else:
        print(f"user {args.name}: new password {password}   (shown once; to be changed at "
              "the next login; their page sessions have ended)")
    return 0


def cmd_access_log(args, settings) -> int:
    from agri.api.access_log import RECENT_SQL

    with _db(settings) as conn:
        rows = conn.execute(RECENT_SQL, {"user": args.user, "limit": args.limit}).fetchall()
    keys = ("time", "user", "client", "method", "path", "status", "duration_ms")
    for row in rows:
        item = dict(zip(keys, row, strict=True))
        if args.json:
            _print_json(item | {"time": item["time"].isoformat()})
        else:
            print(f"{item['time']:%Y-%m-%d %H:%M:%S%z} {item['user'] or '-'} {item['client']} "
                  f"{item['method']} {item['path']} {item['status']} "
                  f"{item['duration_ms']:.1f} ms")
    return 0


def cmd_fields_import(args, settings) -> int:
    from agri.api.field_registry import import_fields
    from agri.api.fude_polygons import parse_upload

    assign = Path(args.assign).read_bytes() if args.assign else None
    parsed = parse_upload(Path(args.file).read_bytes(), assign, args.format)
    rows = parsed.rows
    with _db(settings) as conn:
        count, created = import_fields(conn, rows, create_owners=args.create_owners)
    years = ", ".join(str(y) for y in sorted({r["transplanted_on"].year for r in rows}))
    print(f"imported {count} fields (season {years})")
    if parsed.report["format"] == "fude":
        r = parsed.report
        print(f"field polygons: {r['polygons']} in the file, {r['paddies']} paddies; not "
              f"imported: {r['paddies_not_assigned']} paddies the CSV does not assign, "
              f"{r['assigned_not_paddy']} assigned polygons that are not paddies")
    for owner, token in created.items():
        print(f"created farmer {owner}: API token {token}")
    return 0


def cmd_bench(args, settings) -> int:
    if args.name == "zonal":
        from agri.deploy import bench_zonal

        return bench_zonal.run(args)
    if args.name == "api":
        from agri.deploy import bench_api

        return bench_api.run(args)
    if args.name == "water":
        from agri.deploy import bench_water

        return bench_water.run(args)
    if args.name == "alerts":
        from agri.deploy import bench_alerts

        return bench_alerts.run(args)
    from agri.deploy.bench_ingest import run_bench

    return run_bench(args, settings)


def _overlap_hours(text: str) -> float:
    from agri.devices.rotation import MAX_OVERLAP

    most = MAX_OVERLAP.total_seconds() / 3600
    try:
        hours = float(text)
    except ValueError:
        hours = float("nan")
    if not 0 <= hours <= most:  # NaN too
        raise argparse.ArgumentTypeError(f"hours from 0 to {most:g}, not {text[:20]!r}")
    return hours


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agri", description=__doc__.split("\n")[0] if __doc__
                                     else None)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("up", help="run the whole platform on the embedded default")
    p.add_argument("--simulate", action="store_true", help="also run the simulator")
    p.add_argument("--api-port", type=int, default=None, help="API port (default 8000 or free)")
    p.add_argument("--tls", action="store_true",
                   help="also an MQTT TLS listener, with a local CA made under AGRI_HOME/tls")
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("db", help="database tasks")
    dbsub = p.add_subparsers(dest="action", required=True)
    dbsub.add_parser("migrate", help="apply pending migrations").set_defaults(func=cmd_db_migrate)

    p = sub.add_parser("ingest", help="run one ingest worker")
    p.add_argument("--worker", help="stable worker id (MQTT client agri-ingest-ID)")
    p.add_argument("--retire", action="store_true",
                   help="drain this worker's session, then end it at the broker for good")
    p.add_argument("--retire-after-idle", type=float, default=5.0, metavar="S",
                   help="with --retire: stop after S seconds with no message (default 5)")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("api", help="run the API server")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--workers", type=int, default=1,
                   help="processes serving requests (default 1); about one per core")
    p.set_defaults(func=cmd_api)

    p = sub.add_parser("devices", help="register and manage devices")
    dsub = p.add_subparsers(dest="action", required=True)
    a = dsub.add_parser("add", help="register a device and print its MQTT password once")
    a.add_argument("--id", required=True)
    a.add_argument("--profile", required=True)
    a.add_argument("--field")
    a.add_argument("--owner", help="user who owns the device (a developer)")
    a.add_argument("--dev-eui", help="LoRaWAN DevEUI (ChirpStack uplinks)")
    a.add_argument("--prototype", action="store_true",
                   help="a prototype under test in the sandbox (docs/sandbox.md)")
    a.add_argument("--organisation", help="who builds the prototype (counted in the KPIs)")
    a.add_argument("--gate-role", choices=("supply", "drain"),
                   help="a water gate's place on its field (default supply; "
                        "docs/water-control.md)")
    a.add_argument("--json", action="store_true")
    a = dsub.add_parser("check", help="check what a device sent against the contract, "
                        "print a pass or fail per check with what to change, and store the "
                        "report (exit 1 when a check failed)")
    a.add_argument("id")
    a.add_argument("--minutes", type=int, default=60,
                   help="the window: the last N minutes of messages (default 60)")
    a.add_argument("--json", action="store_true", help="print the report as JSON")
    a.add_argument("--follow", action="store_true",
                   help="then print new rejects as they arrive; Ctrl-C checks again and stops")
    a.add_argument("--every", type=float, default=3.0, help=argparse.SUPPRESS)
    a = dsub.add_parser("list", help="list devices")
    a.add_argument("--field")
    a.add_argument("--json", action="store_true")
    a = dsub.add_parser("import", help="register the devices of a CSV file (id,profile,field,"
                        "owner[,dev_eui]), all or none, and print their MQTT passwords once")
    a.add_argument("file", metavar="FILE.csv")
    a.add_argument("--json", action="store_true",
                   help="print [{device_id, username, password}, ...]")
    dsub.add_parser("show", help="show one device").add_argument("id")
    dsub.add_parser("revoke", help="revoke a device and disconnect it").add_argument("id")
    a = dsub.add_parser("rotate", help="give a device a new password (printed once)")
    a.add_argument("id")
    a.add_argument("--overlap-hours", type=_overlap_hours, default=0.0, metavar="H",
                   help="the old credential keeps working H hours (up to 720), under the "
                        "device's other MQTT username (default 0: it stops at once)")
    a.add_argument("--json", action="store_true",
                   help="print {device_id, username, password, old_username, old_until}")
    p.set_defaults(func=cmd_devices)

    p = sub.add_parser("broker", help="the MQTT broker's accounts")
    bsub = p.add_subparsers(dest="action", required=True)
    a = bsub.add_parser("sync", help="make the broker's accounts what the registry says, "
                        "and print what changed")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_broker_sync)
    a = bsub.add_parser("export", help="write the dynamic-security file for a broker rebuilt "
                        "from nothing, with every device's stored password hash")
    a.add_argument("--out", required=True, help="file to write (mode 0600)")
    a.set_defaults(func=cmd_broker_export)

    p = sub.add_parser("users", help="manage users")
    usub = p.add_subparsers(dest="action", required=True)
    a = usub.add_parser("add", help="create a user; print an API token and a password once")
    a.add_argument("--name", required=True)
    a.add_argument("--role", required=True, choices=[r.value for r in Role])
    a.add_argument("--region", nargs="*", default=[], help="municipalities (officers)")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_users_add)
    a = usub.add_parser("token", help="replace a user's API token (printed once)")
    a.add_argument("name")
    a.add_argument("--rotate", action="store_true", help="issue a new token; the old one stops")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_users_token)
    a = usub.add_parser("password", help="give a user a new initial password (printed once)")
    a.add_argument("name")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_users_password)

    p = sub.add_parser("access-log", help="the API's latest requests, newest first")
    p.add_argument("--user", help="only this user's requests")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true", help="one JSON object a line")
    p.set_defaults(func=cmd_access_log)

    p = sub.add_parser("fields", help="manage fields")
    fsub = p.add_subparsers(dest="action", required=True)
    a = fsub.add_parser("import", help="import fields from a GeoJSON FeatureCollection: the "
                        "platform's own, or field polygons (筆ポリゴン) with --assign")
    a.add_argument("file")
    a.add_argument("--assign", metavar="FILE.csv", help="for field polygons: the CSV that assigns "
                   "owner, cultivar and transplanting date to polygons by polygon_uuid")
    a.add_argument("--format", choices=["auto", "platform", "fude"], default="auto",
                   help="the file's format (default: recognised by its properties)")
    a.add_argument("--create-owners", action="store_true",
                   help="create missing owners as farmers and print their tokens")
    a.set_defaults(func=cmd_fields_import)

    p = sub.add_parser("bench", help="benchmarks that print figures against a baseline")
    bsub = p.add_subparsers(dest="name", required=True)
    a = bsub.add_parser("ingest", help="ingest throughput and delay against a plain COPY")
    a.add_argument("--mode", choices=["single", "pack", "both"], default="both")
    a.add_argument("--readings", type=int, default=600_000, help="readings per mode")
    a.add_argument("--workers", type=int, default=2, help="ingest workers")
    a.add_argument("--publishers", type=int, default=4,
                   help="publishing devices (one connection each)")
    a.set_defaults(func=cmd_bench)
    a = bsub.add_parser("zonal", help="per-field index statistics against exactextract and "
                        "rasterstats on the same image")
    a.add_argument("--size", type=int, default=10_000,
                   help="image width and height in pixels (default 10000)")
    a.add_argument("--fields", type=int, default=500, help="paddies (default 500)")
    a.add_argument("--seed", type=int, default=1, help="layout and image seed")
    a.add_argument("--scene", choices=["drone", "s2", "both"], default="both",
                   help="the drone image, the Sentinel-2-like scene, or both")
    a.add_argument("--dir", help="keep the images here (reused when they match) instead of "
                   "a temporary folder")
    a.set_defaults(func=cmd_bench)
    a = bsub.add_parser("api", help="API read latency on a season of data, rollups against "
                        "raw readings")
    a.add_argument("--fields", type=int, default=1000, help="paddies (default 1000)")
    a.add_argument("--rate", type=float, default=200.0,
                   help="requests/s offered by all clients together (default 200)")
    a.add_argument("--duration", type=float, default=20.0,
                   help="seconds of load per endpoint (default 20)")
    a.add_argument("--days", type=int, default=184,
                   help="days of the season loaded from 1 May (default 184: to 31 October)")
    a.add_argument("--seed", type=int, default=1, help="season seed")
    a.add_argument("--home", help="keep the stack and its season here, and reuse them when "
                   "they match (default: a temporary folder, removed)")
    a.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                   help="API processes, as agri api --workers (default: 2, or 1 on one core)")
    a.add_argument("--to-today", action="store_true",
                   help="move the season by whole days so that its last day is today: the "
                        "field page's 7-day charts and the conditions then have data")
    a.set_defaults(func=cmd_bench)
    from agri.deploy import bench_alerts, bench_water

    a = bsub.add_parser("water", help="a season of paddies with hold-depth control on and off: "
                        "shares of field-hours inside the target band")
    bench_water.add_arguments(a)
    a.set_defaults(func=cmd_bench)
    a = bsub.add_parser("alerts", help="delay from a reading that crosses a threshold to the "
                        "email accepted by the SMTP server")
    bench_alerts.add_arguments(a)
    a.set_defaults(func=cmd_bench)

    from agri.alerts.cli import register as register_alerts
    from agri.analytics.cli import register as register_analytics
    from agri.devices.bridge_cli import register as register_bridges
    from agri.simulator.cli import register
    from agri.water.cli import register as register_water

    register_analytics(sub)
    register_bridges(sub)
    register_alerts(sub)
    register_water(sub)
    register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # GDAL's own messages repeat the error the platform reports in its words.
    logging.getLogger("rasterio").setLevel(logging.WARNING)
    try:
        settings = load()
        return args.func(args, settings) or 0
    except (SettingsError, DynSecError, BrokerAccountError, MigrationError, RoleError) as exc:
        print(f"agri: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # registry, account and import errors say what to fix
        print(f"agri: {exc}", file=sys.stderr)
        return 2
    except KeyError as exc:
        print(f"agri: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
