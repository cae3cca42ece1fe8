"""`agri simulate`: weather, a season's files, and sensors publishing a season."""

from __future__ import annotations

import argparse
import os
import threading
from dataclasses import fields
from datetime import date
from pathlib import Path

import orjson

from agri.settings import Settings
from agri.simulator.observations import DEFAULT_LAB_SAMPLES
from agri.simulator.weather import YearType

DEFAULT_FIELDS = 12
DEFAULT_SEED = 1
DEFAULT_PREFIX = "sim"
SEASON_WINDOW = ((5, 20), (9, 30))  # (month, day), inclusive: what a season publishes
LIVE_FALLBACK = (7, 20)  # live replay start when today is outside SEASON_WINDOW

DESCRIPTION = """\
Simulate the Tsugaru plain: hourly weather, a season of paddies (fields,
crop, water, drone surveys), and the sensors and drones of that season
publishing over MQTT as real devices would, sensors with realistic faults.

modes:
  weather      daily weather of N years to a CSV file (no servers needed)
  season       one season's files: fields.geojson (for `agri fields import
               --create-owners`), truth.csv, observations.csv (for `agri
               observations import`), drone survey GeoTIFFs and flight records,
               satellite scenes (no servers needed)
  live         real time: replay the season from a season date with readings
               stamped now; what `agri up --simulate` runs (no arguments needed)
  accelerated  a whole season (or a date range) through the broker in minutes,
               stamped at the simulated times (ingest must accept readings that
               old: AGRI_MAX_AGE_DAYS)
  backfill     the season written straight into the database, for demos and
               benchmarks
  load         N devices publishing as fast as asked, for capacity tests

The same --fields and --seed give the same paddies, ids and owners in every
mode and every --year (the cultivar, transplanting date and the rest of the
farmers' management change from year to year), and the same truth in every
mode. live, accelerated and backfill write fields.geojson, truth.csv and
observations.csv (accelerated and backfill: the officers' records up to
--end) to their season folder, and register the season's fields (creating their
farmers), devices and drones first, and may be run again: nothing is
registered twice and a reading or flight record already stored is stored
once. Besides the readings they send the drones' spray and survey flight
records. They run against the servers of `agri up` (AGRI_HOME) or against
AGRI_DATABASE_URL / AGRI_MQTT_URL, publishing as the simulator account. Each
prints a summary: messages, readings and flight records published, and how
many readings ingest should store, see as repeats, and reject on purpose
(spikes beyond a metric's physical range, clocks far off).

examples:
  agri simulate weather --years 30 --seed 7 --out weather.csv
  agri simulate season --fields 40 --seed 3 --out season/ --gsd 0.5
  agri simulate live --from-date 08-01
  AGRI_MAX_AGE_DAYS=400 agri simulate accelerated --fields 50 --start 07-01 --end 07-31
  agri simulate backfill --fields 120 --seed 3 --end 07-15
  agri simulate load --devices 500 --rate 2000 --seconds 60
"""


