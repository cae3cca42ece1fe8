"""One simulated season of the Tsugaru plain, written to a folder.

``simulate_season`` draws the weather, the paddies and their farmers' management, grows
each field's crop (the simulator's own development model, :mod:`agri.simulator.development`,
coupled to the paddy water: the water plan follows the crop's heading, and the crop's
growing point follows the water's temperature until panicle initiation), flies the
drones and takes the satellite scenes. The paddies, their ids and owners depend on
``seed`` and the number of fields only, so every year of a seed has the same paddies;
each year's management, weather and crop come from ``seed`` and ``year``. It writes:

- ``fields.geojson``: the fields for ``agri fields import``;
- ``truth.csv``: one row per field, what the analytics try to find out: ``field``,
  ``cultivar``, ``transplanted_on``, ``heading``, ``maturity`` (about 90 % husk
  yellowing) (ISO dates, empty when not reached), ``protein_pct`` (brown rice, 15 %
  moisture), ``sterility_pct``, ``chalky_pct``, ``harvest_opens`` (the first day the
  grain is ripe and dry enough to harvest, about 25 % moisture; empty when not reached);
- ``observations.csv``: the officers' records for ``agri observations import`` (header
  ``field,kind,date,value``): ``heading`` rows, the date an officer recorded (the true
  heading give or take a day, per field), the value empty, for ``heading_share`` of the
  fields; ``lab_protein`` rows for ``lab_samples`` fields drawn at random, dated on the
  harvest day, the lab's protein % (true protein plus a lab error of sd 0.1)
  (:mod:`agri.simulator.observations`); with ``observations_until`` only the rows dated up
  to that day (a season replayed up to a day);
- ``flights/<YYYY-MM-DD>_<block>.tif``: survey orthomosaics, one per block
  and survey day (30 days before, 20 and 30 days after the block's median
  heading: growth, protein map and harvest-timing map of analytics/agronomy.py
  section 9), :mod:`agri.simulator.drones`;
- ``flights/records.jsonl``: survey and spray flight records;
- ``scenes/<YYYY-MM-DD>_<source>.tif`` and ``scenes/records.jsonl``: Sentinel-2 L2A-like
  and commercial 2 m-class satellite scenes of the fields' blocks, with clouds
  (:mod:`agri.simulator.satellite`).

The returned :class:`Season` keeps the hourly weather and water series for
publishers that replay the season as sensors.
"""

from __future__ import annotations

import csv
import json
import logging
import statistics
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agri.analytics import agronomy as ag
from agri.simulator import drones, observations, satellite
from agri.simulator.crop import CropGrowth, FieldTruth, daily_weather, field_truth, grow
from agri.simulator.fields import Field, make_fields, write_fields_geojson
from agri.simulator.water import MIN_LEVEL_M, PaddyWater, plan_water, simulate_water
from agri.simulator.weather import Weather, YearType, simulate_weather

logger = logging.getLogger(__name__)

SEASON_GSD_M = 0.25  # coarser than the camera's 5 cm: a 5 cm flight of one block is ~0.5 GB
SURVEY_DAYS_FROM_HEADING = (-30, 20, 30)
PROGRESS_STEPS = 10  # log progress about this many times per stage
WATER_ROUNDS = 4  # crop and water are solved again until the headings stop moving
TRUTH_COLUMNS = ("field", "cultivar", "transplanted_on", "heading", "maturity", "protein_pct",
                 "sterility_pct", "chalky_pct", "harvest_opens")
# Random streams, kept apart so that one part's draws never shift another's.
_FIELD_STREAM, _CROP_STREAM, _FLIGHT_STREAM, _OBSERVATION_STREAM, _SCENE_STREAM = 1, 2, 3, 4, 5
_DEVELOPMENT, _PLAN, _TRUTH = 0, 1, 2  # per-field streams


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
    records: list[observations.Record]
    scenes: list[dict[str, Any]]


