"""Drone flights over the simulated blocks: multispectral surveys and spraying.

A survey writes one orthomosaic GeoTIFF per block and day: five float32
reflectance bands (0..1) of the DJI P4 Multispectral (analytics/agronomy.py section
9) in the order blue, green, red, red_edge, nir (band descriptions), EPSG:6678, square
pixels of ``gsd_m`` metres, tiled and DEFLATE-compressed, tag ``AGRI_SOURCE=drone-p4m``,
covering the block plus a margin; pixels outside the flown footprint (the block's rotated
outline plus the margin) are nodata (-1). The ground is :mod:`agri.simulator.ground`
(mixed pixels at levees and edges, hills and open water, textures); the camera adds, as
a real one does (assumptions on the magnitudes):

- a reflectance calibration error per flight: every band's gain off by a common factor
  (``FLIGHT_GAIN_SD``: irradiance sensor and reference panel) and by its own
  (``BAND_GAIN_SD``);
- a smooth illumination gradient across the block (``GRADIENT_SD`` from one side to the
  other: the sun and thin cloud moving during the flight);
- per-pixel sensor noise, ``sqrt(READ_NOISE**2 + SHOT_NOISE * reflectance)`` at the
  camera's own 5 cm, averaged down in coarser mosaics.

The raster is written in strips, so a 5 cm flight never holds the whole block in memory.

Flight records are the JSON objects published on
``agri/v1/drones/{drone_id}/flights``; their keys:

- survey: ``kind`` = "survey", ``drone_id``, ``block``, ``fields`` (ids),
  ``gsd_m``, ``image`` (file name), ``started_at``, ``ended_at``;
- spray: ``kind`` = "spray", ``drone_id``, ``field``, ``product``,
  ``target`` (pest or disease), ``rate_l_per_10a`` (product volume per
  10 a), ``sprayed_area_m2``, ``volume_l``, ``started_at``, ``ended_at``
  (ISO 8601 with the +09:00 offset).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import rasterio
from rasterio.transform import Affine
from rasterio.windows import Window

from agri.analytics import agronomy as ag
from agri.simulator.fields import PLANE_CRS, Block, Field
from agri.simulator.ground import FieldScene, render

DEFAULT_GSD_M = ag.P4M_GSD_M
MARGIN_M = 10.0
NODATA = -1.0
SOURCE = "drone-p4m"  # AGRI_SOURCE tag
STRIP_ROWS = 256  # rows rendered and written at a time (and the tile height)
SUPERSAMPLE = 4  # ground rendered at 4 x 4 points per pixel for mixed pixels
FLIGHT_GAIN_SD = 0.04  # relative, common to the bands
BAND_GAIN_SD = 0.015  # relative, each band
GRADIENT_SD = 0.02  # relative change of illumination across the block
READ_NOISE = 0.004  # reflectance, per native pixel
SHOT_NOISE = 0.0004  # reflectance, per native pixel: variance per unit reflectance
SURVEY_HOUR = 10  # local start of a survey (assumption: mid-morning, sun high)
SURVEY_SPEED_M2_S = 280.0  # 7 m/s with an effective swath of 40 m (70 % side overlap)
SURVEY_OVERHEAD_S = 300.0  # take-off, calibration panel, landing
SPRAY_HOUR = 6  # spraying starts early, while the air is calm
SPRAY_RATE_M2_S = 17.0  # about 1 ha in 10 minutes
SPRAY_TURNAROUND_S = 120.0  # moving between paddies, refilling
# Spray programme around heading (Aomori practice, assumption on the exact days):
# (target, product, rate L/10a, days from heading).
SPRAYS = (
    ("panicle blast", "fthalide + ferimzone flowable, drone formulation", 0.8, -3),
    ("rice bugs", "dinotefuran liquid, drone formulation", 0.8, 8),
)
TZ = ZoneInfo(ag.TIME_ZONE)



@dataclass(frozen=True, slots=True)
class Camera:
    """One flight's calibration: band gains and the illumination gradient (per metre)."""

    gains: np.ndarray  # (5,)
    gradient_per_m: tuple[float, float]
    centre: tuple[float, float]
    gsd_m: float

    @classmethod
    def draw(cls, rng: np.random.Generator, block: Block, gsd_m: float) -> Camera:
        minx, miny, maxx, maxy = block.outline.bounds
        span = max(maxx - minx, maxy - miny)
        gains = (1.0 + rng.normal(0.0, FLIGHT_GAIN_SD)) * (
            1.0 + rng.normal(0.0, BAND_GAIN_SD, len(ag.P4M_BANDS)))
        gx, gy = rng.normal(0.0, GRADIENT_SD, 2) / span
        return cls(gains, (float(gx), float(gy)), ((minx + maxx) / 2, (miny + maxy) / 2), gsd_m)

    def observe(self, ground: np.ndarray, xs: np.ndarray, ys: np.ndarray,
                rng: np.random.Generator) -> np.ndarray:
        """The camera's reflectance of ``ground`` (5, h, w) at pixel centres ``xs``, ``ys``."""
        light = 1.0 + self.gradient_per_m[0] * (xs - self.centre[0]) + self.gradient_per_m[1] * (
            ys - self.centre[1])
        seen = ground * self.gains[:, None, None] * light[None]
        averaged = min(1.0, DEFAULT_GSD_M / self.gsd_m)
        sd = np.sqrt(READ_NOISE ** 2 + SHOT_NOISE * np.maximum(seen, 0.0)) * averaged
        return np.clip(seen + sd * rng.standard_normal(seen.shape), 0.0, 1.0)


