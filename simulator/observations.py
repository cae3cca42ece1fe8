"""What extension officers record of a simulated season, as the platform imports it.

``officer_records`` turns the true crop into the records an officer would keep in a
spreadsheet, with the errors such records have:

- heading: the date an officer recorded heading of a field (a share of the fields, by
  default all), off by a field-specific reading error of -1, 0 or +1 day (assumption:
  fields are visited every day or two around heading, and "heading" is judged by eye);
- lab_protein: for a random sample of harvested fields, the brown-rice protein (% at 15 %
  moisture) a laboratory measured, dated on the field's harvest day, with a lab error of
  ``LAB_ERROR_SD_PCT`` (assumption: near-infrared grain analysers repeat to about 0.1 %).

``write_csv`` writes them in the format of ``agri observations import``: header
``field,kind,date,value``, ISO dates, the value empty for heading.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from agri.simulator.crop import FieldTruth

COLUMNS = ("field", "kind", "date", "value")
READING_ERROR_DAYS = (-1, 0, 1)
READING_ERROR_P = (0.25, 0.5, 0.25)
LAB_ERROR_SD_PCT = 0.1
DEFAULT_LAB_SAMPLES = 40
HARVEST_DELAY_DAYS = (0, 7)  # a farmer harvests this many days after harvest opens (inclusive)


@dataclass(frozen=True, slots=True)
class Record:
    """One row of an officer's sheet."""

    field: str
    kind: str  # heading | lab_protein
    day: date
    value: float | None = None


def harvest_days(truth: Sequence[FieldTruth], rng: np.random.Generator) -> dict[str, date]:
    """The day each farmer harvests a field: a few days after its harvest opens."""
    low, high = HARVEST_DELAY_DAYS
    delays = rng.integers(low, high + 1, len(truth))
    return {t.field: t.harvest_opens + timedelta(days=int(d))
            for t, d in zip(truth, delays, strict=True) if t.harvest_opens is not None}


def officer_records(truth: Sequence[FieldTruth], rng: np.random.Generator, *,
                    heading_share: float = 1.0, lab_samples: int = DEFAULT_LAB_SAMPLES,
                    until: date | None = None) -> list[Record]:
    """Heading and lab protein records of ``truth`` (only those dated up to ``until``)."""
    if not 0.0 <= heading_share <= 1.0:
        raise ValueError(f"heading share {heading_share} must lie between 0 and 1")
    if lab_samples < 0:
        raise ValueError(f"lab samples {lab_samples} must not be negative")
    errors = rng.choice(READING_ERROR_DAYS, size=len(truth), p=READING_ERROR_P)
    recorded = rng.random(len(truth)) < heading_share
    records = [Record(t.field, "heading", t.heading + timedelta(days=int(e)))
               for t, e, keep in zip(truth, errors, recorded, strict=True)
               if keep and t.heading is not None]
    harvested = harvest_days(truth, rng)
    pool = [t for t in truth if t.field in harvested]
    chosen = rng.choice(len(pool), size=min(lab_samples, len(pool)), replace=False)
    lab = rng.normal(0.0, LAB_ERROR_SD_PCT, len(chosen))
    records += [Record(pool[i].field, "lab_protein", harvested[pool[i].field],
                       round(pool[i].protein_pct + float(e), 2))
                for i, e in zip(sorted(chosen), lab, strict=True)]
    return [r for r in records if until is None or r.day <= until]


def write_csv(records: Sequence[Record], path: Path) -> Path:
    """Write ``records`` for ``agri observations import`` and return the path."""
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        for r in records:
            writer.writerow([r.field, r.kind, r.day.isoformat(),
                             "" if r.value is None else f"{r.value:.2f}"])
    return path
