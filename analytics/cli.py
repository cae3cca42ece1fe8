"""``agri analytics``, ``agri observations`` and ``agri images``: the commands
over the analytics modules."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

import orjson

from agri.settings import Settings


def register(subparsers) -> None:
    p = subparsers.add_parser("analytics", help="stage, harvest window, risks and advice")
    sub = p.add_subparsers(dest="action", required=True)
    a = sub.add_parser("run", help="run the day's analytics now (also for a past day)",
                       description="Compute and store every field's results for a day: "
                       "stage and expected dates, harvest window, cold, heat and blast "
                       "risk, water target band, advisory drafts. Images waiting to be "
                       "processed are processed first.")
    a.add_argument("--as-of", type=date.fromisoformat, default=None, metavar="YYYY-MM-DD",
                   help="the day to compute for (default: today, Asia/Tokyo)")
    a.add_argument("--field", action="append", default=None, metavar="ID",
                   help="only this field (repeatable)")
    a.add_argument("--heat-adjustment", action="store_true",
                   help="move the harvest window earlier after a hot ripening period")
    a.add_argument("--json", action="store_true", help="print the summary as JSON")
    a.set_defaults(func=cmd_run)
    a = sub.add_parser("serve", help="the scheduler: daily run and new images",
                       description="Run the daily analytics once a day and process new "
                       "images as they arrive. Several processes may run it: each run is "
                       "taken by one of them.")
    a.add_argument("--poll", type=float, default=None, metavar="S",
                   help="seconds between checks (default 60)")
    a.set_defaults(func=cmd_serve)

    p = subparsers.add_parser("observations", help="officers' records of their fields")
    sub = p.add_subparsers(dest="action", required=True)
    a = sub.add_parser("import", help="load records from a CSV file (field,kind,date,value)",
                       description="Load heading and maturity dates, lab protein, yields "
                       "and notes from a CSV file with the header field,kind,date,value "
                       "(optionally ,note). A file with one bad row imports nothing.")
    a.add_argument("file", type=Path, metavar="FILE.csv")
    a.add_argument("--by", default=None, metavar="NAME", help="who recorded them")
    a.add_argument("--json", action="store_true", help="print the counts as JSON")
    a.set_defaults(func=cmd_observations_import)

    p = subparsers.add_parser("images", help="drone surveys and satellite scenes")
    sub = p.add_subparsers(dest="action", required=True)
    a = sub.add_parser("add", help="register a multispectral GeoTIFF for processing",
                       description="Register a drone survey or satellite scene. The "
                       "scheduler (or `agri analytics run`) computes its per-field "
                       "statistics, the protein and harvest-timing maps.")
    a.add_argument("file", type=Path, metavar="FILE.tif")
    a.add_argument("--source", default=None,
                   help="band map (default: the file's AGRI_SOURCE tag)")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_images_add)
    a = sub.add_parser("list", help="images and their processing status")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_images_list)


def _connect(settings: Settings):
    from agri.db import connect

    return connect(settings.db_url())


def _today() -> date:
    from agri.clock import today_local

    return today_local()


def cmd_run(args, settings: Settings) -> int:
    from agri.analytics import jobs, pipeline

    as_of = args.as_of or _today()
    with _connect(settings) as conn:
        summary = jobs.run_once(conn, "manual", as_of, lambda: pipeline.daily(
            conn, as_of=as_of, field_ids=args.field, heat_adjustment=args.heat_adjustment,
            images=True), force=True)
    if summary is None:
        print(f"agri: an analytics run for {as_of} is in progress elsewhere; try again "
              "when it ends", file=sys.stderr)
        return 1
    if args.json:
        print(orjson.dumps(summary, default=str).decode())
    else:
        print(f"analytics for {as_of}: {summary['estimated']} of {summary['fields']} fields "
              f"estimated, {summary.get('advisories', 0)} advisory drafts, "
              f"{summary.get('images', 0)} images processed ({summary['seconds']} s)")
        for field, reason in summary.get("skipped_examples", {}).items():
            print(f"  skipped {field}: {reason}")
    return 0


def cmd_serve(args, settings: Settings) -> int:
    from agri.analytics import jobs
    from agri.signals import stop_on_signals

    jobs.serve(settings.db_url("analytics"), stop=stop_on_signals(),
               poll_s=args.poll if args.poll is not None else jobs.POLL_S)
    return 0


def cmd_observations_import(args, settings: Settings) -> int:
    from agri.analytics import observations

    records = observations.read_file(args.file)
    with _connect(settings) as conn:
        result = observations.store(conn, records, recorded_by=args.by,
                                    source=f"import:{args.file.name}"[:200])
    if args.json:
        print(orjson.dumps(result.to_json()).decode())
    else:
        print(f"{args.file.name}: {result.added} records added, {result.updated} updated")
    return 0


def cmd_images_add(args, settings: Settings) -> int:
    from agri.analytics import image_store

    with _connect(settings) as conn:
        image = image_store.add(conn, args.file, source=args.source, home=settings.home)
    if args.json:
        print(orjson.dumps(image).decode())
    else:
        state = "already registered" if image["existing"] else "registered"
        print(f"image {image['id']} ({image['source']}, {image['acquired_at'] or 'no date'}) "
              f"{state}; status {image['status']}")
    return 0


def cmd_images_list(args, settings: Settings) -> int:
    from agri.analytics import image_store

    with _connect(settings) as conn:
        items = image_store.listing(conn)
    if args.json:
        print(orjson.dumps(items).decode())
    else:
        for i in items:
            print(f"{i['id']:>5} {i['status']:<10} {i['source']:<16} {i['acquired_at'] or '-'} "
                  f"{i['fields']} fields  {i['error'] or ''}")
    return 0

