"""Drone surveys write georeferenced 5-band GeoTIFFs that match the crop; spray records;
a whole small season on disk."""

from __future__ import annotations

import csv
import json
import logging
import zlib
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
from rasterio.features import geometry_mask

from agri.simulator import drones
from agri.simulator.fields import Field, make_fields
from agri.simulator.season import crop_and_water, simulate_season
from agri.simulator.weather import YearType, simulate_weather

YEAR = 2025
SEED = 2
GSD_M = 0.5
BANDS = ("blue", "green", "red", "red_edge", "nir")
SPRAY_KEYS = {"kind", "drone_id", "field", "product", "target", "rate_l_per_10a",
              "sprayed_area_m2", "volume_l", "started_at", "ended_at"}


@pytest.fixture(scope="module")
def block_scenes() -> tuple[list[Field], list[drones.FieldScene], dict[str, pd.Series]]:
    weather = simulate_weather(year=YEAR, seed=SEED, year_type=YearType.NORMAL)
    fields = make_fields(np.random.default_rng(SEED), 10, year=YEAR)
    block = [f for f in fields if f.block.id == fields[0].block.id]
    growth, paddies = crop_and_water(block, weather, lambda f, part: np.random.default_rng(
        [SEED, zlib.crc32(f.id.encode()), part]))
    levels = {fid: p.daily()["level_m"] for fid, p in paddies.items()}
    scenes = [drones.FieldScene(f, growth[f.id], 0.0) for f in block]
    return block, scenes, levels


def _fly(tmp_path: Path, block_scenes, day: date, gsd_m: float = GSD_M, seed: int = 0,
         ) -> tuple[Path, dict]:
    block, scenes, levels = block_scenes
    scenes = [drones.FieldScene(s.field, s.growth, float(levels[s.field.id][pd.Timestamp(day)]))
              for s in scenes]
    path = tmp_path / f"{day}_{block[0].block.id}_{gsd_m}_{seed}.tif"
    record = drones.survey_flight(block=block[0].block, scenes=scenes, day=day, path=path,
                                  rng=np.random.default_rng(seed), gsd_m=gsd_m)
    return path, record


def _inside(ds, polygons, buffer_m: float = 0.0) -> np.ndarray:
    return ~geometry_mask([p.buffer(buffer_m) for p in polygons], out_shape=ds.shape,
                          transform=ds.transform)


def _ndvi(data: np.ndarray) -> np.ndarray:
    red, nir = data[2].astype(float), data[4].astype(float)
    return (nir - red) / (nir + red)


def test_survey_geotiff_is_georeferenced_reflectance(tmp_path: Path, block_scenes) -> None:
    block = block_scenes[0]
    path, record = _fly(tmp_path, block_scenes, date(YEAR, 7, 15))
    with rasterio.open(path) as ds:
        assert ds.crs.to_epsg() == 6678
        assert ds.count == 5 and ds.descriptions == BANDS
        assert ds.dtypes == ("float32",) * 5
        assert ds.res == (GSD_M, GSD_M)
        assert ds.nodata == drones.NODATA
        assert ds.tags()["AGRI_SOURCE"] == "drone-p4m"
        assert ds.profile["tiled"] and ds.profile["compress"] == "deflate"
        assert [float(ds.tags(i)["centre_nm"]) for i in range(1, 6)] == [450, 560, 650, 730, 840]
        left, bottom, right, top = block[0].block.outline.bounds
        assert ds.bounds.left <= left and ds.bounds.right >= right
        assert ds.bounds.bottom <= bottom and ds.bounds.top >= top
        data = ds.read()
        valid = data[0] != drones.NODATA
        assert valid.mean() > 0.5
        assert (data[:, valid] >= 0).all() and (data[:, valid] <= 1).all()
        ndvi = _ndvi(data)
        for field in block:
            inside = ~geometry_mask([field.polygon.buffer(-1.0)], out_shape=ds.shape,
                                    transform=ds.transform)
            assert ndvi[inside].mean() > 0.5  # a paddy in July
        road = ~geometry_mask([block[0].block.road.buffer(-0.5)], out_shape=ds.shape,
                              transform=ds.transform, all_touched=False)
        assert ndvi[road].mean() < 0.2
    assert record["kind"] == "survey" and record["image"] == path.name
    assert record["fields"] == [f.id for f in block]
    started = datetime.fromisoformat(record["started_at"])
    assert started.utcoffset() == timedelta(hours=9)
    assert datetime.fromisoformat(record["ended_at"]) > started


