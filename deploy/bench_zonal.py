"""`agri bench zonal`: per-field NDVI, GNDVI and NDRE statistics and band means
(:mod:`agri.analytics.zonal`) against exactextract and rasterstats computing
the same statistics on the same image, in the same run.

The image: a drone orthomosaic of ``--size`` x ``--size`` pixels, five
float32 reflectance bands (the ``drone-p4m`` band map), tiled 512 x 512,
DEFLATE with the floating-point predictor, written strip by strip. It covers
``--fields`` paddies of 29-31 m x 98-102 m laid out in blocks as the simulator
lays them (a farm road with a channel either side, two rows of paddies, a
ditch at each end, 0.6 m levees; blocks rotated by up to 1.5 degrees), so
the pixel is the block layout's extent over ``--size`` (about 14 cm for 500
paddies on 10,000 pixels). Each paddy has its own canopy cover, a smooth
pattern within it and 3 % sensor noise; levees, roads and channels have
their own spectra; the corners outside the flown area and a few gaps in the
mosaic are nodata.

What is timed, each part in a child process of its own (so its peak RSS is
its own, read from ``ru_maxrss``), all reading through rasterio with
``GDAL_NUM_THREADS=ALL_CPUS``:

- ours: ``zonal_stats(image, fields)`` from the 5-band image and the fields
  in lon/lat: reading, masking, the three indices, exact coverage, mean,
  std, p10/p50/p90 of each index and the mean of each band.
- exactextract: the same statistics by exactextract (``mean``, ``stdev``,
  ``quantile(q=0.1/0.5/0.9)``) over a 3-band index image (NDVI, GNDVI, NDRE
  computed from the same image by :mod:`agri.analytics.imagery`, masked the
  same way, written tiled and compressed as the image), plus ``mean`` of the
  five bands of the image itself, on the fields reprojected to the image's
  CRS. Writing the index image is not timed (it is printed apart): the
  baseline gets the indices for free.
- rasterstats: ``zonal_stats`` with ``mean std percentile_10 percentile_50
  percentile_90`` on each index band and ``mean`` on each image band
  (centre-in-polygon pixels, unweighted).

``max_rel_diff`` is the largest relative difference between our index means
and exactextract's. The Sentinel-2 part renders the same paddies at 10 m
(UTM 54N, uint16 with the L2A offset, a cloud with its shadow and a cirrus
patch in the scene classes) from the same ground, each 10 m pixel the mean
of 20 x 20 samples of it: our means against exactextract's, and beside them
how far rasterstats' centre counting lands from both and from the ground's
own mean over each field.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import rasterio
import shapely
from pyproj import Transformer
from rasterio.features import rasterize
from rasterio.transform import Affine
from rasterio.windows import Window
from shapely import affinity
from shapely.geometry import Polygon, box, mapping

from agri.analytics import imagery, zonal
from agri.analytics.agronomy import P4M_BANDS
from agri.clock import TZ
from agri.simulator.fields import (
    CHANNEL_WIDTH_M,
    DRAIN_WIDTH_M,
    GEO_CRS,
    LEVEE_M,
    MUNICIPALITIES,
    PADDY_LENGTH_M,
    PADDY_WIDTH_M,
    PLANE_CRS,
    ROAD_WIDTH_M,
    to_plane,
)

FORMAT_VERSION = 1  # bump when the generated images change
BLOCK_COLUMNS = 7  # paddies per row of a block (two rows per block)
BLOCK_GAP_M = 4.0  # between neighbouring blocks
BLOCK_ROTATION_DEG = 1.5
MARGIN_M = 5.0
TILE = 512
NOISE_SD = 0.03  # relative, per band and pixel
MOSAIC_GAPS = 3  # nodata discs inside the flown area
MOSAIC_GAP_RADIUS_M = 4.0
S2_SAMPLES = 20  # ground samples per 10 m pixel and axis
S2_NOISE_SD = 0.01
S2_STRIP_ROWS = 16  # 10 m rows rendered at a time
CLEAR_FRACTION = 0.99  # fields seen at least this much are compared with the ground
INDEX_NODATA = -9999.0
QUANTILE_OPS = ("quantile(q=0.1)", "quantile(q=0.5)", "quantile(q=0.9)")
RASTERSTATS_STATS = "mean std percentile_10 percentile_50 percentile_90"
# The baselines read with GDAL's default block cache (5 % of RAM): they read a block once
# per field that covers it and are the faster for keeping it.
BASELINE_GDAL_ENV = {"GDAL_NUM_THREADS": "ALL_CPUS"}
DRONE_ACQUIRED = datetime(2025, 8, 5, 10, 0, tzinfo=TZ)

# Typical spectra (blue, green, red, red edge, NIR reflectance; assumption).
CANOPY = np.array([0.025, 0.080, 0.035, 0.300, 0.500], dtype=np.float32)
FLOODED_SOIL = np.array([0.060, 0.070, 0.070, 0.080, 0.090], dtype=np.float32)
GRASS = np.array([0.030, 0.080, 0.040, 0.250, 0.380], dtype=np.float32)
ROAD = np.array([0.140, 0.160, 0.180, 0.200, 0.220], dtype=np.float32)
WATER = np.array([0.050, 0.060, 0.050, 0.040, 0.030], dtype=np.float32)
CLOUD = np.array([0.450, 0.460, 0.470, 0.480, 0.500], dtype=np.float32)
SHADOW_FACTOR = np.float32(0.35)
S2_BANDS = tuple(P4M_BANDS[i].name for i in (1, 2, 3, 4))  # green, red, red edge, NIR

_NODATA, _LAND, _LEVEE, _ROAD, _WATER, _FIRST_PADDY = 0, 1, 2, 3, 4, 10


@dataclass(frozen=True, slots=True)
class Layout:
    """Paddies and the ground around them, EPSG:6678 metres."""

    paddies: list[Polygon]  # the first ``fields`` are the fields
    fields: int
    outlines: list[Polygon]
    roads: list[Polygon]
    waters: list[Polygon]
    footprint: Polygon  # flown area
    gaps: list[Polygon]  # holes in the mosaic
    cover: np.ndarray  # canopy cover of each paddy, 0..1
    pattern: np.ndarray  # (paddies, 4): amplitude, wavelength m, direction rad, phase


def make_layout(rng: np.random.Generator, fields: int) -> Layout:
    """Blocks of 2 x BLOCK_COLUMNS paddies on a grid near Hirosaki."""
    blocks = max(1, math.ceil(fields / (2 * BLOCK_COLUMNS)))
    grid_cols = math.ceil(math.sqrt(blocks))
    lat, lon = MUNICIPALITIES["Hirosaki"][:2]
    east0, north0 = to_plane(lon, lat)
    max_u = BLOCK_COLUMNS * PADDY_WIDTH_M[1] + (BLOCK_COLUMNS - 1) * LEVEE_M
    max_v = 2 * (ROAD_WIDTH_M / 2 + CHANNEL_WIDTH_M + PADDY_LENGTH_M[1] + DRAIN_WIDTH_M)
    slack = math.sin(math.radians(BLOCK_ROTATION_DEG)) * max(max_u, max_v)
    step_e, step_n = max_u + slack + BLOCK_GAP_M, max_v + slack + BLOCK_GAP_M
    paddies, outlines, roads, waters = [], [], [], []
    for b in range(blocks):
        e = east0 + (b % grid_cols) * step_e
        n = north0 - (b // grid_cols) * step_n
        width = float(rng.uniform(*PADDY_WIDTH_M))
        length = float(rng.uniform(*PADDY_LENGTH_M))
        angle = float(rng.uniform(-BLOCK_ROTATION_DEG, BLOCK_ROTATION_DEG))
        span_u = BLOCK_COLUMNS * width + (BLOCK_COLUMNS - 1) * LEVEE_M
        inner = ROAD_WIDTH_M / 2 + CHANNEL_WIDTH_M
        span_v = inner + length + DRAIN_WIDTH_M
        u0 = -span_u / 2

        def place(poly: Polygon, e=e, n=n, angle=angle) -> Polygon:
            return affinity.translate(affinity.rotate(poly, angle, origin=(0.0, 0.0)), e, n)

        for side in (1, -1):
            for col in range(BLOCK_COLUMNS):
                u = u0 + col * (width + LEVEE_M)
                v_near, v_far = side * inner, side * (inner + length)
                paddies.append(place(box(u, min(v_near, v_far), u + width, max(v_near, v_far))))
        roads.append(place(box(u0, -ROAD_WIDTH_M / 2, -u0, ROAD_WIDTH_M / 2)))
        waters += [place(box(u0, min(a, c), -u0, max(a, c))) for a, c in (
            (ROAD_WIDTH_M / 2, inner), (-ROAD_WIDTH_M / 2, -inner),
            (inner + length, span_v), (-inner - length, -span_v))]
        outlines.append(place(box(u0, -span_v, -u0, span_v)))
    footprint = shapely.union_all(outlines).convex_hull.buffer(MARGIN_M / 2)
    centres = rng.choice(min(fields, len(paddies)), size=min(MOSAIC_GAPS, fields), replace=False)
    gaps = [paddies[i].centroid.buffer(MOSAIC_GAP_RADIUS_M) for i in centres]
    count = len(paddies)
    pattern = np.column_stack((rng.uniform(0.05, 0.15, count), rng.uniform(12.0, 40.0, count),
                               rng.uniform(0.0, np.pi, count), rng.uniform(0.0, 2 * np.pi, count)))
    return Layout(paddies=paddies, fields=min(fields, count), outlines=outlines, roads=roads,
                  waters=waters, footprint=footprint, gaps=gaps,
                  cover=rng.uniform(0.0, 1.0, count), pattern=pattern)


def field_ids(layout: Layout) -> list[str]:
    return [f"paddy-{i + 1:04d}" for i in range(layout.fields)]


def fields_lonlat(layout: Layout) -> dict[str, dict]:
    """The fields as GeoJSON polygons in lon/lat, as the platform stores them."""
    to_geo = Transformer.from_crs(PLANE_CRS, GEO_CRS, always_xy=True)
    return {fid: mapping(shapely.transform(p, lambda xy: np.column_stack(
        to_geo.transform(xy[:, 0], xy[:, 1])))) for fid, p in zip(
        field_ids(layout), layout.paddies, strict=False)}


def _shapes(layout: Layout, to_crs: Transformer | None = None, *, gaps: bool = True
            ) -> list[tuple[Any, int]]:
    def project(g: Polygon) -> Polygon:
        if to_crs is None:
            return g
        return shapely.transform(g, lambda xy: np.column_stack(to_crs.transform(xy[:, 0],
                                                                                xy[:, 1])))

    shapes: list[tuple[Any, int]] = [(project(layout.footprint), _LAND)]
    shapes += [(project(o), _LEVEE) for o in layout.outlines]
    shapes += [(project(r), _ROAD) for r in layout.roads]
    shapes += [(project(w), _WATER) for w in layout.waters]
    shapes += [(project(p), _FIRST_PADDY + i) for i, p in enumerate(layout.paddies)]
    shapes += [(project(g), _NODATA) for g in (layout.gaps if gaps else [])]
    return shapes


def ground(layout: Layout, labels: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Noise-free reflectance (5, ...) of the ground at EPSG:6678 points ``x``, ``y``
    with ``labels`` from :func:`_shapes`; NaN where nothing was flown."""
    out = np.full((5,) + labels.shape, np.nan, dtype=np.float32)
    for code, spectrum in ((_LAND, (GRASS + ROAD) / 2), (_LEVEE, GRASS), (_ROAD, ROAD),
                           (_WATER, WATER)):
        mask = labels == code
        out[:, mask] = spectrum[:, None]
    paddy = labels >= _FIRST_PADDY
    i = labels[paddy].astype(np.int64) - _FIRST_PADDY
    amp, wave, direction, phase = (layout.pattern[i, k].astype(np.float32) for k in range(4))
    along = x[paddy] * np.cos(direction) + y[paddy] * np.sin(direction)
    wave_x = np.sin(np.float32(2 * np.pi) * (along % wave) / wave + phase)
    cover = np.clip(np.float32(0.35) + np.float32(0.55) * layout.cover[i].astype(np.float32)
                    + amp * wave_x, 0.02, 0.98).astype(np.float32)
    out[:, paddy] = FLOODED_SOIL[:, None] * (1 - cover) + CANOPY[:, None] * cover
    return out


