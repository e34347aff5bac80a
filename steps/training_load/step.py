"""Step 4: load a task's DDL, data dictionaries and question/SQL pairs into the vector store, then check retrieval.

A load mirrors the task's output directory: items are keyed by their content, so unchanged items
are left alone (not even re-embedded), new ones are inserted and the task's items no longer produced
are deleted, all in one transaction. Only the items to insert are embedded, before the transaction
opens; the retrieval check runs on what was committed, and is reused from the last report when the
task's items are exactly those it measured.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from contextlib import closing
from datetime import datetime
from pathlib import Path

import numpy as np
import psycopg2

from dp.database import connect, mask_url, service_database_url
from dp.embeddings import Embedder, EmbeddingError, get_embedder
from dp.embeddings.windows import embed_whole
from dp.settings import Settings, get_settings
from steps.errors import StepFailed
from steps.training_load import store
from steps.training_load.backup import BACKUP_DIR, backup_tables
from steps.training_load.items import Collected, TrainingItem, collect_items
from steps.training_load.retrieval import KS, check_retrieval

log = logging.getLogger(__name__)

REPORT_GLOB = "training_load_*_report.json"


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
    embedder = _embedder(settings)
    collected = collect_items(output_dir, task_id, embedder)
    if not collected.items:
        problems = "; ".join(f"{p['file']}: {p['problem']}" for p in collected.problems)
        raise StepFailed(
            f"nothing to load in {output_dir}: "
            + (problems or "no .ddl, _detail.md or qs_*_pair.json files; run steps 1-3 for this task first")
        )
    by_type = {kind: sum(1 for item in collected.items if item.kind == kind) for kind in ("ddl", "documentation", "sql")}
    log.info("%d items from %d files: %s", len(collected.items), len(collected.sources), by_type)

    url = service_url or service_database_url(settings)
    try:
        conn = connect(url)
    except psycopg2.OperationalError as exc:
        raise StepFailed(f"vector store unreachable: {exc}; check DP_DATABASE_URL (unset it to use the embedded PostgreSQL)") from None
    timings: dict[str, float] = {}
    with closing(conn):
        try:
            layout = store.choose_layout(conn, settings.vector_store, url)
            collections = store.ensure_collections(conn, layout)
            vectors: dict[str, np.ndarray] = {}
            with conn.cursor() as cur:
                before = {} if truncate else store.task_rows(cur, layout, task_id)
            conn.rollback()
            wanted = [item for item in collected.items if item.id not in before]
            timings["embed_s"] = _embed(embedder, wanted, vectors)
            write_started = time.monotonic()
            with conn, conn.cursor() as cur:
                store.lock_task(cur, task_id)
                backup_info = backup_tables(cur, layout, output_dir / BACKUP_DIR) if backup or truncate else None
                truncated = store.truncate(cur, layout) if truncate else None
                existing = store.task_rows(cur, layout, task_id)  # again: another load may have run meanwhile
                counts, inserts, deletes = _plan(collected, existing)
                late = [item for item in inserts if item.id not in vectors]
                if late:
                    timings["embed_s"] += _embed(embedder, late, vectors)
                store.delete_rows(cur, layout, deletes)
                store.copy_rows(
                    cur,
                    layout,
                    ((i.id, collections[i.kind], vectors[i.id], i.document, i.metadata) for i in inserts),
                )
            timings["write_s"] = round(time.monotonic() - write_started, 3)
            log.info("vector store updated: %s", counts)
            check_started = time.monotonic()
            check = _retrieval(conn, layout, collections, task_id, collected, embedder, counts, truncated, output_dir)
            timings["check_s"] = round(time.monotonic() - check_started, 3)
        except psycopg2.Error as exc:
            raise StepFailed(f"vector store {mask_url(url)} failed: {str(exc).strip()}; nothing was changed") from None
        except EmbeddingError as exc:
            raise StepFailed(f"embedding failed: {exc}") from None

    result = {
        "store": layout.kind,
        "service_database": mask_url(url),
        "embedding": {
            "model": embedder.model_id,
            "dimension": len(next(iter(vectors.values()))) if vectors else None,
            "embedded": len(vectors),
        },
        "items": {"total": len(collected.items), **counts},
        "by_type": by_type,
        "recall_at_k": check["recall_at_k"],
        "retrieval": {k: v for k, v in check.items() if k != "recall_at_k"},
        "sources": collected.sources,
        "problems": collected.problems,
        "skipped_pairs": collected.skipped_pairs,
        "duplicates": collected.duplicates,
        "backup": backup_info,
        "truncated_rows": truncated,
        "timings": timings,
        "duration_s": round(time.monotonic() - started, 3),
    }
    report = output_dir / f"training_load_{datetime.now():%Y%m%d_%H%M%S}_report.json"
    report.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    result["report_file"] = report.name
    log.info("training load done in %.1f s: recall@k %s; report %s", result["duration_s"], check["recall_at_k"], report.name)
    return result


def _embedder(settings: Settings) -> Embedder:
    try:
        return get_embedder(settings)
    except EmbeddingError as exc:
        raise StepFailed(str(exc)) from None


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


def _plan(collected: Collected, existing: dict[str, tuple[str, str]]) -> tuple[dict[str, int], list[TrainingItem], list[str]]:
    """Counts, items to insert and ids to delete that turn the stored task into the collected one.

    An inserted item of a kind that also lost items counts as *replaced* (one for one, per kind); rows
    of unreadable files, and every pair when the pair file was unreadable, are kept.
    """
    produced = {item.id for item in collected.items}
    inserts = [item for item in collected.items if item.id not in existing]
    deletes = [
        item_id
        for item_id, (kind, source) in existing.items()
        if item_id not in produced
        and source not in collected.unreadable
        and not (kind == "sql" and collected.pair_file_failed)
    ]
    counts = {"inserted": 0, "unchanged": len(produced) - len(inserts), "replaced": 0, "deleted": 0}
    for kind in ("ddl", "documentation", "sql"):
        added = sum(1 for item in inserts if item.kind == kind)
        removed = sum(1 for item_id in deletes if existing[item_id][0] == kind)
        counts["replaced"] += min(added, removed)
        counts["inserted"] += added - min(added, removed)
        counts["deleted"] += removed - min(added, removed)
    return counts, inserts, deletes


def _retrieval(conn, layout, collections, task_id, collected, embedder, counts, truncated, output_dir) -> dict:
    """The check, or the last report's result when it measured exactly these items in this store."""
    fingerprint = hashlib.sha256(
        "\n".join([layout.kind, *map(str, KS), *sorted(item.id for item in collected.items)]).encode()
    ).hexdigest()
    if not (counts["inserted"] or counts["replaced"] or counts["deleted"] or truncated is not None):
        previous = _last_check(output_dir, fingerprint)
        if previous is not None:
            log.info("retrieval check: items unchanged since the last report, its recall@k is reused")
            return previous
    with conn, conn.cursor() as cur:
        check = check_retrieval(
            cur, layout, collections=collections, task_id=task_id, items=collected.items, embedder=embedder
        )
    check["fingerprint"] = fingerprint
    return check


def _last_check(output_dir: Path, fingerprint: str) -> dict | None:
    for path in sorted(output_dir.glob(REPORT_GLOB), reverse=True):
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
            retrieval = report["retrieval"]
            if retrieval.get("fingerprint") == fingerprint:
                return {"recall_at_k": report["recall_at_k"], **retrieval}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
        return None  # only the newest readable report counts
    return None
