"""The simulator's modes against the real broker and database: an accelerated stretch of a
season reconciles exactly (published = stored + repeated + rejected), backfill writes the
expected rows once, and the load generator publishes the asked count."""

from __future__ import annotations

import time
from datetime import date

import pytest

from agri.settings import Settings
from agri.simulator.publish import (
    SimulatorError,
    default_year,
    run_accelerated,
    run_backfill,
    run_load,
    today_local,
)
from agri.simulator.season import simulate_season
from agri.simulator.sensors import DAY_S, FaultRates, Fleet, local_midnight
from tests.fix_stack import wait_for

# The latest season over, late in it: within 400 days of any day of the following year.
YEAR = default_year(today_local())
FIRST, LAST = date(YEAR, 9, 10), date(YEAR, 9, 23)
MAX_AGE_DAYS = "400"
# More faults than the defaults, so that a short run has rejects and duplicates to count.
RATES = FaultRates(duplicate=0.03, spike=0.01, offline=0.03, clock_skew=0.5)
SETTLE_S = 90.0


@pytest.fixture(scope="module")
def settings(platform) -> Settings:
    """Given servers (AGRI_DATABASE_URL / AGRI_MQTT_URL), as a deployment would set them."""
    return Settings(home=platform.home, database_url=platform.db_url,
                    mqtt_url=platform.simulator_url(), max_age_days=float(MAX_AGE_DAYS))


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


def test_an_accelerated_stretch_reconciles_exactly(platform, settings, worker, tmp_path):
    fleet = make_fleet(tmp_path, fields=4, seed=5, prefix="tacc")
    ids = [d.id for d in fleet.devices]
    began = time.monotonic()
    summary = run_accelerated(settings, fleet, first=FIRST, last=LAST)
    published_s = time.monotonic() - began
    assert summary.readings == summary.good + summary.repeated + summary.rejected
    assert summary.repeated > 0 and summary.rejected > 0 and summary.flushed > 0

    wait_for(lambda: sum(stored_and_rejected(platform, ids)) >= summary.good + summary.rejected,
             timeout=SETTLE_S, what=f"{summary.good} stored and {summary.rejected} rejected")
    assert stored_and_rejected(platform, ids) == (summary.good, summary.rejected)
    settled_s = time.monotonic() - began
    print(f"\naccelerated {FIRST}..{LAST}: {summary.text()}\n  published in "
          f"{published_s:.1f} s, all stored or rejected after {settled_s:.1f} s")

    # What is stored is exactly what the fleet says ingest keeps, value for value.
    start, end = local_midnight(FIRST), local_midnight(LAST) + DAY_S
    expected = {(d, m, round(t, 3), v) for d, m, t, v, _ in fleet.rows(start, end)}
    got = platform.sql("SELECT device_id, metric, extract(epoch FROM time)::float8, value "
                       "FROM readings WHERE device_id = ANY(%s)", (ids,))
    assert {(d, m, round(t, 3), v) for d, m, t, v in got} == expected
    reasons = platform.sql("SELECT DISTINCT reason FROM rejects WHERE device_id = ANY(%s)",
                           (ids,))
    assert all("outside the physical range" in r for (r,) in reasons)


def test_an_old_window_is_refused_naming_the_setting(platform, tmp_path):
    fleet = make_fleet(tmp_path, fields=2, seed=6, prefix="told")
    strict = Settings(home=platform.home, database_url=platform.db_url,
                      mqtt_url=platform.simulator_url(), max_age_days=35.0)
    with pytest.raises(SimulatorError, match="AGRI_MAX_AGE_DAYS="):
        run_accelerated(strict, fleet, first=FIRST, last=LAST)


def test_backfill_writes_the_expected_rows_once(platform, settings, tmp_path):
    fleet = make_fleet(tmp_path, fields=3, seed=7, prefix="tbf")
    ids = [d.id for d in fleet.devices]
    first, last = date(YEAR, 7, 1), date(YEAR, 7, 3)
    expected = len(fleet.rows(local_midnight(first), local_midnight(last) + DAY_S))
    summary = run_backfill(settings, fleet, first=first, last=last)
    assert summary.rows_written == summary.rows_new == expected > 0
    assert stored_and_rejected(platform, ids) == (expected, 0)
    again = run_backfill(settings, fleet, first=first, last=last)
    assert (again.rows_written, again.rows_new) == (expected, 0)
    assert stored_and_rejected(platform, ids) == (expected, 0)
    registered = platform.sql("SELECT count(*) FROM devices WHERE id = ANY(%s)", (ids,))
    assert registered[0][0] == len(ids)


def test_load_publishes_the_asked_count(platform, settings, worker):
    summary = run_load(settings, devices=5, rate=1000, seconds=2, prefix="tload")
    assert summary.messages == 2000 and summary.readings == 4000
    ids = [f"tload-{i}" for i in range(5)]
    wait_for(lambda: stored_and_rejected(platform, ids)[0] >= 4000, timeout=SETTLE_S,
             what="4000 load readings stored")
    assert stored_and_rejected(platform, ids) == (4000, 0)