def _coords(transform: Affine, rows: int, cols: int, row0: int) -> tuple[np.ndarray, np.ndarray]:
    c, r = np.meshgrid(np.arange(cols, dtype=np.float64) + 0.5,
                       np.arange(row0, row0 + rows, dtype=np.float64) + 0.5)
    x = transform.a * c + transform.b * r + transform.c
    y = transform.d * c + transform.e * r + transform.f
    return x, y


def write_drone_image(path: Path, layout: Layout, size: int, rng: np.random.Generator,
                      tag: str) -> float:
    """Write the drone image; return its pixel size in metres."""
    minx, miny, maxx, maxy = layout.footprint.bounds
    pixel = max(maxx - minx, maxy - miny) / size
    transform = Affine(pixel, 0.0, minx, 0.0, -pixel, maxy)
    profile = {
        "driver": "GTiff", "width": size, "height": size, "count": 5, "dtype": "float32",
        "crs": PLANE_CRS, "transform": transform, "nodata": imagery.DRONE_P4M.nodata,
        "tiled": True, "blockxsize": TILE, "blockysize": TILE, "compress": "deflate",
        "predictor": 3, "BIGTIFF": "IF_SAFER", "NUM_THREADS": "ALL_CPUS",
    }
    shapes = _shapes(layout)
    with rasterio.open(path, "w", **profile) as dst:
        for i, band in enumerate(P4M_BANDS, start=1):
            dst.set_band_description(i, band.name)
        dst.update_tags(AGRI_SOURCE=imagery.DRONE_P4M.source,
                        ACQUIRED=DRONE_ACQUIRED.isoformat(), BENCH=tag)
        for row in range(0, size, TILE):
            rows = min(TILE, size - row)
            strip_transform = transform @ Affine.translation(0, row)
            labels = rasterize(shapes, out_shape=(rows, size), transform=strip_transform,
                               fill=_NODATA, dtype="uint16")
            x, y = _coords(transform, rows, size, row)
            refl = ground(layout, labels, x, y)
            del x, y
            noise = rng.standard_normal(refl.shape, dtype=np.float32)
            noise *= np.float32(NOISE_SD)
            noise += np.float32(1.0)
            refl *= noise
            del noise
            np.clip(refl, 0.0, 1.0, out=refl)
            refl[:, labels == _NODATA] = imagery.DRONE_P4M.nodata
            dst.write(refl, window=Window(0, row, size, rows))
    return pixel


