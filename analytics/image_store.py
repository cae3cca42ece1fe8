"""Images registered for processing (drone surveys, satellite scenes), and
their processing: per-field statistics, then the protein and harvest-timing
maps where the season has what they need.

``add`` checks the file (:func:`agri.analytics.imagery.open_image`), copies it
under ``AGRI_HOME/images/`` named by its SHA-256 (the same file added twice
is one image) and records it as pending; the API's upload (POST
/api/v1/flights) records its images with the same ``place``, ``row_params``
and ``INSERT_IMAGE``, adding the uploader, drone, flight and the fields
under the image. ``process_pending`` takes pending
images one at a time (``FOR UPDATE SKIP LOCKED``: several schedulers never
take the same one); an image that fails is marked failed with the reason,
and the others go on.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from datetime import datetime
from pathlib import Path

import psycopg

from agri.analytics import imagery

logger = logging.getLogger(__name__)

IMAGES_DIR = "images"
CHUNK = 1 << 20


# The one way an image is recorded, by `agri images add` and by the API's
# upload (POST /api/v1/flights); a file added twice (same SHA-256) is one image.
FIND_IMAGE = "SELECT id, source, acquired_at, status FROM images WHERE sha256 = %(sha256)s"
INSERT_IMAGE = (
    "INSERT INTO images (source, path, sha256, acquired_at, added_by, drone_id, flight, "
    "field_ids) VALUES (%(source)s, %(path)s, %(sha256)s, %(acquired_at)s, %(added_by)s, "
    "%(drone_id)s, %(flight)s, %(field_ids)s) ON CONFLICT (sha256) DO NOTHING "
    "RETURNING id, source, acquired_at, status")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def store_path(home: Path, digest: str) -> Path:
    """Where the image of SHA-256 ``digest`` is kept."""
    return Path(home) / IMAGES_DIR / f"{digest}.tif"


def place(path: Path, *, digest: str, home: Path, move: bool = False) -> Path:
    """Put the file at ``path`` where the image of ``digest`` is kept (copied,
    or with ``move`` renamed: ``path`` must then be on the same file system);
    returns that place. A file already there is the same image and is kept."""
    target = store_path(home, digest)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        if move:
            path.unlink(missing_ok=True)
        return target
    if move:
        path.chmod(0o644)
        path.replace(target)
        return target
    partial = target.with_suffix(".part")
    shutil.copyfile(path, partial)
    partial.chmod(0o644)
    partial.replace(target)
    return target


def row_params(*, image: imagery.Image, target: Path, digest: str,
               added_by: str | None = None, drone_id: str | None = None,
               flight: str | None = None, field_ids: list[str] | None = None,
               acquired_at: datetime | None = None) -> dict:
    """The parameters of INSERT_IMAGE (and FIND_IMAGE) for a checked image."""
    return {"source": image.source, "path": str(target), "sha256": digest,
            "acquired_at": acquired_at or image.acquired, "added_by": added_by,
            "drone_id": drone_id, "flight": flight, "field_ids": list(field_ids or [])}


def record(conn: psycopg.Connection, params: dict) -> dict:
    """Insert the image's row (pending) unless one of the same file exists;
    returns the row as a dict (``existing`` says which). The caller commits."""
    row = conn.execute(INSERT_IMAGE, params).fetchone()
    if row is None:
        return as_dict(conn.execute(FIND_IMAGE, params).fetchone(), existing=True)
    return as_dict(row, existing=False)


def add(conn: psycopg.Connection, path: Path, *, source: str | None, home: Path,
        added_by: str | None = None) -> dict:
    """Register the GeoTIFF at ``path``; returns the image's row as a dict."""
    path = Path(path)
    if not path.is_file():
        raise imagery.ImageryError(f"{path}: no such file")
    image = imagery.open_image(path, source=source)
    digest = file_sha256(path)
    existing = conn.execute(FIND_IMAGE, {"sha256": digest}).fetchone()
    if existing is not None:
        return as_dict(existing, existing=True)
    target = place(path, digest=digest, home=home)
    row = record(conn, row_params(image=image, target=target, digest=digest,
                                  added_by=added_by))
    conn.commit()
    logger.info("image %d registered: %s (%s)", row["id"], path.name, image.source)
    return row


def as_dict(row, *, existing: bool) -> dict:
    """An image row (id, source, acquired_at, status) as ``add`` returns it."""
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
