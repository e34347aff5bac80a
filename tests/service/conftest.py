"""Service-database fixtures, each run on PostgreSQL 15 (the local server) and 18 (embedded).

* ``fresh_db_url``: an empty database, not migrated (for migration tests).
* ``service_db_url``: a migrated database shared by the session; ``conn`` empties its tables first.
* ``make_task``: creates a pending task with sensible defaults.
"""

from __future__ import annotations

import itertools
import uuid
from contextlib import contextmanager

import pytest

from dp.database import connection
from dp.sample_databases import with_database
from service import store
from service.migrate import migrate

SERVERS = ("pg15", "pg18")


def _admin_url(request, server: str) -> str:
    return request.getfixturevalue("business_server_url" if server == "pg15" else "embedded_url")


@contextmanager
def _fresh_database(admin_url: str):
    name = f"dp_service_{uuid.uuid4().hex[:10]}"
    with connection(admin_url) as admin:
        admin.autocommit = True
        admin.cursor().execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(admin_url, name)
    finally:
        with connection(admin_url) as admin:
            admin.autocommit = True
            admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=SERVERS)
def fresh_db_url(request):
    if request.param == "pg15":
        yield request.getfixturevalue("scratch_db")
        return
    with _fresh_database(_admin_url(request, request.param)) as url:
        yield url


@pytest.fixture(scope="session", params=SERVERS)
def service_db_url(request):
    with _fresh_database(_admin_url(request, request.param)) as url:
        migrate(url)
        yield url


@pytest.fixture
def conn(service_db_url):
    """A connection (autocommit off) to the migrated database, with every tracking table empty."""
    with connection(service_db_url) as c:
        with c, c.cursor() as cur:
            cur.execute("DELETE FROM data_pipeline_tasks")  # cascades to every other table; faster than TRUNCATE
        yield c


_serial = itertools.count()


@pytest.fixture
def make_task(conn):
    def make(task_id: str | None = None, **fields) -> dict:
        if task_id is None:
            task_id = f"task_20250627_143052_{next(_serial):04d}"
        defaults = dict(
            task_type="complete_workflow",
            parameters={"db_connection": "postgresql://u:***@db/highway", "business_context": "高速公路服务区管理"},
            created_by="api",
            output_directory=f"/srv/tasks/{task_id}",
            db_name="highway",
            business_context="高速公路服务区管理",
        )
        return store.create_task(conn, task_id=task_id, **{**defaults, **fields})

    return make