def write_s2_scene(path: Path, layout: Layout, rng: np.random.Generator, tag: str
                   ) -> dict[str, np.ndarray]:
    """Write the Sentinel-2-like scene; return the ground's own mean index of each
    field (the mean over 20 x 20 samples per 10 m pixel inside the field)."""
    bm = imagery.SENTINEL_2_L2A
    to_utm = Transformer.from_crs(PLANE_CRS, bm.crs, always_xy=True)
    to_plane_tr = Transformer.from_crs(bm.crs, PLANE_CRS, always_xy=True)
    foot = shapely.transform(layout.footprint, lambda xy: np.column_stack(
        to_utm.transform(xy[:, 0], xy[:, 1])))
    px = bm.pixel_m
    minx, miny, maxx, maxy = foot.bounds
    left, top = math.floor(minx / px) * px, math.ceil(maxy / px) * px
    width, height = math.ceil((maxx - left) / px), math.ceil((top - miny) / px)
    transform = Affine(px, 0.0, left, 0.0, -px, top)
    fine = transform @ Affine.scale(1.0 / S2_SAMPLES)
    shapes = _shapes(layout, to_utm, gaps=False)  # the mosaic's gaps are the drone's
    # Weather: a cloud (high-probability core, medium ring) with its shadow, and cirrus.
    cx, cy = left + 0.3 * width * px, top - 0.35 * height * px
    radius = 0.12 * max(width, height) * px
    shadow_dx, shadow_dy = -1.1 * radius, 0.9 * radius
    cirrus = box(left + 0.6 * width * px, top - 0.9 * height * px,
                 left + 0.8 * width * px, top - 0.7 * height * px)
    n_index = len(imagery.INDICES)
    sums = np.zeros((n_index, layout.fields))
    counts = np.zeros(layout.fields)
    profile = {
        "driver": "GTiff", "width": width, "height": height, "count": 5, "dtype": "uint16",
        "crs": bm.crs, "transform": transform, "nodata": bm.nodata, "tiled": True,
        "blockxsize": 256, "blockysize": 256, "compress": "deflate", "predictor": 2,
    }
    with rasterio.open(path, "w", **profile) as dst:
        for i, name in enumerate(("B03", "B04", "B05", "B08", "SCL"), start=1):
            dst.set_band_description(i, name)
        dst.update_tags(AGRI_SOURCE=bm.source, ACQUIRED="2025-08-05T01:35:00+00:00",
                        BOA_ADD_OFFSET=str(int(bm.offset)), BENCH=tag)
        for row in range(0, height, S2_STRIP_ROWS):
            rows = min(S2_STRIP_ROWS, height - row)
            f_transform = fine @ Affine.translation(0, row * S2_SAMPLES)
            labels = rasterize(shapes, out_shape=(rows * S2_SAMPLES, width * S2_SAMPLES),
                               transform=f_transform, fill=_NODATA, dtype="uint16")
            ux, uy = _coords(f_transform, rows * S2_SAMPLES, width * S2_SAMPLES, 0)
            x, y = to_plane_tr.transform(ux, uy)
            refl = ground(layout, labels, np.asarray(x), np.asarray(y))
            refl[:, labels == _NODATA] = np.asarray(FLOODED_SOIL + ROAD)[:, None] / 2
            field_px = (labels >= _FIRST_PADDY) & (labels < _FIRST_PADDY + layout.fields)
            ids = labels[field_px].astype(np.int64) - _FIRST_PADDY
            bands = dict(zip((b.name for b in P4M_BANDS), refl[:, field_px], strict=True))
            for k, name in enumerate(imagery.INDICES):
                sums[k] += np.bincount(ids, imagery.index(name, bands), layout.fields)
            counts += np.bincount(ids, minlength=layout.fields)
            coarse = refl.reshape(5, rows, S2_SAMPLES, width, S2_SAMPLES).mean(axis=(2, 4))
            coarse = coarse[1:]  # green, red, red edge, NIR
            mx, my = _coords(transform, rows, width, row)
            in_cloud = np.hypot(mx - cx, my - cy)
            in_shadow = np.hypot(mx - cx - shadow_dx, my - cy - shadow_dy) < radius
            scl = np.full((rows, width), imagery.SCL_VEGETATION, dtype=np.uint16)
            scl[in_shadow] = imagery.SCL_CLOUD_SHADOW
            coarse[:, in_shadow] *= SHADOW_FACTOR
            under = shapely.contains_xy(cirrus, mx, my)
            scl[under] = imagery.SCL_CIRRUS
            coarse[:, under] = 0.7 * coarse[:, under] + 0.3 * CLOUD[1:, None]
            for limit, klass, mix in ((radius, imagery.SCL_CLOUD_MEDIUM, 0.6),
                                      (0.7 * radius, imagery.SCL_CLOUD_HIGH, 1.0)):
                inside = in_cloud < limit
                scl[inside] = klass
                coarse[:, inside] = (1 - mix) * coarse[:, inside] + mix * CLOUD[1:, None]
            coarse *= rng.normal(1.0, S2_NOISE_SD, coarse.shape)
            dn = np.clip(np.rint(coarse / bm.scale - bm.offset), 1, 65535).astype(np.uint16)
            dst.write(np.concatenate((dn, scl[None])), window=Window(0, row, width, rows))
    with np.errstate(invalid="ignore"):
        means = sums / counts
    return {name: means[k] for k, name in enumerate(imagery.INDICES)}


