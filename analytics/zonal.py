"""Per-field zonal statistics of a multispectral image, each pixel weighted by
the exact fraction of it that lies inside the field.

A 30 m paddy is three 10 m Sentinel-2 pixels wide: counting the pixels whose
centre falls inside (as rasterstats does) keeps or drops whole edge pixels,
so each pixel is weighted by its exact covered fraction instead, as
exactextract does. Field polygons (lon/lat, EPSG:4326, as the platform
stores them) are reprojected to the image's CRS with pyproj, then into pixel
coordinates, where :mod:`agri.analytics.coverage` gives the fractions.

Statistics, over the pixels that are valid in the image (not nodata, not a
cloud or shadow in Sentinel-2's scene classes; :mod:`agri.analytics.imagery`)
with weights ``c`` = covered fraction:

- ``{index}_mean`` = sum(c x) / sum(c); ``{index}_std`` = sqrt(sum(c (x -
  mean)^2) / sum(c)) (population, as exactextract's ``stdev``);
- ``{index}_p10``, ``_p50``, ``_p90``: weighted quantiles by exactextract's
  formula (its ``quantile`` operation): the n pixels sorted by value (ties by
  weight), x_0 <= ... <= x_{n-1} with weights w_i and cumulative weights
  C_i = w_0 + ... + w_i, get S_0 = 0 and S_i = i w_i + (n - 1) C_{i-1}; the
  q-quantile is the linear interpolation of x in S at q (n - 1) C_{n-1}
  (x_{n-1} at the top). With equal weights this is the usual linear
  (Hyndman-Fan type 7) quantile. exactextract first merges equal values into
  one element (n then counts distinct values), so the two agree when no two
  pixels share a value and otherwise differ by a small fraction of the gap
  between neighbouring values (float32 indices over 30 m x 100 m paddies at
  14 cm, about 180,000 pixels each: at most 1.3e-6).
  Computed without sorting every pixel: a histogram of the values locates
  the few bins where the cumulative weight reaches q, and only those are
  sorted (:func:`weighted_quantiles` is the plain sorted version; both give
  the same numbers). exactextract also keeps cells whose coverage is
  rounding noise (1e-18) as elements; here fractions under 1e-9 are 0.
- ``{band}_mean``: coverage-weighted mean reflectance of each band.
- ``pixels``: sum(c) over the valid pixels (weighted pixel count);
  ``valid_fraction`` = pixels / the field's area in pixels, so a field partly
  outside the image, under cloud or over nodata counts only what was seen.

A field outside the image, or with no valid pixel, gets ``valid_fraction`` 0
and NaN statistics. The index columns are those the source's bands allow
(no ``ndre_*`` for a source without a red-edge band).

Memory. The image is read in strips of whole block rows (at most
:data:`STRIP_BYTES` of stored pixels; one read per run of columns that the
fields need), each block decoded once, through a GDAL block cache held to
:data:`GDAL_ENV`'s size while reading; a field is finished, and its values
dropped, when the strip holding its last row is done. What is held: the
strip being used, the next one being read (in a second thread), and about
20 bytes per pixel of the fields crossing the strip's lower edge.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import rasterio
import shapely
from pyproj import CRS, Transformer
from rasterio.windows import Window
from shapely.geometry import MultiPolygon, Polygon, shape
from shapely.geometry.base import BaseGeometry

from agri.analytics.coverage import Coverage, prepare, to_pixels
from agri.analytics.imagery import (
    INDICES,
    Image,
    ImageryError,
    normalized_difference,
    open_image,
    read_window,
)

logger = logging.getLogger(__name__)

STATS = ("mean", "std", "p10", "p50", "p90")
QUANTILES = {"p10": 0.1, "p50": 0.5, "p90": 0.9}
FIELDS_CRS = "EPSG:4326"
STRIP_BYTES = 96 * 2**20  # stored pixel bytes read at once (all bands of a strip)
COLUMN_GAP_BLOCKS = 2  # column runs closer than this many blocks are read as one
MAX_FIELD_PIXELS = 40_000_000  # a field's bounding box in pixels (about 20 B each held)
# While reading: decode a strip's blocks on all cores, and hold GDAL's block cache (by
# default 5 % of RAM, kept until the dataset closes) to 64 MB: each block is read once.
GDAL_ENV = {"GDAL_NUM_THREADS": "ALL_CPUS", "GDAL_CACHEMAX": 64}
HISTOGRAM_MIN_VALUES = 4096  # fewer values: sort them all for the quantiles
HISTOGRAM_VALUES_PER_BIN = 16
HISTOGRAM_MAX_BINS = 1 << 16


@dataclass(slots=True)
class _Field:
    """One field prepared over the image and what has been gathered for it."""

    id: str
    cov: Coverage
    weight: float = 0.0
    band_sums: np.ndarray | None = None
    weights: list[np.ndarray] = field(default_factory=list)
    values: dict[str, list[np.ndarray]] = field(default_factory=dict)

    @property
    def r0(self) -> int:
        return self.cov.r0

    @property
    def r1(self) -> int:
        return self.cov.r1

    @property
    def c0(self) -> int:
        return self.cov.c0

    @property
    def c1(self) -> int:
        return self.cov.c1


def _as_geometry(field_id: str, geometry: Any) -> BaseGeometry:
    if isinstance(geometry, str | bytes):
        raise ImageryError(f"field {field_id}: pass a GeoJSON mapping or a shapely geometry, "
                           "not text (parse it first)")
    try:
        geom = geometry if isinstance(geometry, BaseGeometry) else shape(geometry)
    except Exception as exc:  # shapely raises several types for malformed GeoJSON
        raise ImageryError(f"field {field_id}: not a GeoJSON geometry "
                           f"({str(exc)[:120]})") from None
    if not isinstance(geom, Polygon | MultiPolygon):
        raise ImageryError(f"field {field_id}: a {geom.geom_type}, not a Polygon or "
                           "MultiPolygon")
    if geom.is_empty or geom.area == 0:
        raise ImageryError(f"field {field_id}: empty polygon (no area); fix the field's "
                           "boundary")
    if not np.isfinite(shapely.get_coordinates(geom)).all():
        raise ImageryError(f"field {field_id}: coordinates that are not finite numbers")
    if not geom.is_valid:
        raise ImageryError(f"field {field_id}: invalid polygon ({shapely.is_valid_reason(geom)}"
                           "); fix the boundary (shapely.make_valid)")
    return geom


def _to_pixels(geoms: list[BaseGeometry], crs_in: str, image: Image) -> list[BaseGeometry]:
    """Geometries in image pixel coordinates (column, row), via the image CRS."""
    transformer = Transformer.from_crs(CRS.from_user_input(crs_in),
                                       CRS.from_wkt(image.crs_wkt), always_xy=True)

    def project(xy: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(xy[:, 0], xy[:, 1])
        return np.column_stack((np.asarray(x, dtype=float), np.asarray(y, dtype=float)))

    return [to_pixels(shapely.transform(g, project), image.transform) for g in geoms]


def weighted_quantiles(values: np.ndarray, weights: np.ndarray,
                       qs: tuple[float, ...] = tuple(QUANTILES.values())) -> np.ndarray:
    """Weighted quantiles of ``values`` by the definition in the module
    docstring, sorting every value; values that are not finite and weights
    that are not positive are left out; NaN when nothing is left."""
    x = np.asarray(values)
    w = np.asarray(weights, dtype=np.float64)
    keep = np.isfinite(x) & (w > 0)
    if not keep.all():
        x, w = x[keep], w[keep]
    out = np.full(len(qs), np.nan)
    n = len(x)
    if n == 0:
        return out
    order = np.lexsort((w, x))
    x, w = x[order], w[order]
    cum = np.cumsum(w)
    s = np.arange(n) * w
    s[1:] += (n - 1) * cum[:-1]
    for i, q in enumerate(qs):
        out[i] = _interpolate(x, s, q * (n - 1) * cum[-1], at_start=True, at_end=True)
    return out


def _interpolate(x: np.ndarray, s: np.ndarray, target: float, *, at_start: bool,
                 at_end: bool) -> float:
    """x interpolated in s at target, for sorted candidates x with positions s;
    NaN when the crossing is not within them (``at_start``/``at_end``: they
    begin/end the whole sequence)."""
    r = int(np.searchsorted(s, target, side="right"))
    if r == 0:
        return float(x[0]) if at_start else math.nan
    if r == len(x):
        return float(x[-1]) if at_end else math.nan
    x0, x1 = float(x[r - 1]), float(x[r])
    return x0 + (target - s[r - 1]) * (x1 - x0) / (s[r] - s[r - 1])


def _quantiles(x: np.ndarray, w: np.ndarray, qs: tuple[float, ...]) -> np.ndarray:
    """:func:`weighted_quantiles` of finite float32 ``x`` with positive
    weights ``w``, sorting only the values near each quantile.

    Bins of a histogram of x keep the order of the values, so a value's rank
    and the weight below it are the counts and weights of the lower bins plus
    its place within its own. S is non-decreasing and S_i <= (n - 1) C_i, so
    the two values the q-quantile interpolates between lie in the bins whose
    cumulative weight comes within 3 (weights are at most 1) of q C_{n-1}."""
    n = len(x)
    lo, hi = x.min(), x.max()
    if n < HISTOGRAM_MIN_VALUES or lo == hi:
        return weighted_quantiles(x, w, qs)
    bins = min(max(n // HISTOGRAM_VALUES_PER_BIN, 64), HISTOGRAM_MAX_BINS)
    key = ((x - lo) * np.float32(bins / (float(hi) - float(lo)))).astype(np.int32)
    np.minimum(key, bins - 1, out=key)
    counts = np.bincount(key, minlength=bins)
    w_through = np.cumsum(np.bincount(key, weights=w, minlength=bins))
    w_before = np.concatenate(([0.0], w_through[:-1]))
    n_before = np.cumsum(counts) - counts
    total = float(w_through[-1])
    out = np.empty(len(qs))
    for i, q in enumerate(qs):
        b0 = min(int(np.searchsorted(w_through, q * total - 3.0, side="right")), bins - 1)
        b1 = max(int(np.searchsorted(w_before, q * total + 3.0, side="left")) - 1, b0)
        sel = (key >= b0) & (key <= b1)
        xs, ws = x[sel], w[sel]
        order = np.lexsort((ws, xs))
        xs, ws = xs[order], ws[order]
        rank = n_before[b0] + np.arange(len(xs))
        below = w_before[b0] + np.concatenate(([0.0], np.cumsum(ws)[:-1]))
        out[i] = _interpolate(xs, rank * ws + (n - 1) * below, q * (n - 1) * total,
                              at_start=b0 == 0, at_end=b1 == bins - 1)
        if math.isnan(out[i]):  # not where it must be: rounding; sort them all
            logger.debug("quantile %s outside its histogram bins; sorting", q)
            return weighted_quantiles(x, w, qs)
    return out


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """sum(a * b) in float64 without BLAS (whose threads would spin against the
    decoding threads of the strip being read)."""
    return float(np.einsum("i,i->", a, b, dtype=np.float64))


def _gather(f: _Field, image: Image, data: np.ndarray, valid: np.ndarray,
            row_start: int, row_stop: int, col_start: int, strip_start: int) -> None:
    """Add the pixels of field ``f`` in image rows ``row_start:row_stop`` of a strip
    (``data``/``valid`` read from row ``strip_start`` and column ``col_start``)."""
    cov = f.cov.fractions(row_start, row_stop)
    win = (slice(row_start - strip_start, row_stop - strip_start),
           slice(f.cov.c0 - col_start, f.cov.c1 - col_start))
    mask = valid[win] & (cov > 0)
    if not mask.any():
        return
    w = cov[mask]
    bands = {b: data[i][win][mask] for i, b in enumerate(image.bands)}
    sums = np.array([_dot(v, w) for v in bands.values()])
    f.band_sums = sums if f.band_sums is None else f.band_sums + sums
    f.weight += float(w.sum())
    f.weights.append(w)
    for name in image.indices:
        a, b = INDICES[name]
        f.values.setdefault(name, []).append(normalized_difference(bands[a], bands[b]))


def _finish(f: _Field, image: Image) -> dict[str, float]:
    row: dict[str, float] = {}
    w_all = np.concatenate(f.weights) if f.weights else np.empty(0)
    for name in image.indices:
        x = np.concatenate(f.values[name]) if name in f.values else np.empty(0, np.float32)
        ok = np.isfinite(x)
        x, w = (x, w_all) if ok.all() else (x[ok], w_all[ok])
        total = float(w.sum())
        if total <= 0:
            row.update({f"{name}_{s}": math.nan for s in STATS})
            continue
        x64 = x.astype(np.float64)
        mean = _dot(x64, w) / total
        x64 -= mean
        x64 *= x64
        row[f"{name}_mean"] = mean
        row[f"{name}_std"] = math.sqrt(max(_dot(x64, w) / total, 0.0))
        for key, value in zip(QUANTILES, _quantiles(x, w, tuple(QUANTILES.values())),
                              strict=True):
            row[f"{name}_{key}"] = float(value)
    for i, band in enumerate(image.bands):
        row[f"{band}_mean"] = (float(f.band_sums[i]) / f.weight if f.weight > 0
                               else math.nan)
    row["valid_fraction"] = min(f.weight / f.cov.area, 1.0) if f.cov.area > 0 else 0.0
    row["pixels"] = f.weight
    f.weights.clear()
    f.values.clear()
    return row


def columns(image: Image) -> list[str]:
    """Result columns for ``image``'s source, in order."""
    cols = [f"{name}_{s}" for name in image.indices for s in STATS]
    return cols + [f"{band}_mean" for band in image.bands] + ["valid_fraction", "pixels"]


