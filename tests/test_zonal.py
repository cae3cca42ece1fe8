"""Exact coverage fractions against shapely's cell-by-cell intersection areas;
zonal statistics against exactextract on small rasters; reprojection from
lon/lat, nodata and cloud masking, fields outside the image, hostile fields."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
from exactextract import exact_extract
from exactextract.raster import RasterioRasterSource
from pyproj import Transformer
from rasterio.transform import Affine
from rasterio.windows import Window
from shapely import affinity
from shapely.geometry import MultiPolygon, Point, Polygon, box, mapping

from agri.analytics import imagery, zonal
from agri.analytics.coverage import coverage_fractions
from agri.analytics.imagery import ImageryError


def north_up(west: float, north: float, xsize: float, ysize: float) -> Affine:
    """rasterio's from_origin, without its deprecated Affine product."""
    return Affine(xsize, 0.0, west, 0.0, -ysize, north)

PLANE = "EPSG:6678"
UTM = "EPSG:32654"
ORIGIN = (-30_000.0, 50_000.0)  # EPSG:6678, near Hirosaki
BANDS = imagery.DRONE_P4M.bands


def _transform(crs_from: str, crs_to: str):
    tr = Transformer.from_crs(crs_from, crs_to, always_xy=True)
    return lambda g: shapely.transform(g, lambda xy: np.column_stack(tr.transform(xy[:, 0],
                                                                                xy[:, 1])))


to_lonlat = _transform(PLANE, "EPSG:4326")
from_lonlat = _transform("EPSG:4326", PLANE)


def reference_fractions(geom, transform: Affine, shape: tuple[int, int]) -> np.ndarray:
    """Cell-by-cell intersection areas by shapely, in cells (any affine transform)."""
    inv = ~transform
    pix = shapely.transform(geom, lambda xy: np.column_stack((
        inv.a * xy[:, 0] + inv.b * xy[:, 1] + inv.c, inv.d * xy[:, 0] + inv.e * xy[:, 1] + inv.f)))
    rows, cols = np.indices(shape)
    cells = shapely.box(cols.ravel(), rows.ravel(), cols.ravel() + 1, rows.ravel() + 1)
    return shapely.area(shapely.intersection(cells, pix)).reshape(shape)


# --- exact coverage -----------------------------------------------------------

UNIT = north_up(0.0, 20.0, 1.0, 1.0)
SIDE = math.sqrt(2.5)
SHAPES = {
    "square of 2.5 cells": box(3.3, 11.2, 3.3 + SIDE, 11.2 + SIDE),
    "triangle": Polygon([(1.2, 2.7), (9.9, 4.35), (4.1, 13.8)]),
    "rotated rectangle": affinity.rotate(box(2.13, 3.37, 14.6, 7.91), 23.0),
    "with a hole": box(1.1, 1.3, 12.7, 12.2).difference(box(4.45, 4.05, 8.3, 9.9)),
    "concave": Polygon([(0.4, 0.6), (15.2, 1.1), (15.7, 9.3), (9.1, 9.8), (8.7, 3.9),
                        (2.2, 4.4), (1.9, 15.1), (0.7, 15.3)]),
    "multipolygon": MultiPolygon([box(0.5, 0.5, 2.25, 3.1), box(6.6, 6.4, 9.05, 8.8)]),
    "grid-aligned": box(2.0, 3.0, 7.0, 9.0),
}


@pytest.mark.parametrize("name", SHAPES)
def test_fractions_equal_cell_intersection_areas(name: str) -> None:
    geom = SHAPES[name]
    got = coverage_fractions(geom, UNIT, (20, 20))
    np.testing.assert_allclose(got, reference_fractions(geom, UNIT, (20, 20)), atol=1e-9)
    assert got.sum() == pytest.approx(geom.area, rel=1e-12)
    assert got.min() >= 0.0 and got.max() <= 1.0


