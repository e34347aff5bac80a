"""Builds the REST API's FastAPI app and serves it with uvicorn (``data-pipeline serve``).

The lifespan migrates the service database, fails tasks whose run a dead process never started,
opens the connection pool, one Prefect client and the background starter, starts the mirror in a
thread (unless ``DP_API_MIRROR`` is off), and closes them on shutdown. Routes are under /api/v0/data_pipeline (service/api/routes), OpenAPI at /docs. Bad
input is a 400 envelope here, so FastAPI's default 422 is taken out of the schema. The server logs
through one redacting handler: no connection-string password reaches a log line.
"""

from __future__ import annotations

import logging
import os
from contextlib import asynccontextmanager
from typing import AsyncIterator

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.utils import get_openapi

from dp.database import service_database_url
from dp.logs import RedactingFilter
from dp.settings import Settings, get_settings
from service.api.errors import CatchAll, install_error_handlers
from service.api.lifecycle import fail_abandoned_claims
from service.api.pool import ConnectionPool
from service.api.routes import api_router, health
from service.api.runs import PrefectRuns
from service.api.starter import Starter
from service.migrate import migrate
from service.mirror_service import MirrorThread

TITLE = "data-pipeline REST API"
VERSION = "0.1.0"
DESCRIPTION = ("Create, run, watch, cancel and clean up pipeline tasks (text-to-SQL training data from a "
               "PostgreSQL database). Every answer is an envelope `{code, success, message, data}` whose "
               "`code` is the HTTP status.")


def _openapi(app: FastAPI) -> dict:
    if app.openapi_schema is None:
        schema = get_openapi(title=TITLE, version=VERSION, description=DESCRIPTION, routes=app.routes)
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                operation.get("responses", {}).pop("422", None)
        for name in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(name, None)
        app.openapi_schema = schema
    return app.openapi_schema


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app; the service database and Prefect are connected when it starts (its lifespan)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        current = settings or get_settings()
        url = await run_in_threadpool(service_database_url, current)
        await run_in_threadpool(migrate, url)
        pool = ConnectionPool(url, current.api_db_pool_size)
        await run_in_threadpool(lambda: fail_abandoned_claims(pool))
        starter = Starter(pool)
        mirror = MirrorThread(current) if current.api_mirror else None
        try:
            with PrefectRuns.connect() as runs:
                app.state.settings, app.state.pool, app.state.runs, app.state.starter = current, pool, runs, starter
                if mirror is not None:
                    mirror.start()
                yield
                starter.close()  # creations under way finish while the Prefect client is still open
        finally:
            if mirror is not None:
                mirror.stop()
            pool.close()

    app = FastAPI(title=TITLE, version=VERSION, description=DESCRIPTION, lifespan=lifespan)
    install_error_handlers(app)
    app.include_router(api_router)
    app.add_api_route("/health", health.health, include_in_schema=False)
    app.add_middleware(CatchAll)
    app.openapi = lambda: _openapi(app)
    return app


def _configure_logging() -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s [%(name)s] %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    for chatty in ("httpx", "httpcore"):  # a line per request to Prefect: the mirror alone polls twice a second
        logging.getLogger(chatty).setLevel(logging.WARNING)


def serve(settings: Settings | None = None) -> int:
    """Run the API on DP_API_HOST:DP_API_PORT until Ctrl-C/SIGTERM; Prefect is the stack's unless
    PREFECT_API_URL names another server."""
    import uvicorn

    from deployments.server import api_url
    from dp.prefect_env import configure_prefect

    settings = settings or get_settings()
    configure_prefect(settings)
    os.environ.setdefault("PREFECT_API_URL", api_url(settings))  # before Prefect is imported
    _configure_logging()
    uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port, log_config=None)
    return 0
