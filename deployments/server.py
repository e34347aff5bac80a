"""The stack's Prefect server, on the service PostgreSQL server (never SQLite).

Prefect keeps its tables in a database of its own (``DP_PREFECT_DATABASE``, default ``prefect``) on
the service database server, created when missing. The server's asyncpg URL reaches the child only
through its environment: never its argv, never a log line (the embedded PostgreSQL has no password;
a configured ``DP_DATABASE_URL`` may). It listens on ``DP_PREFECT_HOST:DP_PREFECT_PORT``, loopback by
default, with analytics off, and counts as started once ``/api/health`` answers.
"""

from __future__ import annotations

import os
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Mapping

from psycopg2 import sql
from sqlalchemy.engine import URL, make_url

from dp.database import connection
from dp.sample_databases import with_database
from dp.settings import Settings
from deployments.supervisor import Component, StackError

# Prefect settings that carry the database URL: they go to the server's environment only.
DATABASE_ENV_KEYS = ("PREFECT_API_DATABASE_CONNECTION_URL", "PREFECT_SERVER_DATABASE_CONNECTION_URL")


def environment_without_database(base_env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base_env`` (default: ours) minus the Prefect database settings: for every child but the server."""
    return {k: v for k, v in (os.environ if base_env is None else base_env).items() if k not in DATABASE_ENV_KEYS}


def _host_in_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def ui_url(settings: Settings) -> str:
    return f"http://{_host_in_url(settings.prefect_host)}:{settings.prefect_port}"


def api_url(settings: Settings) -> str:
    """The ``PREFECT_API_URL`` of the stack's server."""
    return ui_url(settings) + "/api"


def prefect_database_url(service_url: str, database: str) -> str:
    """SQLAlchemy asyncpg URL of ``database`` on the server of a psycopg2/libpq ``service_url``.

    A unix-socket URL (``postgresql://postgres:@/postgres?host=/dir``) keeps its ``host`` query
    parameter, which asyncpg understands; libpq's ``sslmode`` becomes asyncpg's ``ssl``.
    """
    parsed = make_url(service_url)
    query = dict(parsed.query)
    if "sslmode" in query:
        query["ssl"] = query.pop("sslmode")
    url = URL.create("postgresql+asyncpg", username=parsed.username, password=parsed.password or None,
                     host=parsed.host, port=parsed.port, database=database, query=query)
    return url.render_as_string(hide_password=False)


def ensure_prefect_database(service_url: str, database: str) -> str:
    """Create Prefect's database on the service server when missing; returns its libpq URL."""
    with connection(service_url) as admin:
        admin.autocommit = True
        cur = admin.cursor()
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
        if cur.fetchone() is None:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    return with_database(service_url, database)


def check_port_free(host: str, port: int) -> None:
    """Fail before starting when something already listens there: its /api/health would fool us."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is no owner
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise StackError(
                f"cannot listen on {host}:{port} for the Prefect server ({exc.strerror}); "
                "stop what uses it or set DP_PREFECT_PORT / DP_PREFECT_HOST"
            ) from None


def server_component(settings: Settings, service_url: str, base_env: Mapping[str, str] | None = None,
                     log: Path | None = None) -> Component:
    """``prefect server start`` on Prefect's database (see ``ensure_prefect_database``)."""
    env = environment_without_database(base_env)
    env.update(
        PREFECT_SERVER_DATABASE_CONNECTION_URL=prefect_database_url(service_url, settings.prefect_database),
        PREFECT_HOME=str(settings.data_dir / "prefect-server"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        # the UI asks http://<these>/api unless PREFECT_UI_API_URL says otherwise; --host/--port do not tell it
        PREFECT_SERVER_API_HOST=settings.prefect_host,
        PREFECT_SERVER_API_PORT=str(settings.prefect_port),
    )
    env.pop("PREFECT_API_URL", None)  # the server is the API; a client setting here means nothing
    argv = [sys.executable, "-m", "prefect", "server", "start", "--host", settings.prefect_host,
            "--port", str(settings.prefect_port), "--analytics-off"]
    return Component(name="prefect server", argv=argv, env=env, log=log, url=ui_url(settings))


def wait_until_healthy(url: str, timeout: float, still_starting: Callable[[], bool], what: str = "the Prefect server",
                       healthy: Callable[[bytes], bool] = lambda body: body.strip() == b"true") -> None:
    """Poll ``<url>/health`` until it answers 200 with a body ``healthy`` accepts (Prefect's: ``true``);
    ``still_starting`` returning False aborts the wait."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not still_starting():
            return
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as reply:
                if reply.status == 200 and healthy(reply.read()):
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise StackError(f"{what} did not answer {url}/health within {timeout:.0f} s (DP_STACK_START_TIMEOUT)")
