"""The FastAPI application: JSON API under /api/v1, operator endpoints."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from psycopg import OperationalError
from psycopg_pool import PoolTimeout

from agri.api import middleware, openapi
from agri.api.pools import Databases
from agri.api.routes import (
    advisories,
    conformance,
    device_commands,
    device_health,
    devices,
    fields,
    groups,
    health,
    imagery,
    kpis,
    maps,
    me,
    observations,
    open_data,
    readings,
)
from agri.api.routes.field_import import router as field_import_router
from agri.api.routes.line_webhook import router as line_webhook_router
from agri.api.routes.water_control import router as water_control_router
from agri.api.web import auth_pages, officer_pages, open_data_pages, planner_pages, sandbox_pages
from agri.api.web.alert_pages import router as alert_pages_router
from agri.api.web.device_pages import router as device_pages_router
from agri.api.web.site import install as install_pages
from agri.api.web.water_pages import router as water_pages_router
from agri.settings import Settings, load

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # The API's own login (least privilege); reads from the replica when
        # one is configured (see api/pools.py).
        databases = Databases(settings.db_url("api"), settings.db_read_url())
        await databases.open()
        app.state.databases = databases
        app.state.settings = settings
        try:
            async with middleware.running(app, settings, databases):
                yield
        finally:
            await databases.close()

    app = FastAPI(title="agri platform API", version="1", lifespan=lifespan)
    # Latency, access log, security headers, no 500 for bad input (api/middleware.py).
    middleware.install(app)
    openapi.install(app)

    @app.exception_handler(OperationalError)
    @app.exception_handler(PoolTimeout)
    async def database_unavailable(request: Request, exc: Exception):
        logger.warning("database unavailable: %s", exc)
        return JSONResponse({"detail": "database unavailable, try again shortly"},
                            status_code=503)

    # The pages first: a page request then stops at the few page routes, while
    # an API request passes them quickly (none of their paths is under /api/).
    install_pages(app)  # the pages, /static and the pages' error pages (api/web/)
    app.include_router(health.router)
    app.include_router(readings.router)
    app.include_router(fields.router)
    app.include_router(field_import_router)
    app.include_router(device_health.router)  # before /devices/{device_id}
    app.include_router(devices.router)
    app.include_router(device_commands.router)
    app.include_router(water_control_router)
    app.include_router(conformance.router)
    app.include_router(me.router)
    app.include_router(line_webhook_router)
    app.include_router(auth_pages.router)
    app.include_router(advisories.router)
    app.include_router(groups.router)
    app.include_router(observations.router)
    app.include_router(kpis.router)
    app.include_router(open_data.router)
    app.include_router(imagery.router)
    app.include_router(maps.router)
    app.include_router(officer_pages.router)
    app.include_router(planner_pages.router)
    app.include_router(open_data_pages.router)
    app.include_router(sandbox_pages.router)
    app.include_router(device_pages_router)
    app.include_router(alert_pages_router)
    app.include_router(water_pages_router)
    return app
