"""The FastAPI application: JSON API under /api/v1, operator endpoints."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from psycopg import OperationalError
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from agri.api.routes import health, readings
from agri.settings import Settings, load

logger = logging.getLogger(__name__)

POOL_MAX = 10
POOL_TIMEOUT_S = 10.0


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        pool = AsyncConnectionPool(settings.db_url(), min_size=1, max_size=POOL_MAX,
                                   timeout=POOL_TIMEOUT_S, open=False,
                                   check=AsyncConnectionPool.check_connection,
                                   kwargs={"options": "-c timezone=UTC"})
        await pool.open()
        app.state.pool = pool
        app.state.settings = settings
        try:
            yield
        finally:
            await pool.close()

    app = FastAPI(title="agri platform API", version="1", lifespan=lifespan)

    @app.exception_handler(OperationalError)
    @app.exception_handler(PoolTimeout)
    async def database_unavailable(request: Request, exc: Exception):
        logger.warning("database unavailable: %s", exc)
        return JSONResponse({"detail": "database unavailable, try again shortly"},
                            status_code=503)

    app.include_router(health.router)
    app.include_router(readings.router)
    return app
