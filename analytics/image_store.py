"""Images registered for processing (drone surveys, satellite scenes), and
their processing: per-field statistics, then the protein and harvest-timing
maps where the season has what they need.

``add`` checks the file (:func:`agri.analytics.imagery.open_image`), copies it
under ``AGRI_HOME/images/`` named by its SHA-256 (the same file added twice
is one image) and records it as pending. ``process_pending`` takes pending
images one at a time (``FOR UPDATE SKIP LOCKED``: several schedulers never
take the same one); an image that fails is marked failed with the reason,
and the others go on.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path

import psycopg

from agri.analytics import imagery

logger = logging.getLogger(__name__)

IMAGES_DIR = "images"
CHUNK = 1 << 20


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def add(conn: psycopg.Connection, path: Path, *, source: str | None, home: Path,
        added_by: str | None = None) -> dict:
    """Register the GeoTIFF at ``path``; returns the image's row as a dict."""
    path = Path(path)
    if not path.is_file():
        raise imagery.ImageryError(f"{path}: no such file")
    image = imagery.open_image(path, source=source)
    digest = _sha256(path)
    existing = conn.execute("SELECT id, source, acquired_at, status FROM images "
                            "WHERE sha256 = %s", (digest,)).fetchone()
    if existing is not None:
        return _row(existing, existing=True)
    store = Path(home) / IMAGES_DIR
    store.mkdir(parents=True, exist_ok=True)
    target = store / f"{digest}.tif"
    if not target.exists():
        partial = target.with_suffix(".part")
        shutil.copyfile(path, partial)
        partial.chmod(0o644)
        partial.replace(target)
    row = conn.execute(
        "INSERT INTO images (source, path, sha256, acquired_at, added_by) VALUES "
        "(%s, %s, %s, %s, %s) RETURNING id, source, acquired_at, status",
        (image.source, str(target), digest, image.acquired, added_by)).fetchone()
    conn.commit()
    logger.info("image %d registered: %s (%s)", row[0], path.name, image.source)
    return _row(row, existing=False)


def _row(row, *, existing: bool) -> dict:
    return {"id": row[0], "source": row[1],
            "acquired_at": None if row[2] is None else row[2].isoformat(),
            "status": row[3], "existing": existing}


def listing(conn: psycopg.Connection, limit: int = 200) -> list[dict]:
    rows = conn.execute(
        "SELECT i.id, i.status, i.source, i.acquired_at, i.error, "
        "(SELECT count(*) FROM field_index_stats s WHERE s.image_id = i.id "
        "AND s.valid_fraction > 0) FROM images i ORDER BY i.id DESC LIMIT %s",
        (limit,)).fetchall()
    return [{"id": r[0], "status": r[1], "source": r[2],
             "acquired_at": None if r[3] is None else r[3].isoformat(), "error": r[4],
             "fields": r[5]} for r in rows]


def process_pending(conn: psycopg.Connection) -> int:
    """Process every pending image; returns how many were processed (done or failed).
    Each image is processed in one transaction that holds its row locked, so a
    process that dies leaves it pending for the next."""
    from agri.analytics import image_results

    count = 0
    while True:
        row = None
        try:
            with conn.transaction():
                row = conn.execute(
                    "SELECT id, path, source, acquired_at FROM images WHERE status = 'pending' "
                    "ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED").fetchone()
                if row is None:
                    return count
                image_results.process(conn, image_id=row[0], path=Path(row[1]), source=row[2],
                                      acquired_at=row[3])
                conn.execute("UPDATE images SET status = 'done', error = NULL, processed_at = "
                             "now() WHERE id = %s", (row[0],))
        except (imagery.ImageryError, ValueError, OSError) as exc:
            if row is None:
                raise
            logger.warning("image %d failed: %s", row[0], exc)
            conn.execute("UPDATE images SET status = 'failed', error = left(%s, 2000), "
                         "processed_at = now() WHERE id = %s AND status = 'pending'",
                         (f"{type(exc).__name__}: {exc}", row[0]))
            conn.commit()
        count += 1
