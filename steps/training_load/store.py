"""The vector store in the service database: Vanna's pgvector tables, or the same layout without pgvector.

The pgvector layout is exactly what langchain-postgres's ``PGVector`` (as Vanna's ``PG_VectorStore``
uses it) creates: ``langchain_pg_collection(uuid, name, cmetadata json)`` and
``langchain_pg_embedding(id, collection_id, embedding vector, document, cmetadata jsonb)`` with its
GIN index, so Vanna reads, searches and removes our rows and we read its. Without the ``vector``
extension the same layout lives in ``dp_vector_collection`` / ``dp_vector_embedding`` with float32
``bytea`` embeddings ranked by exact cosine in numpy. Rows we write carry ``cmetadata.task_id``; rows
without it (Vanna's own) are only ever touched by a truncate or a restore.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Iterable, Literal

import numpy as np
import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from dp.database import connect, mask_url
from steps.errors import StepFailed

log = logging.getLogger(__name__)

COLLECTIONS = ("sql", "ddl", "documentation")
_SCHEMA_LOCK = 1573678846307946496  # the advisory lock langchain-postgres takes around CREATE EXTENSION
_LOAD_LOCK = 0x64705F746C  # with hashtext(task id): one load per task at a time


@dataclass(frozen=True)
class Layout:
    kind: Literal["pgvector", "plain"]
    collection_table: str
    embedding_table: str
    embedding_type: str
    gin_index: str

    @property
    def tables(self) -> tuple[str, str]:
        return self.collection_table, self.embedding_table

    def encode(self, vector: np.ndarray) -> str:
        """An embedding as COPY CSV text: ``[x,y,...]`` for vector, ``\\x<hex>`` of float32 for bytea."""
        if self.kind == "pgvector":
            return "[" + ",".join(f"{x:.9g}" for x in vector.tolist()) + "]"
        return "\\x" + np.asarray(vector, dtype="<f4").tobytes().hex()


PGVECTOR = Layout("pgvector", "langchain_pg_collection", "langchain_pg_embedding", "vector", "ix_cmetadata_gin")
PLAIN = Layout("plain", "dp_vector_collection", "dp_vector_embedding", "bytea", "ix_dp_vector_cmetadata_gin")
LAYOUTS = (PGVECTOR, PLAIN)


def connect_vector_store(url: str) -> psycopg2.extensions.connection:
    """A connection to the service database that holds the vector store; ``StepFailed`` says the fix."""
    try:
        return connect(url)
    except psycopg2.OperationalError as exc:
        raise StepFailed(
            f"vector store unreachable: {exc}; check DP_DATABASE_URL (unset it to use the embedded PostgreSQL)"
        ) from None


def choose_layout(conn: psycopg2.extensions.connection, preference: str, url: str) -> Layout:
    """pgvector when wanted and ``CREATE EXTENSION IF NOT EXISTS vector`` works, else the plain layout."""
    if preference == "plain":
        log.info("vector store: plain tables (DP_VECTOR_STORE=plain) in %s", mask_url(url))
        return PLAIN
    problem = enable_pgvector(conn)
    if problem is None:
        log.info("vector store: pgvector, Vanna's langchain_pg_* tables, in %s", mask_url(url))
        return PGVECTOR
    if preference == "pgvector":
        raise StepFailed(
            f"DP_VECTOR_STORE=pgvector but the service database {mask_url(url)} cannot enable the vector "
            f"extension ({problem}); install pgvector there, use the embedded PostgreSQL (unset DP_DATABASE_URL) "
            "or set DP_VECTOR_STORE=auto"
        )
    log.warning(
        "pgvector is not available in %s (%s); using the plain store instead (dp_vector_* tables, float32 "
        "embeddings ranked by exact cosine in numpy), which Vanna cannot read",
        mask_url(url),
        problem,
    )
    return PLAIN


def enable_pgvector(conn: psycopg2.extensions.connection) -> str | None:
    """Create the extension if needed; None when it is there, else why not."""
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            cur.execute("CREATE EXTENSION IF NOT EXISTS vector")
        return None
    except psycopg2.Error as exc:
        return str(exc).strip().splitlines()[0]


def create_tables(cur: psycopg2.extensions.cursor, layout: Layout) -> None:
    """The two tables and the GIN index, as langchain-postgres creates them (a no-op when present)."""
    names = {
        "collection": sql.Identifier(layout.collection_table),
        "embedding": sql.Identifier(layout.embedding_table),
        "index": sql.Identifier(layout.gin_index),
        "type": sql.SQL(layout.embedding_type),
    }
    cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
    cur.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {collection} ("
            " uuid UUID NOT NULL, name VARCHAR NOT NULL, cmetadata JSON, PRIMARY KEY (uuid), UNIQUE (name));"
            "CREATE TABLE IF NOT EXISTS {embedding} ("
            " id VARCHAR NOT NULL, collection_id UUID, embedding {type}, document VARCHAR, cmetadata JSONB,"
            " PRIMARY KEY (id), FOREIGN KEY (collection_id) REFERENCES {collection} (uuid) ON DELETE CASCADE);"
            "CREATE INDEX IF NOT EXISTS {index} ON {embedding} USING gin (cmetadata jsonb_path_ops);"
        ).format(**names)
    )
    cur.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = %s",
        (layout.embedding_table,),
    )
    missing = {"id", "collection_id", "embedding", "document", "cmetadata"} - {row[0] for row in cur.fetchall()}
    if missing:
        raise StepFailed(
            f"table {layout.embedding_table} exists without the column(s) {', '.join(sorted(missing))} "
            "(an older langchain layout?); back it up and drop it, then load again"
        )


def ensure_collections(conn: psycopg2.extensions.connection, layout: Layout) -> dict[str, str]:
    """Tables and the ``sql`` / ``ddl`` / ``documentation`` collections; returns name -> collection uuid."""
    with conn, conn.cursor() as cur:
        create_tables(cur, layout)
        for name in COLLECTIONS:
            cur.execute(  # cmetadata is JSON null, as langchain-postgres writes it
                sql.SQL("INSERT INTO {} (uuid, name, cmetadata) VALUES (%s, %s, 'null') ON CONFLICT (name) DO NOTHING")
                .format(sql.Identifier(layout.collection_table)),
                (str(uuid.uuid4()), name),
            )
        cur.execute(
            sql.SQL("SELECT name, uuid::text FROM {} WHERE name = ANY(%s)").format(sql.Identifier(layout.collection_table)),
            (list(COLLECTIONS),),
        )
        return dict(cur.fetchall())


def lock_task(cur: psycopg2.extensions.cursor, task_id: str) -> None:
    """Serialise loads of one task until the transaction ends."""
    cur.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_LOAD_LOCK & 0x7FFFFFFF, task_id))


def task_rows(cur: psycopg2.extensions.cursor, layout: Layout, task_id: str) -> dict[str, tuple[str, str]]:
    """``id -> (kind, source)`` of the rows this task loaded earlier."""
    cur.execute(
        sql.SQL("SELECT id, cmetadata->>'kind', cmetadata->>'source' FROM {} WHERE cmetadata @> %s::jsonb").format(
            sql.Identifier(layout.embedding_table)
        ),
        (json.dumps({"task_id": task_id}),),
    )
    return {row[0]: (row[1], row[2]) for row in cur.fetchall()}


def other_models(cur: psycopg2.extensions.cursor, layout: Layout, model_id: str) -> list[str]:
    """Embedding models of rows (any task) other than ``model_id``: Vanna cannot search across them."""
    cur.execute(
        sql.SQL(
            "SELECT DISTINCT cmetadata->>'embedding_model' FROM {} WHERE cmetadata ? 'embedding_model'"
            " AND cmetadata->>'embedding_model' <> %s ORDER BY 1"
        ).format(sql.Identifier(layout.embedding_table)),
        (model_id,),
    )
    return [row[0] for row in cur.fetchall()]


def truncate(cur: psycopg2.extensions.cursor, layout: Layout) -> int:
    """Empty the embedding table (collections stay); returns the rows it held."""
    cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(layout.embedding_table)))
    (rows,) = cur.fetchone()
    cur.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(layout.embedding_table)))
    return rows


def delete_rows(cur: psycopg2.extensions.cursor, layout: Layout, ids: list[str]) -> None:
    if ids:
        cur.execute(
            sql.SQL("DELETE FROM {} WHERE id = ANY(%s)").format(sql.Identifier(layout.embedding_table)), (ids,)
        )


def copy_rows(
    cur: psycopg2.extensions.cursor,
    layout: Layout,
    rows: Iterable[tuple[str, str, np.ndarray, str, dict]],
) -> int:
    """COPY ``(id, collection uuid, vector, document, cmetadata)`` rows in; returns how many."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    count = 0
    for item_id, collection_id, vector, document, metadata in rows:
        writer.writerow([item_id, collection_id, layout.encode(vector), document, json.dumps(metadata, ensure_ascii=False)])
        count += 1
    if count:
        buffer.seek(0)
        cur.copy_expert(
            sql.SQL("COPY {} (id, collection_id, embedding, document, cmetadata) FROM STDIN WITH (FORMAT csv)")
            .format(sql.Identifier(layout.embedding_table))
            .as_string(cur),
            buffer,
        )
    return count


