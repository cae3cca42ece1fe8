"""Diary photos: JPEG or PNG only (told by their bytes, not by the name or
the type the browser claims), at most MAX_PHOTO_BYTES, stored under
``AGRI_HOME/photos`` named by their SHA-256 (the same photo twice is one
file), written whole or not at all."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

MAX_PHOTO_BYTES = 8 * 1024 * 1024
MAX_PHOTO_MB = MAX_PHOTO_BYTES // (1 << 20)
FOLDER = "photos"
TYPES = {"jpg": "image/jpeg", "png": "image/png"}
NAME_RE = re.compile(r"[0-9a-f]{64}\.(jpg|png)")
_PNG = b"\x89PNG\r\n\x1a\n"


class PhotoError(ValueError):
    """The file is not a photo the diary keeps; ``key`` is its message id."""

    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def kind_of(data: bytes) -> str:
    """"jpg" or "png" by the file's own signature; PhotoError otherwise."""
    if data[:3] == b"\xff\xd8\xff" and len(data) > 4:
        return "jpg"
    if data[:8] == _PNG and data[12:16] == b"IHDR":
        return "png"
    raise PhotoError("error.photo_type")


def check(data: bytes) -> str:
    if len(data) > MAX_PHOTO_BYTES:
        raise PhotoError("error.photo_size")
    return kind_of(data)


def store(home: Path, data: bytes) -> str:
    """Keep ``data`` (checked) under ``home``/photos; returns its file name."""
    ext = check(data)
    name = f"{hashlib.sha256(data).hexdigest()}.{ext}"
    folder = home / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    if not target.exists():
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return name


def path_of(home: Path, name: str) -> tuple[Path, str] | None:
    """The file and media type of a stored photo name, None for a name that
    is not one (nothing outside the folder is ever opened)."""
    if not NAME_RE.fullmatch(name):
        return None
    return home / FOLDER / name, TYPES[name.rsplit(".", 1)[1]]