def write_index_image(src: Path, dst_path: Path) -> None:
    """The baselines' input: NDVI, GNDVI and NDRE of ``src`` (masked as ours
    masks them), float32, nodata INDEX_NODATA, tiled and compressed like the image."""
    image = imagery.open_image(src)
    with rasterio.Env(**zonal.GDAL_ENV), rasterio.open(src) as ds:
        profile = {
            "driver": "GTiff", "width": ds.width, "height": ds.height,
            "count": len(image.indices), "dtype": "float32", "crs": ds.crs,
            "transform": ds.transform, "nodata": INDEX_NODATA, "tiled": True,
            "blockxsize": ds.block_shapes[0][1], "blockysize": ds.block_shapes[0][0],
            "compress": "deflate", "predictor": 3, "BIGTIFF": "IF_SAFER",
            "NUM_THREADS": "ALL_CPUS",
        }
        step = ds.block_shapes[0][0]
        with rasterio.open(dst_path, "w", **profile) as dst:
            for i, name in enumerate(image.indices, start=1):
                dst.set_band_description(i, name)
            for row in range(0, ds.height, step):
                window = Window(0, row, ds.width, min(step, ds.height - row))
                refl, valid = imagery.read_window(ds, image, window)
                bands = dict(zip(image.bands, refl, strict=True))
                out = np.stack([imagery.index(n, bands) for n in image.indices])
                out[:, ~valid | ~np.isfinite(out).all(axis=0)] = INDEX_NODATA
                dst.write(out, window=window)


