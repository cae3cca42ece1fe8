"""What an image gives each field: index statistics, the harvest-timing map
and (with officers' lab samples) the protein map and next season's nitrogen.

- ``process``: the coverage-weighted statistics of every registered field the
  image covers (:func:`agri.analytics.zonal.zonal_stats`), stored per image
  and field; where the image was taken 17-37 days after the fields' heading
  (the latest stage estimates), the harvest-timing classes from the red band.
- ``refresh_protein``: for each image of the season taken about
  PROTEIN_MAP_DAYS_BEFORE_HARVEST days before the fields' harvest window
  opens, the protein model fitted on the season's lab samples
  (:mod:`agri.analytics.protein`), its estimate for every field, and next
  season's nitrogen advice from the latest estimate. Run after each image and
  by the daily run, since lab results come in after the harvest.
"""

from __future__ import annotations

import logging
import math
from datetime import date, datetime
from pathlib import Path

import orjson
import pandas as pd
import psycopg

from agri.analytics import agronomy as ag
from agri.analytics import imagery, maturity, nitrogen, protein, zonal
from agri.clock import TZ

logger = logging.getLogger(__name__)

PROTEIN_IMAGE_TOLERANCE_DAYS = 10  # around PROTEIN_MAP_DAYS_BEFORE_HARVEST (assumption)


def _clean(value):
    return None if value is None or (isinstance(value, float) and not math.isfinite(value)) \
        else value


def _fields(conn: psycopg.Connection, year: int) -> dict[str, dict]:
    rows = conn.execute(
        "SELECT f.id, f.geometry FROM fields f WHERE EXISTS (SELECT 1 FROM field_seasons s "
        "WHERE s.field_id = f.id AND s.year = %s) ORDER BY f.id", (year,)).fetchall()
    if not rows:
        rows = conn.execute("SELECT id, geometry FROM fields ORDER BY id").fetchall()
    return dict(rows)


def process(conn: psycopg.Connection, *, image_id: int, path: Path, source: str,
            acquired_at: datetime | None) -> dict:
    """Statistics and maps of one image (in the caller's transaction)."""
    image = imagery.open_image(path, source=source)
    taken = (acquired_at or image.acquired)
    day = taken.astimezone(TZ).date() if taken is not None else None
    year = day.year if day is not None else datetime.now(TZ).year
    stats = zonal.zonal_stats(image, _fields(conn, year))
    covered = stats[stats["valid_fraction"] > 0]
    conn.execute("DELETE FROM field_index_stats WHERE image_id = %s", (image_id,))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO field_index_stats (image_id, field_id, acquired_on, ndvi_mean, "
            "gndvi_mean, ndre_mean, valid_fraction, stats) VALUES (%s, %s, %s, %s, %s, %s, "
            "%s, %s::jsonb)",
            [(image_id, fid, day, _clean(row.get("ndvi_mean")), _clean(row.get("gndvi_mean")),
              _clean(row.get("ndre_mean")), float(row["valid_fraction"]),
              orjson.dumps({k: _clean(float(v)) for k, v in row.items()}).decode())
             for fid, row in covered.to_dict("index").items()])
    ranked = _harvest_map(conn, image_id, covered, day)
    models = refresh_protein(conn, year)
    logger.info("image %d (%s, %s): %d fields covered, %d ranked for harvest, %d protein "
                "models", image_id, image.source, day, len(covered), ranked, models)
    return {"fields": len(covered), "ranked": ranked, "protein_models": models}


def _headings(conn: psycopg.Connection, year: int) -> dict[str, date]:
    rows = conn.execute(
        "SELECT DISTINCT ON (field_id) field_id, heading FROM field_stages WHERE year = %s "
        "AND heading IS NOT NULL ORDER BY field_id, computed_for DESC", (year,)).fetchall()
    return dict(rows)


def _harvest_map(conn: psycopg.Connection, image_id: int, stats: pd.DataFrame,
                 day: date | None) -> int:
    if day is None or stats.empty or "red_mean" not in stats:
        return 0
    headings = {k: v for k, v in _headings(conn, day.year).items() if k in stats.index}
    if not headings:
        return 0
    try:
        table = maturity.rank_maturity(stats, image_date=day, heading=headings)
    except maturity.MaturityError as exc:
        logger.info("image %d is no harvest-timing image: %s", image_id, exc)
        return 0
    table = table[table["harvest_class"].notna()]
    conn.execute("DELETE FROM field_maturity WHERE image_id = %s", (image_id,))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO field_maturity (field_id, image_id, red_mean, rank, class, colour) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            [(fid, image_id, _clean(float(r["red_mean"])), _clean(float(r["ripeness_rank"])),
              int(r["harvest_class"]), r["colour"]) for fid, r in table.iterrows()])
    return len(table)