def _grid(block: Block, gsd_m: float, margin_m: float) -> tuple[Affine, int, int]:
    minx, miny, maxx, maxy = block.outline.buffer(margin_m).bounds
    left, top = np.floor(minx / gsd_m) * gsd_m, np.ceil(maxy / gsd_m) * gsd_m
    width = int(np.ceil((maxx - left) / gsd_m))
    height = int(np.ceil((top - miny) / gsd_m))
    return Affine(gsd_m, 0.0, left, 0.0, -gsd_m, top), width, height


def survey_flight(*, block: Block, scenes: Sequence[FieldScene], day: date, path: Path,
                  rng: np.random.Generator, gsd_m: float = DEFAULT_GSD_M,
                  margin_m: float = MARGIN_M, drone_id: str = "survey-01") -> dict[str, Any]:
    """Write the survey GeoTIFF of ``block`` on ``day`` to ``path``; return its record."""
    transform, width, height = _grid(block, gsd_m, margin_m)
    footprint = block.outline.buffer(margin_m)
    camera = Camera.draw(rng, block, gsd_m)
    profile = {
        "driver": "GTiff", "width": width, "height": height, "count": len(ag.P4M_BANDS),
        "dtype": "float32", "crs": PLANE_CRS, "transform": transform, "nodata": NODATA,
        "tiled": True, "blockxsize": STRIP_ROWS, "blockysize": STRIP_ROWS,
        "compress": "deflate", "predictor": 3, "BIGTIFF": "IF_SAFER",
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    started = datetime.combine(day, time(SURVEY_HOUR), TZ) + timedelta(
        minutes=int(rng.integers(0, 90)))
    ended = started + timedelta(seconds=round(
        SURVEY_OVERHEAD_S + footprint.area / SURVEY_SPEED_M2_S))
    with rasterio.open(path, "w", **profile) as dst:
        for i, band in enumerate(ag.P4M_BANDS, start=1):
            dst.set_band_description(i, band.name)
            dst.update_tags(i, centre_nm=band.centre_nm, fwhm_nm=2 * band.half_width_nm)
        dst.update_tags(AGRI_SOURCE=SOURCE, block=block.id, acquired=started.isoformat(),
                        drone_id=drone_id, sensor="DJI P4 Multispectral (simulated)",
                        units="reflectance 0..1")
        for row in range(0, height, STRIP_ROWS):
            rows = min(STRIP_ROWS, height - row)
            win_transform = Affine(gsd_m, 0.0, transform.c, 0.0, -gsd_m, transform.f - row * gsd_m)
            ground = render(blocks=[block], scenes=scenes, day=day, transform=win_transform,
                            width=width, height=rows, rng=rng, footprint=footprint,
                            supersample=SUPERSAMPLE)
            xs = np.broadcast_to(win_transform.c + (np.arange(width) + 0.5) * gsd_m,
                                 (rows, width))
            ys = np.broadcast_to((win_transform.f - (np.arange(rows) + 0.5) * gsd_m)[:, None],
                                 (rows, width))
            image = camera.observe(ground, xs, ys, rng)
            image[np.isnan(ground)] = NODATA
            dst.write(image.astype(np.float32), window=Window(0, row, width, rows))
    return {
        "kind": "survey", "drone_id": drone_id, "block": block.id,
        "fields": [s.field.id for s in scenes], "gsd_m": gsd_m, "image": path.name,
        "started_at": started.isoformat(), "ended_at": ended.isoformat(),
    }


def spray_flights(*, fields: Sequence[Field], headings: dict[str, date | None],
                  rng: np.random.Generator) -> list[dict[str, Any]]:
    """Spray records for ``fields``: one contractor drone per municipality
    (``agras-<municipality>``) works through its fields in order each day."""
    records: list[dict[str, Any]] = []
    for target, product, rate, offset in SPRAYS:
        jobs: dict[tuple[str, date], list[Field]] = {}
        for f in fields:
            heading = headings.get(f.id)
            if heading is not None:
                jobs.setdefault((f.municipality, heading + timedelta(days=offset)), []).append(f)
        for (municipality, day), todo in sorted(jobs.items()):
            drone_id = f"agras-{municipality.lower()}"
            clock = datetime.combine(day, time(SPRAY_HOUR), TZ)
            for f in todo:
                area = f.polygon.area * float(rng.uniform(0.93, 1.0))
                actual = rate * float(rng.normal(1.0, 0.03))
                ended = clock + timedelta(seconds=round(area / SPRAY_RATE_M2_S))
                records.append({
                    "kind": "spray", "drone_id": drone_id, "field": f.id, "product": product,
                    "target": target, "rate_l_per_10a": round(actual, 3),
                    "sprayed_area_m2": round(area, 1),
                    "volume_l": round(actual * area / 1000.0, 2),
                    "started_at": clock.isoformat(), "ended_at": ended.isoformat(),
                })
                clock = ended + timedelta(seconds=SPRAY_TURNAROUND_S)
    return records
