"""The simulator's modes against the real broker and database: an accelerated stretch of a
season reconciles exactly (published = stored + repeated + rejected, and every drone flight
record stored once as published), backfill writes the expected rows once, and the load
generator publishes the asked count."""

from __future__ import annotations

import json
import time
from datetime import date, datetime, timedelta

import pytest

from agri.clock import today_local
from agri.settings import Settings
from agri.simulator.cli import default_year
from agri.simulator.publish import (
    SimulatorError,
    run_accelerated,
    run_backfill,
    run_load,
)
from agri.simulator.season import simulate_season
from agri.simulator.sensors import DAY_S, FaultRates, Fleet, local_midnight
from tests.fix_stack import wait_for

# The latest season over; its August lies within 430 days of any day of the following year.
YEAR = default_year(today_local())
FIRST, LAST = date(YEAR, 9, 10), date(YEAR, 9, 23)
MAX_AGE_DAYS = "430"
STRETCH_DAYS = 14
# More faults than the defaults, so that a short run has rejects and duplicates to count.
RATES = FaultRates(duplicate=0.03, spike=0.01, offline=0.03, clock_skew=0.5)
SETTLE_S = 90.0


@pytest.fixture(scope="module")
def settings(platform) -> Settings:
    """Given servers (AGRI_DATABASE_URL / AGRI_MQTT_URL), as a deployment would set them."""
    return Settings(home=platform.home, database_url=platform.db_url,
                    mqtt_url=platform.admin_url(), max_age_days=float(MAX_AGE_DAYS))


@pytest.fixture(scope="module")
def worker(platform):
    proc = platform.start_ingest("sim1", AGRI_MAX_AGE_DAYS=MAX_AGE_DAYS)
    try:
        yield proc
    finally:
        platform.stop_ingest(proc)


def make_fleet(tmp_path, *, fields: int, seed: int, prefix: str,
               rates: FaultRates = RATES) -> Fleet:
    season = simulate_season(fields=fields, seed=seed, year=YEAR, out=tmp_path, surveys=False)
    return Fleet(season, seed=seed, rates=rates, prefix=prefix)


def stored_and_rejected(platform, ids: list[str]) -> tuple[int, int]:
    stored = platform.sql("SELECT count(*) FROM readings WHERE device_id = ANY(%s)", (ids,))
    rejected = platform.sql("SELECT count(*) FROM rejects WHERE device_id = ANY(%s)", (ids,))
    return stored[0][0], rejected[0][0]


def flight_days(fleet: Fleet, kind: str) -> list[date]:
    return sorted(datetime.fromisoformat(r["started_at"]).date()
                  for r in fleet.flights.records if r["kind"] == kind)


def stored_flights(platform, drones: list[str]) -> list[tuple[str, str, str | None, float]]:
    return sorted(platform.sql(
        "SELECT drone_id, kind, field_id, extract(epoch FROM time)::float8 FROM drone_records "
        "WHERE drone_id = ANY(%s)", (drones,)))


