"""The analytics of a day, in order: new images, then every field's season
(stage, harvest window, risks), then the water band and the advice that
follow from them. ``agri analytics run`` and the scheduler call ``daily``."""

from __future__ import annotations

import logging
from datetime import date

import psycopg

from agri.analytics import runner

logger = logging.getLogger(__name__)

QUALITY_DAYS = 3  # days re-checked by each daily run (late readings still get checked)


def process_pending_images(conn: psycopg.Connection) -> int:
    """Process images waiting since they were added; returns how many."""
    from agri.analytics import image_store

    return image_store.process_pending(conn)


def daily(conn: psycopg.Connection, *, as_of: date, field_ids: list[str] | None = None,
          heat_adjustment: bool = False, images: bool = False) -> dict:
    """Everything computed for ``as_of``; returns the run's summary."""
    processed = process_pending_images(conn) if images else 0
    from agri.analytics import advice_results, quality_store

    # Sensor quality first: a device that may be broken is left out of the estimates.
    checked = quality_store.run_quality(conn, as_of=as_of, days=QUALITY_DAYS)
    ignore = set(checked.unusable)
    summary = runner.run(conn, as_of=as_of, field_ids=field_ids,
                         heat_adjustment=heat_adjustment, ignore_devices=ignore,
                         hooks=(advice_results.water_and_advice,)).to_json()
    summary["quality"] = {"devices": checked.devices, "flags": dict(checked.flags),
                          "may_be_broken": sorted(ignore)[:20]}
    summary["images"] = processed
    # Lab results come in after the harvest: refit the protein map when they do.
    from agri.analytics import image_results

    with conn.transaction():
        summary["protein_models"] = image_results.refresh_protein(conn, as_of.year)
    return summary
