"""Multispectral GeoTIFFs: which band is which, reflectance, vegetation indices.

Each source has a band map (:data:`SOURCES`): the bands it delivers, how a
stored value becomes surface reflectance, which values are nodata and, for
Sentinel-2 L2A, which scene classes mark a pixel invalid. An image names its
source in the GeoTIFF tag ``AGRI_SOURCE`` (or the caller passes it). Bands are
found by their band description where the file has them (``red``, ``B04``,
...), so a file with another band order still reads right; a file without
descriptions must have the source's bands in the source's order.

- ``drone-p4m``: DJI P4 Multispectral orthomosaics (analytics/agronomy.py
  section 9), float32 reflectance 0..1, blue, green, red, red edge, NIR,
  nodata -1, delivered in EPSG:6678 with centimetre pixels.
- ``sentinel-2-l2a``: Sentinel-2 L2A surface reflectance, uint16 B03 (green),
  B04 (red), B05 (red edge), B08 (NIR) and the scene classification SCL;
  reflectance = (DN + BOA_ADD_OFFSET) / 10000 with BOA_ADD_OFFSET = -1000
  from processing baseline 04.00 (January 2022) on; a file may carry its own
  ``BOA_ADD_OFFSET`` tag (0 for older baselines). DN 0 is nodata; SCL classes
  0 (no data), 1 (saturated or defective), 3 (cloud shadow), 8, 9 (cloud,
  medium and high probability) and 10 (thin cirrus) are invalid. 10 m pixels,
  EPSG:32654 (UTM 54N) over Aomori.
- ``commercial-2m``: 2 m-class commercial scenes (SPOT-6/7-like) as the
  prefecture's own maps use: uint16 blue, green, red, NIR, reflectance =
  DN / 10000, nodata 0; no red edge, so no NDRE.

Indices (analytics/agronomy.py section 9): NDVI = (NIR - Red)/(NIR + Red),
GNDVI = (NIR - Green)/(NIR + Green), NDRE = (NIR - RedEdge)/(NIR + RedEdge),
computed in float32.
"""

from __future__ import annotations

import logging
import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import MappingProxyType

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.transform import Affine
from rasterio.windows import Window

logger = logging.getLogger(__name__)

SOURCE_TAG = "AGRI_SOURCE"
ACQUIRED_TAGS = ("ACQUIRED", "acquired")  # the second is what the drone surveys write
S2_OFFSET_TAG = "BOA_ADD_OFFSET"


class ImageryError(ValueError):
    """An image cannot be read as a known source; the message names what is
    missing and how to fix it."""


@dataclass(frozen=True, slots=True)
class BandMap:
    """How one source stores its bands.

    ``bands`` are the reflectance bands in the source's own order (the order
    assumed for files without band descriptions), followed in that order by
    ``mask_band`` where the source has one. ``aliases`` are the band
    descriptions accepted for each band (compared case-insensitively, ignoring
    spaces, ``-`` and ``_``). Reflectance = (stored + ``offset``) * ``scale``.
    """

    source: str
    bands: tuple[str, ...]
    aliases: Mapping[str, tuple[str, ...]]
    dtypes: tuple[str, ...]  # stored data types accepted
    scale: float
    offset: float
    nodata: float
    mask_band: str | None = None
    invalid_classes: frozenset[int] = frozenset()
    crs: str = ""  # as the source delivers it over Aomori (the file's own CRS is used)
    pixel_m: float = math.nan  # typical pixel size, metres

    @property
    def stored_bands(self) -> tuple[str, ...]:
        return self.bands + ((self.mask_band,) if self.mask_band else ())


# Scene classification (ESA Sentinel-2 L2A product specification).
SCL_NO_DATA, SCL_SATURATED, SCL_DARK, SCL_CLOUD_SHADOW = 0, 1, 2, 3
SCL_VEGETATION, SCL_NOT_VEGETATED, SCL_WATER, SCL_UNCLASSIFIED = 4, 5, 6, 7
SCL_CLOUD_MEDIUM, SCL_CLOUD_HIGH, SCL_CIRRUS, SCL_SNOW = 8, 9, 10, 11
S2_INVALID_CLASSES = frozenset({SCL_NO_DATA, SCL_SATURATED, SCL_CLOUD_SHADOW,
                                SCL_CLOUD_MEDIUM, SCL_CLOUD_HIGH, SCL_CIRRUS})
S2_QUANTIFICATION = 10_000.0  # QUANTIFICATION_VALUE of the L2A product
S2_BOA_ADD_OFFSET = -1000.0  # from processing baseline 04.00 (25 January 2022)

_COMMON = {"blue": ("blue",), "green": ("green",), "red": ("red",),
           "red_edge": ("red_edge", "rededge", "re"), "nir": ("nir", "near_infrared")}

DRONE_P4M = BandMap(
    source="drone-p4m", bands=("blue", "green", "red", "red_edge", "nir"),
    aliases=MappingProxyType(_COMMON), dtypes=("float32", "float64"), scale=1.0, offset=0.0,
    nodata=-1.0, crs="EPSG:6678", pixel_m=0.05)