def register(subparsers) -> None:
    """Add ``simulate`` and its modes to the ``agri`` command."""
    p = subparsers.add_parser("simulate", help="the simulator (see `agri simulate --help`)",
                              description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="mode", required=True, metavar="MODE")

    a = sub.add_parser("weather", help="daily weather of N years to a CSV file",
                       description="Hourly weather of consecutive years at Hirosaki, written as "
                       "one row per day: date, tmean, tmax, tmin (Cel), precipitation_mm, "
                       "sunshine_h, wind_ms, rh (%%).")
    a.add_argument("--years", type=int, required=True, help="how many years")
    a.add_argument("--seed", type=int, required=True)
    a.add_argument("--first-year", type=int, default=2001, help="first year (default 2001)")
    _year_type(a, "every year of this type (default: drawn from the climate mix)")
    a.add_argument("--out", type=Path, required=True, metavar="FILE.csv")
    a.set_defaults(func=cmd_weather)

    a = sub.add_parser("season", help="one season's files: fields, truth, records, images",
                       description="Simulate a season and write fields.geojson, truth.csv "
                       "(heading, maturity, harvest opening, protein per field), "
                       "observations.csv (officers' heading and lab protein records), "
                       "flights/ (drone survey GeoTIFFs and flight records) and scenes/ "
                       "(Sentinel-2 L2A-like and commercial 2 m satellite scenes) under DIR.")
    _season_args(a, out_required=True)
    a.add_argument("--gsd", type=float, default=None, metavar="M",
                   help="survey pixel size in metres (default 0.25; the camera's own: 0.05)")
    a.add_argument("--no-surveys", action="store_true", help="skip the drone GeoTIFFs")
    a.add_argument("--no-scenes", action="store_true", help="skip the satellite scenes")
    a.set_defaults(func=cmd_season)

    a = sub.add_parser("live", help="real time, readings stamped now (agri up --simulate)",
                       description="Replay the season in real time from --from-date, every "
                       "time stamped a whole number of days later so that readings carry "
                       "today's date; the last --history-hours are sent at once first. Runs "
                       "until Ctrl-C (or --hours).")
    _season_args(a)
    a.add_argument("--from-date", metavar="MM-DD", help="season date replayed as today "
                   "(default: today's month-day from 20 May to 30 September, else 20 July)")
    a.add_argument("--history-hours", type=float, default=24.0, metavar="H",
                   help="hours before now sent at once at the start (default 24)")
    a.add_argument("--hours", type=float, default=None, metavar="H",
                   help="stop after H hours (default: run until stopped)")
    _fault_args(a)
    _json(a)
    a.set_defaults(func=cmd_live)

    for name, func, text in (
            ("accelerated", cmd_accelerated, "the season through the broker as fast as it "
             "takes it, stamped at the simulated times; ingest must accept readings that old "
             "(AGRI_MAX_AGE_DAYS, checked first)"),
            ("backfill", cmd_backfill, "the readings and drone flight records ingest would "
             "store, written straight into the database, stamped at the simulated times")):
        a = sub.add_parser(name, help=text.split(";")[0].split(",")[0], description=text)
        _season_args(a)
        a.add_argument("--start", metavar="MM-DD", default="05-20",
                       help="first day (default 05-20; YYYY-MM-DD also sets the year)")
        a.add_argument("--end", metavar="MM-DD", default="09-30",
                       help="last day, included (default 09-30)")
        _fault_args(a)
        _json(a)
        a.set_defaults(func=func)

    a = sub.add_parser("load", help="N devices publishing as fast as asked",
                       description="Register paddy-water devices PREFIX-0 .. PREFIX-(N-1) and "
                       "publish, as the simulator account, round(R x S) SenML packs of two "
                       "readings (water_level, water_temp) at R messages/s in total.")
    a.add_argument("--devices", type=int, default=100, metavar="N", help="default 100")
    a.add_argument("--rate", type=float, default=1000.0, metavar="R",
                   help="messages per second, all devices together (default 1000)")
    a.add_argument("--seconds", type=float, default=10.0, metavar="S", help="default 10")
    a.add_argument("--qos", type=int, choices=(0, 1), default=1)
    a.add_argument("--prefix", default="load", help="device id prefix (default load)")
    _json(a)
    a.set_defaults(func=cmd_load)

    from agri.devices.profiles import PROFILES
    from agri.simulator.prototype import DEFAULT_COUNT, FAULTS

    a = sub.add_parser("device", help="a reference device of any profile, with chosen faults",
                       description="Publish as a registered device, with its own credentials, "
                       "N SenML packs of its profile's metrics (measured up to now, one every "
                       "interval), then answer its commands for --listen seconds; compare "
                       "`agri devices check ID` with your prototype's. Faults: " + "; ".join(
                           f"{k}: {v}" for k, v in FAULTS.items()))
    a.add_argument("--id", required=True, help="the device's id (agri devices add)")
    a.add_argument("--password", default=os.environ.get("AGRI_DEVICE_PASSWORD"),
                   help="its MQTT password (default: AGRI_DEVICE_PASSWORD)")
    a.add_argument("--username", default=None,
                   help="its MQTT username when not its id (after a rotation with an overlap)")
    a.add_argument("--profile", required=True, choices=sorted(PROFILES))
    a.add_argument("--fault", action="append", default=[], choices=list(FAULTS),
                   help="a fault to play (repeatable)")
    a.add_argument("--count", type=int, default=DEFAULT_COUNT, metavar="N",
                   help=f"packs (default {DEFAULT_COUNT})")
    a.add_argument("--interval", type=int, default=None, metavar="S",
                   help="seconds between packs (default: the profile's shortest interval)")
    a.add_argument("--listen", type=float, default=0.0, metavar="S",
                   help="seconds to stay connected answering commands (default 0)")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--json", action="store_true", help="print what was sent as JSON")
    a.set_defaults(func=cmd_device)


def _json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true",
                   help="print the summary as one JSON object (counts as in the text)")


def _print(summary, args) -> int:
    if args.json:
        print(orjson.dumps(summary.as_dict()).decode())
    else:
        print(summary.text())
    return 0


