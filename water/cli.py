"""``agri water``: run the water control service, set a field's mode, read
its decision log (docs/water-control.md)."""

from __future__ import annotations

import sys

import orjson
import psycopg

from agri.settings import Settings
from agri.water import controller as ctl


def register(subparsers) -> None:
    p = subparsers.add_parser("water", help="water gate control: modes, service, log")
    sub = p.add_subparsers(dest="action", required=True)
    a = sub.add_parser("serve", help="run water control: a pass over the automatic fields "
                       "every --poll seconds")
    a.add_argument("--poll", type=float, default=None, metavar="S",
                   help="seconds between passes (default 60)")
    a.set_defaults(func=cmd_serve)
    a = sub.add_parser("mode", help="set a field's water control mode (gives control back "
                       "after a person moved a gate)")
    a.add_argument("field")
    a.add_argument("mode", choices=ctl.MODES)
    a.add_argument("--schedule", action="append", default=None, metavar="HH:MM-HH:MM",
                   help="a window the supply gate is open, local time (repeatable; "
                        "replaces the schedule)")
    a.add_argument("--max-open-h", type=float, default=None, metavar="H",
                   help="hours a supply gate may stay open in an automatic mode (0 to 48)")
    a.add_argument("--by", default=None, metavar="USER",
                   help="the user recorded as setting it (default: the water controller)")
    a.set_defaults(func=cmd_mode)
    a = sub.add_parser("log", help="a field's water control decisions, newest first")
    a.add_argument("field")
    a.add_argument("--limit", type=int, default=50)
    a.add_argument("--json", action="store_true", help="one JSON object per line")
    a.set_defaults(func=cmd_log)


def cmd_serve(args, settings: Settings) -> int:
    from agri.signals import stop_on_signals
    from agri.water import service

    service.serve(settings, stop_on_signals(), poll_s=args.poll or service.POLL_S)
    return 0


def cmd_mode(args, settings: Settings) -> int:
    from agri.db import connect
    from agri.water import control_store

    try:
        windows = None if args.schedule is None else tuple(
            ctl.parse_window(w) for w in args.schedule)
        if windows is not None:
            ctl.parse_schedule([w.as_json() for w in windows])  # the count of windows
    except ctl.ScheduleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.max_open_h is not None and not 0 < args.max_open_h <= 48:
        print("error: --max-open-h is more than 0 and at most 48 hours", file=sys.stderr)
        return 2
    with connect(settings.db_url()) as conn:
        if not conn.execute("SELECT 1 FROM fields WHERE id = %s", (args.field,)).fetchone():
            print(f"error: no field {args.field!r}", file=sys.stderr)
            return 1
        try:
            mode, schedule, max_open_h = control_store.set_mode(
                conn, args.field, user=args.by or control_store.SYSTEM_USER, mode=args.mode,
                schedule=windows, max_open_h=args.max_open_h)
        except psycopg.errors.ForeignKeyViolation:
            print(f"error: no user {args.by!r}", file=sys.stderr)
            return 1
    windows_text = ", ".join(f"{w['open']}-{w['close']}" for w in schedule) or "none"
    print(f"field {args.field}: mode {mode}; schedule {windows_text}; "
          f"max open {max_open_h:g} h")
    return 0


def cmd_log(args, settings: Settings) -> int:
    from agri.clock import TZ
    from agri.db import connect
    from agri.water import control_store

    with connect(settings.db_url()) as conn:
        rows = control_store.read_log(conn, args.field, max(1, min(args.limit, 1000)))
    for i, dev, cmd, action, pos, reason, actor, decided, judged in rows:
        if args.json:
            sys.stdout.write(orjson.dumps({
                "id": i, "device": dev, "command": cmd, "action": action, "position": pos,
                "code": ctl.reason_code(reason), "reason": reason, "actor": actor,
                "decided_at": decided.isoformat(),
                "judged_at": judged and judged.isoformat()}).decode() + "\n")
        else:
            when = (judged or decided).astimezone(TZ).strftime("%Y-%m-%d %H:%M")
            where = f" {dev}" if dev else ""
            at = f" {pos:g}%" if pos is not None else ""
            print(f"{when} {action}{where}{at} [{actor}] {reason}")
    return 0