def test_an_accelerated_stretch_reconciles_exactly(platform, settings, worker, tmp_path):
    fleet = make_fleet(tmp_path, fields=4, seed=5, prefix="tacc")
    ids = [d.id for d in fleet.devices]
    # Two weeks ending with the first survey after the last spray: both kinds of flight.
    last = min(d for d in flight_days(fleet, "survey") if d > flight_days(fleet, "spray")[-1])
    first = last - timedelta(days=STRETCH_DAYS - 1)
    began = time.monotonic()
    summary = run_accelerated(settings, fleet, first=first, last=last)
    published_s = time.monotonic() - began
    assert summary.readings == summary.good + summary.repeated + summary.rejected
    assert summary.repeated > 0 and summary.rejected > 0 and summary.flushed > 0

    wait_for(lambda: sum(stored_and_rejected(platform, ids)) >= summary.good + summary.rejected,
             timeout=SETTLE_S, what=f"{summary.good} stored and {summary.rejected} rejected")
    assert stored_and_rejected(platform, ids) == (summary.good, summary.rejected)
    settled_s = time.monotonic() - began
    print(f"\naccelerated {first}..{last}: {summary.text()}\n  published in "
          f"{published_s:.1f} s, all stored or rejected after {settled_s:.1f} s")

    # What is stored is exactly what the fleet says ingest keeps, value for value.
    start, end = local_midnight(first), local_midnight(last) + DAY_S
    expected = {(d, m, round(t, 3), v) for d, m, t, v, _ in fleet.rows(start, end)}
    got = platform.sql("SELECT device_id, metric, extract(epoch FROM time)::float8, value "
                       "FROM readings WHERE device_id = ANY(%s)", (ids,))
    assert {(d, m, round(t, 3), v) for d, m, t, v in got} == expected
    reasons = platform.sql("SELECT DISTINCT reason FROM rejects WHERE device_id = ANY(%s)",
                           (ids,))
    assert all("outside the physical range" in r for (r,) in reasons)

    # Every drone flight record published is stored once, with its kind and field.
    drones = fleet.flights.drones
    published = []
    for topic, payload, _ in fleet.flights.messages(start, end):
        body = json.loads(payload)
        assert topic == f"agri/v1/drones/{body['drone_id']}/flights"
        published.append((body["drone_id"], body["kind"], body.get("field"),
                          datetime.fromisoformat(body["started_at"]).timestamp()))
    assert summary.flights == len(published)
    assert {kind for _, kind, _, _ in published} == {"spray", "survey"}
    wait_for(lambda: len(stored_flights(platform, drones)) >= summary.flights,
             timeout=SETTLE_S, what=f"{summary.flights} drone flight records stored")
    assert stored_flights(platform, drones) == sorted(published)
    print(f"  drone flight records: {summary.flights} published, "
          f"{len(stored_flights(platform, drones))} stored")
    profiles = platform.sql("SELECT DISTINCT profile FROM devices WHERE id = ANY(%s)", (drones,))
    assert profiles == [("drone",)]


def test_an_old_window_is_refused_naming_the_setting(platform, tmp_path):
    fleet = make_fleet(tmp_path, fields=2, seed=6, prefix="told")
    strict = Settings(home=platform.home, database_url=platform.db_url,
                      mqtt_url=platform.admin_url(), max_age_days=35.0)
    with pytest.raises(SimulatorError, match="AGRI_MAX_AGE_DAYS="):
        run_accelerated(strict, fleet, first=FIRST, last=LAST)


def test_backfill_writes_the_expected_rows_once(platform, settings, tmp_path):
    fleet = make_fleet(tmp_path, fields=3, seed=7, prefix="tbf")
    ids = [d.id for d in fleet.devices]
    survey = flight_days(fleet, "survey")[0]  # three days around the first survey
    first, last = survey - timedelta(days=1), survey + timedelta(days=1)
    start, end = local_midnight(first), local_midnight(last) + DAY_S
    expected = len(fleet.rows(start, end))
    flights = sorted((d, k, f, t) for d, t, k, f, _, _ in fleet.flights.rows(start, end))
    summary = run_backfill(settings, fleet, first=first, last=last)
    assert summary.rows_written == summary.rows_new == expected > 0
    assert stored_and_rejected(platform, ids) == (expected, 0)
    assert summary.flights == len(flights) > 0
    assert stored_flights(platform, fleet.flights.drones) == flights
    again = run_backfill(settings, fleet, first=first, last=last)
    assert (again.rows_written, again.rows_new) == (expected, 0)
    assert stored_and_rejected(platform, ids) == (expected, 0)
    assert stored_flights(platform, fleet.flights.drones) == flights
    registered = platform.sql("SELECT count(*) FROM devices WHERE id = ANY(%s)", (ids,))
    assert registered[0][0] == len(ids)


def test_load_publishes_the_asked_count(platform, settings, worker):
    summary = run_load(settings, devices=5, rate=1000, seconds=2, prefix="tload")
    assert summary.messages == 2000 and summary.readings == 4000
    ids = [f"tload-{i}" for i in range(5)]
    wait_for(lambda: stored_and_rejected(platform, ids)[0] >= 4000, timeout=SETTLE_S,
             what="4000 load readings stored")
    assert stored_and_rejected(platform, ids) == (4000, 0)