def _features_in(crs_wkt: str, fields: dict[str, dict]) -> list[dict]:
    """GeoJSON features of ``fields`` (lon/lat) reprojected to ``crs_wkt``."""
    tr = Transformer.from_crs(GEO_CRS, crs_wkt, always_xy=True)
    out = []
    for fid, geom in fields.items():
        g = shapely.transform(shapely.geometry.shape(geom), lambda xy: np.column_stack(
            tr.transform(xy[:, 0], xy[:, 1])))
        out.append({"type": "Feature", "id": fid, "properties": {"field": fid},
                    "geometry": mapping(g)})
    return out


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def part_ours(image_path: str, fields: dict[str, dict]) -> dict[str, Any]:
    started = time.perf_counter()
    frame = zonal.zonal_stats(image_path, fields)
    return {"seconds": time.perf_counter() - started, "frame": frame,
            "peak_rss_mb": _peak_rss_mb()}


def part_exactextract(image_path: str, index_path: str, fields: dict[str, dict],
                      band_means: bool = True, quantiles: bool = True) -> dict[str, Any]:
    from exactextract import exact_extract
    from exactextract.raster import RasterioRasterSource

    with rasterio.open(index_path) as idx, rasterio.open(image_path) as img:
        features = _features_in(idx.crs.to_wkt(), fields)
        names = list(idx.descriptions)
        started = time.perf_counter()
        ops = ["mean", "stdev", *(QUANTILE_OPS if quantiles else ())]
        with rasterio.Env(**BASELINE_GDAL_ENV):
            sources = [RasterioRasterSource(idx, i + 1, name=n) for i, n in enumerate(names)]
            frame = exact_extract(sources, features, ops,
                                  include_cols=["field"], output="pandas").set_index("field")
            if band_means:
                bands = [RasterioRasterSource(img, i + 1, name=d)
                         for i, d in enumerate(img.descriptions)]
                means = exact_extract(bands, features, ["mean"], include_cols=["field"],
                                      output="pandas").set_index("field")
                frame = frame.join(means)
        seconds = time.perf_counter() - started
    frame = frame.rename(columns=lambda c: c.replace("_stdev", "_std").replace(
        "_quantile_", "_p"))
    return {"seconds": seconds, "frame": frame, "peak_rss_mb": _peak_rss_mb()}