def _year_type(p: argparse.ArgumentParser, text: str) -> None:
    p.add_argument("--year-type", choices=[t.value for t in YearType], default=None, help=text)


def _season_args(p: argparse.ArgumentParser, *, out_required: bool = False) -> None:
    p.add_argument("--fields", type=int, default=DEFAULT_FIELDS,
                   help=f"paddies in the season (default {DEFAULT_FIELDS})")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED,
                   help=f"random seed: same seed, same season (default {DEFAULT_SEED})")
    p.add_argument("--year", type=int, default=None,
                   help="season year (default: the latest season already over)")
    _year_type(p, "cool, normal or hot summer (default: drawn)")
    p.add_argument("--lab-samples", type=int, default=DEFAULT_LAB_SAMPLES, metavar="N",
                   help="fields with a lab protein record in observations.csv, drawn at "
                   f"random (default {DEFAULT_LAB_SAMPLES})")
    p.add_argument("--heading-share", type=float, default=1.0, metavar="SHARE",
                   help="share of the fields with a recorded heading date (default 1)")
    p.add_argument("--out", type=Path, required=out_required, metavar="DIR",
                   help="folder for the season's files" + (
                       "" if out_required else " (default AGRI_HOME/simulator/season-...)"))
    if not out_required:
        p.add_argument("--prefix", default=DEFAULT_PREFIX,
                       help=f"device id prefix (default {DEFAULT_PREFIX}: sim-pw-FIELD, ...)")


def _fault_args(p: argparse.ArgumentParser) -> None:
    from agri.simulator.sensors import FaultRates

    g = p.add_argument_group("fault rates", "each between 0 and 1")
    g.add_argument("--no-faults", action="store_true", help="no faults, unless set below")
    for f in fields(FaultRates):
        g.add_argument(f"--{f.name.replace('_', '-')}", type=float, default=None,
                       metavar="RATE", help=f"{f.metadata['help']} (default {f.default})")


def _rates(args):
    from agri.simulator.sensors import FaultRates

    base = FaultRates.none() if args.no_faults else FaultRates()
    given = {f.name: getattr(args, f.name) for f in fields(FaultRates)
             if getattr(args, f.name) is not None}
    return FaultRates(**{f.name: getattr(base, f.name) for f in fields(FaultRates)} | given)


def _date(text: str, year: int | None, what: str) -> tuple[date, int | None]:
    """A season date from MM-DD (in ``year``) or YYYY-MM-DD (which must agree with it)."""
    try:
        if len(text) == 5:
            month, day = (int(x) for x in text.split("-"))
            return date(year or 2001, month, day), year
        full = date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{what} {text!r}: give MM-DD or YYYY-MM-DD") from None
    if year is not None and full.year != year:
        raise ValueError(f"{what} {text} is not in season --year {year}")
    return full, full.year


def default_year(today: date) -> int:
    """The latest season whose window is over."""
    return today.year if today > date(today.year, *SEASON_WINDOW[1]) else today.year - 1


def live_from_date(today: date, year: int) -> date:
    """Today's month-day in season ``year`` if inside the season window, else 20 July."""
    inside = SEASON_WINDOW[0] <= (today.month, today.day) <= SEASON_WINDOW[1]
    return date(year, today.month, today.day) if inside else date(year, *LIVE_FALLBACK)


def season_out(settings: Settings, *, year: int, seed: int, fields: int) -> Path:
    """Where the publishing modes keep their season's files (fields, truth)."""
    return settings.home / "simulator" / f"season-{year}-seed{seed}-{fields}fields"


def _fleet(args, settings: Settings, year: int, until: date | None = None):
    from agri.simulator.season import simulate_season
    from agri.simulator.sensors import Fleet

    out = args.out or season_out(settings, year=year, seed=args.seed, fields=args.fields)
    season = simulate_season(fields=args.fields, seed=args.seed, year=year,
                             year_type=args.year_type, out=out, surveys=False, scenes=False,
                             **_records(args), observations_until=until)
    return Fleet(season, seed=args.seed, rates=_rates(args), prefix=args.prefix)


def _records(args) -> dict:
    if args.lab_samples < 0:
        raise ValueError(f"--lab-samples {args.lab_samples}: give 0 or more")
    if not 0.0 <= args.heading_share <= 1.0:
        raise ValueError(f"--heading-share {args.heading_share}: give a share from 0 to 1")
    return {"lab_samples": args.lab_samples, "heading_share": args.heading_share}


def _stop_on_signals() -> threading.Event:
    from agri.signals import stop_on_signals

    return stop_on_signals()


