"""One simulated season of the Tsugaru plain, written to a folder.

``simulate_season`` draws the weather, the fields and their farmers, grows
each field's crop, runs the paddy water balance, and flies the drones. It
writes:

- ``fields.geojson``: the fields for ``agri fields import``;
- ``truth.csv``: one row per field: ``field``, ``cultivar``,
  ``transplanted_on``, ``heading``, ``maturity`` (ISO dates, empty when not
  reached), ``protein_pct`` (brown rice, 15 % moisture), ``sterility_pct``,
  ``chalky_pct``;
- ``flights/<YYYY-MM-DD>_<block>.tif``: survey orthomosaics, one per block
  and survey day (30 days before, 20 and 30 days after the block's median
  heading: growth, protein map and harvest-timing map of analytics/agronomy.py
  section 9);
- ``flights/records.jsonl``: survey and spray flight records.

The returned :class:`Season` keeps the hourly weather and water series for
publishers that replay the season as sensors.
"""

from __future__ import annotations

import csv
import json
import logging
import statistics
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agri.analytics import agronomy as ag
from agri.simulator import drones
from agri.simulator.crop import CropGrowth, FieldTruth, daily_weather, field_truth, grow
from agri.simulator.fields import Field, make_fields, write_fields_geojson
from agri.simulator.water import MIN_LEVEL_M, PaddyWater, plan_water, simulate_water
from agri.simulator.weather import Weather, YearType, simulate_weather

logger = logging.getLogger(__name__)

SEASON_GSD_M = 0.25  # coarser than the camera's 5 cm: a 5 cm flight of one block is ~0.5 GB
SURVEY_DAYS_FROM_HEADING = (-30, 20, 30)
PROGRESS_STEPS = 10  # log progress about this many times per stage
TRUTH_COLUMNS = ("field", "cultivar", "transplanted_on", "heading", "maturity", "protein_pct",
                 "sterility_pct", "chalky_pct")
_FIELD_STREAM = 1  # keeps the season's random stream apart from the weather's


@dataclass(frozen=True, slots=True)
class Season:
    """Everything a season run produced, keyed by field id where per field."""

    weather: Weather
    fields: list[Field]
    growth: dict[str, CropGrowth]
    water: dict[str, PaddyWater]
    truth: list[FieldTruth]
    flights: list[dict[str, Any]]
    out: Path


def _progress(stage: str, done: int, total: int) -> None:
    step = max(total // PROGRESS_STEPS, 1)
    if done == total or done % step == 0:
        logger.info("%s: %d/%d", stage, done, total)


def simulate_season(*, fields: int, seed: int, year: int = 2025,
                    year_type: YearType | str | None = None, out: Path,
                    gsd_m: float = SEASON_GSD_M, surveys: bool = True) -> Season:
    """Simulate ``fields`` paddies through ``year`` and write the files under ``out``.

    ``gsd_m`` is the survey pixel size in metres (0.05 for the camera's own
    resolution); ``surveys=False`` skips the GeoTIFFs.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    weather = simulate_weather(year=year, seed=seed,
                               year_type=None if year_type is None else YearType(year_type))
    logger.info("season %d, seed %d: weather simulated", year, seed)
    rng = np.random.default_rng([seed, year, _FIELD_STREAM])
    field_list = make_fields(rng, fields, year=year)
    daily = daily_weather(weather)
    streams = rng.spawn(len(field_list))
    growth: dict[str, CropGrowth] = {}
    for i, (f, stream) in enumerate(zip(field_list, streams, strict=True), start=1):
        growth[f.id] = grow(f, daily, stream)
        _progress("crop", i, len(field_list))
    plans = []
    for f, stream in zip(field_list, streams, strict=True):
        heading = growth[f.id].phenology.heading or date(year, *ag.PREFECTURE_HEADING_END)
        plans.append(plan_water(field=f, weather=weather, heading=heading, rng=stream))
    water_list = simulate_water(plans, weather,
                                canopy_cover=[growth[f.id].canopy_cover() for f in field_list])
    water = {w.field: w for w in water_list}
    logger.info("water: %d fields, %d hours each", len(water), len(water_list[0].times)
                if water_list else 0)
    truth = [field_truth(field=f, growth=growth[f.id], daily=daily, water=water[f.id].daily(),
                         rng=stream) for f, stream in zip(field_list, streams, strict=True)]
    write_fields_geojson(field_list, out / "fields.geojson")
    _write_truth(truth, out / "truth.csv")
    flights = drones.spray_flights(fields=field_list, rng=rng, headings={
        f.id: growth[f.id].phenology.heading for f in field_list})
    if surveys:
        flights += _survey_blocks(field_list, growth, water, out=out, gsd_m=gsd_m, rng=rng)
    flights.sort(key=lambda r: r["started_at"])
    (out / "flights").mkdir(exist_ok=True)
    with (out / "flights" / "records.jsonl").open("w", encoding="utf-8") as fh:
        for record in flights:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    logger.info("season written to %s: %d fields, %d flight records, heading %s", out,
                len(field_list), len(flights), heading_summary(truth))
    return Season(weather, field_list, growth, water, truth, flights, out)


def _survey_blocks(field_list: list[Field], growth: dict[str, CropGrowth],
                   water: dict[str, PaddyWater], *, out: Path, gsd_m: float,
                   rng: np.random.Generator) -> list[dict[str, Any]]:
    blocks: dict[str, list[Field]] = {}
    for f in field_list:
        blocks.setdefault(f.block.id, []).append(f)
    levels = {fid: w.daily()["level_m"] for fid, w in water.items()}
    jobs = []
    for members in blocks.values():
        headings = [growth[f.id].phenology.heading for f in members]
        known = sorted(h for h in headings if h is not None)
        median = known[len(known) // 2] if known else date(
            members[0].transplanted_on.year, *ag.PREFECTURE_HEADING_END)
        jobs += [(members, median + timedelta(days=d)) for d in SURVEY_DAYS_FROM_HEADING]
    records = []
    for i, (members, day) in enumerate(jobs, start=1):
        block = members[0].block
        scenes = [drones.FieldScene(f, growth[f.id], _level_on(levels[f.id], day))
                  for f in members]
        path = out / "flights" / f"{day.isoformat()}_{block.id}.tif"
        records.append(drones.survey_flight(block=block, scenes=scenes, day=day, path=path,
                                            rng=rng, gsd_m=gsd_m))
        _progress("surveys", i, len(jobs))
    return records


def _level_on(levels: pd.Series, day: date) -> float:
    """Daily mean level on ``day``; dry outside the simulated water season."""
    return float(levels.get(pd.Timestamp(day), MIN_LEVEL_M))


def _write_truth(truth: list[FieldTruth], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(TRUTH_COLUMNS)
        for t in truth:
            writer.writerow([t.field, t.cultivar, t.transplanted_on.isoformat(),
                             t.heading.isoformat() if t.heading else "",
                             t.maturity.isoformat() if t.maturity else "",
                             f"{t.protein_pct:.2f}", f"{t.sterility_pct:.2f}",
                             f"{t.chalky_pct:.2f}"])


def heading_summary(truth: list[FieldTruth]) -> dict[str, Any]:
    """Mean, first and last heading date of a season's fields (for logs and reports)."""
    days = [t.heading for t in truth if t.heading is not None]
    if not days:
        return {"fields": 0}
    ordinals = [d.toordinal() for d in days]
    return {"fields": len(days), "first": min(days).isoformat(), "last": max(days).isoformat(),
            "mean": date.fromordinal(round(statistics.fmean(ordinals))).isoformat()}