def part_rasterstats(image_path: str, index_path: str, fields: dict[str, dict],
                     band_means: bool = True) -> dict[str, Any]:
    from rasterstats import zonal_stats as rs_zonal_stats

    with rasterio.open(index_path) as idx, rasterio.open(image_path) as img:
        features = _features_in(idx.crs.to_wkt(), fields)
        names, band_names = list(idx.descriptions), list(img.descriptions)
        nodata = img.nodata
    ids = list(fields)
    columns: dict[str, list] = {}
    started = time.perf_counter()
    with rasterio.Env(**BASELINE_GDAL_ENV):
        for band, name in enumerate(names, start=1):
            for stat_name, values in _rs(rs_zonal_stats(features, index_path, band=band,
                                                       stats=RASTERSTATS_STATS,
                                                       nodata=INDEX_NODATA)).items():
                columns[f"{name}_{stat_name}"] = values
        if band_means:
            for band, name in enumerate(band_names, start=1):
                stats = rs_zonal_stats(features, image_path, band=band, stats="mean",
                                       nodata=nodata)
                columns[f"{name}_mean"] = [s["mean"] for s in stats]
    seconds = time.perf_counter() - started
    frame = pd.DataFrame(columns, index=pd.Index(ids, name="field"), dtype=float)
    return {"seconds": seconds, "frame": frame, "peak_rss_mb": _peak_rss_mb()}


def _rs(stats: list[dict]) -> dict[str, list]:
    names = {"mean": "mean", "std": "std", "percentile_10": "p10", "percentile_50": "p50",
             "percentile_90": "p90"}
    return {ours: [s[theirs] for s in stats] for theirs, ours in names.items()}


