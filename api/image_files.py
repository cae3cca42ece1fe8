"""What the API does with image files itself (the analytics do the rest):

- ``check_upload``: an uploaded file is first checked as the analytics read it
  (:func:`agri.analytics.imagery.open_image`: a GeoTIFF of a known source,
  its bands, a CRS), then against what a file from outside may make the
  server do: a TIFF declaring billions of pixels or huge tiles in a few
  bytes (a decompression bomb) is refused before any pixel is read;
- ``footprint``: the image's outline in lon/lat (the fields' coordinates);
- ``field_png``: a small PNG of one field clipped from an image, one index
  colour-mapped (red low, green high), transparent outside the field and
  where the image has no valid pixel; read decimated, so its cost does not
  grow with the image's resolution.
"""

from __future__ import annotations

import logging
import math
import struct
import zlib
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.features import geometry_mask
from rasterio.transform import Affine
from rasterio.warp import transform_geom
from rasterio.windows import Window, from_bounds
from rasterio.windows import transform as window_transform

from agri.analytics import imagery

logger = logging.getLogger(__name__)

LONLAT = "EPSG:4326"
MAX_PIXELS = 1_000_000_000  # a 5 cm drone mosaic of a 1.5 km square block; an S2 tile is 1.2e8
MAX_BLOCK_PIXELS = 4096 * 4096  # one tile or strip, decoded at once when read
MAX_EXPANSION = 1000  # declared raw size over file size (DEFLATE of real imagery: 2-50)
SLACK_BYTES = 1 << 20  # small files: headers dominate
PREVIEW_PX = 320  # longer side of a field preview
# Index -> value range of the colour ramp (below: the first colour, above: the last).
PREVIEW_RANGES: Mapping[str, tuple[float, float]] = MappingProxyType({
    "ndvi": (0.0, 0.9), "gndvi": (0.0, 0.8), "ndre": (0.0, 0.5)})
# ColorBrewer RdYlGn (5): low index red, high green.
RAMP = ("#d7191c", "#fdae61", "#ffffbf", "#a6d96a", "#1a9641")


def check_upload(path: Path, *, source: str, name: str) -> imagery.Image:
    """The checked image at ``path``, or ImageryError naming the problem (the
    file is called ``name`` in the message, the name the uploader gave it)."""
    try:
        image = imagery.open_image(path, source=source)
    except imagery.ImageryError as exc:
        raise imagery.ImageryError(
            str(exc).replace(str(path), name).replace(path.name, name)) from None
    with rasterio.open(path) as ds:
        dtype_bytes = max(np.dtype(d).itemsize for d in ds.dtypes)
        bands = ds.count
        blocks = ds.block_shapes
    pixels = image.width * image.height
    if pixels > MAX_PIXELS:
        raise imagery.ImageryError(
            f"{name}: {image.width} x {image.height} pixels is more than the "
            f"{MAX_PIXELS:,} an upload may have; crop it to the fields flown or resample it")
    worst_block = max(rows * cols for rows, cols in blocks)
    if worst_block > MAX_BLOCK_PIXELS:
        raise imagery.ImageryError(
            f"{name}: tiles or strips of {worst_block:,} pixels; write it tiled "
            "(gdal_translate -co TILED=YES -co BLOCKXSIZE=512 -co BLOCKYSIZE=512)")
    declared = pixels * bands * dtype_bytes
    actual = path.stat().st_size
    if declared > MAX_EXPANSION * actual + SLACK_BYTES:
        raise imagery.ImageryError(
            f"{name}: declares {declared / 1e9:.1f} GB of pixels in {actual:,} bytes; a "
            "sparse or damaged TIFF (a real image does not compress that far)")
    return image


