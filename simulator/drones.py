"""Drone flights over the simulated blocks: multispectral surveys and spraying.

A survey writes one orthomosaic GeoTIFF per block and day: five float32
reflectance bands (0..1) of the DJI P4 Multispectral (analytics/agronomy.py section
9), EPSG:6678, square pixels of ``gsd_m`` metres, covering the block plus a
margin; pixels outside the flown footprint (the block's rotated outline plus
the margin) are nodata. Paddies take their reflectance from the crop model
(:mod:`agri.simulator.crop`) with the field's water level as background;
paddies of growers outside the platform show the block's mean crop; roads,
channels and the land around have fixed typical spectra (assumption). Each
pixel carries 2 % multiplicative sensor noise. The raster is written in
strips, so a 5 cm flight never holds the whole block in memory.

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
from rasterio.features import rasterize
from rasterio.transform import Affine
from rasterio.windows import Window

from agri.analytics import agronomy as ag
from agri.simulator.crop import (
    WATER,
    CropGrowth,
    background_reflectance,
    canopy_reflectance,
    canopy_state,
)
from agri.simulator.fields import PLANE_CRS, Block, Field

DEFAULT_GSD_M = ag.P4M_GSD_M
MARGIN_M = 10.0
NODATA = -1.0
STRIP_ROWS = 256  # rows rendered and written at a time (and the tile height)
SENSOR_NOISE_SD = 0.02  # relative
ROAD = np.array([0.140, 0.160, 0.180, 0.200, 0.220])  # gravel farm road (assumption)
GRASS = np.array([0.030, 0.080, 0.040, 0.250, 0.380])  # levees and verges in summer
BARE = np.array([0.090, 0.110, 0.130, 0.160, 0.190])  # land around out of season
GRASS_MONTHS = range(6, 10)  # June-September: verges green
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

_ROAD, _CHANNEL, _OUTSIDE, _OTHER_PADDY = 1, 2, 3, 4
_FIRST_FIELD = 10


@dataclass(frozen=True, slots=True)
class FieldScene:
    """What a field looks like on the day of a flight."""

    field: Field
    growth: CropGrowth
    level_m: float  # daily mean water level


def _grid(block: Block, gsd_m: float, margin_m: float) -> tuple[Affine, int, int]:
    minx, miny, maxx, maxy = block.outline.buffer(margin_m).bounds
    left, top = np.floor(minx / gsd_m) * gsd_m, np.ceil(maxy / gsd_m) * gsd_m
    width = int(np.ceil((maxx - left) / gsd_m))
    height = int(np.ceil((top - miny) / gsd_m))
    return Affine(gsd_m, 0.0, left, 0.0, -gsd_m, top), width, height


def _mean_scene(scenes: Sequence[FieldScene], day: date) -> tuple[np.ndarray, ...]:
    dvi = np.mean([s.growth.dvi_on(day) for s in scenes])
    n = np.mean([s.growth.n_index for s in scenes])
    level = float(np.mean([s.level_m for s in scenes]))
    return canopy_state(dvi, n) + (background_reflectance(level),)


def _render(labels: np.ndarray, xs: np.ndarray, ys: np.ndarray, *,
            scenes: Sequence[FieldScene], day: date, rng: np.random.Generator) -> np.ndarray:
    out = np.full((5,) + labels.shape, NODATA, dtype=np.float32)
    land = GRASS if day.month in GRASS_MONTHS else BARE
    for code, spectrum in ((_ROAD, ROAD), (_CHANNEL, WATER), (_OUTSIDE, land)):
        mask = labels == code
        out[:, mask] = spectrum[:, None]
    other = labels == _OTHER_PADDY
    if other.any() and not scenes:
        out[:, other] = background_reflectance(0.0)[:, None]
    elif other.any():
        lai, chl, yellow, background = _mean_scene(scenes, day)
        out[:, other] = canopy_reflectance(lai=lai, chlorophyll=chl, yellow=yellow,
                                           background=background)[:, None]
    for i, scene in enumerate(scenes):
        mask = labels == _FIRST_FIELD + i
        if not mask.any():
            continue
        local_n = scene.growth.n_index * scene.growth.patches.factor(xs[mask], ys[mask])
        lai, chl, yellow = canopy_state(scene.growth.dvi_on(day), local_n)
        background = background_reflectance(scene.level_m)[:, None]
        out[:, mask] = canopy_reflectance(lai=lai, chlorophyll=chl, yellow=yellow,
                                          background=background)
    flown = labels > 0
    noise = rng.normal(1.0, SENSOR_NOISE_SD, (5, int(flown.sum()))).astype(np.float32)
    out[:, flown] = np.clip(out[:, flown] * noise, 0.0, 1.0)
    return out


def survey_flight(*, block: Block, scenes: Sequence[FieldScene], day: date, path: Path,
                  rng: np.random.Generator, gsd_m: float = DEFAULT_GSD_M,
                  margin_m: float = MARGIN_M, drone_id: str = "survey-01") -> dict[str, Any]:
    """Write the survey GeoTIFF of ``block`` on ``day`` to ``path``; return its record."""
    transform, width, height = _grid(block, gsd_m, margin_m)
    shapes: list[tuple[Any, int]] = [(block.outline.buffer(margin_m), _OUTSIDE)]
    shapes += [(p, _OTHER_PADDY) for p in block.paddies]
    shapes += [(c, _CHANNEL) for c in block.channels] + [(block.road, _ROAD)]
    shapes += [(s.field.polygon, _FIRST_FIELD + i) for i, s in enumerate(scenes)]
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
        SURVEY_OVERHEAD_S + block.outline.buffer(margin_m).area / SURVEY_SPEED_M2_S))
    with rasterio.open(path, "w", **profile) as dst:
        for i, band in enumerate(ag.P4M_BANDS, start=1):
            dst.set_band_description(i, band.name)
            dst.update_tags(i, centre_nm=band.centre_nm, fwhm_nm=2 * band.half_width_nm)
        dst.update_tags(block=block.id, acquired=started.isoformat(), drone_id=drone_id,
                        sensor="DJI P4 Multispectral (simulated)", units="reflectance 0..1")
        for row in range(0, height, STRIP_ROWS):
            window = Window(0, row, width, min(STRIP_ROWS, height - row))
            win_transform = Affine(gsd_m, 0.0, transform.c, 0.0, -gsd_m, transform.f - row * gsd_m)
            labels = rasterize(shapes, out_shape=(window.height, width),
                               transform=win_transform, fill=0, dtype="uint16")
            cols = np.arange(width)
            rows = np.arange(window.height)
            xs = np.broadcast_to(win_transform.c + (cols + 0.5) * gsd_m, labels.shape)
            ys = np.broadcast_to((win_transform.f - (rows + 0.5) * gsd_m)[:, None],
                                 labels.shape)
            dst.write(_render(labels, xs, ys, scenes=scenes, day=day, rng=rng), window=window)
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
