"""The REST API's service-database connections: a bounded pool that waits instead of failing.

At most ``size`` connections exist; a request that finds them all busy waits for one (up to
``timeout``), so a burst queues instead of failing. A connection goes back rolled back to idle and
in transaction mode (autocommit off, READ COMMITTED: what the store expects); a broken one (server
restart, lost network) is closed and a new one is opened on the next checkout. ``try_checkout`` and
``try_give_back`` do no I/O, so the event loop can use them directly when nothing has to wait.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

import psycopg2
import psycopg2.extensions

from dp.database import connect

APPLICATION_NAME = "data-pipeline-api"
Connection = psycopg2.extensions.connection


class PoolTimeout(RuntimeError):
    """Every connection stayed busy for the whole wait."""


class ConnectionPool:
    def __init__(self, url: str, size: int, timeout: float = 30.0) -> None:
        self._url = url
        self._idle: list[Connection] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(size)
        self._timeout = timeout

    def try_checkout(self) -> Connection | None:
        """An idle connection when one is free right now, else None (then use ``checkout``)."""
        if not self._slots.acquire(blocking=False):
            return None
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None or conn.closed:
            self._slots.release()
            return None
        return conn

    def checkout(self) -> Connection:
        """A connection, waiting for a free slot and connecting when no idle one is left."""
        if not self._slots.acquire(timeout=self._timeout):
            raise PoolTimeout(f"no service-database connection became free within {self._timeout:.0f} s")
        try:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None or conn.closed:
                conn = connect(self._url, application_name=APPLICATION_NAME)
            return conn
        except BaseException:
            self._slots.release()
            raise

    def try_give_back(self, conn: Connection) -> bool:
        """Take the connection back if that needs no I/O (no open transaction); False: use ``give_back``."""
        if not conn.closed and conn.get_transaction_status() != psycopg2.extensions.TRANSACTION_STATUS_IDLE:
            return False
        self._return(conn)
        return True

    def give_back(self, conn: Connection) -> None:
        try:
            if not conn.closed and conn.get_transaction_status() != psycopg2.extensions.TRANSACTION_STATUS_IDLE:
                conn.rollback()
        except psycopg2.Error:
            conn.close()
        self._return(conn)

    def _return(self, conn: Connection) -> None:
        try:
            if not conn.closed:
                conn.autocommit = False
                with self._lock:
                    self._idle.append(conn)
        except psycopg2.Error:
            conn.close()
        finally:
            self._slots.release()

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """A connection for one unit of work; the caller commits (``with conn:``) what it wants kept."""
        conn = self.checkout()
        try:
            yield conn
        finally:
            self.give_back(conn)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