def cmd_weather(args, settings: Settings) -> int:
    from agri.simulator.weather import simulate_years, write_daily_csv

    weathers = simulate_years(years=args.years, seed=args.seed, first_year=args.first_year,
                              year_type=args.year_type and YearType(args.year_type))
    write_daily_csv(weathers, args.out)
    days = sum(w.air_temp.size // 24 for w in weathers)
    print(f"wrote {days} days ({weathers[0].year}-{weathers[-1].year}) to {args.out}")
    return 0


def cmd_season(args, settings: Settings) -> int:
    from agri.clock import today_local
    from agri.simulator.season import SEASON_GSD_M, heading_summary, simulate_season

    season = simulate_season(fields=args.fields, seed=args.seed,
                             year=args.year or default_year(today_local()),
                             year_type=args.year_type, out=args.out,
                             gsd_m=args.gsd or SEASON_GSD_M, surveys=not args.no_surveys,
                             scenes=not args.no_scenes, **_records(args))
    images = sum(1 for r in season.flights if r.get("kind") == "survey")
    print(f"season {season.weather.year}: {len(season.fields)} fields, {images} survey "
          f"GeoTIFFs, {len(season.flights)} flight records, {len(season.scenes)} satellite "
          f"scenes, {len(season.records)} officers' records, heading "
          f"{heading_summary(season.truth)}; written to {season.out}")
    return 0


def cmd_live(args, settings: Settings) -> int:
    from agri.clock import today_local
    from agri.simulator.publish import run_live

    today = today_local()
    start, year = (_date(args.from_date, args.year, "--from-date") if args.from_date
                   else (None, args.year))
    year = year or default_year(today)
    start = date(year, start.month, start.day) if start else live_from_date(today, year)
    fleet = _fleet(args, settings, year)
    return _print(run_live(settings, fleet, from_date=start, stop=_stop_on_signals(),
                           history_h=args.history_hours, hours=args.hours), args)


def _window(args) -> tuple[int, date, date]:
    from agri.clock import today_local

    first, year = _date(args.start, args.year, "--start")
    last, year = _date(args.end, year, "--end")
    year = year or default_year(today_local())
    return year, date(year, first.month, first.day), date(year, last.month, last.day)


def cmd_accelerated(args, settings: Settings) -> int:
    from agri.simulator.publish import run_accelerated

    year, first, last = _window(args)
    return _print(run_accelerated(settings, _fleet(args, settings, year, last), first=first,
                                  last=last), args)


def cmd_backfill(args, settings: Settings) -> int:
    from agri.simulator.publish import run_backfill

    year, first, last = _window(args)
    return _print(run_backfill(settings, _fleet(args, settings, year, last), first=first,
                               last=last), args)


def cmd_device(args, settings: Settings) -> int:
    from urllib.parse import quote

    from agri import mqtt
    from agri.simulator.prototype import play
    from agri.simulator.publish import SimulatorError

    if not args.password:
        raise SimulatorError("give the device's MQTT password: --password or "
                             "AGRI_DEVICE_PASSWORD")
    if not 1 <= args.count <= 10_000 or (args.interval is not None and args.interval < 1) \
            or not 0 <= args.listen <= 86_400:
        raise SimulatorError("--count is 1 to 10000, --interval at least 1 s, --listen 0 to "
                             "86400 s")
    address = mqtt.parse_url(settings.broker_url("admin"))
    scheme = "mqtts" if address.tls else "mqtt"
    query = f"?cafile={quote(address.cafile)}" if address.cafile else ""
    url = (f"{scheme}://{quote(args.username or args.id, safe='')}:"
           f"{quote(args.password, safe='')}@{address.host}:{address.port}{query}")
    played = play(url, args.id, args.profile, faults=args.fault, count=args.count,
                  interval_s=args.interval, listen_s=args.listen, seed=args.seed,
                  stop=_stop_on_signals())
    if args.json:
        print(orjson.dumps({"device_id": args.id, "profile": args.profile,
                            "faults": sorted(args.fault), **played.to_json()}).decode())
    else:
        print(f"device {args.id} ({args.profile}): {played.packs} packs, {played.records} "
              f"records sent; {played.commands} commands received, {played.answered} answered")
    return 0


def cmd_load(args, settings: Settings) -> int:
    from agri.simulator.publish import run_load

    return _print(run_load(settings, devices=args.devices, rate=args.rate, seconds=args.seconds,
                           qos=args.qos, prefix=args.prefix, stop=_stop_on_signals()), args)
