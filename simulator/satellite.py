"""Satellite scenes of a simulated season: Sentinel-2 L2A-like and commercial 2 m-class.

``take_scenes`` writes the scenes to a folder with ``records.jsonl`` (one JSON object per
scene: ``source``, ``file``, ``acquired``, ``cloud_fraction``). The ground is
:mod:`agri.simulator.ground`, rendered at a metre or finer and averaged into the scene's
pixels, so a pixel mixes field, levee, road and channel by area (a 30 m paddy is three
10 m pixels wide). To keep files small only windows around the simulated blocks are
rendered (``WINDOW_MARGIN_M``); the rest of a scene's extent is nodata (sparse tiles).

Sentinel-2 L2A-like (``sentinel-2-l2a``), about every ``S2_EVERY_DAYS`` from July to
September at the satellite's morning pass:

- EPSG:32654 (UTM 54N), 10 m pixels on a 20 m-aligned grid, uint16, five bands with
  descriptions B03, B04, B05, B08, SCL; reflectance = (DN + BOA_ADD_OFFSET) /
  QUANTIFICATION_VALUE with offset -1000 and 10000 (processing baseline 04.00); DN 0 is
  nodata. B05 (red edge, 705 nm) and SCL are 20 m products resampled to 10 m by
  repetition, as an L2A user stacking them at 10 m gets them.
- Bands from the ground's P4 Multispectral bands: B03 green, B04 red, B08 NIR, B05
  between red and red edge (``B05_RED_EDGE_WEIGHT`` of the way, assumption: the red
  edge rises steeply between 680 and 740 nm).
- The instrument's blur (``PSF_SIGMA_PX``), noise and a residual of the atmospheric
  correction per scene and band (gain and offset); assumptions on the magnitudes.
- Clouds: cumulus cells whose share of the sky follows the day's simulated sunshine
  (``CLOUD_SUNSHINE_EXPONENT``),
  with soft edges, sometimes bands of thin cirrus; each cell's shadow falls displaced
  from it by its height and the sun's position (zenith and azimuth at the pass).
- SCL classes as ESA's: 3 cloud shadow, 4 vegetation, 5 not vegetated, 6 water,
  8 cloud medium probability, 9 cloud high probability, 10 thin cirrus (0 nodata). Like
  the real mask it misses the thin fringe of clouds and shadows (``SCL_CLOUD_MIN``,
  ``SCL_SHADOW_MIN``), whose pixels are contaminated but classed as the ground under them.

Commercial 2 m-class (``commercial-2m``), tasked twice around the harvest maps (the
block's median heading plus ``COMMERCIAL_DAYS_FROM_HEADING``) on nearly clear days: EPSG:6678, 2 m
pixels, uint16, four bands blue, green, red, nir, reflectance = DN / 10000, nodata 0.

Every scene carries the tags ``AGRI_SOURCE`` and ``ACQUIRED`` (ISO 8601, UTC).
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import rasterio
from rasterio.transform import Affine
from rasterio.windows import Window
from scipy.ndimage import gaussian_filter

from agri.analytics import agronomy as ag
from agri.analytics import solar
from agri.simulator.crop import CropGrowth
from agri.simulator.fields import PLANE_CRS, Block, Field
from agri.simulator.ground import FieldScene, Layout, layout, paint, transformer
from agri.simulator.water import MIN_LEVEL_M, PaddyWater
from agri.simulator.weather import Weather

S2_SOURCE, COMMERCIAL_SOURCE = "sentinel-2-l2a", "commercial-2m"
S2_CRS = "EPSG:32654"
S2_PIXEL_M, S2_COARSE_M = 10.0, 20.0
S2_BANDS = ("B03", "B04", "B05", "B08", "SCL")
S2_FIRST, S2_LAST, S2_EVERY_DAYS = (7, 5), (9, 30), 10
S2_PASS_UTC = time(1, 40)  # about 10:40 local, the descending node's 10:30 solar time
BOA_ADD_OFFSET, QUANTIFICATION_VALUE = -1000, 10000
PROCESSING_BASELINE = "04.00"
B05_RED_EDGE_WEIGHT = 0.45
COMMERCIAL_PIXEL_M = 2.0
COMMERCIAL_BANDS = ("blue", "green", "red", "nir")
COMMERCIAL_DAYS_FROM_HEADING = (20, 30)
COMMERCIAL_PASS_UTC = time(1, 30)
COMMERCIAL_MAX_CLOUD = 0.05  # tasked images are taken on nearly clear days
SCALE = 10_000
NODATA = 0
WINDOW_MARGIN_M = 100.0  # ground rendered this far around each block
EXTENT_MARGIN_M = 200.0
TILE = 256
PSF_SIGMA_PX = 0.4  # blur of the instrument, pixels (assumption)
NOISE_SD = 0.003  # reflectance per pixel (assumption)
ATMOSPHERE_GAIN_SD, ATMOSPHERE_OFFSET_SD = 0.02, 0.003  # residual per scene and band
CLOUD_REFLECTANCE = np.array([0.50, 0.48, 0.47, 0.47, 0.46])  # P4M band order (assumption)
CIRRUS_REFLECTANCE = 0.25
CIRRUS_PROBABILITY, CIRRUS_OPACITY = 0.15, (0.05, 0.2)  # peak opacity of the veil's bands
CIRRUS_WAVELENGTH_M = (3000.0, 12000.0)
CLOUD_RADIUS_M = (150.0, 1500.0)
CLOUD_FRINGE, CLOUD_FRINGE_M = 0.35, 150.0  # the soft edge: share of a cell's radius, at most
CLOUD_HEIGHT_M = (800.0, 3000.0)
CLOUD_JITTER = 0.1  # sky cover = (1 - relative sunshine of the pass hours) ** 2, +- this
CLOUD_SUNSHINE_EXPONENT = 2.0  # sunshine is lost to thin cloud that hides little ground
SHADOW_DEPTH = 0.65  # share of the light a cloud's shadow takes (the direct beam)
SCL_CLOUD_HIGH, SCL_CLOUD_MIN, SCL_CIRRUS_MIN, SCL_SHADOW_MIN = 0.6, 0.35, 0.08, 0.5
SCL_VEGETATION_NDVI = 0.4
SCL_WATER_NIR = 0.08
SCL_SHADOW, SCL_VEGETATION, SCL_NOT_VEGETATED, SCL_WATER = 3, 4, 5, 6
SCL_CLOUD_MEDIUM, SCL_CLOUD_HIGH_CLASS, SCL_CIRRUS = 8, 9, 10
SCL_CLASSES = {SCL_SHADOW: "cloud shadow", SCL_VEGETATION: "vegetation",
               SCL_NOT_VEGETATED: "not vegetated", SCL_WATER: "water",
               SCL_CLOUD_MEDIUM: "cloud medium probability",
               SCL_CLOUD_HIGH_CLASS: "cloud high probability", SCL_CIRRUS: "thin cirrus"}
_CLOUD_GRID_M = 250.0  # grid on which a scene's cloud share is measured while drawing cells
_CLOUD_GRID_POINTS = 40  # ... at least this many points across
_COVER_TOLERANCE = (0.02, 0.25)  # a scene's cloud share may exceed the sky cover by this
_MAX_CELLS = 4000  # cells tried
_NO_CIRRUS = (0.0, 0.0, 1.0, 0.0)


@dataclass(frozen=True, slots=True)
class Sky:
    """A scene's clouds in the scene's CRS: cells (x, y, radius, opacity), a veil of cirrus
    in bands (peak opacity, direction, wavelength m, phase), and the shadows' displacement
    (metres east, north)."""

    cells: np.ndarray  # (n, 4)
    cirrus: tuple[float, float, float, float]
    shadow_shift: tuple[float, float]

    def veil(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Cirrus opacity at the points: bands of thin cloud across the scene."""
        peak, angle, wavelength, phase = self.cirrus
        if peak <= 0:
            return np.zeros(np.shape(xs))
        u = np.asarray(xs) * math.cos(angle) + np.asarray(ys) * math.sin(angle)
        return peak * (0.5 + 0.5 * np.sin(2 * math.pi * u / wavelength + phase)) ** 2

    def opacity(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Cumulus opacity 0..1 at the points."""
        clear = np.ones(np.shape(xs))
        if not len(self.cells) or not np.size(xs):
            return 1.0 - clear
        x, y, r = self.cells[:, 0], self.cells[:, 1], self.cells[:, 2]
        near = ((x + r >= np.min(xs)) & (x - r <= np.max(xs)) & (y + r >= np.min(ys))
                & (y - r <= np.max(ys)))
        for x, y, r, a in self.cells[near]:
            fringe = min(CLOUD_FRINGE * r, CLOUD_FRINGE_M)
            edge = np.clip((r - np.hypot(xs - x, ys - y)) / fringe, 0.0, 1.0)
            clear *= 1.0 - a * edge * edge * (3.0 - 2.0 * edge)  # smoothstep fringe
        return 1.0 - clear

    def shadow(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Shadow strength 0..1: the opacity of the cloud between the point and the sun."""
        return self.opacity(xs - self.shadow_shift[0], ys - self.shadow_shift[1])


def sun_position(when: datetime, lon: float, lat: float) -> tuple[float, float]:
    """(zenith, azimuth from north, clockwise), degrees, at ``when`` (aware)."""
    local = when.astimezone(UTC) + timedelta(hours=9)
    doy = local.timetuple().tm_yday
    hour = local.hour + local.minute / 60.0 + local.second / 3600.0
    sin_h = float(solar.sin_elevation(latitude_deg=lat, longitude_deg=lon,
                                      standard_meridian_deg=135.0, day_of_year=doy, hour=hour))
    solar_time = hour + (4.0 * (lon - 135.0) + float(solar.equation_of_time_min(doy, hour))) / 60
    hour_angle = math.radians(15.0 * (solar_time - 12.0))
    decl = float(solar.declination_rad(doy, hour))
    phi = math.radians(lat)
    azimuth = math.degrees(math.atan2(math.sin(hour_angle), math.cos(hour_angle) * math.sin(phi)
                                      - math.tan(decl) * math.cos(phi))) + 180.0
    return 90.0 - math.degrees(math.asin(sin_h)), azimuth % 360.0


def draw_sky(*, rng: np.random.Generator, bounds: tuple[float, float, float, float],
             cover: float, sun: tuple[float, float], cirrus: bool) -> Sky:
    """Cells added at random until they hide ``cover`` of the ground in ``bounds`` (at
    the cloud mask's opacity)."""
    zenith, azimuth = sun
    height = float(rng.uniform(*CLOUD_HEIGHT_M))
    reach = height * math.tan(math.radians(zenith))
    shift = (-reach * math.sin(math.radians(azimuth)), -reach * math.cos(math.radians(azimuth)))
    minx, miny, maxx, maxy = bounds
    pad = CLOUD_RADIUS_M[1] + reach
    step = min(_CLOUD_GRID_M, max(maxx - minx, maxy - miny) / _CLOUD_GRID_POINTS)
    gx, gy = np.meshgrid(np.arange(minx, maxx + step, step), np.arange(miny, maxy + step, step))
    clear = np.ones(gx.shape)
    cells = []
    tolerance = _COVER_TOLERANCE[0] + _COVER_TOLERANCE[1] * cover
    def hidden(clear_sky: np.ndarray) -> float:  # share of the ground a mask would flag
        return float((1.0 - clear_sky >= SCL_CLOUD_MIN).mean())

    for _ in range(_MAX_CELLS):
        if cover <= 0 or hidden(clear) >= cover:
            break
        cell = (float(rng.uniform(minx - pad, maxx + pad)),
                float(rng.uniform(miny - pad, maxy + pad)),
                float(np.exp(rng.uniform(*np.log(CLOUD_RADIUS_M)))), float(rng.uniform(0.7, 1.0)))
        after = clear * (1.0 - Sky(np.array([cell]), _NO_CIRRUS, shift).opacity(gx, gy))
        if hidden(after) <= cover + tolerance:  # a cell that would overshoot is not drawn
            cells.append(cell)
            clear = after
    veil = ((float(rng.uniform(*CIRRUS_OPACITY)), float(rng.uniform(0, math.pi)),
             float(rng.uniform(*CIRRUS_WAVELENGTH_M)), float(rng.uniform(0, 2 * math.pi)))
            if cirrus else _NO_CIRRUS)
    return Sky(np.array(cells).reshape(-1, 4), veil, shift)


@dataclass(frozen=True, slots=True)
class _Scene:
    source: str
    day: date
    acquired: datetime
    cover: float


def scene_days(*, fields: Sequence[Field], growth: dict[str, CropGrowth], weather: Weather,
               rng: np.random.Generator) -> list[_Scene]:
    """The season's acquisitions with their sky cover (Sentinel-2 from the day's sunshine
    at the pass; commercial ones on the nearly clear day nearest each target)."""
    sunshine = pd.Series(weather.sunshine, index=weather.times())
    year = weather.year

    def cover_on(day: date, utc: time) -> float:
        local = datetime.combine(day, utc, UTC).astimezone(sunshine.index.tz)
        hours = sunshine[local - timedelta(hours=1):local + timedelta(hours=1)]
        jitter = rng.uniform(-CLOUD_JITTER, CLOUD_JITTER)
        return float(np.clip((1.0 - hours.mean()) ** CLOUD_SUNSHINE_EXPONENT + jitter, 0.0, 1.0))

    def when(day: date, utc: time) -> datetime:
        return datetime.combine(day, utc, UTC) + timedelta(seconds=int(rng.integers(-300, 300)))

    out = []
    day = date(year, *S2_FIRST)
    while day <= date(year, *S2_LAST):
        out.append(_Scene(S2_SOURCE, day, when(day, S2_PASS_UTC), cover_on(day, S2_PASS_UTC)))
        day += timedelta(days=S2_EVERY_DAYS)
    headings = sorted(h for f in fields if (h := growth[f.id].phenology.heading) is not None)
    median = headings[len(headings) // 2] if headings else date(year, *ag.PREFECTURE_HEADING_END)
    for offset in COMMERCIAL_DAYS_FROM_HEADING:
        target = median + timedelta(days=offset)
        tries = [target + timedelta(days=d) for d in range(-5, 6)]
        covers = [cover_on(d, COMMERCIAL_PASS_UTC) for d in tries]
        best = int(np.argmin(covers))
        out.append(_Scene(COMMERCIAL_SOURCE, tries[best],
                          when(tries[best], COMMERCIAL_PASS_UTC),
                          min(covers[best], float(rng.uniform(0.0, COMMERCIAL_MAX_CLOUD)))))
    return sorted(out, key=lambda s: s.acquired)


def take_scenes(*, fields: Sequence[Field], growth: dict[str, CropGrowth],
                water: dict[str, PaddyWater], weather: Weather, out: Path,
                rng: np.random.Generator) -> list[dict[str, Any]]:
    """Write the season's scenes of the fields' blocks under ``out``; return the records."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    blocks: dict[str, list[Field]] = {}
    for f in fields:
        blocks.setdefault(f.block.id, []).append(f)
    levels = {fid: w.daily()["level_m"] for fid, w in water.items()}
    layouts: dict[tuple[str, str], Layout] = {}
    records = []
    for scene in scene_days(fields=fields, growth=growth, weather=weather, rng=rng):
        members = {bid: [FieldScene(f, growth[f.id], float(levels[f.id].get(
            pd.Timestamp(scene.day), MIN_LEVEL_M))) for f in fs] for bid, fs in blocks.items()}
        block_of = {bid: fs[0].block for bid, fs in blocks.items()}
        writer = _Sentinel2 if scene.source == S2_SOURCE else _Commercial
        path = out / f"{scene.day.isoformat()}_{scene.source}.tif"
        cloud = writer(scene=scene, blocks=block_of, members=members, rng=rng,
                       layouts=layouts).write(path)
        records.append({"source": scene.source, "file": path.name,
                        "acquired": scene.acquired.isoformat(), "cloud_fraction": round(cloud, 3)})
    with (out / "records.jsonl").open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record) + "\n")
    return records


class _Writer(ABC):
    """A scene's grid over the blocks, rendered window by window."""

    crs: str
    pixel_m: float
    align_m: float
    supersample: int
    bands: tuple[str, ...]
    source: str

    def __init__(self, *, scene: _Scene, blocks: dict[str, Block],
                 members: dict[str, list[FieldScene]], rng: np.random.Generator,
                 layouts: dict[tuple[str, str], Layout]) -> None:
        self.scene, self.blocks, self.members, self.rng = scene, blocks, members, rng
        self.layouts = layouts  # shared by the scenes of a season: the ground stays put
        self.to_crs = transformer(PLANE_CRS, self.crs).transform
        boxes = {bid: self._bounds(b.outline.buffer(WINDOW_MARGIN_M))
                 for bid, b in blocks.items()}
        self.windows = boxes
        minx = min(b[0] for b in boxes.values()) - EXTENT_MARGIN_M
        miny = min(b[1] for b in boxes.values()) - EXTENT_MARGIN_M
        maxx = max(b[2] for b in boxes.values()) + EXTENT_MARGIN_M
        maxy = max(b[3] for b in boxes.values()) + EXTENT_MARGIN_M
        a = self.align_m
        self.left, self.top = math.floor(minx / a) * a, math.ceil(maxy / a) * a
        self.width = int(math.ceil((math.ceil(maxx / a) * a - self.left) / self.pixel_m))
        self.height = int(math.ceil((self.top - math.floor(miny / a) * a) / self.pixel_m))
        self.transform = Affine(self.pixel_m, 0.0, self.left, 0.0, -self.pixel_m, self.top)
        lon, lat = transformer(self.crs, "EPSG:4326").transform(
            (minx + maxx) / 2, (miny + maxy) / 2)
        self.sun = sun_position(scene.acquired, lon, lat)
        self.sky = draw_sky(rng=rng, bounds=(minx, miny, maxx, maxy), cover=scene.cover,
                            sun=self.sun, cirrus=bool(rng.random() < CIRRUS_PROBABILITY))
        self.gain = 1.0 + rng.normal(0.0, ATMOSPHERE_GAIN_SD, 5)
        self.offset = rng.normal(0.0, ATMOSPHERE_OFFSET_SD, 5)
        self.flagged = self.valid = 0

    def _bounds(self, polygon: Any) -> tuple[float, float, float, float]:
        xs, ys = polygon.exterior.coords.xy
        ex, ey = self.to_crs(np.asarray(xs), np.asarray(ys))
        return float(np.min(ex)), float(np.min(ey)), float(np.max(ex)), float(np.max(ey))

    def write(self, path: Path) -> float:
        """Write the scene to ``path``; return its cloud fraction over the rendered pixels."""
        profile = {"driver": "GTiff", "width": self.width, "height": self.height,
                   "count": len(self.bands), "dtype": "uint16", "crs": self.crs,
                   "transform": self.transform, "nodata": NODATA, "tiled": True,
                   "blockxsize": TILE, "blockysize": TILE, "compress": "deflate",
                   "predictor": 2, "SPARSE_OK": True}
        with rasterio.open(path, "w", **profile) as dst:
            for i, name in enumerate(self.bands, start=1):
                dst.set_band_description(i, name)
            dst.update_tags(AGRI_SOURCE=self.source, ACQUIRED=self.scene.acquired.isoformat(),
                            **self.tags())
            for bid, block in self.blocks.items():
                window, transform = self._window(self.windows[bid])
                data = self.render(block, self.members[bid], window, transform)
                dst.write(data, window=window)
        return self.flagged / max(self.valid, 1)

    def tags(self) -> dict[str, Any]:
        return {}

    def _window(self, box: tuple[float, float, float, float]) -> tuple[Window, Affine]:
        a = self.align_m
        col0 = int(math.floor((math.floor(box[0] / a) * a - self.left) / self.pixel_m))
        row0 = int(math.floor((self.top - math.ceil(box[3] / a) * a) / self.pixel_m))
        col1 = int(math.ceil((math.ceil(box[2] / a) * a - self.left) / self.pixel_m))
        row1 = int(math.ceil((self.top - math.floor(box[1] / a) * a) / self.pixel_m))
        window = Window(col0, row0, col1 - col0, row1 - row0)
        transform = Affine(self.pixel_m, 0.0, self.left + col0 * self.pixel_m, 0.0,
                           -self.pixel_m, self.top - row0 * self.pixel_m)
        return window, transform

    def observe(self, ground: np.ndarray, transform: Affine) -> tuple[np.ndarray, np.ndarray,
                                                                       np.ndarray]:
        """Top-of-canopy reflectance (5, h, w) as the sensor delivers it after atmospheric
        correction, with the cloud and shadow opacity at the pixels."""
        _, h, w = ground.shape
        xs = transform.c + (np.arange(w) + 0.5) * transform.a
        ys = transform.f + (np.arange(h) + 0.5) * transform.e
        gx, gy = np.meshgrid(xs, ys)
        cloud, shade = self.sky.opacity(gx, gy), self.sky.shadow(gx, gy)
        veil = self.sky.veil(gx, gy)[None]
        lit = ground * (1.0 - SHADOW_DEPTH * shade)[None]
        seen = (1.0 - cloud)[None] * lit + cloud[None] * CLOUD_REFLECTANCE[:, None, None]
        seen = (1.0 - veil) * seen + veil * CIRRUS_REFLECTANCE
        seen = np.stack([gaussian_filter(b, PSF_SIGMA_PX, mode="nearest") for b in seen])
        seen = seen * self.gain[:, None, None] + self.offset[:, None, None]
        seen = seen + NOISE_SD * self.rng.standard_normal(seen.shape)
        return np.clip(seen, 0.0, 1.0), cloud, shade, veil[0]

    @abstractmethod
    def render(self, block: Block, scenes: list[FieldScene], window: Window,
               transform: Affine) -> np.ndarray:
        """The scene's bands (DN) in ``window``."""

    def _ground(self, block: Block, scenes: list[FieldScene], window: Window,
                transform: Affine) -> np.ndarray:
        key = (type(self).__name__, block.id)
        if key not in self.layouts:
            self.layouts[key] = layout(
                blocks=[block], fields=[s.field for s in scenes], transform=transform,
                width=int(window.width), height=int(window.height), crs=self.crs,
                supersample=self.supersample)
        return paint(self.layouts[key], scenes=scenes, day=self.scene.day, rng=self.rng)


def _dn(reflectance: np.ndarray, offset: int = 0) -> np.ndarray:
    return np.clip(np.round(reflectance * SCALE) - offset, 1, 65535).astype(np.uint16)


class _Sentinel2(_Writer):
    crs, pixel_m, align_m, supersample = S2_CRS, S2_PIXEL_M, S2_COARSE_M, 10
    bands, source = S2_BANDS, S2_SOURCE

    def tags(self) -> dict[str, Any]:
        zenith, azimuth = self.sun
        return {"BOA_ADD_OFFSET": BOA_ADD_OFFSET, "QUANTIFICATION_VALUE": QUANTIFICATION_VALUE,
                "PROCESSING_BASELINE": PROCESSING_BASELINE,
                "SUN_ZENITH_ANGLE": round(zenith, 2), "SUN_AZIMUTH_ANGLE": round(azimuth, 2),
                "SCL_CLASSES": json.dumps(SCL_CLASSES)}

    def render(self, block: Block, scenes: list[FieldScene], window: Window,
               transform: Affine) -> np.ndarray:
        seen, cloud, shade, veil = self.observe(self._ground(block, scenes, window, transform),
                                                transform)
        blue, green, red, red_edge, nir = seen
        del blue
        b05 = _repeat(_coarse(red + B05_RED_EDGE_WEIGHT * (red_edge - red)), seen.shape[1:])
        coarse = {name: _coarse(v) for name, v in (("red", red), ("nir", nir), ("cloud", cloud),
                                                     ("shade", shade), ("veil", veil))}
        scl = _repeat(classify(**coarse), seen.shape[1:])
        self.flagged += int(np.isin(scl, (SCL_CLOUD_MEDIUM, SCL_CLOUD_HIGH_CLASS,
                                          SCL_CIRRUS)).sum())
        self.valid += scl.size
        offset = BOA_ADD_OFFSET
        return np.stack([_dn(green, offset), _dn(red, offset), _dn(b05, offset),
                         _dn(nir, offset), scl.astype(np.uint16)])

class _Commercial(_Writer):
    crs, pixel_m, align_m, supersample = PLANE_CRS, COMMERCIAL_PIXEL_M, COMMERCIAL_PIXEL_M, 4
    bands, source = COMMERCIAL_BANDS, COMMERCIAL_SOURCE

    def render(self, block: Block, scenes: list[FieldScene], window: Window,
               transform: Affine) -> np.ndarray:
        seen, cloud, _, _ = self.observe(self._ground(block, scenes, window, transform),
                                         transform)
        self.flagged += int((cloud >= SCL_CLOUD_MIN).sum())
        self.valid += cloud.size
        blue, green, red, _, nir = seen
        return np.stack([_dn(blue), _dn(green), _dn(red), _dn(nir)])


def classify(*, red: np.ndarray, nir: np.ndarray, cloud: np.ndarray, shade: np.ndarray,
             veil: np.ndarray) -> np.ndarray:
    """SCL classes from the observed red and NIR reflectance and the clouds' opacity
    (cumulus ``cloud``, ``shade`` of their shadows, cirrus ``veil``)."""
    ndvi = (nir - red) / np.maximum(nir + red, 1e-6)
    scl = np.where(ndvi >= SCL_VEGETATION_NDVI, SCL_VEGETATION, SCL_NOT_VEGETATED)
    scl = np.where((nir < SCL_WATER_NIR) & (ndvi < 0.0), SCL_WATER, scl)
    scl = np.where((shade >= SCL_SHADOW_MIN) & (cloud < SCL_CLOUD_MIN), SCL_SHADOW, scl)
    scl = np.where(veil >= SCL_CIRRUS_MIN, SCL_CIRRUS, scl)
    scl = np.where(cloud >= SCL_CLOUD_MIN, SCL_CLOUD_MEDIUM, scl)
    return np.where(cloud >= SCL_CLOUD_HIGH, SCL_CLOUD_HIGH_CLASS, scl)


def _coarse(values: np.ndarray) -> np.ndarray:
    """2 x 2 means: the 20 m grid of a 10 m array whose sides are even."""
    h, w = values.shape
    return values.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))


def _repeat(values: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return np.repeat(np.repeat(values, 2, axis=0), 2, axis=1)[:shape[0], :shape[1]]
