"""A multipart upload streamed to disk with a size cap.

Starlette's own form parser spools files to the system's temporary folder
with no limit; an image upload instead goes straight into a file under the
folder the caller names (on the file system where the image is kept, so that
registering it is a rename), hashed as it arrives, and is refused (413) as
soon as it passes ``max_bytes``. Text fields are short and UTF-8; a form
with more parts, longer values or a second file is refused (422). Whatever
goes wrong, the partial file is removed.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import HTTPException, Request
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

logger = logging.getLogger(__name__)

MAX_FIELDS = 16  # parts of one form, the file included
MAX_FIELD_BYTES = 1024  # one text field's value
FORM_OVERHEAD_BYTES = 64 * 1024  # boundaries, part headers and text fields around the file
PARTIAL_SUFFIX = ".part"
STALE_S = 6 * 3600  # a partial upload not written to for this long was left by a dead process


@dataclass
class Upload:
    """What a form held: its text ``fields`` and the one file, stored at ``path``."""

    fields: dict[str, str] = field(default_factory=dict)
    path: Path | None = None
    filename: str | None = None
    size: int = 0
    sha256: str = ""

    def discard(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            self.path = None


class _Form:
    """Callbacks of python-multipart's streaming parser (run in a worker thread)."""

    def __init__(self, *, directory: Path, file_field: str, max_bytes: int) -> None:
        self.directory = directory
        self.file_field = file_field
        self.max_bytes = max_bytes
        self.upload = Upload()
        self.parts = 0
        self.ended = False
        self._headers: list[tuple[bytes, bytes]] = []
        self._name = b""
        self._value = b""
        self._current: str | None = None  # text field name, or None for the file
        self._text = bytearray()
        self._fh = None
        self._hash = hashlib.sha256()

    def callbacks(self) -> dict:
        return {"on_part_begin": self._part_begin, "on_header_field": self._header_field,
                "on_header_value": self._header_value, "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished, "on_part_data": self._data,
                "on_part_end": self._part_end, "on_end": self._end}

    def _part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_FIELDS:
            raise HTTPException(422, f"a form of at most {MAX_FIELDS} fields, please")
        self._headers, self._name, self._value = [], b"", b""

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._name += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers.append((self._name.strip().lower(), self._value.strip()))
        self._name, self._value = b"", b""

    def _headers_finished(self) -> None:
        disposition = dict(self._headers).get(b"content-disposition")
        kind, options = parse_options_header(disposition)
        if kind != b"form-data" or b"name" not in options:
            raise HTTPException(422, "each part of the form needs Content-Disposition: "
                                     "form-data; name=...")
        name = _text(options[b"name"], "a form field's name")
        if b"filename" in options or name == self.file_field:
            if name != self.file_field:
                raise HTTPException(422, f"send the file in the form field "
                                         f"{self.file_field!r}, not {name[:40]!r}")
            if self.upload.path is not None:
                raise HTTPException(422, "one file per upload, please")
            self.upload.filename = _text(options.get(b"filename", b""), "the file name")[:200]
            self.upload.path = self.directory / f"upload-{uuid.uuid4().hex}{PARTIAL_SUFFIX}"
            self._fh = self.upload.path.open("xb")
            self._current = None
        else:
            if name in self.upload.fields:
                raise HTTPException(422, f"the form field {name[:40]!r} is given twice")
            self._current = name
            self._text = bytearray()

    def _data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self._current is not None:
            self._text += chunk
            if len(self._text) > MAX_FIELD_BYTES:
                raise HTTPException(422, f"the form field {self._current[:40]!r} is longer "
                                         f"than {MAX_FIELD_BYTES} bytes")
            return
        self.upload.size += len(chunk)
        if self.upload.size > self.max_bytes:
            raise HTTPException(413, _too_large(self.max_bytes))
        self._hash.update(chunk)
        self._fh.write(chunk)

    def _part_end(self) -> None:
        if self._current is not None:
            self.upload.fields[self._current] = _text(bytes(self._text),
                                                      f"the form field {self._current!r}")
            self._current = None
        elif self._fh is not None:
            self._fh.close()
            self._fh = None
            self.upload.sha256 = self._hash.hexdigest()

    def _end(self) -> None:
        self.ended = True

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _text(raw: bytes, what: str) -> str:
    try:
        value = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPException(422, f"{what} is not UTF-8 text") from None
    if any(ord(c) < 32 and c not in "\t" for c in value) or "\x7f" in value:
        raise HTTPException(422, f"{what} holds control characters (NUL, line breaks, ...); "
                                 "send plain text")
    return value


def _too_large(max_bytes: int) -> str:
    return (f"the upload is larger than the {max_bytes // (1 << 20)} MB allowed "
            "(AGRI_MAX_UPLOAD_MB); send a smaller image (crop it to the fields flown, "
            "or compress it: gdal_translate -co COMPRESS=DEFLATE)")


def _remove_stale(directory: Path) -> None:
    """Remove partial uploads a process that died left behind (a live upload
    writes to its file all the time)."""
    now = time.time()
    for path in directory.glob(f"upload-*{PARTIAL_SUFFIX}"):
        try:
            if now - path.stat().st_mtime > STALE_S:
                path.unlink()
                logger.info("removed %s, an upload left unfinished", path.name)
        except FileNotFoundError:
            pass


async def receive(request: Request, *, directory: Path, max_bytes: int,
                  file_field: str = "file") -> Upload:
    """Stream the request's multipart form: its text fields, and the file of
    ``file_field`` into a new file under ``directory``. Raises HTTPException
    (413 too large, 415 not a form, 422 a bad form, 400 the client left) with
    nothing left on disk."""
    kind, options = parse_options_header(request.headers.get("content-type", ""))
    if kind != b"multipart/form-data" or not options.get(b"boundary"):
        raise HTTPException(415, "send the image as multipart/form-data (curl -F "
                                 "file=@survey.tif -F source=drone-p4m ...)")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes + FORM_OVERHEAD_BYTES:
        raise HTTPException(413, _too_large(max_bytes))
    directory.mkdir(parents=True, exist_ok=True)
    await asyncio.to_thread(_remove_stale, directory)
    form = _Form(directory=directory, file_field=file_field, max_bytes=max_bytes)
    parser = MultipartParser(options[b"boundary"], form.callbacks())
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_bytes + FORM_OVERHEAD_BYTES:
                raise HTTPException(413, _too_large(max_bytes))
            if chunk:
                await asyncio.to_thread(parser.write, chunk)
        parser.finalize()
        if not form.ended:
            raise HTTPException(422, "the form ends before its closing boundary; send it "
                                     "again")
    except MultipartParseError as exc:
        form.close()
        form.upload.discard()
        raise HTTPException(422, f"not a readable multipart form ({str(exc)[:200]})") from None
    except ClientDisconnect:
        form.close()
        form.upload.discard()
        logger.info("an upload ended early: the client left after %d bytes", received)
        raise HTTPException(400, "the upload ended early; send it again") from None
    except BaseException:
        form.close()
        form.upload.discard()
        raise
    return form.upload