def search(
    cur: psycopg2.extensions.cursor,
    layout: Layout,
    *,
    collection_id: str,
    task_id: str,
    queries: np.ndarray,
    k: int,
) -> list[list[str]]:
    """For each query vector, the ids of the task's ``k`` nearest rows in a collection by cosine distance."""
    if len(queries) == 0:
        return []
    scope = json.dumps({"task_id": task_id})
    table = sql.Identifier(layout.embedding_table)
    if layout.kind == "pgvector":
        cur.execute(
            sql.SQL(
                "SELECT q.ord, hit.id FROM unnest(%s::vector[]) WITH ORDINALITY AS q(v, ord)"
                " CROSS JOIN LATERAL (SELECT e.id, e.embedding <=> q.v AS distance FROM {} e"
                "  WHERE e.collection_id = %s AND e.cmetadata @> %s::jsonb ORDER BY distance LIMIT %s) hit"
                " ORDER BY q.ord, hit.distance"
            ).format(table),
            ([layout.encode(q) for q in queries], collection_id, scope, k),
        )
        found: list[list[str]] = [[] for _ in queries]
        for ordinal, item_id in cur.fetchall():
            found[ordinal - 1].append(item_id)
        return found
    cur.execute(
        sql.SQL("SELECT id, embedding FROM {} WHERE collection_id = %s AND cmetadata @> %s::jsonb").format(table),
        (collection_id, scope),
    )
    rows = cur.fetchall()
    if not rows:
        return [[] for _ in queries]
    ids = [row[0] for row in rows]
    matrix = _unit(np.vstack([np.frombuffer(bytes(row[1]), dtype="<f4") for row in rows]))
    scores = _unit(np.asarray(queries, dtype=np.float32)) @ matrix.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return [[ids[j] for j in row] for row in order]


def _unit(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