def _image_stats(conn: psycopg.Connection, image_id: int) -> pd.DataFrame:
    rows = conn.execute("SELECT field_id, stats FROM field_index_stats WHERE image_id = %s",
                        (image_id,)).fetchall()
    frame = pd.DataFrame.from_dict(dict(rows), orient="index")
    return frame.astype(float) if len(frame) else frame


def protein_images(conn: psycopg.Connection, year: int) -> list[int]:
    """Images of ``year`` taken about PROTEIN_MAP_DAYS_BEFORE_HARVEST days before their
    fields' harvest window opens (median over the fields, latest estimates)."""
    rows = conn.execute(
        "WITH opens AS (SELECT DISTINCT ON (field_id) field_id, opens FROM "
        "field_harvest_windows w WHERE opens IS NOT NULL AND extract(year FROM opens) = %s "
        "ORDER BY field_id, computed_for DESC) "
        "SELECT s.image_id, percentile_cont(0.5) WITHIN GROUP (ORDER BY o.opens - "
        "s.acquired_on) FROM field_index_stats s JOIN opens o ON o.field_id = s.field_id "
        "WHERE s.acquired_on IS NOT NULL GROUP BY s.image_id ORDER BY s.image_id",
        (year,)).fetchall()
    target = ag.PROTEIN_MAP_DAYS_BEFORE_HARVEST
    return [i for i, days in rows
            if days is not None and abs(days - target) <= PROTEIN_IMAGE_TOLERANCE_DAYS]


def refresh_protein(conn: psycopg.Connection, year: int) -> int:
    """Fit and apply the season's protein model on each protein-map image; returns how
    many models were fitted."""
    samples = conn.execute(
        "SELECT field_id, value FROM observations WHERE year = %s AND kind = 'lab_protein' "
        "AND value IS NOT NULL", (year,)).fetchall()
    if not samples:
        return 0
    fitted = 0
    for image_id in protein_images(conn, year):
        stats = _image_stats(conn, image_id)
        try:
            model = protein.fit(stats, samples)
        except protein.ProteinModelError as exc:
            logger.info("no protein model for image %d: %s", image_id, exc)
            continue
        estimates = protein.predict(model, stats)
        conn.execute(
            "INSERT INTO protein_models (year, image_id, samples, cv_r2, cv_rmse, model) "
            "VALUES (%s, %s, %s, %s, %s, %s::jsonb) ON CONFLICT (year, image_id) DO UPDATE SET "
            "samples = EXCLUDED.samples, cv_r2 = EXCLUDED.cv_r2, cv_rmse = EXCLUDED.cv_rmse, "
            "model = EXCLUDED.model, computed_at = now()",
            (year, image_id, model.n_samples, model.cv_r2, model.cv_rmse_pct,
             orjson.dumps(model.to_json()).decode()))
        conn.execute("DELETE FROM field_protein WHERE image_id = %s", (image_id,))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO field_protein (field_id, image_id, year, protein_pct, class) "
                "VALUES (%s, %s, %s, %s, %s)",
                [(fid, image_id, year, _clean(float(r["protein_pct"])),
                  None if r["protein_class"] is None else str(r["protein_class"]))
                 for fid, r in estimates.iterrows()])
        fitted += 1
        _nitrogen(conn, estimates, year)
    return fitted


def _nitrogen(conn: psycopg.Connection, estimates: pd.DataFrame, year: int) -> None:
    usable = estimates[estimates["protein_pct"].notna()][["protein_pct"]]
    if usable.empty:
        return
    table = nitrogen.advise_fields(usable)
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO nitrogen_advice (field_id, for_year, total_n, basal_n, details) "
            "VALUES (%s, %s, %s, %s, %s::jsonb) ON CONFLICT (field_id, for_year) DO UPDATE SET "
            "total_n = EXCLUDED.total_n, basal_n = EXCLUDED.basal_n, details = "
            "EXCLUDED.details, computed_at = now()",
            [(fid, year + 1, float(r["total_n_kg_per_10a"]), float(r["basal_n_kg_per_10a"]),
              orjson.dumps({k: _clean(v) for k, v in r.items()
                            if k not in ("total_n_kg_per_10a", "basal_n_kg_per_10a")},
                           default=str).decode())
             for fid, r in table.iterrows() if pd.notna(r["total_n_kg_per_10a"])])