def _in_child(func, *args) -> dict[str, Any]:
    """Run ``func(*args)`` in a fresh process (own peak RSS, own GDAL cache)."""
    with ProcessPoolExecutor(max_workers=1,
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(func, *args).result()


def _rel(a: pd.Series, b: pd.Series) -> pd.Series:
    both = a.notna() & b.notna() & (b != 0)
    return ((a[both] - b[both]).abs() / b[both].abs()).astype(float)


def _index_names() -> list[str]:
    return list(imagery.INDICES)


def _drone(args, work: Path, rng: np.random.Generator, layout: Layout, fields: dict,
           report: dict) -> None:
    tag = f"v{FORMAT_VERSION} size={args.size} fields={args.fields} seed={args.seed}"
    image = work / f"drone-{args.size}.tif"
    index = work / f"drone-{args.size}-indices.tif"
    if _reusable(image, tag) and _reusable(index, tag, of=image):
        print(f"reusing {image} and {index}")
        pixel = abs(rasterio.open(image).transform.a)
    else:
        started = time.perf_counter()
        pixel = write_drone_image(image, layout, args.size, rng, tag)
        print(f"wrote {image.name}: {args.size} x {args.size} x 5 float32, {pixel * 100:.1f} cm "
              f"pixels, {image.stat().st_size / 2**20:,.0f} MB, {time.perf_counter() - started:.1f}"
              " s")
        started = time.perf_counter()
        write_index_image(image, index)
        with rasterio.open(index, "r+") as ds:
            ds.update_tags(BENCH=tag)
        print(f"wrote {index.name} (baselines' input, not timed): "
              f"{time.perf_counter() - started:.1f} s")
    print(f"{len(fields)} paddies; timing each part in a process of its own ...")
    ours = _in_child(part_ours, str(image), fields)
    print(f"  ours          {ours['seconds']:7.2f} s  peak RSS {ours['peak_rss_mb']:,.0f} MB")
    ee = _in_child(part_exactextract, str(image), str(index), fields)
    print(f"  exactextract  {ee['seconds']:7.2f} s  peak RSS {ee['peak_rss_mb']:,.0f} MB")
    ee_mean = _in_child(part_exactextract, str(image), str(index), fields, True, False)
    print(f"  exactextract  {ee_mean['seconds']:7.2f} s  the same without the quantiles "
          "(mean, stdev, band means)")
    rs = _in_child(part_rasterstats, str(image), str(index), fields)
    print(f"  rasterstats   {rs['seconds']:7.2f} s  peak RSS {rs['peak_rss_mb']:,.0f} MB")
    o, e, r = ours["frame"], ee["frame"].reindex(ours["frame"].index), \
        rs["frame"].reindex(ours["frame"].index)
    mean_diff = max(_rel(o[f"{n}_mean"], e[f"{n}_mean"]).max() for n in _index_names())
    stat_diff = {s: max((o[f"{n}_{s}"] - e[f"{n}_{s}"]).abs().max() for n in _index_names())
                 for s in zonal.STATS}
    band_diff = max(_rel(o[f"{b}_mean"], e[f"{b}_mean"]).max() for b in imagery.DRONE_P4M.bands)
    rs_diff = max(_rel(r[f"{n}_mean"], e[f"{n}_mean"]).max() for n in _index_names())
    print(f"  index means vs exactextract: max relative difference {mean_diff:.2e}; band means "
          f"{band_diff:.2e}; largest absolute differences " + ", ".join(
              f"{s} {v:.1e}" for s, v in stat_diff.items()))
    print(f"  rasterstats' (centre-counting) index means vs exactextract: max relative "
          f"difference {rs_diff:.2e}")
    report.update({
        "ratio_vs_exactextract": round(ours["seconds"] / ee["seconds"], 3),
        "ratio_vs_rasterstats": round(ours["seconds"] / rs["seconds"], 3),
        "max_rel_diff": float(f"{mean_diff:.3e}"),
        "peak_rss_mb": round(ours["peak_rss_mb"], 1),
        "seconds": round(ours["seconds"], 3),
        "seconds_exactextract": round(ee["seconds"], 3),
        "seconds_rasterstats": round(rs["seconds"], 3),
        "seconds_exactextract_without_quantiles": round(ee_mean["seconds"], 3),
        "ratio_vs_exactextract_without_quantiles": round(ours["seconds"] / ee_mean["seconds"],
                                                         3),
        "max_abs_diff_vs_exactextract": {s: float(f"{v:.3e}") for s, v in stat_diff.items()},
        "band_means_max_rel_diff": float(f"{band_diff:.3e}"),
        "rasterstats_means_max_rel_diff": float(f"{rs_diff:.3e}"),
        "image": {"size": args.size, "bands": 5, "pixel_m": round(pixel, 4),
                  "fields": len(fields), "tile": TILE, "compress": "deflate",
                  "file_mb": round(image.stat().st_size / 2**20, 1),
                  "valid_fraction_min": round(float(o["valid_fraction"].min()), 4)},
    })


def _s2(args, work: Path, rng: np.random.Generator, layout: Layout, fields: dict,
        report: dict) -> None:
    tag = f"v{FORMAT_VERSION} fields={args.fields} seed={args.seed}"
    scene = work / "s2.tif"
    index = work / "s2-indices.tif"
    truth_file = work / "s2-truth.json"
    if _reusable(scene, tag) and _reusable(index, tag, of=scene) and truth_file.exists():
        truth = {k: np.asarray(v, dtype=float) for k, v in
                 orjson.loads(truth_file.read_bytes()).items()}
    else:
        truth = write_s2_scene(scene, layout, rng, tag)
        write_index_image(scene, index)
        with rasterio.open(index, "r+") as ds:
            ds.update_tags(BENCH=tag)
        truth_file.write_bytes(orjson.dumps({k: v.tolist() for k, v in truth.items()},
                                            option=orjson.OPT_SERIALIZE_NUMPY))
    ours = _in_child(part_ours, str(scene), fields)
    ee = _in_child(part_exactextract, str(scene), str(index), fields, False)
    rs = _in_child(part_rasterstats, str(scene), str(index), fields, False)
    o = ours["frame"]
    e, r = ee["frame"].reindex(o.index), rs["frame"].reindex(o.index)
    ids = field_ids(layout)
    seen = o["valid_fraction"] > 0
    clear = o["valid_fraction"] > CLEAR_FRACTION  # compared with the whole field's ground
    out: dict[str, Any] = {"fields_seen": int(seen.sum()), "fields_clear": int(clear.sum()),
                           "fields": len(o),
                           "seconds": round(ours["seconds"], 3),
                           "seconds_exactextract": round(ee["seconds"], 3),
                           "seconds_rasterstats": round(rs["seconds"], 3)}
    print(f"Sentinel-2-like scene, 10 m: {int(seen.sum())} of {len(o)} fields seen through the "
          f"clouds ({int(clear.sum())} clear); ours {ours['seconds']:.2f} s, exactextract "
          f"{ee['seconds']:.2f} s, rasterstats {rs['seconds']:.2f} s")
    print("  relative differences of field means, median (max) over the fields seen, the clear "
          "ones against 'ground' = the mean index of the samples the scene was rendered from, "
          "inside each field")
    print(f"  {'index':6} {'ours-ee max':>11} {'rasterstats-ee':>16} {'ours-ground':>16} "
          f"{'ee-ground':>16} {'rs-ground':>16}")
    for name in _index_names():
        t = pd.Series(truth[name], index=ids).reindex(o.index)
        ours_ee = _rel(o[f"{name}_mean"], e[f"{name}_mean"])
        rs_ee = _rel(r[f"{name}_mean"], e[f"{name}_mean"])
        err = {k: _rel(frame[f"{name}_mean"][clear], t[clear])
               for k, frame in (("ours", o), ("exactextract", e), ("rasterstats", r))}
        out[name] = {
            "ours_vs_exactextract_max_rel_diff": float(f"{ours_ee.max():.3e}"),
            "rasterstats_vs_exactextract_max_rel_diff": round(float(rs_ee.max()), 5),
            "rasterstats_vs_exactextract_median_rel_diff": round(float(rs_ee.median()), 5),
            **{f"{k}_vs_ground_median_rel_err": round(float(v.median()), 5)
               for k, v in err.items()},
            **{f"{k}_vs_ground_max_rel_err": round(float(v.max()), 5) for k, v in err.items()},
        }
        cells = [f"{v.median():6.2%} ({v.max():6.2%})" for v in (
            rs_ee, err["ours"], err["exactextract"], err["rasterstats"])]
        print(f"  {name:6} {ours_ee.max():>11.1e} " + " ".join(f"{c:>16}" for c in cells))
    report["s2"] = out


def _reusable(path: Path, tag: str, of: Path | None = None) -> bool:
    if not path.exists():
        return False
    try:
        with rasterio.open(path) as ds:
            ok = ds.tags().get("BENCH") == tag
    except rasterio.errors.RasterioIOError:
        return False
    return ok and (of is None or path.stat().st_mtime >= of.stat().st_mtime)


def run(args: argparse.Namespace) -> int:
    """`agri bench zonal`: print the figures, then one JSON object as the last line."""
    if args.size < 64 or args.fields < 1:
        print("agri bench zonal: --size must be at least 64 and --fields at least 1",
              file=sys.stderr)
        return 2
    rng = np.random.default_rng(args.seed)
    layout = make_layout(rng, args.fields)
    fields = fields_lonlat(layout)
    report: dict[str, Any] = {"bench": "zonal"}
    with tempfile.TemporaryDirectory(prefix="agri-bench-zonal-") as tmp:
        work = Path(args.dir) if args.dir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        if args.scene in ("drone", "both"):
            _drone(args, work, np.random.default_rng(args.seed + 1), layout, fields, report)
        if args.scene in ("s2", "both"):
            _s2(args, work, np.random.default_rng(args.seed + 2), layout, fields, report)
    if "ratio_vs_exactextract" in report:
        report["ratio"] = report["ratio_vs_exactextract"]
    print(orjson.dumps(report).decode())
    return 0


def main(argv: list[str] | None = None) -> int:
    """``agri bench zonal`` with ``argv`` (its options are the CLI's)."""
    from agri.cli import main as agri_main

    return agri_main(["bench", "zonal", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    from agri.deploy.bench_zonal import main as _main  # children import this module by name

    sys.exit(_main())
