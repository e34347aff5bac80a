"""Step 4: load a task's DDL, data dictionaries and question/SQL pairs into the vector store, then check retrieval.

A load mirrors the task's output directory: items are keyed by their content, so unchanged items are
left alone (not even re-embedded), new ones are inserted and the task's items no longer produced are
deleted, all in one transaction (``sync``). Only the items to insert are embedded, before that
transaction opens. The retrieval check runs on what was committed, and its result is reused from the
last report when the task's items are exactly those it measured. Every run writes
``training_load_<YYYYMMDD_HHMMSS>_report.json`` with what the step returns.
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import closing
from datetime import datetime
from pathlib import Path

import numpy as np
import psycopg2
import psycopg2.extensions

from dp.database import mask_url, service_database_url
from dp.embeddings import Embedder, EmbeddingError, get_embedder
from dp.embeddings.windows import embed_whole
from dp.settings import Settings, get_settings
from steps.errors import StepFailed
from steps.training_load import store
from steps.training_load.backup import BACKUP_DIR
from steps.training_load.items import Collected, TrainingItem, collect_items
from steps.training_load.retrieval import check_retrieval, fingerprint, reusable_check
from steps.training_load.sync import KINDS, write_items

log = logging.getLogger(__name__)


def run_training_load(
    *,
    output_dir: Path,
    task_id: str,
    service_url: str | None = None,
    backup: bool = False,
    truncate: bool = False,
    settings: Settings | None = None,
) -> dict:
    """Load the task's training data; returns counts, recall@k and timings (also written to a report).

    ``backup`` writes the vector tables to ``<output_dir>/vector_bak/`` first; ``truncate`` (which
    implies ``backup``) empties the embedding table before loading. Raises StepFailed when there is
    nothing to load, the embedding model fails, or the service database is unreachable.
    """
    settings = settings or get_settings()
    started = time.monotonic()
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        raise StepFailed(f"output directory {output_dir} does not exist; run steps 1-3 for this task first")
    try:
        embedder = get_embedder(settings)
    except EmbeddingError as exc:
        raise StepFailed(str(exc)) from None
    collected = collect_items(output_dir, task_id, embedder)
    if not collected.items:
        problems = "; ".join(f"{p['file']}: {p['problem']}" for p in collected.problems)
        raise StepFailed(
            f"nothing to load in {output_dir}: "
            + (problems or "no .ddl, _detail.md or qs_*_pair.json files; run steps 1-3 for this task first")
        )
    by_type = {kind: sum(1 for item in collected.items if item.kind == kind) for kind in KINDS}
    log.info("%d items from %d files: %s", len(collected.items), len(collected.sources), by_type)

    url = service_url or service_database_url(settings)
    with closing(store.connect_vector_store(url)) as conn:
        try:
            result = _load(conn, url, settings.vector_store, embedder, collected, task_id=task_id,
                           output_dir=output_dir, backup=backup, truncate=truncate)
        except psycopg2.Error as exc:
            raise StepFailed(f"vector store {mask_url(url)} failed: {str(exc).strip()}") from None
        except EmbeddingError as exc:
            raise StepFailed(f"embedding failed: {exc}") from None
    result.update(
        by_type=by_type,
        sources=collected.sources,
        problems=collected.problems,
        skipped_pairs=collected.skipped_pairs,
        duplicates=collected.duplicates,
        duration_s=round(time.monotonic() - started, 3),
    )
    report = output_dir / f"training_load_{datetime.now():%Y%m%d_%H%M%S}_report.json"
    report.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    result["report_file"] = report.name
    log.info("training load done in %.1f s: recall@k %s; report %s", result["duration_s"], result["recall_at_k"], report.name)
    return result


def _load(
    conn: psycopg2.extensions.connection,
    url: str,
    preference: str,
    embedder: Embedder,
    collected: Collected,
    *,
    task_id: str,
    output_dir: Path,
    backup: bool,
    truncate: bool,
) -> dict:
    """Embed what is new, write it, check retrieval: the part of the step that talks to the store."""
    layout = store.choose_layout(conn, preference, url)
    collections = store.ensure_collections(conn, layout)
    with conn, conn.cursor() as cur:
        stored = {} if truncate else store.task_rows(cur, layout, task_id)
    vectors: dict[str, np.ndarray] = {}
    timings = {"embed_s": _embed(embedder, [i for i in collected.items if i.id not in stored], vectors)}
    write_started = time.monotonic()
    written = write_items(
        conn,
        layout,
        collections=collections,
        task_id=task_id,
        collected=collected,
        vectors=vectors,
        embed_missing=lambda items: _embed(embedder, items, vectors),
        backup_dir=output_dir / BACKUP_DIR if backup or truncate else None,
        truncate=truncate,
    )
    timings["write_s"] = round(time.monotonic() - write_started, 3)
    log.info("vector store updated: %s", written.counts)
    with conn, conn.cursor() as cur:
        mixed = store.other_models(cur, layout, embedder.model_id)
    if mixed:
        log.warning(
            "the vector store also holds vectors of %s (other tasks); Vanna searches a collection across all "
            "rows, so load those tasks again with %s or truncate the store",
            ", ".join(mixed),
            embedder.model_id,
        )

    check_started = time.monotonic()
    wanted = fingerprint(layout, collected.items)
    changed = truncate or any(written.counts[key] for key in ("inserted", "replaced", "deleted"))
    check = None if changed else reusable_check(output_dir, wanted)
    if check is None:
        with conn, conn.cursor() as cur:
            check = check_retrieval(
                cur, layout, collections=collections, task_id=task_id, items=collected.items, embedder=embedder
            )
        check["fingerprint"] = wanted
    timings["check_s"] = round(time.monotonic() - check_started, 3)
    return {
        "store": layout.kind,
        "service_database": mask_url(url),
        "embedding": {
            "model": embedder.model_id,
            "dimension": len(next(iter(vectors.values()))) if vectors else None,
            "embedded": len(vectors),
        },
        "items": {"total": len(collected.items), **written.counts},
        "recall_at_k": check["recall_at_k"],
        "retrieval": {key: value for key, value in check.items() if key != "recall_at_k"},
        "backup": written.backup,
        "truncated_rows": written.truncated_rows,
        "other_embedding_models": mixed,
        "timings": timings,
    }


def _embed(embedder: Embedder, items: list[TrainingItem], into: dict[str, np.ndarray]) -> float:
    """Embed the items' documents into ``into`` (by id), logging progress; returns the seconds taken."""
    started = time.monotonic()
    if items:
        vectors = embed_whole(
            embedder,
            [item.document for item in items],
            progress=lambda done, total: log.info("embedding %d/%d", done, total),
        )
        into.update(zip((item.id for item in items), vectors))
    return round(time.monotonic() - started, 3)