def test_square_covering_two_and_a_half_cells_by_hand() -> None:
    got = coverage_fractions(box(0.5, 18.25, 3.0, 19.25), UNIT, (20, 20))
    np.testing.assert_allclose(got[:2, :3], [[0.125, 0.25, 0.25], [0.375, 0.75, 0.75]],
                               atol=1e-12)
    assert got.sum() == pytest.approx(2.5)


def test_fractions_on_a_rotated_and_rectangular_grid() -> None:
    transform = Affine.translation(100.0, 200.0) @ Affine.rotation(17.0) @ Affine.scale(
        0.7, -1.3)
    geom = affinity.rotate(box(101.0, 180.0, 109.0, 195.0), 5.0)
    got = coverage_fractions(geom, transform, (30, 30))
    np.testing.assert_allclose(got, reference_fractions(geom, transform, (30, 30)), atol=1e-9)
    footprint = affinity.affine_transform(box(0, 0, 30, 30), (
        transform.a, transform.b, transform.d, transform.e, transform.c, transform.f))
    assert got.sum() * 0.7 * 1.3 == pytest.approx(geom.intersection(footprint).area, rel=1e-9)
    assert 0 < got.sum() * 0.7 * 1.3 < geom.area  # partly outside the grid


def test_polygon_partly_outside_the_raster_counts_the_part_inside() -> None:
    geom = affinity.rotate(box(-3.3, 15.2, 6.4, 24.9), 11.0)
    got = coverage_fractions(geom, UNIT, (20, 20))
    inside = geom.intersection(box(0.0, 0.0, 20.0, 20.0)).area
    assert got.sum() == pytest.approx(inside, rel=1e-9)
    np.testing.assert_allclose(got, reference_fractions(geom, UNIT, (20, 20)), atol=1e-9)


# --- weighted quantiles ---------------------------------------------------------


def test_weighted_quantiles_with_equal_weights_are_linear_quantiles() -> None:
    x = np.random.default_rng(0).normal(0.7, 0.1, 501)
    qs = (0.0, 0.1, 0.5, 0.9, 1.0)
    np.testing.assert_allclose(zonal.weighted_quantiles(x, np.ones(501), qs),
                               np.quantile(x, qs), atol=1e-12)


def test_weighted_quantile_matches_exactextract_on_a_half_covered_cell(tmp_path: Path) -> None:
    # Cells of value 1, 2, 3, 4; the field covers all of 1, 2 and 4 and half of 3.
    path = tmp_path / "row.tif"
    with rasterio.open(path, "w", driver="GTiff", width=4, height=1, count=1, dtype="float32",
                       crs=PLANE, transform=north_up(0.0, 1.0, 1.0, 1.0)) as dst:
        dst.write(np.array([[[1, 2, 3, 4]]], dtype=np.float32))
    field = shapely.union_all([box(0, 0, 2, 1), box(2, 0.5, 3, 1), box(3, 0, 4, 1)])
    # By the definition: C = 1, 2, 2.5, 3.5; S = 0, 4, 7, 10.5; q = 0.5 -> S = 5.25.
    assert zonal.weighted_quantiles(np.float32([1, 2, 3, 4]), [1, 1, 0.5, 1], (0.5,))[0] == \
        pytest.approx(2 + 1.25 / 3)
    qs = (0.1, 0.25, 0.5, 0.75, 0.9)
    with rasterio.open(path) as ds:
        theirs = exact_extract(RasterioRasterSource(ds, 1), [{"type": "Feature", "id": 1,
                               "properties": {}, "geometry": mapping(field)}],
                               [f"quantile(q={q})" for q in qs], output="pandas")
    cov = coverage_fractions(field, north_up(0.0, 1.0, 1.0, 1.0), (1, 4)).ravel()
    ours = zonal.weighted_quantiles(np.float32([1, 2, 3, 4]), cov, qs)
    np.testing.assert_allclose(ours, theirs.iloc[0].to_numpy(dtype=float), atol=1e-6)