def footprint(image: imagery.Image) -> dict:
    """The image's outline as a GeoJSON Polygon in lon/lat."""
    t, w, h = image.transform, image.width, image.height
    corners = [t @ (0, 0), t @ (w, 0), t @ (w, h), t @ (0, h), t @ (0, 0)]
    outline = {"type": "Polygon", "coordinates": [[list(c) for c in corners]]}
    return dict(transform_geom(CRS.from_wkt(image.crs_wkt), LONLAT, outline))


class _Decimated:
    """A dataset whose ``read`` returns windows at a fixed smaller shape
    (nearest neighbour: nodata stays nodata), so that
    :func:`agri.analytics.imagery.read_window` reads a preview."""

    def __init__(self, ds, shape: tuple[int, int]) -> None:
        self._ds = ds
        self._shape = shape

    def read(self, indexes, window):
        return self._ds.read(indexes, window=window, out_shape=(len(indexes), *self._shape))


def field_png(path: Path, *, source: str, geometry: dict, index: str,
              max_px: int = PREVIEW_PX) -> bytes | None:
    """PNG of ``index`` over the field ``geometry`` (GeoJSON, lon/lat) from the
    image at ``path``; None when the image does not cover the field."""
    image = imagery.open_image(path, source=source)
    if index not in image.indices:
        raise imagery.ImageryError(f"a {image.source} image has no {index}; use "
                                   f"{' or '.join(image.indices)}")
    shape = transform_geom(LONLAT, CRS.from_wkt(image.crs_wkt), geometry)
    xs, ys = zip(*_points(shape["coordinates"]), strict=True)
    full = Window(0, 0, image.width, image.height)
    try:
        window = from_bounds(min(xs), min(ys), max(xs), max(ys), transform=image.transform)
        window = window.round_offsets().round_lengths().intersection(full)
    except rasterio.errors.WindowError:
        return None
    if window.width < 1 or window.height < 1:
        return None
    scale = max(window.width, window.height) / max_px
    out_h = max(1, math.ceil(window.height / max(scale, 1.0)))
    out_w = max(1, math.ceil(window.width / max(scale, 1.0)))
    with rasterio.open(path) as ds:
        reflectance, valid = imagery.read_window(_Decimated(ds, (out_h, out_w)), image, window)
    values = imagery.index(index, dict(zip(image.bands, reflectance, strict=True)))
    t = window_transform(window, image.transform)
    sx, sy = window.width / out_w, window.height / out_h
    scaled = Affine(t.a * sx, t.b * sy, t.c, t.d * sx, t.e * sy, t.f)
    inside = geometry_mask([shape], out_shape=(out_h, out_w), transform=scaled, invert=True)
    show = inside & valid & np.isfinite(values)
    if not show.any():
        return None
    low, high = PREVIEW_RANGES[index]
    return _png(_colour(values, show, low, high))


def _points(coordinates):
    if coordinates and isinstance(coordinates[0], (int, float)):
        yield coordinates[0], coordinates[1]
        return
    for part in coordinates:
        yield from _points(part)


def _colour(values: np.ndarray, show: np.ndarray, low: float, high: float) -> np.ndarray:
    stops = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in RAMP], dtype=np.float32)
    position = np.clip((np.nan_to_num(values, nan=low) - low) / (high - low), 0.0, 1.0)
    position *= len(RAMP) - 1
    lower = np.minimum(position.astype(np.int64), len(RAMP) - 2)
    frac = (position - lower)[..., None]
    rgb = stops[lower] * (1.0 - frac) + stops[lower + 1] * frac
    rgba = np.zeros((*values.shape, 4), dtype=np.uint8)
    rgba[..., :3] = np.rint(rgb).astype(np.uint8)
    rgba[..., 3] = np.where(show, 255, 0)
    return rgba


def _png(rgba: np.ndarray) -> bytes:
    """An 8-bit RGBA PNG (no filter; zlib)."""
    height, width, _ = rgba.shape
    raw = np.zeros((height, 1 + width * 4), dtype=np.uint8)
    raw[:, 1:] = rgba.reshape(height, width * 4)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6)) + chunk(b"IEND", b""))
