"""`agri bench api` on a tiny season: it loads through the backfill path,
measures each endpoint, compares the rollup with the raw readings, and its
last line is one JSON object."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from agri.deploy import bench_api


def test_twenty_minute_data_keeps_every_second_ten_minute_reading():
    grid = [1_746_025_200 + 37 + k * 600 for k in range(144)]  # one day, one device's phase
    kept = [t for t in grid if bench_api._keep(600, t)]
    assert len(kept) == 72 and all(b - a == 1200 for a, b in zip(kept, kept[1:], strict=False))
    assert all(bench_api._keep(3600, t) for t in grid)  # hourly metrics are all kept


@pytest.mark.slow
def test_tiny_bench_prints_its_figures_as_json():
    out = subprocess.run(
        [sys.executable, "-m", "agri.cli", "bench", "api", "--fields", "3", "--days", "2",
         "--rate", "10", "--duration", "1"],
        capture_output=True, text=True, timeout=900, check=True)
    lines = out.stdout.strip().splitlines()
    report = json.loads(lines[-1])
    assert report["bench"] == "api"
    assert report["api_workers"] == min(2, os.cpu_count() or 1)
    load = report["load"]
    assert load["fields"] == 3 and load["paddy_sensors"] >= 1 and load["weather_stations"] >= 1
    # Counted in the database, not as acknowledged: every reading, each in the rollup.
    assert load["readings"] > 1000
    assert load["readings"] == load["readings_stored"] == load["readings_in_daily_rollup"]
    assert load["first"] == f"{load['year']}-05-01T00:00:00+09:00"
    assert load["end"] == f"{load['year']}-05-03T00:00:00+09:00"
    for name in ("field_detail", "conditions", "daily_series"):
        r = report[name]
        assert r["requests"] == 10 and r["errors"] == 0, (name, r)
        assert 0 < r["p50_ms"] <= r["p99_ms"], (name, r)
        assert r["target_p99_ms"] == bench_api.TARGETS_MS[name]
        assert r["meets_target"] == (r["p99_ms"] < r["target_p99_ms"])
        assert r["max_rate_under_target"] is None or r["max_rate_under_target"] > 0
        assert r["one_client_p50_ms"] > 0
    page = report["field_page"]
    assert "note" in page or ("p50_ms" in page and page["bytes_max"] > 0)
    baseline = report["baseline"]
    assert baseline["queries"] == bench_api.BASELINE_QUERIES and baseline["mismatches"] == 0
    assert report["ratio"] == round(baseline["rollup_p50_ms"] / baseline["raw_p50_ms"], 3)
    assert any(line.startswith("endpoint") for line in lines)
