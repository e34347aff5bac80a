import json

import pytest

from dp.database import connection
from dp.settings import get_settings
from steps.errors import StepFailed
from steps.training_load.backup import restore_vector_backup
from steps.training_load.step import run_training_load
from tests.steps.training_load.conftest import rows, task_rows
from tests.steps.training_load.factories import DDL, PAIRS, write_pairs, write_task_files


def load(output_dir, task_id, url, **options):
    return run_training_load(output_dir=output_dir, task_id=task_id, service_url=url, **options)


def test_loads_ddl_docs_and_pairs_in_vanna_layout_with_a_report(tmp_path, pgvector_url):
    task = write_task_files(tmp_path / "task")
    result = load(task, "task_load", pgvector_url)

    assert result["store"] == "pgvector"
    assert result["by_type"] == {"ddl": 3, "documentation": 4, "sql": 5}
    assert result["items"] == {"total": 12, "inserted": 12, "unchanged": 0, "replaced": 0, "deleted": 0}
    stored = task_rows(pgvector_url, "task_load")
    assert len(stored) == 12
    suffix = {"ddl": "-ddl", "documentation": "-doc", "sql": "-sql"}
    for item_id, document, metadata, embedding in stored:
        assert metadata["id"] == item_id and item_id.endswith(suffix[metadata["kind"]])
        assert metadata["source"] and len(metadata["content_sha256"]) == 64
        assert metadata["embedding_model"] == "all-MiniLM-L6-v2-int8"
        assert len(json.loads(embedding)) == 384
    pairs = [json.loads(d) for _, d, m, _ in stored if m["kind"] == "sql"]
    assert {"question": PAIRS[4]["question"], "sql": PAIRS[4]["sql"]} in pairs
    assert any('"找出租金最高的电影"' in d for _, d, m, _ in stored)  # ensure_ascii=False
    ddl = {m["table"]: d for _, d, m, _ in stored if m["kind"] == "ddl"}
    assert ddl["public.film"] == DDL["film"].strip()

    report = json.loads((task / result["report_file"]).read_text())
    assert report["items"] == result["items"] and report["by_type"] == result["by_type"]
    for kind in ("sql", "ddl"):
        assert set(report["recall_at_k"][kind]) == {"1", "5", "10"}
        assert all(0.0 <= value <= 1.0 for value in report["recall_at_k"][kind].values())
    assert report["recall_at_k"]["sql"]["10"] == 1.0  # only 5 pairs: the top 10 hold them all
    assert report["recall_at_k"]["ddl"]["10"] == 1.0


def test_loading_twice_adds_nothing(tmp_path, pgvector_url, caplog):
    task = write_task_files(tmp_path / "task")
    first = load(task, "task_twice", pgvector_url)
    before = task_rows(pgvector_url, "task_twice")
    second = load(task, "task_twice", pgvector_url)

    assert second["items"] == {"total": 12, "inserted": 0, "unchanged": 12, "replaced": 0, "deleted": 0}
    assert second["embedding"]["embedded"] == 0
    assert task_rows(pgvector_url, "task_twice") == before
    assert second["recall_at_k"] == first["recall_at_k"]


def test_a_changed_file_replaces_its_items_and_dropped_pairs_are_deleted(tmp_path, pgvector_url):
    task = write_task_files(tmp_path / "task")
    load(task, "task_change", pgvector_url)
    old_film = [r for r in task_rows(pgvector_url, "task_change") if r[2]["source"] == "film.ddl"]

    (task / "film.ddl").write_text(DDL["film"].replace("Price of one rental", "Price of one rental in USD"))
    write_pairs(task, PAIRS[:3])
    result = load(task, "task_change", pgvector_url)

    assert result["items"] == {"total": 10, "inserted": 0, "unchanged": 9, "replaced": 1, "deleted": 2}
    stored = task_rows(pgvector_url, "task_change")
    assert len(stored) == 10
    new_film = [r for r in stored if r[2]["source"] == "film.ddl"]
    assert len(new_film) == 1 and "in USD" in new_film[0][1] and new_film[0][0] != old_film[0][0]


def test_the_newest_pair_file_wins_and_backups_are_ignored(tmp_path, pgvector_url):
    task = write_task_files(tmp_path / "task")
    write_pairs(task, [{"question": "old question", "sql": "SELECT 1"}], "qs_testdb_20250101_100000_pair.json")
    write_pairs(task, [{"question": "backup question", "sql": "SELECT 2"}], "qs_testdb_20260101_100000_pair.json.backup")
    result = load(task, "task_newest", pgvector_url)

    assert result["by_type"]["sql"] == len(PAIRS)
    questions = {json.loads(d)["question"] for _, d, m, _ in task_rows(pgvector_url, "task_newest") if m["kind"] == "sql"}
    assert questions == {p["question"] for p in PAIRS}
    assert "qs_testdb_20250101_100000_pair.json" not in result["sources"]


