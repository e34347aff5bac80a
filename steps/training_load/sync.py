"""Making the stored items of one task equal to the items collected from its output directory.

Everything happens in one transaction under a per-task advisory lock: optional backup and truncate,
then the task's stored ids are read, the ids no longer produced are deleted and the new ones are
copied in. Rows of unreadable files (and every pair when the pair file was unreadable) are kept.
An item counts as *replaced* when an item of the same kind left the store in the same load (one for
one); the rest of the new ones are *inserted*, the rest of the removed ones *deleted*.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import psycopg2.extensions

from steps.training_load import store
from steps.training_load.backup import backup_tables
from steps.training_load.items import Collected, TrainingItem

KINDS = ("ddl", "documentation", "sql")


@dataclass
class WriteResult:
    counts: dict[str, int]  # inserted, unchanged, replaced, deleted
    backup: dict | None
    truncated_rows: int | None


def plan_changes(
    collected: Collected, existing: dict[str, tuple[str, str]]
) -> tuple[dict[str, int], list[TrainingItem], list[str]]:
    """Counts, items to insert and ids to delete, given the task's stored ``id -> (kind, source)``."""
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
    for kind in KINDS:
        added = sum(1 for item in inserts if item.kind == kind)
        removed = sum(1 for item_id in deletes if existing[item_id][0] == kind)
        counts["replaced"] += min(added, removed)
        counts["inserted"] += added - min(added, removed)
        counts["deleted"] += removed - min(added, removed)
    return counts, inserts, deletes


def write_items(
    conn: psycopg2.extensions.connection,
    layout: store.Layout,
    *,
    collections: dict[str, str],
    task_id: str,
    collected: Collected,
    vectors: dict[str, np.ndarray],
    embed_missing: Callable[[list[TrainingItem]], None],
    backup_dir: Path | None = None,
    truncate: bool = False,
) -> WriteResult:
    """Apply the load in one transaction; ``embed_missing`` fills ``vectors`` for items another load removed meanwhile."""
    with conn, conn.cursor() as cur:
        store.lock_task(cur, task_id)
        backup = backup_tables(cur, layout, backup_dir) if backup_dir is not None else None
        truncated = store.truncate(cur, layout) if truncate else None
        counts, inserts, deletes = plan_changes(collected, store.task_rows(cur, layout, task_id))
        missing = [item for item in inserts if item.id not in vectors]
        if missing:
            embed_missing(missing)
        store.delete_rows(cur, layout, deletes)
        store.copy_rows(
            cur, layout, ((i.id, collections[i.kind], vectors[i.id], i.document, i.metadata) for i in inserts)
        )
    return WriteResult(counts, backup, truncated)
