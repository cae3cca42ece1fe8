"""Satellite scenes of a simulated season: the Sentinel-2 L2A and commercial 2 m formats,
area-weighted mixed pixels, clouds with displaced shadows and a cloud mask that misses
their fringe."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
from rasterio.features import geometry_mask
from rasterio.transform import Affine

from agri.simulator import ground, satellite
from agri.simulator.crop import spectral_indices
from agri.simulator.ground import FieldScene
from agri.simulator.season import simulate_season
from agri.simulator.water import MIN_LEVEL_M

YEAR = 2025
SEED = 8
FIELDS = 12
S2_BANDS = ("B03", "B04", "B05", "B08", "SCL")
ESA_CLASSES = {0, 3, 4, 5, 6, 8, 9, 10}


@pytest.fixture(scope="module")
def season(tmp_path_factory):
    return simulate_season(fields=FIELDS, seed=SEED, year=YEAR, year_type="normal",
                           out=tmp_path_factory.mktemp("season"), surveys=False)


def _s2(season) -> list[dict]:
    return [r for r in season.scenes if r["source"] == "sentinel-2-l2a"]


def _utm(geometry):
    to = ground.transformer("EPSG:6678", "EPSG:32654").transform
    return shapely.transform(geometry, lambda xy: np.column_stack(to(xy[:, 0], xy[:, 1])))


def test_records_and_files(season) -> None:
    folder = season.out / "scenes"
    lines = [json.loads(x) for x in (folder / "records.jsonl").read_text().splitlines()]
    assert lines == season.scenes
    assert {r["source"] for r in lines} == {"sentinel-2-l2a", "commercial-2m"}
    s2 = _s2(season)
    assert 7 <= len(s2) <= 10  # about every 10 days, July to September
    days = sorted(datetime.fromisoformat(r["acquired"]) for r in s2)
    assert days[0].month == 7 and days[-1].month == 9
    assert all(8 <= (b - a).days <= 12 for a, b in zip(days, days[1:], strict=False))
    assert any(r["cloud_fraction"] > 0.05 for r in s2)  # some cloudy ...
    assert any(r["cloud_fraction"] < 0.5 for r in s2)  # ... and some usable
    for r in lines:
        assert set(r) == {"source", "file", "acquired", "cloud_fraction"}
        assert (folder / r["file"]).stat().st_size < 2_000_000  # small enough for tests
        assert datetime.fromisoformat(r["acquired"]).utcoffset().total_seconds() == 0
        assert 0.0 <= r["cloud_fraction"] <= 1.0


def test_sentinel2_format(season) -> None:
    record = _s2(season)[0]
    with rasterio.open(season.out / "scenes" / record["file"]) as ds:
        assert ds.crs.to_epsg() == 32654 and ds.res == (10.0, 10.0)
        assert ds.dtypes == ("uint16",) * 5 and ds.descriptions == S2_BANDS
        assert ds.nodata == 0 and ds.profile["tiled"]
        tags = ds.tags()
        assert tags["AGRI_SOURCE"] == "sentinel-2-l2a"
        assert datetime.fromisoformat(tags["ACQUIRED"]).isoformat() == record["acquired"]
        assert (int(tags["BOA_ADD_OFFSET"]), int(tags["QUANTIFICATION_VALUE"])) == (-1000, 10000)
        assert tags["PROCESSING_BASELINE"] == "04.00"
        assert ds.transform.c % 20 == 0 and ds.transform.f % 20 == 0  # the 20 m grid
        data = ds.read()
    valid = data[0] > 0
    assert valid.any() and (~valid).any()  # rendered around the blocks, nodata elsewhere
    assert set(np.unique(data[4])) <= ESA_CLASSES
    assert ((data[4] == 0) == ~valid).all()
    reflectance = (data[:4, valid].astype(float) - 1000) / 10000
    assert reflectance.min() >= -0.1 and reflectance.max() <= 1.0
    # B05 and SCL are 20 m products: constant over each 2 x 2 block of the 20 m grid.
    for band in (2, 4):
        b = data[band]
        h, w = (b.shape[0] // 2) * 2, (b.shape[1] // 2) * 2
        blocks = b[:h, :w].reshape(h // 2, 2, w // 2, 2)
        assert (blocks == blocks[:, :1, :, :1]).all()


def test_commercial_format_and_values(season) -> None:
    record = next(r for r in season.scenes if r["source"] == "commercial-2m")
    day = datetime.fromisoformat(record["acquired"]).astimezone(
        pd.Timestamp(0, tz="Asia/Tokyo").tz).date()
    with rasterio.open(season.out / "scenes" / record["file"]) as ds:
        assert ds.crs.to_epsg() == 6678 and ds.res == (2.0, 2.0)
        assert ds.dtypes == ("uint16",) * 4 and ds.descriptions == ("blue", "green", "red", "nir")
        assert ds.nodata == 0 and ds.tags()["AGRI_SOURCE"] == "commercial-2m"
        data = ds.read().astype(float) / 10000
        for f in season.fields[:4]:
            inside = ~geometry_mask([f.polygon.buffer(-4.0)], out_shape=ds.shape,
                                    transform=ds.transform)
            red, nir = data[2][inside], data[3][inside]
            ndvi = float(np.median((nir - red) / (nir + red)))
            level = float(season.water[f.id].daily()["level_m"].get(pd.Timestamp(day),
                                                                     MIN_LEVEL_M))
            truth = float(spectral_indices(season.growth[f.id].mean_reflectance(day, level))[
                "ndvi"])
            assert abs(ndvi - truth) < 0.1, (f.id, ndvi, truth)


def test_pixels_mix_the_ground_by_area(season) -> None:
    """A 10 m pixel is the mean of the ground in it: rendering at 10 m with sub-pixel
    coverage agrees with rendering at 1 m and averaging."""
    block = season.fields[0].block
    scenes = [FieldScene(f, season.growth[f.id], 0.03) for f in season.fields
              if f.block.id == block.id]
    minx, miny, maxx, maxy = _utm(block.outline).bounds
    left, top = math.floor(minx / 20) * 20, math.ceil(maxy / 20) * 20
    width, height = int((maxx - left) // 10) + 1, int((top - miny) // 10) + 1
    day = date(YEAR, 8, 1)
    coarse = ground.render(blocks=[block], scenes=scenes, day=day, width=width, height=height,
                           transform=Affine(10, 0, left, 0, -10, top), crs="EPSG:32654",
                           rng=np.random.default_rng(1), supersample=10)
    fine = ground.render(blocks=[block], scenes=scenes, day=day, width=width * 10,
                         height=height * 10, transform=Affine(1, 0, left, 0, -1, top),
                         crs="EPSG:32654", rng=np.random.default_rng(2), supersample=2)
    averaged = fine.reshape(5, height, 10, width, 10).mean(axis=(2, 4))
    nir_c, nir_f = coarse[4].ravel(), averaged[4].ravel()
    assert np.abs(nir_c - nir_f).mean() < 0.01
    assert np.corrcoef(nir_c, nir_f)[0, 1] > 0.9
    # Pixels on the road and channels are darker in the NIR than paddy centres.
    road = _utm(block.road)
    on_road = ~geometry_mask([road.buffer(1.0)], out_shape=(height, width),
                             transform=Affine(10, 0, left, 0, -10, top), all_touched=True)
    centres = ~geometry_mask([_utm(s.field.polygon.buffer(-10))
                              for s in scenes], out_shape=(height, width),
                             transform=Affine(10, 0, left, 0, -10, top))
    assert np.median(coarse[4][on_road]) < np.median(coarse[4][centres]) - 0.03


def test_shadows_fall_away_from_the_sun() -> None:
    when = datetime(YEAR, 8, 10, 1, 40, tzinfo=UTC)  # 10:40 local
    zenith, azimuth = satellite.sun_position(when, 140.45, 40.7)
    assert 25 <= zenith <= 40 and 120 <= azimuth <= 170  # morning sun in the south-east
    noon_zenith, noon_azimuth = satellite.sun_position(
        datetime(YEAR, 6, 21, 2, 40, tzinfo=UTC), 140.45, 40.7)  # local solar noon
    assert noon_zenith == pytest.approx(40.7 - 23.44, abs=0.5)
    assert noon_azimuth == pytest.approx(180, abs=3)
    sky = satellite.draw_sky(rng=np.random.default_rng(3), bounds=(0, 0, 5000, 5000),
                             cover=0.3, sun=(zenith, azimuth), cirrus=False)
    dx, dy = sky.shadow_shift
    assert dx < 0 and dy > 0  # north-west of the cloud, opposite the sun
    reach = math.hypot(dx, dy) / math.tan(math.radians(zenith))
    assert satellite.CLOUD_HEIGHT_M[0] <= reach <= satellite.CLOUD_HEIGHT_M[1]
    xs, ys = np.meshgrid(np.arange(0, 5000, 50.0), np.arange(0, 5000, 50.0))
    assert np.allclose(sky.shadow(xs + dx, ys + dy), sky.opacity(xs, ys))
    hidden = (sky.opacity(xs, ys) >= satellite.SCL_CLOUD_MIN).mean()
    assert 0.2 <= hidden <= 0.45


def test_scene_classes_follow_esa() -> None:
    def one(**kw) -> int:
        args = {"red": 0.04, "nir": 0.4, "cloud": 0.0, "shade": 0.0, "veil": 0.0} | kw
        return int(satellite.classify(**{k: np.array([v]) for k, v in args.items()})[0])

    assert one() == 4
    assert one(red=0.12, nir=0.18) == 5
    assert one(red=0.05, nir=0.03) == 6
    assert one(cloud=0.8) == 9 and one(cloud=0.45) == 8
    assert one(cloud=0.2) == 4  # the thin fringe of a cloud is missed
    assert one(shade=0.7) == 3 and one(shade=0.3) == 4  # and the fringe of its shadow
    assert one(veil=0.1) == 10


def test_the_mask_misses_contaminated_cloud_edges(season) -> None:
    """In scenes with clouds over the fields, pixels next to flagged cloud and classed
    as the ground are brighter in green than the clear vegetation around."""
    found = 0
    for record in _s2(season):
        with rasterio.open(season.out / "scenes" / record["file"]) as ds:
            data = ds.read()
        scl = data[4]
        cloud = np.isin(scl, (8, 9))
        if not cloud.any() or cloud.sum() == (scl > 0).sum():
            continue
        near = np.zeros_like(cloud)
        near[1:] |= cloud[:-1]
        near[:-1] |= cloud[1:]
        near[:, 1:] |= cloud[:, :-1]
        near[:, :-1] |= cloud[:, 1:]
        veg = scl == 4
        edge, clear = veg & near, veg & ~near
        if edge.sum() < 3 or clear.sum() < 20:
            continue
        green = (data[0].astype(float) - 1000) / 10000
        found += np.median(green[edge]) > np.median(green[clear]) + 0.01
    assert found >= 1


def test_same_scene_twice(tmp_path: Path, season) -> None:
    again = simulate_season(fields=FIELDS, seed=SEED, year=YEAR, year_type="normal",
                            out=tmp_path, surveys=False)
    assert again.scenes == season.scenes
    name = season.scenes[0]["file"]
    with rasterio.open(season.out / "scenes" / name) as a, \
            rasterio.open(tmp_path / "scenes" / name) as b:
        assert (a.read() == b.read()).all()