def test_pixel_size_as_asked_and_paddies_ripen(tmp_path: Path, block_scenes) -> None:
    field = block_scenes[0][0]
    heading = block_scenes[1][0].growth.phenology.heading
    means = {}
    for offset, gsd in ((0, 0.2), (40, 1.0)):
        path, _ = _fly(tmp_path, block_scenes, heading + timedelta(days=offset), gsd_m=gsd)
        with rasterio.open(path) as ds:
            assert ds.res == (gsd, gsd)
            inside = ~geometry_mask([field.polygon.buffer(-1.0)], out_shape=ds.shape,
                                    transform=ds.transform)
            means[offset] = _ndvi(ds.read())[inside].mean()
    assert means[0] > 0.75 and means[40] < means[0] - 0.15


def test_spray_records(block_scenes) -> None:
    block, scenes, _ = block_scenes
    headings = {s.field.id: s.growth.phenology.heading for s in scenes}
    records = drones.spray_flights(fields=block, headings=headings,
                                   rng=np.random.default_rng(0))
    assert len(records) == 2 * len(block)
    for record in records:
        assert set(record) == SPRAY_KEYS
        field = next(f for f in block if f.id == record["field"])
        assert 0 < record["sprayed_area_m2"] <= field.polygon.area
        assert 0.5 <= record["rate_l_per_10a"] <= 1.2
        assert record["volume_l"] == pytest.approx(
            record["rate_l_per_10a"] * record["sprayed_area_m2"] / 1000, abs=0.01)
        started = datetime.fromisoformat(record["started_at"])
        assert started.utcoffset() == timedelta(hours=9)
        assert started < datetime.fromisoformat(record["ended_at"])
        assert abs((started.date() - headings[field.id]).days) <= 10
        assert record["drone_id"] == f"agras-{field.municipality.lower()}"


