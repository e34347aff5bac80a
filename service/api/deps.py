"""Dependencies of the routes, as ``Annotated`` aliases: the connection, settings, Prefect, task id, API key.

The app's lifespan puts the settings, the connection pool, the Prefect client and the background
starter on ``app.state``;
these aliases hand them to routes. ``TaskId`` is checked against the task-id pattern before a route
body runs, so no unchecked id ever reaches the file system or a query. ``require_api_key`` guards
every router but health when ``DP_API_KEY`` is set (``X-API-Key`` header or ``Authorization:
Bearer``), compared in constant time.
"""

from __future__ import annotations

import secrets
from typing import Annotated, AsyncIterator

import psycopg2.extensions
from fastapi import Depends, Path, Request, Security
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from dp.settings import Settings
from dp.task_ids import InvalidTaskId, validate_task_id
from service.api.errors import ApiError, bad_request
from service.api.pool import ConnectionPool
from service.api.runs import PrefectRuns
from service.api.starter import Starter

_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="the DP_API_KEY value")
_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <DP_API_KEY>")


async def _settings(request: Request) -> Settings:
    return request.app.state.settings


async def _pool(request: Request) -> ConnectionPool:
    return request.app.state.pool


async def _runs(request: Request) -> PrefectRuns:
    return request.app.state.runs


async def _starter(request: Request) -> Starter:
    return request.app.state.starter


async def _pooled(pool: ConnectionPool, autocommit: bool) -> AsyncIterator[psycopg2.extensions.connection]:
    # the event loop takes an idle connection itself; only waiting, connecting or rolling back go to a thread
    conn = pool.try_checkout() or await run_in_threadpool(pool.checkout)
    try:
        conn.autocommit = autocommit
        yield conn
    finally:
        if not pool.try_give_back(conn):
            await run_in_threadpool(pool.give_back, conn)


async def _connection(pool: Annotated[ConnectionPool, Depends(_pool)]) -> AsyncIterator[psycopg2.extensions.connection]:
    async for conn in _pooled(pool, autocommit=False):
        yield conn


async def _read_connection(pool: Annotated[ConnectionPool, Depends(_pool)]) -> AsyncIterator[psycopg2.extensions.connection]:
    async for conn in _pooled(pool, autocommit=True):
        yield conn


async def _task_id(task_id: Annotated[str, Path(description="task_YYYYMMDD_HHMMSS_xxxx", max_length=200)]) -> str:
    try:
        return validate_task_id(task_id)
    except InvalidTaskId as exc:
        raise bad_request(str(exc), invalid={"task_id": str(exc)}) from None


async def require_api_key(
    request: Request,
    header_key: Annotated[str | None, Security(_api_key_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> None:
    expected = request.app.state.settings.api_key
    if expected is None:
        return
    given = header_key or (bearer.credentials if bearer else None)
    if given is None or not secrets.compare_digest(given.encode(), expected.get_secret_value().encode()):
        raise ApiError(401, "missing or wrong API key: send it as X-API-Key or Authorization: Bearer <key>",
                       "unauthorized")


# jQuery's and other clients' cache buster, sent with any GET
_IGNORED_QUERY_PARAMETERS = frozenset({"_"})


def _query_parameters(route: APIRoute) -> frozenset[str]:
    names: set[str] = set()
    pending: list[Dependant] = [route.dependant]
    while pending:
        dependant = pending.pop()
        names.update(field.alias for field in dependant.query_params)
        pending.extend(dependant.dependencies)
    return frozenset(names)


async def reject_unknown_query_parameters(request: Request) -> None:
    """400 for a query parameter the route does not take.

    FastAPI ignores such parameters, so a misspelt or foreign filter (``sort_by`` for ``sort``, the
    original system's ``limit``/``offset`` for ``page``/``page_size``) would answer 200 with the
    default listing, which looks right and is not.
    """
    if not request.scope["query_string"]:
        return
    known = _query_parameters(request.scope["route"])
    unknown = sorted(set(request.query_params) - known - _IGNORED_QUERY_PARAMETERS)
    if unknown:
        takes = f"it takes {', '.join(sorted(known))}" if known else "it takes none"
        problem = f"not a query parameter of this route ({takes})"
        raise bad_request(f"unknown query parameter{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}: {takes}",
                          invalid={name: problem for name in unknown})


SettingsDep = Annotated[Settings, Depends(_settings)]
PoolDep = Annotated[ConnectionPool, Depends(_pool)]
ConnDep = Annotated[psycopg2.extensions.connection, Depends(_connection)]
# for routes that only read: autocommit, so no BEGIN/COMMIT round trips (each statement sees the latest data)
ReadConnDep = Annotated[psycopg2.extensions.connection, Depends(_read_connection)]
RunsDep = Annotated[PrefectRuns, Depends(_runs)]
StarterDep = Annotated[Starter, Depends(_starter)]
TaskId = Annotated[str, Depends(_task_id)]
