"""Background work after an answer: a created task's Prefect calls, each with a connection of its own.

Prefect takes longer to create a Secret block and a flow run than ``POST /tasks`` may take to
answer, so those calls run here; the route waits for them a bounded time (DP_API_START_WAIT).
A few worker threads, each job with a pool connection; on shutdown the jobs under way finish.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, TypeVar

from service.api.pool import Connection, ConnectionPool

T = TypeVar("T")


class Starter:
    def __init__(self, pool: ConnectionPool, workers: int = 4) -> None:
        self._pool = pool
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dp-api-starter")

    def submit(self, job: Callable[[Connection], T]) -> Future[T]:
        """Run ``job(connection)`` in the background; the future holds its result or its exception."""
        return self._executor.submit(self._with_connection, job)

    def _with_connection(self, job: Callable[[Connection], T]) -> T:
        with self._pool.connection() as conn:
            return job(conn)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