def _progress(stage: str, done: int, total: int) -> None:
    step = max(total // PROGRESS_STEPS, 1)
    if done == total or done % step == 0:
        logger.info("%s: %d/%d", stage, done, total)


def season_fields(*, fields: int, seed: int, year: int) -> list[Field]:
    """The season's fields: the paddies of ``seed`` and ``fields`` with ``year``'s
    management."""
    return make_fields(np.random.default_rng([seed, _FIELD_STREAM]), fields, year=year)


def simulate_season(*, fields: int, seed: int, year: int = 2025,
                    year_type: YearType | str | None = None, out: Path,
                    gsd_m: float = SEASON_GSD_M, surveys: bool = True, scenes: bool = True,
                    lab_samples: int = observations.DEFAULT_LAB_SAMPLES,
                    heading_share: float = 1.0,
                    observations_until: date | None = None) -> Season:
    """Simulate ``fields`` paddies through ``year`` and write the files under ``out``.

    ``gsd_m`` is the survey pixel size in metres (0.05 for the camera's own
    resolution); ``surveys=False`` skips the drone GeoTIFFs, ``scenes=False`` the
    satellite scenes.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    weather = simulate_weather(year=year, seed=seed,
                               year_type=None if year_type is None else YearType(year_type))
    logger.info("season %d, seed %d: weather simulated", year, seed)
    field_list = season_fields(fields=fields, seed=seed, year=year)
    daily = daily_weather(weather)
    def stream(field: Field, part: int) -> np.random.Generator:
        """The field's own stream for ``part`` of the season (the same on every call)."""
        return np.random.default_rng([seed, year, _CROP_STREAM, zlib.crc32(field.id.encode()),
                                      part])

    growth, water = crop_and_water(field_list, weather, stream)
    truth = [field_truth(field=f, growth=growth[f.id], daily=daily, water=water[f.id].daily(),
                         rng=stream(f, _TRUTH)) for f in field_list]
    write_fields_geojson(field_list, out / "fields.geojson")
    _write_truth(truth, out / "truth.csv")
    records = observations.officer_records(
        truth, np.random.default_rng([seed, year, _OBSERVATION_STREAM]),
        heading_share=heading_share, lab_samples=lab_samples, until=observations_until)
    observations.write_csv(records, out / "observations.csv")
    rng = np.random.default_rng([seed, year, _FLIGHT_STREAM])
    flights = drones.spray_flights(fields=field_list, rng=rng, headings={
        f.id: growth[f.id].phenology.heading for f in field_list})
    if surveys:
        flights += _survey_blocks(field_list, growth, water, out=out, gsd_m=gsd_m, rng=rng)
    flights.sort(key=lambda r: r["started_at"])
    (out / "flights").mkdir(exist_ok=True)
    with (out / "flights" / "records.jsonl").open("w", encoding="utf-8") as fh:
        for record in flights:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    scene_records: list[dict[str, Any]] = []
    if scenes:
        scene_records = satellite.take_scenes(
            fields=field_list, growth=growth, water=water, weather=weather, out=out / "scenes",
            rng=np.random.default_rng([seed, year, _SCENE_STREAM]))
    logger.info("season written to %s: %d fields, %d flight records, %d scenes, heading %s",
                out, len(field_list), len(flights), len(scene_records), heading_summary(truth))
    return Season(weather, field_list, growth, water, truth, flights, out, records,
                  scene_records)


def crop_and_water(field_list: list[Field], weather: Weather,
                   stream: Callable[[Field, int], np.random.Generator]
                   ) -> tuple[dict[str, CropGrowth], dict[str, PaddyWater]]:
    """Crop and paddy water solved together: the water plan follows the crop's heading
    and the crop's growing point the water's temperature. Starting from a crop grown in
    the air's temperature, both are solved again until no heading moves (at most
    ``WATER_ROUNDS`` times). ``stream(field, part)`` gives the field's random stream of a
    part (the same draws on every call)."""
    daily = daily_weather(weather)
    growth = {f.id: grow(f, weather, stream(f, _DEVELOPMENT), daily=daily) for f in field_list}

    def water_for(crop: dict[str, CropGrowth]) -> dict[str, PaddyWater]:
        plans = [plan_water(field=f, weather=weather, heading=_planned_heading(crop[f.id], f),
                            rng=stream(f, _PLAN), daily=daily) for f in field_list]
        water_list = simulate_water(plans, weather,
                                    canopy_cover=[crop[f.id].canopy_cover() for f in field_list])
        return {w.field: w for w in water_list}

    moved = len(field_list)
    for round_no in range(1, WATER_ROUNDS + 1):
        water = water_for(growth)
        grown = {f.id: grow(f, weather, stream(f, _DEVELOPMENT), water=water[f.id], daily=daily)
                 for f in field_list}
        moved = sum(grown[f.id].phenology.heading != growth[f.id].phenology.heading
                    for f in field_list)
        growth = grown
        logger.info("crop and water, round %d: %d headings moved", round_no, moved)
        if not moved:
            return growth, water
    # Still moving (a heading that flips between two days): the water follows the final
    # headings; the crop keeps the development it had under the previous round's water.
    return growth, water_for(growth)


def _planned_heading(growth: CropGrowth, field: Field) -> date:
    return growth.phenology.heading or date(field.transplanted_on.year,
                                            *ag.PREFECTURE_HEADING_END)


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
                             f"{t.chalky_pct:.2f}",
                             t.harvest_opens.isoformat() if t.harvest_opens else ""])


def heading_summary(truth: list[FieldTruth]) -> dict[str, Any]:
    """Mean, first and last heading date of a season's fields (for logs and reports)."""
    days = [t.heading for t in truth if t.heading is not None]
    if not days:
        return {"fields": 0}
    ordinals = [d.toordinal() for d in days]
    return {"fields": len(days), "first": min(days).isoformat(), "last": max(days).isoformat(),
            "mean": date.fromordinal(round(statistics.fmean(ordinals))).isoformat()}
