"""Migrations: applied once, in order, safely from two processes at once, on PostgreSQL 15 and 18."""

from __future__ import annotations

import threading

import psycopg2
import pytest

from dp.database import connection
from service.migrate import MigrationError, available_migrations, migrate

ALL = [m.name for m in available_migrations()]
TABLES = {
    "data_pipeline_tasks",
    "data_pipeline_task_executions",
    "data_pipeline_task_logs",
    "data_pipeline_task_outputs",
    "data_pipeline_idempotency_keys",
    "data_pipeline_schema_migrations",
}


def _tables(url: str) -> set[str]:
    with connection(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {row[0] for row in cur.fetchall()}


def _recorded(url: str) -> list[str]:
    with connection(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT name FROM data_pipeline_schema_migrations ORDER BY version")
        return [row[0] for row in cur.fetchall()]


def test_files_are_numbered_in_order():
    assert ALL and ALL[0] == "0001_tracking_tables"
    assert [name[:4] for name in ALL] == sorted(name[:4] for name in ALL)


def test_applies_everything_once_then_nothing(fresh_db_url):
    assert migrate(fresh_db_url) == ALL
    assert TABLES <= _tables(fresh_db_url)
    assert migrate(fresh_db_url) == []
    assert _recorded(fresh_db_url) == ALL


def test_two_processes_migrating_at_once_apply_each_file_once(fresh_db_url):
    barrier = threading.Barrier(2)
    results, errors = [], []

    def run():
        try:
            with connection(fresh_db_url) as conn:
                barrier.wait()
                results.append(migrate(conn))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    # each file exactly once, by whichever process took the lock first (in order: one file per transaction)
    assert sorted(results[0] + results[1]) == ALL and len(results) == 2
    assert _recorded(fresh_db_url) == ALL


def test_leaves_a_passed_connection_open_and_in_its_mode(fresh_db_url):
    with connection(fresh_db_url) as conn:
        conn.autocommit = True
        migrate(conn)
        assert conn.autocommit is True
        assert not conn.closed


def test_refuses_a_connection_inside_a_transaction(fresh_db_url):
    with connection(fresh_db_url) as conn:
        conn.cursor().execute("SELECT 1")
        with pytest.raises(MigrationError, match="commit or roll back"):
            migrate(conn)


def test_an_edited_applied_migration_is_an_error(fresh_db_url):
    migrate(fresh_db_url)
    with connection(fresh_db_url) as conn, conn, conn.cursor() as cur:
        cur.execute("UPDATE data_pipeline_schema_migrations SET checksum = repeat('0', 64) WHERE version = '0001'")
    with pytest.raises(MigrationError, match="new migration"):
        migrate(fresh_db_url)


def test_a_failing_migration_leaves_no_trace(fresh_db_url, monkeypatch):
    from service import migrate as module

    good = available_migrations()
    broken = module.Migration("9999", "9999_broken", "CREATE TABLE half_done (id int); SELECT no_such_column;")
    monkeypatch.setattr(module, "available_migrations", lambda: [*good, broken])
    with pytest.raises(psycopg2.Error):
        migrate(fresh_db_url)
    assert "half_done" not in _tables(fresh_db_url)
    assert _recorded(fresh_db_url) == ALL  # the good ones, each in its own transaction, stay


_OUTPUT = "(task_id, file_type, file_name, file_path)"


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO data_pipeline_tasks (id) VALUES ('../escape')",
        "INSERT INTO data_pipeline_tasks (id, status) VALUES ('t1', 'running')",
        "UPDATE data_pipeline_tasks SET step_status = jsonb_set(step_status, '{qa_generation}', '\"done\"')",
        "UPDATE data_pipeline_tasks SET step_status = jsonb_set(step_status, '{qa_generation}', '[\"running\"]')",
        "UPDATE data_pipeline_tasks SET step_status = step_status || '{\"ddl_md_generation\": \"pending\"}'",
        "UPDATE data_pipeline_tasks SET step_status = step_status - 'training_load'",
        f"INSERT INTO data_pipeline_task_outputs {_OUTPUT} VALUES ('t0', 'x', 'a', '../b')",
        f"INSERT INTO data_pipeline_task_outputs {_OUTPUT} VALUES ('t0', 'x', 'a', '/b')",
        "SELECT cleanup_old_data_pipeline_tasks(-1)",
    ],
)
def test_the_schema_itself_refuses_bad_rows(conn, statement):
    with conn.cursor() as cur:
        cur.execute("INSERT INTO data_pipeline_tasks (id) VALUES ('t0')")
        with pytest.raises(psycopg2.Error):
            cur.execute(statement)