def test_histogram_quantiles_equal_the_sorted_ones() -> None:
    rng = np.random.default_rng(5)
    qs = (0.0, 0.1, 0.5, 0.9, 0.999, 1.0)
    for trial in range(12):
        n = int(rng.integers(5_000, 200_000))
        x = rng.normal(0.7, 0.05, n).astype(np.float32)
        if trial % 3 == 1:
            x = np.round(x, 3).astype(np.float32)  # many ties
        if trial % 3 == 2:
            x[: n // 2] = 0.5  # half the field one value
        w = np.ones(n)
        edge = rng.random(n) < 0.03
        w[edge] = rng.uniform(1e-6, 1.0, int(edge.sum()))
        np.testing.assert_allclose(zonal._quantiles(x, w, qs), zonal.weighted_quantiles(x, w, qs),
                                   rtol=0, atol=1e-12)


# --- zonal statistics against exactextract ---------------------------------------


def write_drone(path: Path, data: np.ndarray, *, pixel: float = 0.5, block: int = 64) -> Path:
    profile = {"driver": "GTiff", "width": data.shape[2], "height": data.shape[1], "count": 5,
               "dtype": "float32", "crs": PLANE, "transform": north_up(*ORIGIN, pixel, pixel),
               "nodata": -1.0, "tiled": True, "blockxsize": block, "blockysize": block,
               "compress": "deflate"}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        for i, b in enumerate(BANDS, start=1):
            dst.set_band_description(i, b)
        dst.update_tags(AGRI_SOURCE="drone-p4m")
    return path


def random_drone(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    base = np.array([0.03, 0.08, 0.04, 0.3, 0.5], dtype=np.float32)[:, None, None]
    return (base * rng.uniform(0.5, 1.5, (5, height, width))).astype(np.float32)


def random_fields(rng: np.random.Generator, count: int, extent_m: tuple[float, float]
                  ) -> dict[str, Polygon]:
    x0, y0 = ORIGIN
    out = {}
    for k in range(count):
        cx, cy = x0 + rng.uniform(5, extent_m[0] - 5), y0 - rng.uniform(5, extent_m[1] - 5)
        half_w, half_h = rng.uniform(1.3, 9.7, 2)
        out[f"f{k:02d}"] = affinity.rotate(box(cx - half_w, cy - half_h, cx + half_w,
                                               cy + half_h), rng.uniform(0, 90))
    out["triangle"] = Polygon([(x0 + 3.37, y0 - 2.21), (x0 + 41.9, y0 - 9.13),
                               (x0 + 17.3, y0 - 38.6)])
    out["holed"] = box(x0 + 50.3, y0 - 60.7, x0 + 80.1, y0 - 31.9).difference(
        box(x0 + 58.2, y0 - 52.3, x0 + 66.9, y0 - 40.4))
    return out


def exactextract_stats(image_path: Path, fields_lonlat: dict[str, Polygon], tmp_path: Path
                       ) -> pd.DataFrame:
    """exactextract's mean, stdev, quantiles of the indices and the band means."""
    image = imagery.open_image(image_path)
    with rasterio.open(image_path) as ds:
        refl, valid = imagery.read_window(ds, image, Window(0, 0, ds.width, ds.height))
        profile = ds.profile
    bands = dict(zip(image.bands, refl, strict=True))
    idx = np.stack([imagery.index(n, bands) for n in image.indices])
    idx[:, ~valid] = -9999.0
    index_path = tmp_path / "indices.tif"
    with rasterio.open(index_path, "w", **profile | {"count": 3, "nodata": -9999.0}) as dst:
        dst.write(idx)
    # A pixel with any band missing is not valid in any band: the same for exactextract.
    masked_path = tmp_path / "masked.tif"
    with rasterio.open(masked_path, "w", **profile) as dst:
        dst.write(np.where(valid, refl, np.float32(-1.0)))
    features = [{"type": "Feature", "id": k, "properties": {"field": k},
                 "geometry": mapping(from_lonlat(g))} for k, g in fields_lonlat.items()]
    ops = ["mean", "stdev", "quantile(q=0.1)", "quantile(q=0.5)", "quantile(q=0.9)", "count"]
    with rasterio.open(index_path) as ix, rasterio.open(masked_path) as im:
        ind = exact_extract([RasterioRasterSource(ix, i + 1, name=n)
                             for i, n in enumerate(image.indices)], features, ops,
                            include_cols=["field"], output="pandas").set_index("field")
        means = exact_extract([RasterioRasterSource(im, i + 1, name=b)
                               for i, b in enumerate(BANDS)], features, ["mean"],
                              include_cols=["field"], output="pandas").set_index("field")
    return ind.join(means)


@pytest.fixture(scope="module")
def drone_case(tmp_path_factory) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    tmp = tmp_path_factory.mktemp("drone")
    rng = np.random.default_rng(7)
    data = random_drone(rng, 240, 200)
    data[:, 100:112, 40:70] = -1.0  # a gap in the mosaic
    data[2, 30:33, 150:160] = -1.0  # one band missing
    path = write_drone(tmp / "drone.tif", data)
    fields = {k: to_lonlat(g) for k, g in random_fields(rng, 25, (100.0, 120.0)).items()}
    ours = zonal.zonal_stats(path, {k: mapping(g) for k, g in fields.items()})
    return ours, exactextract_stats(path, fields, tmp), fields


def test_statistics_match_exactextract(drone_case) -> None:
    ours, theirs, _ = drone_case
    theirs = theirs.reindex(ours.index)
    for name in ("ndvi", "gndvi", "ndre"):
        np.testing.assert_allclose(ours[f"{name}_mean"], theirs[f"{name}_mean"], rtol=1e-6)
        np.testing.assert_allclose(ours[f"{name}_std"], theirs[f"{name}_stdev"], rtol=1e-5)
        for q in (10, 50, 90):
            np.testing.assert_allclose(ours[f"{name}_p{q}"], theirs[f"{name}_quantile_{q}"],
                                       rtol=0, atol=1e-6)
    for band in BANDS:
        np.testing.assert_allclose(ours[f"{band}_mean"], theirs[f"{band}_mean"], rtol=1e-6)
    np.testing.assert_allclose(ours["pixels"], theirs["ndvi_count"], rtol=1e-6)


def test_columns_and_valid_fraction(drone_case) -> None:
    ours, _, fields = drone_case
    assert list(ours.index) == list(fields) and ours.index.name == "field"
    assert list(ours.columns) == [f"{q}_{s}" for q in ("ndvi", "gndvi", "ndre")
                                  for s in ("mean", "std", "p10", "p50", "p90")] + [
        f"{b}_mean" for b in BANDS] + ["valid_fraction", "pixels"]
    area_px = np.array([from_lonlat(g).area / 0.25 for g in fields.values()])
    np.testing.assert_allclose(ours["valid_fraction"], np.minimum(ours["pixels"] / area_px, 1),
                               rtol=1e-6)
    assert ours["valid_fraction"].max() == pytest.approx(1.0)
    assert ours["valid_fraction"].min() < 0.99  # the gap and the missing band are not counted


def test_results_do_not_depend_on_strips_or_column_runs(tmp_path: Path, monkeypatch) -> None:
    rng = np.random.default_rng(11)
    path = write_drone(tmp_path / "d.tif", random_drone(rng, 300, 400), block=16)
    fields = {k: mapping(to_lonlat(g)) for k, g in random_fields(rng, 30, (200.0, 150.0)).items()}
    whole = zonal.zonal_stats(path, fields)
    monkeypatch.setattr(zonal, "STRIP_BYTES", 1)  # one block row (16 rows) per strip
    monkeypatch.setattr(zonal, "COLUMN_GAP_BLOCKS", 0)  # a read per run of touching fields
    pd.testing.assert_frame_equal(zonal.zonal_stats(path, fields), whole, rtol=1e-12)


# --- reprojection, masking, outside, hostile --------------------------------------


def write_s2(path: Path, dn: np.ndarray, scl: np.ndarray, transform: Affine) -> Path:
    with rasterio.open(path, "w", driver="GTiff", width=dn.shape[2], height=dn.shape[1],
                       count=5, dtype="uint16", crs=UTM, transform=transform, nodata=0) as dst:
        dst.write(np.concatenate((dn, scl[None])).astype(np.uint16))
        for i, name in enumerate(("B03", "B04", "B05", "B08", "SCL"), start=1):
            dst.set_band_description(i, name)
        dst.update_tags(AGRI_SOURCE="sentinel-2-l2a")
    return path


def test_lonlat_field_over_a_utm_scene_with_clouds(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    transform = north_up(470_000.0, 4_495_000.0, 10.0, 10.0)
    dn = rng.integers(1_100, 5_000, (4, 40, 40))
    scl = np.full((40, 40), imagery.SCL_VEGETATION)
    scl[:, :20] = imagery.SCL_CLOUD_HIGH  # the western half under cloud
    scl[30:, 20:] = imagery.SCL_CLOUD_SHADOW
    path = write_s2(tmp_path / "s2.tif", dn, scl, transform)
    # A 30 m x 100 m paddy, rotated, straddling the cloud's edge, given in lon/lat.
    paddy_utm = affinity.rotate(box(470_183.0, 4_494_823.0, 470_213.0, 4_494_923.0), 12.0)
    paddy = _transform(UTM, "EPSG:4326")(paddy_utm)
    clear_utm = paddy_utm.intersection(box(470_200.0, 4_494_700.0, 470_400.0, 4_495_000.0))
    row = zonal.zonal_stats(path, {"paddy": mapping(paddy)}).loc["paddy"]
    assert row["valid_fraction"] == pytest.approx(clear_utm.area / paddy_utm.area, rel=1e-6)
    assert row["pixels"] == pytest.approx(clear_utm.area / 100.0, rel=1e-6)
    # The same mean from the clear part alone, weighted by shapely's areas.
    cov = reference_fractions(clear_utm, transform, (40, 40))
    refl = (dn - 1000) / 10_000
    ndvi = ((refl[3] - refl[1]) / (refl[3] + refl[1])).astype(np.float32)
    assert row["ndvi_mean"] == pytest.approx(float((cov * ndvi).sum() / cov.sum()), rel=1e-6)
    assert row["nir_mean"] == pytest.approx(float((cov * refl[3]).sum() / cov.sum()), rel=1e-6)


def test_field_fully_under_cloud_or_outside_gets_nan_not_an_error(tmp_path: Path) -> None:
    transform = north_up(470_000.0, 4_495_000.0, 10.0, 10.0)
    dn = np.full((4, 20, 20), 2_000)
    scl = np.full((20, 20), imagery.SCL_VEGETATION)
    scl[:10] = imagery.SCL_CIRRUS
    path = write_s2(tmp_path / "s2.tif", dn, scl, transform)
    to_geo = _transform(UTM, "EPSG:4326")
    fields = {"cloud": mapping(to_geo(box(470_020.0, 4_494_930.0, 470_050.0, 4_494_990.0))),
              "far": mapping(to_geo(box(480_000.0, 4_490_000.0, 480_030.0, 4_490_100.0))),
              "clear": mapping(to_geo(box(470_020.0, 4_494_820.0, 470_050.0, 4_494_880.0)))}
    out = zonal.zonal_stats(path, fields)
    for fid in ("cloud", "far"):
        assert out.loc[fid, "valid_fraction"] == 0.0 and out.loc[fid, "pixels"] == 0.0
        assert out.loc[fid].drop(["valid_fraction", "pixels"]).isna().all()
    assert out.loc["clear", "valid_fraction"] == pytest.approx(1.0)
    assert out.loc["clear", "green_mean"] == pytest.approx(0.1, rel=1e-6)


def test_commercial_image_has_no_ndre_columns(tmp_path: Path) -> None:
    transform = north_up(470_000.0, 4_495_000.0, 2.0, 2.0)
    with rasterio.open(tmp_path / "c.tif", "w", driver="GTiff", width=30, height=30, count=4,
                       dtype="uint16", crs=UTM, transform=transform) as dst:
        dst.write(np.stack([np.full((30, 30), v, np.uint16) for v in (400, 700, 500, 3_500)]))
        dst.update_tags(AGRI_SOURCE="commercial-2m")
    field = _transform(UTM, "EPSG:4326")(box(470_010.0, 4_494_950.0, 470_040.0, 4_494_990.0))
    out = zonal.zonal_stats(tmp_path / "c.tif", {"a": field})
    assert not [c for c in out.columns if c.startswith("ndre")]
    assert out.loc["a", "ndvi_mean"] == pytest.approx((0.35 - 0.05) / 0.4, rel=1e-6)
    assert "red_edge_mean" not in out.columns


@pytest.fixture()
def small_drone(tmp_path: Path) -> Path:
    return write_drone(tmp_path / "d.tif", random_drone(np.random.default_rng(0), 64, 64))


def _field_near_origin(dx: float = 5.0) -> Polygon:
    x0, y0 = ORIGIN
    return to_lonlat(box(x0 + dx, y0 - 20.0, x0 + dx + 10.0, y0 - 5.0))


@pytest.mark.parametrize(("geometry", "message"), [
    (Polygon(), "empty polygon"),
    ({"type": "Polygon", "coordinates": []}, "empty polygon"),
    (Point(140.4, 40.6).buffer(0.0), "empty polygon"),
    (mapping(Point(140.4, 40.6)), "a Point, not a Polygon"),
    ({"type": "Polygon", "coordinates": [[[140.40, 40.60], [140.42, 40.62], [140.42, 40.60],
                                          [140.40, 40.61], [140.40, 40.60]]]},
     "invalid polygon .*Self-intersection"),
    (box(400_000.0, 4_500_000.0, 400_030.0, 4_500_100.0), "outside longitude/latitude"),
    ('{"type": "Polygon"}', "not text"),
    ({"type": "Polygon", "coordinates": "x"}, "not a GeoJSON geometry"),
    ({"type": "Polygon", "coordinates": [[[float("nan"), 40.6], [140.4, 40.7],
                                          [140.5, 40.6], [float("nan"), 40.6]]]},
     "not finite|not a GeoJSON geometry"),
])
def test_hostile_fields_name_the_field(small_drone: Path, geometry, message: str) -> None:
    with pytest.raises(ImageryError, match=f"field bad: .*({message})"):
        zonal.zonal_stats(small_drone, {"good": _field_near_origin(), "bad": geometry})


def test_field_outside_the_image_is_not_an_error(small_drone: Path) -> None:
    out = zonal.zonal_stats(small_drone, {"in": _field_near_origin(),
                                          "out": _field_near_origin(dx=5_000.0)})
    assert out.loc["in", "valid_fraction"] == pytest.approx(1.0)
    assert out.loc["out", "valid_fraction"] == 0.0 and np.isnan(out.loc["out", "ndvi_mean"])


def test_image_errors_reach_the_caller(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"\x00" * 100)
    with pytest.raises(ImageryError, match="not a readable GeoTIFF"):
        zonal.zonal_stats(junk, {"a": _field_near_origin()})


def test_oversized_field_is_refused_with_the_fix(small_drone: Path, monkeypatch) -> None:
    monkeypatch.setattr(zonal, "MAX_FIELD_PIXELS", 100)
    with pytest.raises(ImageryError, match="field big spans .* resample the image coarser"):
        zonal.zonal_stats(small_drone, {"big": _field_near_origin()})
