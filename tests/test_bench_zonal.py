"""`agri bench zonal` on a small image: it runs all three methods on the drone
image and the Sentinel-2-like scene, and its last line is one JSON object."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import rasterio

from agri.analytics import imagery
from agri.deploy import bench_zonal


def test_small_bench_prints_its_figures_as_json(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "agri.cli", "bench", "zonal", "--size", "600", "--fields", "16",
         "--seed", "3", "--dir", str(tmp_path)],
        capture_output=True, text=True, timeout=300, check=True)
    lines = out.stdout.strip().splitlines()
    report = json.loads(lines[-1])
    assert report["bench"] == "zonal"
    for key in ("ratio_vs_exactextract", "ratio_vs_rasterstats", "peak_rss_mb", "seconds",
                "seconds_exactextract", "seconds_rasterstats", "ratio"):
        assert report[key] > 0, key
    assert report["max_rel_diff"] < 1e-6  # our means are exactextract's
    assert all(v < 1e-5 for v in report["max_abs_diff_vs_exactextract"].values())
    assert report["rasterstats_means_max_rel_diff"] > report["max_rel_diff"]
    assert report["image"]["size"] == 600 and report["image"]["fields"] == 16
    s2 = report["s2"]
    assert 0 < s2["fields_seen"] <= 16
    for name in ("ndvi", "gndvi", "ndre"):
        assert s2[name]["ours_vs_exactextract_max_rel_diff"] < 1e-6
        assert s2[name]["rasterstats_vs_exactextract_max_rel_diff"] > 1e-3  # 10 m pixels
    assert any("exactextract" in line for line in lines[:-1])
    # The images are what the bench says they are.
    image = imagery.open_image(tmp_path / "drone-600.tif")
    assert image.source == "drone-p4m" and image.width == image.height == 600
    assert image.block_shape == (bench_zonal.TILE, bench_zonal.TILE)
    scene = imagery.open_image(tmp_path / "s2.tif")
    assert scene.source == "sentinel-2-l2a"
    with rasterio.open(scene.path) as ds:
        scl = ds.read(scene.band_index["scl"])
    assert {imagery.SCL_CLOUD_HIGH, imagery.SCL_CLOUD_SHADOW} <= set(np.unique(scl).tolist())
    # A second run reuses the images it finds.
    again = subprocess.run(
        [sys.executable, "-m", "agri.cli", "bench", "zonal", "--size", "600", "--fields", "16",
         "--seed", "3", "--dir", str(tmp_path), "--scene", "drone"],
        capture_output=True, text=True, timeout=300, check=True)
    assert "reusing" in again.stdout
    assert "s2" not in json.loads(again.stdout.strip().splitlines()[-1])


def test_bench_refuses_a_size_too_small(capsys) -> None:
    assert bench_zonal.main(["--size", "10"]) == 2
    assert "--size must be at least" in capsys.readouterr().err