def _column_runs(fields: list[_Field], block_w: int) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for f in sorted(fields, key=lambda f: f.c0):
        if runs and f.c0 <= runs[-1][1] + COLUMN_GAP_BLOCKS * block_w:
            runs[-1] = (runs[-1][0], max(runs[-1][1], f.c1))
        else:
            runs.append((f.c0, f.c1))
    return runs


def _strips(fields: list[_Field], image: Image, itemsize: int, nbands: int
            ) -> list[tuple[int, int, list[_Field]]]:
    """Row strips (start, stop, fields that overlap) covering every field's rows."""
    block_h = max(image.block_shape[0], 1)
    span = max(f.c1 for f in fields) - min(f.c0 for f in fields)
    rows = STRIP_BYTES // max(span * itemsize * nbands, 1)
    rows = max(block_h, rows // block_h * block_h)
    strips = []
    by_start = sorted(fields, key=lambda f: f.r0)
    i, open_fields = 0, []
    start = by_start[0].r0 // block_h * block_h
    while start < image.height and (i < len(by_start) or open_fields):
        if not open_fields and i < len(by_start) and by_start[i].r0 >= start + rows:
            start = by_start[i].r0 // block_h * block_h  # skip rows no field needs
        stop = min(start + rows, image.height)
        while i < len(by_start) and by_start[i].r0 < stop:
            open_fields.append(by_start[i])
            i += 1
        strips.append((start, stop, list(open_fields)))
        open_fields = [f for f in open_fields if f.r1 > stop]
        start = stop
    return strips


def _read_strip(ds, image: Image, start: int, stop: int, fields: list[_Field]
                ) -> list[tuple[int, np.ndarray, np.ndarray]]:
    out = []
    # In the reading thread too: rasterio's Env is thread-local outside the main thread.
    with rasterio.Env(**GDAL_ENV):
        for c0, c1 in _column_runs(fields, max(image.block_shape[1], 1)):
            data, valid = read_window(ds, image, Window(c0, start, c1 - c0, stop - start))
            out.append((c0, data, valid))
    return out


def zonal_stats(image: str | Path | Image, fields: Mapping[str, Any], *,
                source: str | None = None, fields_crs: str = FIELDS_CRS) -> pd.DataFrame:
    """Coverage-weighted index and band statistics of each field over ``image``.

    ``image`` is a path (checked with :func:`agri.analytics.imagery.open_image`,
    ``source`` overriding its ``AGRI_SOURCE`` tag) or an opened
    :class:`~agri.analytics.imagery.Image`; ``fields`` maps field ids to
    polygons (GeoJSON mappings or shapely geometries) in ``fields_crs``.
    Returns one row per field, indexed by field id, with the columns of
    :func:`columns`. Raises :class:`~agri.analytics.imagery.ImageryError`
    for an unreadable image or a field that is not a valid polygon.
    """
    if not isinstance(image, Image):
        image = open_image(image, source=source)
    ids = [str(k) for k in fields]
    geoms = [_as_geometry(i, g) for i, g in zip(ids, fields.values(), strict=True)]
    if CRS.from_user_input(fields_crs).is_geographic:
        for i, g in zip(ids, geoms, strict=True):
            minx, miny, maxx, maxy = g.bounds
            if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
                raise ImageryError(f"field {i}: coordinates outside longitude/latitude "
                                   f"({minx:.1f}, {miny:.1f}); are they projected? pass "
                                   "fields_crs")
    pixel_geoms = _to_pixels(geoms, fields_crs, image)
    todo = []
    for field_id, geom in zip(ids, pixel_geoms, strict=True):
        cov = prepare(geom, image.height, image.width)
        if cov is None:
            continue
        if (cov.r1 - cov.r0) * (cov.c1 - cov.c0) > MAX_FIELD_PIXELS:
            raise ImageryError(
                f"field {field_id} spans {(cov.r1 - cov.r0) * (cov.c1 - cov.c0):,} pixels of "
                f"{image.path.name}, more than {MAX_FIELD_PIXELS:,}: resample the image "
                "coarser or split the field")
        todo.append(_Field(field_id, cov))
    rows: dict[str, dict[str, float]] = {}
    if todo:
        with rasterio.Env(**GDAL_ENV), rasterio.open(image.path) as ds:
            itemsize = np.dtype(ds.dtypes[image.band_index[image.bands[0]] - 1]).itemsize
            strips = _strips(todo, image, itemsize, len(image.band_map.stored_bands))
            with ThreadPoolExecutor(max_workers=1) as reader:
                pending = reader.submit(_read_strip, ds, image, *strips[0]) if strips else None
                for n, (start, stop, strip_fields) in enumerate(strips):
                    runs = pending.result()
                    pending = (reader.submit(_read_strip, ds, image, *strips[n + 1])
                               if n + 1 < len(strips) else None)
                    for f in strip_fields:
                        col_start, data, valid = next(r for r in runs if r[0] <= f.c0
                                                      and f.c1 <= r[0] + r[1].shape[2])
                        _gather(f, image, data, valid, max(start, f.r0), min(stop, f.r1),
                                col_start, start)
                        if f.r1 <= stop:
                            rows[f.id] = _finish(f, image)
                    del runs
    empty = dict.fromkeys(columns(image), math.nan) | {"valid_fraction": 0.0, "pixels": 0.0}
    frame = pd.DataFrame([rows.get(i, empty) for i in ids], index=pd.Index(ids, name="field"),
                         columns=columns(image))
    outside = len(ids) - len(todo)
    if outside:
        logger.info("%d of %d fields lie outside %s", outside, len(ids), image.path.name)
    return frame
