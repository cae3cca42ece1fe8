"""Error pages: a page (not a JSON API) path that fails gets a page in the
reader's language saying what to do; the JSON API keeps its ``{"detail"}``.

An error's ``detail`` that is a message id of the catalogue (i18n.py) is
shown as that message; any other detail gets its status's general message.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg import OperationalError
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from agri.api.web import i18n
from agri.api.web.photos import MAX_PHOTO_MB
from agri.api.web.render import render

# Paths that are not pages: their errors stay as their own handlers make them.
NOT_PAGES = ("/api/", "/healthz", "/metrics", "/openapi.json", "/docs", "/redoc", "/static/")
RETRY_AFTER_S = 30  # when the database does not answer
GENERAL = {400: "error.400", 403: "error.403", 404: "error.404", 422: "error.400",
           500: "error.500", 503: "error.503"}


def is_page(request: Request) -> bool:
    return not request.url.path.startswith(NOT_PAGES)


def _message(lang: str, status: int, detail: object) -> str:
    if isinstance(detail, str) and detail in i18n.MESSAGES[lang]:
        try:
            return i18n.gettext(lang, detail, mb=MAX_PHOTO_MB)
        except KeyError:  # a message that needs values an error does not carry
            pass
    key = GENERAL.get(status) or ("error.500" if status >= 500 else "error.400")
    return i18n.gettext(lang, key)


def error_page(request: Request, status: int, detail: object = None, headers=None):
    lang = i18n.choose(request)
    response = render(request, "error.html", {
        "user": None, "status": status, "message": _message(lang, status, detail)},
        data_time=None, status=status)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


async def _http_error(request: Request, exc: StarletteHTTPException):
    if not is_page(request) or exc.status_code < 400:
        return await http_exception_handler(request, exc)
    return error_page(request, exc.status_code, exc.detail, exc.headers)


def _text(value: object) -> str | int:
    """A location part or message that can be sent as JSON (a lone surrogate
    in the request must not make the answer unencodable)."""
    if isinstance(value, int):
        return value
    return str(value).encode("utf-8", "replace").decode("utf-8")


def validation_errors(exc: RequestValidationError) -> list[dict]:
    """What was invalid and why, without echoing the input back (it may be
    huge, a secret, or not encodable)."""
    return [{"type": _text(e.get("type", "")), "loc": [_text(p) for p in e.get("loc", ())],
             "msg": _text(e.get("msg", ""))} for e in exc.errors()]


async def _invalid(request: Request, exc: RequestValidationError):
    if not is_page(request):
        return JSONResponse({"detail": validation_errors(exc)}, status_code=422)
    return error_page(request, 422)


async def _crash(request: Request, exc: Exception):
    """A page that failed gets the error page; anything else is left to the
    outer middleware (api/middleware.py: logged, a JSON 500)."""
    if not is_page(request):
        raise exc
    return error_page(request, 500)


def _page_or(previous, status: int):
    """A handler that answers pages with the error page (``status``) and
    everything else as ``previous`` did."""
    async def handler(request: Request, exc: Exception):
        if not is_page(request):
            return await previous(request, exc)
        return error_page(request, status, headers={"Retry-After": str(RETRY_AFTER_S)})
    return handler


def install(app: FastAPI) -> None:
    """Call after the app's own handlers are registered: those for a database
    that does not answer (503) keep answering the JSON API."""
    for exc_class, previous in list(app.exception_handlers.items()):
        if exc_class in (OperationalError, PoolTimeout):
            app.add_exception_handler(exc_class, _page_or(previous, 503))
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(Exception, _crash)
