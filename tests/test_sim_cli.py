"""`agri simulate`, run as a user runs it: the modes in --help, the weather CSV, a season's
files that `agri fields import` accepts, and `agri simulate live` with no arguments (what
`agri up --simulate` starts) feeding readings stamped now through ingest."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import rasterio

from agri.cli import build_parser
from agri.simulator.weather import DAILY_COLUMNS
from tests.fix_stack import wait_for

MODES = ("weather", "season", "live", "accelerated", "backfill", "load")
LIVE_FIELDS = 12  # the default fleet of `agri simulate live`
SURVEY_BANDS = 5


def agri(*args: str) -> subprocess.CompletedProcess:
    """`agri` without servers."""
    return subprocess.run([sys.executable, "-m", "agri.cli", *args], capture_output=True,
                          text=True, check=True, timeout=120)


def test_help_lists_every_mode(capsys):
    text = agri("simulate", "--help").stdout
    for mode in MODES:
        assert f"\n    {mode}" in text and f"\n  {mode}" in text, mode
    assert "AGRI_MAX_AGE_DAYS" in text
    for mode in MODES:
        with pytest.raises(SystemExit):
            build_parser().parse_args(["simulate", mode, "--help"])
        assert capsys.readouterr().out.startswith("usage: agri simulate " + mode)


def test_weather_writes_the_daily_columns(tmp_path):
    out = tmp_path / "weather.csv"
    agri("simulate", "weather", "--years", "2", "--seed", "1", "--out", str(out))
    with out.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert tuple(rows[0]) == DAILY_COLUMNS == ("date", "tmean", "tmax", "tmin",
                                               "precipitation_mm", "sunshine_h", "wind_ms", "rh")
    assert len(rows) - 1 == 730
    assert rows[1][0] == "2001-01-01" and rows[-1][0] == "2002-12-31"


def test_season_files_import_and_open(platform, tmp_path):
    out = tmp_path / "season"
    agri("simulate", "season", "--fields", "3", "--seed", "1", "--out", str(out),
         "--gsd", "1.0")
    imported = platform.cli("fields", "import", str(out / "fields.geojson"), "--create-owners")
    assert "imported 3 fields" in imported.stdout
    ids = [f["properties"]["id"] for f in
           json.loads((out / "fields.geojson").read_text(encoding="utf-8"))["features"]]
    assert platform.sql("SELECT count(*) FROM fields WHERE id = ANY(%s)", (ids,))[0][0] == 3
    with (out / "truth.csv").open(newline="", encoding="utf-8") as fh:
        truth = list(csv.DictReader(fh))
    assert sorted(t["field"] for t in truth) == sorted(ids)
    images = sorted((out / "flights").glob("*.tif"))
    assert images
    with rasterio.open(images[0]) as src:
        assert src.count == SURVEY_BANDS and src.res == (1.0, 1.0)
    scenes = [json.loads(line) for line in
              (out / "scenes" / "records.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {s["source"] for s in scenes} == {"sentinel-2-l2a", "commercial-2m"}
    # The officers' records import as they are.
    with (out / "observations.csv").open(newline="", encoding="utf-8") as fh:
        records = list(csv.DictReader(fh))
    assert list(records[0]) == ["field", "kind", "date", "value"]
    assert sum(r["kind"] == "heading" for r in records) == 3  # every field, by default
    platform.cli("observations", "import", str(out / "observations.csv"))
    # The same paddies have other years' records from other tests: count this year's.
    years = sorted({r["date"][:4] for r in records})
    stored = platform.sql("SELECT kind, count(*) FROM observations WHERE field_id = ANY(%s) "
                          "AND year = ANY(%s::int[]) GROUP BY kind", (ids, years))
    assert dict(stored) == {k: sum(r["kind"] == k for r in records)
                            for k in {r["kind"] for r in records}}


def test_backfill_stops_at_end_with_the_same_fields_and_truth(platform, tmp_path):
    """`backfill --end` replays a season up to a day: no reading after it, the officers'
    records up to it, and the same fields, ids and truth as `season` gives."""
    season = tmp_path / "season"
    agri("simulate", "season", "--fields", "3", "--seed", "4", "--year", "2025", "--out",
         str(season), "--no-surveys", "--no-scenes")
    replay = tmp_path / "replay"
    done = platform.cli("simulate", "backfill", "--fields", "3", "--seed", "4", "--year",
                        "2025", "--start", "07-25", "--end", "08-03", "--out", str(replay),
                        "--prefix", "tbe", "--no-faults", "--json")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["mode"] == "backfill" and summary["rows_written"] > 0
    first, last = platform.sql(
        "SELECT min(time AT TIME ZONE 'Asia/Tokyo'), max(time AT TIME ZONE 'Asia/Tokyo') "
        "FROM readings WHERE device_id LIKE 'tbe-%%'")[0]
    assert first.date().isoformat() == "2025-07-25"
    assert last.date().isoformat() == "2025-08-03"
    for name in ("fields.geojson", "truth.csv"):
        assert (replay / name).read_bytes() == (season / name).read_bytes(), name
    with (replay / "observations.csv").open(newline="", encoding="utf-8") as fh:
        replayed = list(csv.DictReader(fh))
    with (season / "observations.csv").open(newline="", encoding="utf-8") as fh:
        whole = list(csv.DictReader(fh))
    assert replayed == [r for r in whole if r["date"] <= "2025-08-03"]
    assert len(replayed) < len(whole)


def test_an_old_accelerated_window_says_which_setting_to_change(platform):
    done = platform.cli("simulate", "accelerated", "--fields", "2", "--year", "2024",
                        check=False)
    assert done.returncode == 2
    assert "AGRI_MAX_AGE_DAYS=" in done.stderr


def test_live_with_no_arguments_feeds_ingest_with_readings_of_today(platform):
    worker = platform.start_ingest("sim2")
    log = platform.home / "simulate-live.log"
    out = platform.home / "simulate-live.out"
    with log.open("wb") as err, out.open("wb") as std:
        proc = subprocess.Popen([sys.executable, "-m", "agri.cli", "simulate", "live",
                                 "--json"], env=platform.env(), stdout=std, stderr=err)
    try:
        wait_for(lambda: b"live: season" in log.read_bytes() or proc.poll() is not None,
                 what="the live simulator to start publishing")
        assert proc.poll() is None, log.read_text()
        fresh = ("SELECT count(*) FROM readings WHERE device_id LIKE 'sim-%%' "
                 "AND time > now() - interval '1 hour'")
        wait_for(lambda: platform.sql(fresh)[0][0] > 0, what="readings of the last hour")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    try:
        assert proc.returncode == 0, log.read_text()
        summary = json.loads(out.read_text().strip().splitlines()[-1])
        assert summary["mode"] == "live" and summary["messages"] > 0
        devices = platform.sql("SELECT id FROM devices WHERE id LIKE 'sim-%%'")
        ids = [d for (d,) in devices]
        assert sum(i.startswith("sim-pw-") for i in ids) >= 0.7 * LIVE_FIELDS

        def counts() -> tuple[int, int]:
            return (platform.sql("SELECT count(*) FROM readings WHERE device_id = ANY(%s)",
                                 (ids,))[0][0],
                    platform.sql("SELECT count(*) FROM rejects WHERE device_id = ANY(%s)",
                                 (ids,))[0][0])

        expected = (summary["good"], summary["rejected"])
        wait_for(lambda: sum(counts()) >= sum(expected), what=f"{expected} stored, rejected")
        assert counts() == expected
        newest = platform.sql("SELECT extract(epoch FROM max(time)) FROM readings "
                              "WHERE device_id = ANY(%s)", (ids,))[0][0]
        assert abs(float(newest) - time.time()) < 3600
        folders = list(Path(platform.home, "simulator").glob("season-*"))
        assert any((f / "fields.geojson").exists() for f in folders)
    finally:
        platform.stop_ingest(worker)
