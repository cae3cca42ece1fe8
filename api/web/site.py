"""The pages' part of the application: their routers, ``/static`` and the
error pages, added to the app in one call (api/app.py)."""

from __future__ import annotations

from fastapi import FastAPI

from agri.api.web import diary, errors, farmer, home, share
from agri.api.web.render import STATIC_PREFIX, static_files

ROUTERS = (home.router, farmer.router, diary.router, share.router)


def install(app: FastAPI) -> None:
    for router in ROUTERS:
        app.include_router(router)
    app.mount(STATIC_PREFIX, static_files(), name="static")
    errors.install(app)
