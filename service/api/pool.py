"""The REST API's service-database connections: a bounded pool that waits instead of failing.

At most ``size`` connections exist; a request that finds them all busy waits for one (up to
``timeout``), so a burst queues instead of failing. A connection goes back rolled back to idle; a
broken one (server restart, lost network) is closed and a new one is opened on the next checkout.
Connections are psycopg2's default, READ COMMITTED with autocommit off, as the store expects.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

import psycopg2
import psycopg2.extensions

from dp.database import connect

APPLICATION_NAME = "data-pipeline-api"


class PoolTimeout(RuntimeError):
    """Every connection stayed busy for the whole wait."""


class ConnectionPool:
    def __init__(self, url: str, size: int, timeout: float = 30.0) -> None:
        self._url = url
        self._idle: list[psycopg2.extensions.connection] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(size)
        self._timeout = timeout

    @contextmanager
    def connection(self) -> Iterator[psycopg2.extensions.connection]:
        """A connection for one unit of work; the caller commits (``with conn:``) what it wants kept."""
        if not self._slots.acquire(timeout=self._timeout):
            raise PoolTimeout(f"no service-database connection became free within {self._timeout:.0f} s")
        conn = None
        try:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None or conn.closed:
                conn = connect(self._url, application_name=APPLICATION_NAME)
            yield conn
        finally:
            if conn is not None:
                self._give_back(conn)
            self._slots.release()

    def _give_back(self, conn: psycopg2.extensions.connection) -> None:
        try:
            if not conn.closed and conn.get_transaction_status() != psycopg2.extensions.TRANSACTION_STATUS_IDLE:
                conn.rollback()
        except psycopg2.Error:
            conn.close()
        if conn.closed:
            return
        with self._lock:
            self._idle.append(conn)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
