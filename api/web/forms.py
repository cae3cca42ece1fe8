"""Forms of the pages: the CSRF check of the session (api/sessions.py) with
the page's own words, and a size-capped multipart form for uploads."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Form, HTTPException, Request
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException as StarletteHTTPException

from agri.api import sessions

FORM_OVERHEAD_BYTES = 64 * 1024  # text fields, boundaries and part headers beside a file
MAX_FORM_FIELDS = 10


async def _check(request: Request, token: str) -> None:
    try:
        await sessions.check_csrf(request, token)
    except HTTPException as exc:
        if exc.status_code != 403:
            raise
        raise HTTPException(403, "error.csrf") from None


async def page_csrf(request: Request,
                    csrf: Annotated[str, Form(max_length=100)] = "") -> None:
    """A form's ``csrf`` field checked against the session (after PageUser)."""
    await _check(request, csrf)


# A parameter after the PageUser one (dependencies run in parameter order).
CsrfChecked = Annotated[None, Depends(page_csrf)]


async def capped_form(request: Request, *, max_file_bytes: int) -> FormData:
    """The request's form with at most one file, refused (413) before it is
    read when it declares more than ``max_file_bytes`` plus the form's
    overhead, and its CSRF field checked. The caller checks the file's own size."""
    declared = request.headers.get("content-length", "")
    if not declared.isdigit():
        raise HTTPException(411, "error.400")
    if int(declared) > max_file_bytes + FORM_OVERHEAD_BYTES:
        raise HTTPException(413, "error.photo_size")
    try:
        form = await request.form(max_files=1, max_fields=MAX_FORM_FIELDS)
    except StarletteHTTPException as exc:  # Starlette's: a malformed form, too many parts
        raise HTTPException(400, "error.400") from exc
    token = form.get("csrf")
    await _check(request, token if isinstance(token, str) else "")
    return form
