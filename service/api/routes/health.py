"""``GET /health``: are the service database and the Prefect API reachable? The one route without API key."""

from __future__ import annotations

from fastapi import APIRouter

from service import store
from service.api.deps import PoolDep, RunsDep
from service.api.envelope import documented, envelope
from service.api.schemas import Health

router = APIRouter(tags=["health"])


def _database(pool) -> str:
    try:
        with pool.connection() as conn, conn:
            store.list_tasks(conn, limit=1)  # also proves the tracking tables are there
    except Exception as exc:  # any failure is the answer here, never a 500
        return f"unavailable: {type(exc).__name__}"
    return "ok"


@router.get("/health", responses=documented(Health, errors=(503,)), summary="Service database and Prefect API reachable?")
def health(pool: PoolDep, runs: RunsDep):
    problem = runs.health()
    data = {"database": _database(pool), "prefect": "ok" if problem is None else f"unavailable: {problem}",
            "prefect_api_url": runs.api_url}
    healthy = data["database"] == "ok" and data["prefect"] == "ok"
    return envelope(200 if healthy else 503, "healthy" if healthy else "unhealthy", data)
