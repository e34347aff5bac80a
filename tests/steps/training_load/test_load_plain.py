"""The plain store: the same load on a server without pgvector (the local PostgreSQL 15)."""

import logging

import numpy as np
import pytest

from dp.database import connection
from dp.settings import get_settings
from steps.errors import StepFailed
from steps.training_load import store
from steps.training_load.backup import restore_vector_backup
from steps.training_load.step import run_training_load
from tests.steps.training_load.conftest import rows
from tests.steps.training_load.factories import PAIRS, write_task_files


@pytest.fixture
def plain_url(scratch_db, monkeypatch):
    """A fresh database on a server without the vector extension (forced when the server has it)."""
    with connection(scratch_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'")
        if cur.fetchone()[0]:
            monkeypatch.setenv("DP_VECTOR_STORE", "plain")
            get_settings.cache_clear()
    return scratch_db


def plain_rows(url):
    return rows(url, "dp_vector_embedding")


def test_without_pgvector_the_plain_store_is_chosen_and_said(tmp_path, plain_url, caplog):
    caplog.set_level(logging.INFO, logger="steps.training_load")
    task = write_task_files(tmp_path / "task")
    first = run_training_load(output_dir=task, task_id="plain", service_url=plain_url)
    second = run_training_load(output_dir=task, task_id="plain", service_url=plain_url)

    assert first["store"] == "plain"
    assert "plain" in caplog.text
    assert first["items"]["inserted"] == 12 and second["items"]["unchanged"] == 12
    stored = plain_rows(plain_url)
    assert len(stored) == 12
    vector = np.frombuffer(bytes.fromhex(stored[0][3][2:]), dtype="<f4")
    assert vector.shape == (384,) and abs(float(np.linalg.norm(vector)) - 1.0) < 1e-4
    assert first["recall_at_k"]["sql"]["10"] == 1.0 and first["recall_at_k"]["ddl"]["10"] == 1.0


def test_plain_search_ranks_by_exact_cosine(plain_url):
    with connection(plain_url) as conn:
        collections = store.ensure_collections(conn, store.PLAIN)
        vectors = np.eye(4, 8, dtype=np.float32) + 0.1
        with conn, conn.cursor() as cur:
            store.copy_rows(
                cur,
                store.PLAIN,
                ((f"r{i}-ddl", collections["ddl"], v, f"doc {i}", {"task_id": "t", "id": f"r{i}-ddl"}) for i, v in enumerate(vectors)),
            )
        with conn.cursor() as cur:
            query = np.array([[0.0, 0.0, 1.0, 0.9, 0, 0, 0, 0]], dtype=np.float32)
            [hits] = store.search(cur, store.PLAIN, collection_id=collections["ddl"], task_id="t", queries=query, k=3)
            assert hits == ["r2-ddl", "r3-ddl", "r0-ddl"]
            [none] = store.search(cur, store.PLAIN, collection_id=collections["ddl"], task_id="other", queries=query, k=3)
            assert none == []


def test_plain_backup_truncate_restore_round_trip(tmp_path, plain_url):
    run_training_load(output_dir=write_task_files(tmp_path / "a"), task_id="a", service_url=plain_url)
    before = plain_rows(plain_url)
    task_b = write_task_files(tmp_path / "b", pairs=PAIRS[:1])
    result = run_training_load(output_dir=task_b, task_id="b", service_url=plain_url, truncate=True)
    assert set(result["backup"]["tables"]) == {"dp_vector_collection", "dp_vector_embedding"}
    assert {r[2]["task_id"] for r in plain_rows(plain_url)} == {"b"}

    restored = restore_vector_backup(task_b / "vector_bak", service_url=plain_url)
    assert restored["store"] == "plain"
    assert plain_rows(plain_url) == before


def test_forcing_pgvector_where_it_is_missing_says_how_to_fix(tmp_path, plain_url, monkeypatch):
    with connection(plain_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'")
        if cur.fetchone()[0]:
            pytest.skip("this server has pgvector")
    monkeypatch.setenv("DP_VECTOR_STORE", "pgvector")
    get_settings.cache_clear()
    with pytest.raises(StepFailed, match="DP_VECTOR_STORE=pgvector.*embedded PostgreSQL"):
        run_training_load(output_dir=write_task_files(tmp_path / "task"), task_id="t", service_url=plain_url)
