"""Step 4 on pagila: embedding and writing rates, our write against a plain COPY, and an idempotent reload.

Produces pagila's step 1-3 outputs (offline heuristic provider) in a temporary task directory, then
loads them into an embedded PostgreSQL 18 with pgvector under a temporary ``DP_DATA_DIR``:

* first load (``run_training_load``): items/s for embedding and for writing;
* write against COPY: the same rows with their vectors already computed, written ``--repeat`` times
  (alternating, best of each) by our write transaction (``sync.write_items``: task lock, read of the
  task's ids, delete, COPY, commit) as a fresh task, and by a plain ``COPY`` of the same CSV rows into
  an empty table of the same layout and indexes. Target: ours >= 50% of the COPY rate;
* second load of the unchanged files: its time against the first load's. Target: <= 20%.

    .venv/bin/python bench/training_load.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dp.database import connection, service_database_url  # noqa: E402
from dp.embeddings import get_embedder  # noqa: E402
from dp.sample_databases import load_sample_database, with_database  # noqa: E402
from dp.settings import get_settings  # noqa: E402
from dp.table_list import parse_table_list  # noqa: E402
from steps.ddl_generation.step import run_ddl_generation  # noqa: E402
from steps.qa_generation.step import run_qa_generation  # noqa: E402
from steps.sql_validation.step import run_sql_validation  # noqa: E402
from steps.training_load import store  # noqa: E402
from steps.training_load.items import collect_items  # noqa: E402
from steps.training_load.step import run_training_load  # noqa: E402
from steps.training_load.sync import write_items  # noqa: E402

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def pagila_outputs(task_dir: Path) -> None:
    """Steps 1-3 on pagila's base tables, as a task would run them."""
    url = load_sample_database("pagila", ADMIN_URL)
    with connection(url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT quote_ident(table_name) FROM information_schema.tables"
            " WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1"
        )
        tables = parse_table_list([row[0] for row in cur.fetchall()])
    run_ddl_generation(db_url=url, tables=tables, output_dir=task_dir, business_context="DVD rental store")
    run_qa_generation(output_dir=task_dir)
    run_sql_validation(db_url=url, output_dir=task_dir)


def stored_vectors(url: str, task_id: str) -> dict[str, np.ndarray]:
    with connection(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT id, embedding::text FROM langchain_pg_embedding WHERE cmetadata @> %s::jsonb",
                    (json.dumps({"task_id": task_id}),))
        return {item_id: np.asarray(json.loads(text), dtype=np.float32) for item_id, text in cur.fetchall()}


def time_ours(url, collections, task_dir, embedder, ordered_vectors, task_id) -> float:
    collected = collect_items(task_dir, task_id, embedder)
    vectors = {item.id: vector for item, vector in zip(collected.items, ordered_vectors)}
    with connection(url) as conn:
        started = time.perf_counter()
        write_items(conn, store.PGVECTOR, collections=collections, task_id=task_id, collected=collected,
                    vectors=vectors, embed_missing=lambda items: sys.exit("bench bug: a vector is missing"))
        elapsed = time.perf_counter() - started
        with conn, conn.cursor() as cur:
            cur.execute("DELETE FROM langchain_pg_embedding WHERE cmetadata @> %s::jsonb", (json.dumps({"task_id": task_id}),))
    return elapsed


def time_copy(url, collections, items, ordered_vectors) -> float:
    with connection(url) as conn:
        with conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS bench_copy (LIKE langchain_pg_embedding INCLUDING ALL)")
            cur.execute("TRUNCATE bench_copy")
        started = time.perf_counter()
        with conn, conn.cursor() as cur:
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            for item, vector in zip(items, ordered_vectors):
                writer.writerow([item.id, collections[item.kind], store.PGVECTOR.encode(vector), item.document,
                                 json.dumps(item.metadata, ensure_ascii=False)])
            buffer.seek(0)
            cur.copy_expert("COPY bench_copy (id, collection_id, embedding, document, cmetadata) FROM STDIN WITH (FORMAT csv)", buffer)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="rounds of the write comparison (best of each)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="dp-bench-tl-") as temp:
        os.environ["DP_DATA_DIR"] = str(Path(temp) / "data")
        os.environ.setdefault("XDG_RUNTIME_DIR", str(Path(temp) / "run"))
        get_settings.cache_clear()
        task_dir = Path(temp) / "task"
        print("producing pagila's step 1-3 outputs ...", flush=True)
        pagila_outputs(task_dir)
        admin = service_database_url()
        with connection(admin) as conn:
            conn.autocommit = True
            conn.cursor().execute("CREATE DATABASE dp_bench_training_load")
        url = with_database(admin, "dp_bench_training_load")

        started = time.perf_counter()
        first = run_training_load(output_dir=task_dir, task_id="bench", service_url=url)
        first_s = time.perf_counter() - started
        started = time.perf_counter()
        second = run_training_load(output_dir=task_dir, task_id="bench", service_url=url)
        second_s = time.perf_counter() - started
        assert second["items"]["inserted"] == second["items"]["deleted"] == 0, second["items"]

        embedder = get_embedder()
        items = collect_items(task_dir, "bench", embedder).items
        by_id = stored_vectors(url, "bench")
        ordered = [by_id[item.id] for item in items]
        with connection(url) as conn:
            collections = store.ensure_collections(conn, store.PGVECTOR)
        ours, plain = [], []
        for round_ in range(args.repeat):
            ours.append(time_ours(url, collections, task_dir, embedder, ordered, f"bench_write_{round_}"))
            plain.append(time_copy(url, collections, items, ordered))

        n, t = first["items"], first["timings"]
        print(f"items: {n['total']} ({first['by_type']}), embedded {first['embedding']['embedded']}, "
              f"recall@k {first['recall_at_k']}")
        print(f"first load: {first_s:.2f} s (embedding {t['embed_s']:.2f} s, writing {t['write_s']:.3f} s, "
              f"retrieval check {t['check_s']:.2f} s)")
        print(f"embedding: {first['embedding']['embedded'] / t['embed_s']:.1f} items/s")
        print(f"writing (first load): {n['inserted'] / t['write_s']:.0f} items/s")
        best_ours, best_plain = min(ours), min(plain)
        print(f"write, best of {args.repeat}: ours {len(items) / best_ours:.0f} items/s ({best_ours * 1000:.1f} ms), "
              f"plain COPY {len(items) / best_plain:.0f} items/s ({best_plain * 1000:.1f} ms): "
              f"ours at {best_plain / best_ours:.0%} of COPY (target >= 50%)")
        print(f"second, idempotent load: {second_s:.2f} s = {second_s / first_s:.1%} of the first (target <= 20%)")


if __name__ == "__main__":
    main()