SENTINEL_2_L2A = BandMap(
    source="sentinel-2-l2a", bands=("green", "red", "red_edge", "nir"),
    aliases=MappingProxyType({"green": ("b03", "b3") + _COMMON["green"],
                              "red": ("b04", "b4") + _COMMON["red"],
                              "red_edge": ("b05", "b5") + _COMMON["red_edge"],
                              "nir": ("b08", "b8") + _COMMON["nir"],
                              "scl": ("scl", "scene_classification")}),
    dtypes=("uint16",), scale=1.0 / S2_QUANTIFICATION, offset=S2_BOA_ADD_OFFSET, nodata=0.0,
    mask_band="scl", invalid_classes=S2_INVALID_CLASSES, crs="EPSG:32654", pixel_m=10.0)
COMMERCIAL_2M = BandMap(
    source="commercial-2m", bands=("blue", "green", "red", "nir"),
    aliases=MappingProxyType({k: v for k, v in _COMMON.items() if k != "red_edge"}),
    dtypes=("uint16",), scale=1.0 / 10_000.0, offset=0.0, nodata=0.0, crs="EPSG:32654",
    pixel_m=2.0)

SOURCES: Mapping[str, BandMap] = MappingProxyType(
    {m.source: m for m in (DRONE_P4M, SENTINEL_2_L2A, COMMERCIAL_2M)})

# Index name -> (band a, band b): index = (a - b) / (a + b).
INDICES: Mapping[str, tuple[str, str]] = MappingProxyType({
    "ndvi": ("nir", "red"),
    "gndvi": ("nir", "green"),
    "ndre": ("nir", "red_edge"),
})


@dataclass(frozen=True, slots=True)
class Image:
    """A checked multispectral GeoTIFF: where each band is and how to read it.

    ``band_index`` maps each band of ``band_map.stored_bands`` to its 1-based
    index in the file. ``acquired`` is the acquisition time from the
    ``ACQUIRED`` (or the drone's ``acquired``) tag, None without one.
    """

    path: Path
    band_map: BandMap
    band_index: Mapping[str, int]
    crs_wkt: str
    transform: Affine
    width: int
    height: int
    block_shape: tuple[int, int]  # (rows, cols) of the first band's blocks
    nodata: float | None  # the file's own nodata value, if it declares one
    offset: float  # stored value + offset, times band_map.scale, is reflectance
    acquired: datetime | None

    @property
    def source(self) -> str:
        return self.band_map.source

    @property
    def bands(self) -> tuple[str, ...]:
        """The reflectance bands, in the order :func:`read_window` returns them."""
        return self.band_map.bands

    @property
    def indices(self) -> tuple[str, ...]:
        """The indices this source's bands allow."""
        return tuple(name for name, (a, b) in INDICES.items()
                     if a in self.band_map.bands and b in self.band_map.bands)


def _normalise(name: str) -> str:
    return re.sub(r"[\s\-_]+", "_", name.strip().lower())


def _band_index(ds, band_map: BandMap, path: Path) -> dict[str, int]:
    wanted = band_map.stored_bands
    descriptions = [_normalise(d) if d else "" for d in ds.descriptions]
    if not any(descriptions):
        if ds.count != len(wanted):
            raise ImageryError(
                f"{path.name}: {ds.count} bands without band descriptions; a {band_map.source} "
                f"image has {len(wanted)} ({', '.join(wanted)}, in this order), or name its "
                "bands in the band descriptions")
        return {name: i for i, name in enumerate(wanted, start=1)}
    found: dict[str, int] = {}
    for name in wanted:
        accepted = {_normalise(a) for a in band_map.aliases[name]}
        hits = [i for i, d in enumerate(descriptions, start=1) if d in accepted]
        if len(hits) > 1:
            raise ImageryError(f"{path.name}: bands {hits} are all described as {name}; "
                               "give each band its own description")
        if hits:
            found[name] = hits[0]
    missing = [n for n in wanted if n not in found]
    if missing:
        have = ", ".join(d or "(none)" for d in ds.descriptions) if ds.descriptions else "none"
        raise ImageryError(
            f"{path.name}: a {band_map.source} image needs the bands {', '.join(wanted)}; "
            f"missing {', '.join(missing)} (band descriptions found: {have})")
    return found


def _acquired(tags: Mapping[str, str], path: Path) -> datetime | None:
    for tag in ACQUIRED_TAGS:
        if tag in tags:
            try:
                return datetime.fromisoformat(tags[tag].strip())
            except ValueError:
                raise ImageryError(f"{path.name}: tag {tag}={tags[tag][:40]!r} is not an ISO "
                                   "8601 time (e.g. 2025-08-20T10:15:00+09:00)") from None
    return None


def _offset(band_map: BandMap, tags: Mapping[str, str], path: Path) -> float:
    if band_map.source != SENTINEL_2_L2A.source or S2_OFFSET_TAG not in tags:
        return band_map.offset
    try:
        offset = float(tags[S2_OFFSET_TAG])
    except ValueError:
        offset = math.nan
    if not math.isfinite(offset):
        raise ImageryError(f"{path.name}: tag {S2_OFFSET_TAG}={tags[S2_OFFSET_TAG][:40]!r} "
                           "is not a number (-1000 from processing baseline 04.00, else 0)")
    return offset