def test_small_season_on_disk(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="agri.simulator.season")
    season = simulate_season(fields=12, seed=5, year=YEAR, year_type="normal", out=tmp_path,
                             gsd_m=2.0)
    fields = json.loads((tmp_path / "fields.geojson").read_text(encoding="utf-8"))
    assert len(fields["features"]) == 12
    with (tmp_path / "truth.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["field", "cultivar", "transplanted_on", "heading", "maturity",
                             "protein_pct", "sterility_pct", "chalky_pct", "harvest_opens"]
    assert [r["field"] for r in rows] == [f["properties"]["id"] for f in fields["features"]]
    for row in rows:
        assert date.fromisoformat(row["transplanted_on"]) < date.fromisoformat(row["heading"])
        assert 5.0 <= float(row["protein_pct"]) <= 8.5
    blocks = {f.block.id for f in season.fields}
    images = sorted((tmp_path / "flights").glob("*.tif"))
    assert len(images) == 3 * len(blocks)
    records = [json.loads(line) for line in
               (tmp_path / "flights" / "records.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {r["kind"] for r in records} == {"survey", "spray"}
    assert {r["image"] for r in records if r["kind"] == "survey"} == {p.name for p in images}
    assert any("crop and water, round" in m and ": 0 headings moved" in m
               for m in caplog.messages)
    assert any("surveys:" in m for m in caplog.messages)


def test_august_ndvi_spread_is_a_cameras(tmp_path: Path, block_scenes) -> None:
    """The spread of NDVI over a block's paddies in August: edges, gaps between hills,
    panicles, N patches and noise (a noise-free, edge-free canopy spans about 0.02)."""
    block = block_scenes[0]
    path, _ = _fly(tmp_path, block_scenes, date(YEAR, 8, 10), gsd_m=0.25)
    with rasterio.open(path) as ds:
        ndvi = _ndvi(ds.read())[_inside(ds, [f.polygon for f in block])]
    p10, p50, p90 = np.percentile(ndvi, [10, 50, 90])
    print(f"\nAugust survey NDVI over {len(block)} paddies at 0.25 m: 10th {p10:.3f}, "
          f"median {p50:.3f}, 90th {p90:.3f}")
    assert p90 - p10 >= 0.08
    assert 0.7 <= p50 <= 0.9


def test_young_crop_shows_the_water_between_hills(tmp_path: Path, block_scenes) -> None:
    block, scenes, levels = block_scenes
    planted = max(f.transplanted_on for f in block)
    day = planted + timedelta(days=7)
    flooded = [f for f in block if levels[f.id][pd.Timestamp(day)] > 0.01]
    assert flooded
    path, _ = _fly(tmp_path, block_scenes, day, gsd_m=0.15)
    with rasterio.open(path) as ds:
        data = ds.read()
        inside = _inside(ds, [f.polygon for f in flooded], -1.0)
    ndvi = _ndvi(data)[inside]
    water = ndvi < 0.0
    assert 0.2 <= water.mean() <= 0.95  # open water between the young plants ...
    assert (ndvi > 0.5).mean() >= 0.02  # ... and the plants themselves
    assert np.median(data[4][inside][water]) < 0.06  # water is dark in the NIR


def test_levee_pixels_mix_paddy_and_grass(tmp_path: Path, block_scenes) -> None:
    block = block_scenes[0]
    path, _ = _fly(tmp_path, block_scenes, date(YEAR, 7, 15), gsd_m=1.0)
    with rasterio.open(path) as ds:
        ndvi = _ndvi(ds.read())
        core = _inside(ds, [f.polygon for f in block], -3.0)
        edge = _inside(ds, [f.polygon for f in block], 0.5) & ~_inside(
            ds, [f.polygon for f in block], -0.5)
    # Pixels across the paddy edge mix the crop, the unplanted strip and the levee.
    assert np.median(ndvi[edge]) < np.median(ndvi[core]) - 0.02


def test_each_flight_has_its_own_calibration_error(tmp_path: Path, block_scenes) -> None:
    block = block_scenes[0]
    means = []
    for seed in (1, 2, 3):
        path, _ = _fly(tmp_path, block_scenes, date(YEAR, 7, 15), gsd_m=1.0, seed=seed)
        with rasterio.open(path) as ds:
            data = ds.read()
            inside = _inside(ds, [f.polygon for f in block], -3.0)
        means.append([float(data[b][inside].mean()) for b in range(5)])
    means = np.array(means)
    spread = means.std(axis=0) / means.mean(axis=0)
    assert (spread > 0.005).all() and (spread < 0.15).all()  # a few per cent per band
    ratio = means[:, 4] / means[:, 1]  # and not the same factor in every band
    assert ratio.std() / ratio.mean() > 0.003


def test_noise_averages_out_in_coarser_mosaics(tmp_path: Path, block_scenes) -> None:
    field = block_scenes[0][0]
    sds = {}
    for gsd in (0.25, 2.0):
        path, _ = _fly(tmp_path, block_scenes, date(YEAR, 8, 1), gsd_m=gsd)
        with rasterio.open(path) as ds:
            nir = ds.read(5)[_inside(ds, [field.polygon], -2.0)]
        sds[gsd] = float(nir.std())
    assert sds[2.0] < 0.6 * sds[0.25]