def test_other_tasks_and_vanna_rows_are_left_alone(tmp_path, pgvector_url):
    load(write_task_files(tmp_path / "a"), "task_other_a", pgvector_url)
    with connection(pgvector_url) as conn, conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO langchain_pg_embedding (id, collection_id, embedding, document, cmetadata)"
            " SELECT 'vanna-own-ddl', uuid, NULL, 'CREATE TABLE x (a int)', '{\"id\": \"vanna-own-ddl\"}'"
            " FROM langchain_pg_collection WHERE name = 'ddl'"
        )
    before_a = task_rows(pgvector_url, "task_other_a")
    task_b = write_task_files(tmp_path / "b", pairs=PAIRS[:1])
    result = load(task_b, "task_other_b", pgvector_url)

    assert result["items"]["inserted"] == 8  # same texts, other task: its own rows
    assert task_rows(pgvector_url, "task_other_a") == before_a
    assert rows(pgvector_url, where="id = 'vanna-own-ddl'")


def test_an_unreadable_file_is_reported_and_its_stored_items_kept(tmp_path, pgvector_url):
    task = write_task_files(tmp_path / "task")
    load(task, "task_unreadable", pgvector_url)
    (task / "actor.ddl").write_bytes(b"CREATE TABLE actor (\xff\xfe broken")
    write_pairs(task, []).write_text("[{not json", encoding="utf-8")
    result = load(task, "task_unreadable", pgvector_url)

    assert [p["file"] for p in result["problems"]] == ["actor.ddl", "qs_testdb_20260101_100000_pair.json"]
    assert result["items"]["deleted"] == 0
    stored = task_rows(pgvector_url, "task_unreadable")
    assert any(r[2]["source"] == "actor.ddl" for r in stored)
    assert len([r for r in stored if r[2]["kind"] == "sql"]) == len(PAIRS)


def test_backup_truncate_and_restore_round_trip(tmp_path, fresh_pgvector_url):
    url = fresh_pgvector_url
    load(write_task_files(tmp_path / "a"), "task_a", url)
    before = rows(url)
    task_b = write_task_files(tmp_path / "b", pairs=PAIRS[:2])
    result = load(task_b, "task_b", url, truncate=True)

    assert result["truncated_rows"] == len(before)
    backup = result["backup"]
    assert backup["tables"]["langchain_pg_embedding"]["rows"] == len(before)
    assert backup["tables"]["langchain_pg_collection"]["rows"] == 3
    assert {r[2]["task_id"] for r in rows(url)} == {"task_b"}
    assert (task_b / "vector_bak" / backup["tables"]["langchain_pg_embedding"]["file"]).exists()

    restored = restore_vector_backup(task_b / "vector_bak", service_url=url)
    assert restored["tables"]["langchain_pg_embedding"]["rows"] == len(before)
    assert rows(url) == before

    with pytest.raises(StepFailed, match="(?s)unreachable.*DP_DATABASE_URL") as caught:
        restore_vector_backup(task_b / "vector_bak", service_url="postgresql://u:sekret@127.0.0.1:1/nowhere")
    assert "sekret" not in str(caught.value)
    assert rows(url) == before


def test_backup_alone_keeps_the_rows(tmp_path, pgvector_url):
    task = write_task_files(tmp_path / "task")
    result = load(task, "task_backup", pgvector_url, backup=True)
    assert result["backup"]["tables"]["langchain_pg_embedding"]["rows"] >= 0
    assert result["truncated_rows"] is None
    assert len(task_rows(pgvector_url, "task_backup")) == 12
    assert "backup" in (task / "vector_bak" / "vector_backup_log.txt").read_text()


def test_nothing_to_load_says_what_to_run(tmp_path, pgvector_url):
    (tmp_path / "empty").mkdir()
    with pytest.raises(StepFailed, match="nothing to load.*run steps 1-3"):
        load(tmp_path / "empty", "task_empty", pgvector_url)


def test_an_unreachable_store_fails_the_step_without_the_password(tmp_path):
    task = write_task_files(tmp_path / "task")
    with pytest.raises(StepFailed, match="unreachable") as caught:
        load(task, "task_unreachable", "postgresql://u:sekret@127.0.0.1:1/nowhere")
    assert "sekret" not in str(caught.value)


def test_embeddings_through_an_openai_compatible_endpoint(tmp_path, fresh_pgvector_url, fake_openai, monkeypatch, caplog):
    load(write_task_files(tmp_path / "local", pairs=PAIRS[:1]), "task_local", fresh_pgvector_url)
    monkeypatch.setenv("DP_EMBEDDING_PROVIDER", "openai")
    monkeypatch.setenv("DP_EMBEDDING_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("DP_EMBEDDING_BATCH_SIZE", "5")
    get_settings.cache_clear()
    fake_openai.fail_next(1, 503, retry_after=0.01)
    result = load(write_task_files(tmp_path / "task"), "task_openai", fresh_pgvector_url)

    assert result["embedding"] == {"model": "openai:text-embedding-3-small", "dimension": 384, "embedded": 12}
    embedding_requests = [r for r in fake_openai.requests if r["path"].endswith("/embeddings")]
    assert all(len(r["input"]) <= 5 for r in embedding_requests)
    stored = task_rows(fresh_pgvector_url, "task_openai")
    assert len(stored) == 12 and {r[2]["embedding_model"] for r in stored} == {"openai:text-embedding-3-small"}
    assert result["recall_at_k"]["sql"]["10"] == 1.0
    assert result["other_embedding_models"] == ["all-MiniLM-L6-v2-int8"]
    assert "Vanna searches a collection across all rows" in caplog.text