def open_image(path: str | Path, *, source: str | None = None) -> Image:
    """Check the GeoTIFF at ``path`` and find its bands.

    ``source`` overrides the file's ``AGRI_SOURCE`` tag. Raises
    :class:`ImageryError` for a file that is not a georeferenced GeoTIFF of a
    known source with that source's bands.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():  # checked below, with the fix in the message
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            ds = rasterio.open(path)
    except RasterioIOError as exc:
        raise ImageryError(f"{path.name}: not a readable GeoTIFF ({str(exc)[:200]})") from None
    with ds:
        if ds.driver != "GTiff":
            raise ImageryError(f"{path.name}: a {ds.driver} file, not a GeoTIFF; convert it "
                               "(gdal_translate -of GTiff) or upload the GeoTIFF")
        tags = ds.tags()
        name = source or tags.get(SOURCE_TAG)
        if not name:
            raise ImageryError(f"{path.name}: no {SOURCE_TAG} tag; say which source it is "
                               f"({', '.join(SOURCES)})")
        band_map = SOURCES.get(name.strip().lower())
        if band_map is None:
            raise ImageryError(f"{path.name}: unknown source {name[:40]!r}; known sources: "
                               f"{', '.join(SOURCES)}")
        if ds.crs is None:
            raise ImageryError(f"{path.name}: no CRS; georeference the image (for example "
                               f"gdal_edit.py -a_srs {band_map.crs or 'EPSG:...'})")
        if ds.transform.is_identity or ds.transform.determinant == 0:
            raise ImageryError(f"{path.name}: no geotransform; georeference the image")
        band_index = _band_index(ds, band_map, path)
        for band, i in band_index.items():
            dtype = ds.dtypes[i - 1]
            if dtype not in band_map.dtypes:
                raise ImageryError(
                    f"{path.name}: band {i} ({band}) is {dtype}; {band_map.source} images store "
                    f"{' or '.join(band_map.dtypes)} (is the source right?)")
        nodata = ds.nodatavals[band_index[band_map.bands[0]] - 1]
        return Image(
            path=path, band_map=band_map, band_index=MappingProxyType(band_index),
            crs_wkt=ds.crs.to_wkt(), transform=ds.transform, width=ds.width, height=ds.height,
            block_shape=tuple(ds.block_shapes[0]), nodata=nodata,
            offset=_offset(band_map, tags, path), acquired=_acquired(tags, path))


def read_window(ds, image: Image, window: Window) -> tuple[np.ndarray, np.ndarray]:
    """Reflectance and validity of ``window`` of the open dataset ``ds``.

    Returns ``(reflectance, valid)``: float32 of shape (len(image.bands), rows,
    cols) in the order of ``image.bands``, and a boolean (rows, cols) that is
    False where any band is nodata or not finite or the scene class is invalid.
    """
    bm = image.band_map
    indexes = [image.band_index[b] for b in bm.bands]
    if bm.mask_band:  # one read (a GeoTIFF's bands share one data type): blocks decoded once
        stored = ds.read(indexes + [image.band_index[bm.mask_band]], window=window)
        stored, classes = stored[:-1], stored[-1]
    else:
        stored, classes = ds.read(indexes, window=window), None
    valid = np.ones(stored.shape[1:], dtype=bool)
    for value in {bm.nodata, image.nodata} - {None}:
        if not math.isnan(value) and _representable(value, stored.dtype):
            valid &= ~(stored == value).any(axis=0)
    if stored.dtype.kind == "f":
        reflectance = stored.astype(np.float32, copy=False)
        valid &= np.isfinite(reflectance).all(axis=0)
    else:
        reflectance = stored.astype(np.float32)
    if image.offset:
        reflectance += np.float32(image.offset)
    if bm.scale != 1.0:
        reflectance *= np.float32(bm.scale)
    if classes is not None:
        valid &= ~np.isin(classes, list(bm.invalid_classes))
    return reflectance, valid


def _representable(value: float, dtype: np.dtype) -> bool:
    if dtype.kind == "f":
        return True
    info = np.iinfo(dtype)
    return float(value).is_integer() and info.min <= value <= info.max


def normalized_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(a - b) / (a + b) in float32; NaN where a + b is 0."""
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    total = a + b
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.subtract(a, b, dtype=np.float32)
        np.divide(out, total, out=out)
    out[total == 0] = np.nan
    return out


def index(name: str, bands: Mapping[str, np.ndarray]) -> np.ndarray:
    """Index ``name`` (``ndvi``, ``gndvi``, ``ndre``) from reflectance arrays by band name."""
    try:
        a, b = INDICES[name]
    except KeyError:
        raise ImageryError(f"unknown index {name!r}; known: {', '.join(INDICES)}") from None
    missing = [band for band in (a, b) if band not in bands]
    if missing:
        raise ImageryError(f"{name} needs the band(s) {', '.join(missing)}")
    return normalized_difference(bands[a], bands[b])
