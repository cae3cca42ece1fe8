"""``agri alerts``: the alerts service and the list of alerts."""

from __future__ import annotations

import orjson

from agri.settings import Settings

LIST_LIMIT = 200


def register(subparsers) -> None:
    p = subparsers.add_parser("alerts", help="alerts and their messages")
    sub = p.add_subparsers(dest="action", required=True)
    a = sub.add_parser("serve", help="evaluate the rules and deliver the messages",
                       description="Judge new readings as they arrive and the scheduled "
                       "rules once a minute; send the due messages by email and LINE. "
                       "Several processes may run it.")
    a.set_defaults(func=cmd_serve)
    a = sub.add_parser("list", help="the latest alerts, newest first")
    a.add_argument("--field", default=None, metavar="ID", help="only this field's")
    a.add_argument("--open", action="store_true", help="only those not cleared")
    a.add_argument("--json", action="store_true", help="print them as JSON")
    a.set_defaults(func=cmd_list)


def cmd_serve(args, settings: Settings) -> int:
    from agri.alerts import service
    from agri.signals import stop_on_signals

    service.serve(settings, stop_on_signals())
    return 0


def cmd_list(args, settings: Settings) -> int:
    from psycopg.rows import dict_row

    from agri.db import connect

    with connect(settings.db_url()) as conn, conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            """SELECT a.id, a.rule, a.severity, a.field_id, a.device_id, a.evidence,
                      a.observed_at, a.opened_at, a.cleared_at,
                      (SELECT count(*) FROM alert_deliveries d
                       WHERE d.alert_id = a.id AND d.status = 'sent') AS sent
               FROM alerts a
               WHERE (%(field)s::text IS NULL OR a.field_id = %(field)s)
                 AND (NOT %(open)s OR a.cleared_at IS NULL)
               ORDER BY a.opened_at DESC, a.id DESC LIMIT %(limit)s""",
            {"field": args.field, "open": args.open, "limit": LIST_LIMIT}).fetchall()
    if args.json:
        print(orjson.dumps(rows).decode())
        return 0
    for r in rows:
        state = "open" if r["cleared_at"] is None else \
            f"cleared {r['cleared_at'].isoformat(timespec='seconds')}"
        print(f"{r['id']:>6} {r['opened_at'].isoformat(timespec='seconds')} {r['severity']:7} "
              f"{r['rule']:20} {r['field_id'] or '-':16} {r['device_id'] or '-':16} {state} "
              f"({r['sent']} sent)")
    return 0
