"""The database check: does PostgreSQL accept a guarded query, and does it return rows?

Every check runs in its own READ ONLY transaction with ``SET LOCAL statement_timeout`` and always
ends in ROLLBACK, on a connection from a bounded ``ThreadedConnectionPool`` whose sessions also
default to read-only (and to the same timeout). The transaction is opened explicitly, in the same
message as the EXPLAIN (``BEGIN READ ONLY; SET LOCAL ...; EXPLAIN ...``: one round trip, not three),
so sessions are in autocommit mode and the ROLLBACK is sent explicitly. A failing query never
poisons the pool: a connection that does not end up idle is discarded (and the check retried once on
a fresh one). A table another session holds locked ends the wait after the lock timeout (below the
statement timeout) with LOCK_NOT_AVAILABLE, which says nothing about the query (``DbCheck.locked``).
Callers pass only SQL that passed ``guard_sql``; this layer is the second wall, not the first.
Errors name the problem, never the URL.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

import psycopg2
import psycopg2.errors
import psycopg2.extensions
from psycopg2.pool import ThreadedConnectionPool

from dp.database import connect

log = logging.getLogger(__name__)

_EXPLAIN = "EXPLAIN (FORMAT TEXT) "  # an explicit option list: SQL starting with "(" is never read as options
_ROW_CHECK = ("SELECT * FROM (\n", "\n) AS q LIMIT 1")  # newlines: a trailing "--" comment cannot eat the ")"
UNDEFINED_COLUMN = "42703"
UNDEFINED_TABLE = "42P01"
LOCK_NOT_AVAILABLE = "55P03"


@dataclass
class DbCheck:
    """What the database said about one query; ``error`` is None when it was accepted."""

    error: str | None = None
    sqlstate: str | None = None
    message: str | None = None  # the primary message alone, e.g. 'column "x" does not exist'
    hint: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def locked(self) -> bool:
        """Not judged: a table the query reads is locked by another session (ALTER TABLE, TRUNCATE)."""
        return self.sqlstate == LOCK_NOT_AVAILABLE


class _Pool(ThreadedConnectionPool):
    """psycopg2's pool, opening connections through ``dp.database.connect`` (password-masked errors)."""

    def __init__(self, size: int, url: str, options: str):
        self._url = url
        self._options = options
        super().__init__(size, size)

    def _connect(self, key=None):
        conn = connect(self._url, application_name="data-pipeline sql_validation", options=self._options)
        conn.autocommit = True  # each check opens its own READ ONLY transaction (see the module docstring)
        # the bookkeeping of AbstractConnectionPool._connect, which we replace only for the connect call
        if key is not None:
            self._used[key] = conn
            self._rused[id(conn)] = key
        else:
            self._pool.append(conn)
        return conn


class QueryValidator:
    """Checks guarded queries against one database from many threads at once; close it when done."""

    def __init__(self, db_url: str, *, timeout_ms: int, concurrency: int, execute: bool = True,
                 lock_timeout_ms: int | None = None):
        self.timeout_ms = int(timeout_ms)
        self.execute = execute
        # Below the statement timeout, so waiting for a locked table reads as LOCK_NOT_AVAILABLE (the
        # query unchecked), never as a query too slow to keep.
        lock_ms = max(1, min(lock_timeout_ms or self.timeout_ms, self.timeout_ms // 2))
        options = (
            f"-c default_transaction_read_only=on -c statement_timeout={self.timeout_ms} "
            f"-c lock_timeout={lock_ms} "
            "-c standard_conforming_strings=on"  # the string rules the guard's tokenizer assumes
        )
        self._pool = _Pool(concurrency, db_url, options)
        self._slots = threading.BoundedSemaphore(concurrency)
        self._explain = f"BEGIN READ ONLY; SET LOCAL statement_timeout = {self.timeout_ms}; {_EXPLAIN}"

    def __enter__(self) -> "QueryValidator":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        if not self._pool.closed:
            self._pool.closeall()

    def ping(self) -> None:
        """Raise ``psycopg2.Error`` unless the database answers ``SELECT 1`` through the pool."""
        with self._slots:
            conn = self._pool.getconn()
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT 1")
            finally:
                self._pool.putconn(conn, close=bool(conn.closed))

    def check(self, sql: str) -> DbCheck:
        """EXPLAIN ``sql`` (and run it with LIMIT 1 when ``execute``), read-only, always rolled back."""
        result, broken = self._check_once(sql)
        if broken:
            log.warning("a pooled connection broke (%s); checking again on a fresh one", result.message)
            result, _ = self._check_once(sql)
        return result

    def _check_once(self, sql: str) -> tuple[DbCheck, bool]:
        with self._slots:
            conn = self._pool.getconn()
            result, broken, prefix = DbCheck(), False, ""
            try:
                with conn.cursor() as cur:
                    prefix = self._explain  # error positions count from the start of the whole message
                    cur.execute(self._explain + sql)
                    if self.execute:
                        prefix = _ROW_CHECK[0]
                        cur.execute(_ROW_CHECK[0] + sql + _ROW_CHECK[1])
                        if cur.fetchone() is None:
                            result.warnings.append("the query returns no rows; check its filters and literals")
            except psycopg2.Error as exc:
                result = self._failure(exc, sql, prefix)
                broken = _is_broken(conn, exc)
            finally:
                broken = not _rolled_back(conn) or broken
                self._pool.putconn(conn, close=broken)
            return result, broken

    def _failure(self, exc: psycopg2.Error, sql: str, prefix: str) -> DbCheck:
        diag = exc.diag
        message = (diag.message_primary or str(exc)).strip()
        if isinstance(exc, psycopg2.errors.QueryCanceled):
            message = f"{message} (the query ran longer than {self.timeout_ms} ms)"
        parts = [message]
        near = _near(diag.statement_position, sql, prefix)
        if near:
            parts.append(f"near {near!r}")
        if diag.message_detail:
            parts.append(f"DETAIL: {diag.message_detail.strip()}")
        if diag.message_hint:
            parts.append(f"HINT: {diag.message_hint.strip()}")
        return DbCheck(error="; ".join(parts), sqlstate=exc.pgcode, message=message, hint=diag.message_hint)


def _near(position: str | None, sql: str, prefix: str) -> str | None:
    """The text of the user's query at an error position reported for our wrapped statement."""
    offset = int(position) - 1 - len(prefix) if position and prefix else -1
    if 0 <= offset < len(sql):
        return sql[offset : offset + 30].split("\n")[0] or None
    return None


def _is_broken(conn: psycopg2.extensions.connection, exc: psycopg2.Error) -> bool:
    if conn.closed:
        return True
    return isinstance(exc, (psycopg2.InterfaceError, psycopg2.OperationalError)) and exc.pgcode is None


def _rolled_back(conn: psycopg2.extensions.connection) -> bool:
    """Roll back; True when the connection is idle and reusable afterwards."""
    if conn.closed:
        return False
    try:
        with conn.cursor() as cur:
            cur.execute("ROLLBACK")  # autocommit: conn.rollback() would do nothing
    except psycopg2.Error:
        return False
    return conn.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_IDLE
