"""A real client reads our rows: Vanna's own PG_VectorStore (langchain-postgres) on the same database."""

import json

import pytest

from dp.database import connection
from dp.embeddings.local import local_embedder
from dp.embeddings.windows import embed_whole
from dp.sample_databases import with_database
from steps.training_load.step import run_training_load
from tests.steps.training_load.conftest import create_database, drop_database, task_rows
from tests.steps.training_load.factories import DDL, PAIRS, write_task_files

pytest.importorskip("vanna.legacy.pgvector", reason="pip install vanna==2.0.2 langchain-postgres==0.0.19")
from langchain_core.embeddings import Embeddings  # noqa: E402
from vanna.legacy.pgvector import PG_VectorStore  # noqa: E402


class LocalEmbeddings(Embeddings):
    """Our local model behind langchain's interface, so Vanna downloads nothing."""

    def embed_documents(self, texts):
        return embed_whole(local_embedder(32), list(texts)).tolist()

    def embed_query(self, text):
        return self.embed_documents([text])[0]


class OfflineVanna(PG_VectorStore):
    def system_message(self, message):
        return message

    def user_message(self, message):
        return message

    def assistant_message(self, message):
        return message

    def submit_prompt(self, prompt, **kwargs):
        raise AssertionError("no LLM in this test")


def vanna_for(url: str) -> OfflineVanna:
    return OfflineVanna(
        config={
            "connection_string": url.replace("postgresql://", "postgresql+psycopg://", 1),
            "embedding_function": LocalEmbeddings(),
            "n_results": 5,
        }
    )


def catalog(url: str) -> dict:
    """Columns, constraints, indexes and collections of the langchain tables, as PostgreSQL reports them."""
    with connection(url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull FROM pg_attribute a"
            " JOIN pg_class c ON c.oid = a.attrelid WHERE c.relname LIKE 'langchain_pg_%' AND c.relkind = 'r'"
            " AND a.attnum > 0 AND NOT a.attisdropped ORDER BY c.relname, a.attnum"
        )
        columns = cur.fetchall()
        cur.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid::regclass::text LIKE 'langchain_pg_%' ORDER BY 1, 2"
        )
        constraints = cur.fetchall()
        cur.execute("SELECT indexdef FROM pg_indexes WHERE tablename LIKE 'langchain_pg_%' ORDER BY indexname")
        indexes = cur.fetchall()
        cur.execute("SELECT name, cmetadata::text FROM langchain_pg_collection ORDER BY name")
        collections = cur.fetchall()
    return {"columns": columns, "constraints": constraints, "indexes": indexes, "collections": collections}


def test_our_tables_are_exactly_what_langchain_postgres_creates(tmp_path, fresh_pgvector_url, embedded_url):
    run_training_load(output_dir=write_task_files(tmp_path / "task"), task_id="layout", service_url=fresh_pgvector_url)
    name = create_database(embedded_url)
    try:
        vanna_url = with_database(embedded_url, name)
        vanna_for(vanna_url)  # langchain-postgres creates its tables and collections
        assert catalog(fresh_pgvector_url) == catalog(vanna_url)
    finally:
        drop_database(embedded_url, name)


def test_vanna_reads_searches_and_removes_our_rows(tmp_path, fresh_pgvector_url):
    url = fresh_pgvector_url
    task = write_task_files(tmp_path / "task")
    run_training_load(output_dir=task, task_id="vanna", service_url=url)
    ours = {row[0]: row[2] for row in task_rows(url, "vanna")}
    vn = vanna_for(url)

    data = vn.get_training_data()
    assert set(data["id"]) == set(ours)
    types = dict(zip(data["id"], data["training_data_type"]))
    assert {ours[i]["kind"] for i in ours} == set(types.values())
    assert all(types[i] == ours[i]["kind"] for i in ours)
    pairs = data[data["training_data_type"] == "sql"]
    assert set(zip(pairs["question"], pairs["content"])) == {(p["question"], p["sql"]) for p in PAIRS}

    similar = vn.get_similar_question_sql("Which actors play in the largest number of films?")
    assert {"question": PAIRS[2]["question"], "sql": PAIRS[2]["sql"]} in similar
    assert DDL["actor"].strip() in vn.get_related_ddl("Which actors appear in the most films?")
    assert any("public.actor" in doc for doc in vn.get_related_documentation("actor first and last names"))

    removed = next(i for i in ours if i.endswith("-ddl"))
    assert vn.remove_training_data(removed) is True
    assert removed not in {row[0] for row in task_rows(url, "vanna")}

    vanna_own = vn.add_ddl("CREATE TABLE vanna_added (x int)")
    again = run_training_load(output_dir=task, task_id="vanna", service_url=url)
    assert again["items"]["inserted"] == 1 and again["items"]["deleted"] == 0  # ours is back, Vanna's stays
    assert removed in {row[0] for row in task_rows(url, "vanna")}
    assert vanna_own in set(vn.get_training_data()["id"])


def test_we_load_into_tables_vanna_created_first(tmp_path, fresh_pgvector_url):
    vn = vanna_for(fresh_pgvector_url)
    vanna_pair = vn.add_question_sql("How many actors are there?", "SELECT count(*) FROM actor")
    result = run_training_load(output_dir=write_task_files(tmp_path / "task"), task_id="after", service_url=fresh_pgvector_url)
    assert result["items"]["inserted"] == 12
    with connection(fresh_pgvector_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM langchain_pg_collection")
        assert cur.fetchone()[0] == 3  # Vanna's collections were reused, not duplicated
    data = vn.get_training_data()
    assert vanna_pair in set(data["id"]) and len(data) == 13
    stored = json.loads(next(r[1] for r in task_rows(fresh_pgvector_url, "after") if r[0].endswith("-sql")))
    assert set(stored) == {"question", "sql"}
