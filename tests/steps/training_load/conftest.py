"""Fixtures for step 4 tests: a fresh pgvector database (embedded PostgreSQL 18) and helpers to read it."""

from __future__ import annotations

import uuid

import pytest

from dp.database import connection
from dp.sample_databases import with_database


def create_database(admin_url: str) -> str:
    name = f"dp_tl_{uuid.uuid4().hex[:10]}"
    with connection(admin_url) as admin:
        admin.autocommit = True
        admin.cursor().execute(f'CREATE DATABASE "{name}"')
    return name


def drop_database(admin_url: str, name: str) -> None:
    with connection(admin_url) as admin:
        admin.autocommit = True
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def pgvector_url(embedded_url):
    """A database of this test module on the embedded server (pgvector available)."""
    name = create_database(embedded_url)
    yield with_database(embedded_url, name)
    drop_database(embedded_url, name)


@pytest.fixture
def fresh_pgvector_url(embedded_url):
    """A database of this test alone, for tests that empty or restore the whole store."""
    name = create_database(embedded_url)
    yield with_database(embedded_url, name)
    drop_database(embedded_url, name)


def rows(url: str, table: str = "langchain_pg_embedding", where: str = "true", params: tuple = ()) -> list[tuple]:
    """``(id, document, cmetadata, embedding text)`` of a store table, ordered by id."""
    with connection(url) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT id, document, cmetadata, embedding::text FROM {table} WHERE {where} ORDER BY id", params)
        return cur.fetchall()


def task_rows(url: str, task_id: str, table: str = "langchain_pg_embedding") -> list[tuple]:
    return rows(url, table, "cmetadata->>'task_id' = %s", (task_id,))
