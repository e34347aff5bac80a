"""What a task's output directory holds for training, as vector-store items with content-derived ids.

Sources: every top-level ``*.ddl`` (DDL), every ``*_detail.md`` including ``metadata_detail.md``
(documentation) and the newest ``qs_*_pair.json`` (question/SQL pairs; ``.backup*`` files never
count). An item's id is ``uuid5(sha256 of task, model, kind and text)`` plus Vanna's suffix (``-ddl``,
``-doc``, ``-sql``), so the same text always gives the same id and loading twice adds nothing. A file
that cannot be read is reported and its items already in the store are kept (never deleted because
of a read error).
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dp.embeddings import Embedder
from steps.ddl_generation.manifest import ManifestMissing, load_manifest
from steps.sql_validation.pair_file import newest_pair_file, pair_of, read_entries
from steps.training_load.chunking import split_ddl, split_markdown

log = logging.getLogger(__name__)

# collection name -> id suffix, as Vanna's PG_VectorStore types rows
SUFFIX = {"ddl": "-ddl", "documentation": "-doc", "sql": "-sql"}
_NAMESPACE = uuid.UUID("4f0f3a4e-6b8e-5d55-9a53-1f6a2c0b7d10")


@dataclass(frozen=True)
class TrainingItem:
    """One row of the vector store: ``document`` is what is stored and embedded."""

    id: str
    kind: str  # collection: ddl | documentation | sql
    document: str
    metadata: dict[str, Any]  # cmetadata, "id" included
    table: str | None = None  # schema.table a DDL item describes
    question: str | None = None  # pairs only
    sql: str | None = None


@dataclass
class Collected:
    items: list[TrainingItem] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)  # file names read
    problems: list[dict[str, str]] = field(default_factory=list)  # {"file", "problem"}
    unreadable: set[str] = field(default_factory=set)  # file names whose stored items must be kept
    pair_file_failed: bool = False  # keep every stored pair: the current pair file could not be read
    skipped_pairs: int = 0
    duplicates: int = 0


def make_item(
    *,
    task_id: str,
    model_id: str,
    kind: str,
    document: str,
    source: str,
    table: str | None = None,
    part: str | None = None,
    question: str | None = None,
    sql: str | None = None,
    theme: str | None = None,
) -> TrainingItem:
    """An item whose id is a function of task, embedding model, kind and text alone."""
    digest = hashlib.sha256(document.encode("utf-8")).hexdigest()
    key = hashlib.sha256(f"{task_id}\x1f{model_id}\x1f{kind}\x1f{digest}".encode()).hexdigest()
    item_id = f"{uuid.uuid5(_NAMESPACE, key)}{SUFFIX[kind]}"
    optional = {"table": table, "part": part, "theme": theme}
    metadata = {
        "id": item_id,
        "task_id": task_id,
        "source": source,
        "kind": kind,
        "content_sha256": digest,
        "embedding_model": model_id,
        **{name: value for name, value in optional.items() if value},
    }
    return TrainingItem(item_id, kind, document, metadata, table=table, question=question, sql=sql)


def collect_items(output_dir: Path, task_id: str, embedder: Embedder) -> Collected:
    """Every item the output directory yields, in file order, duplicates dropped."""
    output_dir = Path(output_dir)
    collected = Collected()
    tables = _manifest_tables(output_dir, collected)
    found: list[TrainingItem] = []
    common = {"task_id": task_id, "model_id": embedder.model_id}
    for path in sorted(p for p in output_dir.glob("*.ddl") if p.is_file()):
        text = _read(path, collected)
        if text is None:
            continue
        parts = split_ddl(text, embedder, table=tables.get(path.name), name=path.name)
        for number, part in enumerate(parts, start=1):
            found.append(make_item(**common, kind="ddl", document=part.text, source=path.name, table=part.table,
                                   part=f"{number}/{len(parts)}" if len(parts) > 1 else None))
    for path in sorted(p for p in output_dir.glob("*_detail.md") if p.is_file()):
        text = _read(path, collected)
        if text is None:
            continue
        parts = split_markdown(text, embedder, name=path.name)
        for number, part in enumerate(parts, start=1):
            found.append(make_item(**common, kind="documentation", document=part, source=path.name,
                                   table=tables.get(path.name),
                                   part=f"{number}/{len(parts)}" if len(parts) > 1 else None))
    found.extend(_pair_items(output_dir, collected, common))
    seen: set[str] = set()
    for item in found:
        if item.id in seen:
            collected.duplicates += 1
            continue
        seen.add(item.id)
        collected.items.append(item)
    return collected


def _pair_items(output_dir: Path, collected: Collected, common: dict[str, str]) -> list[TrainingItem]:
    path = newest_pair_file(output_dir)
    if path is None:
        return []
    collected.sources.append(path.name)
    try:
        entries = read_entries(path)
    except (OSError, ValueError) as exc:
        collected.pair_file_failed = True
        _problem(collected, path, str(exc))
        return []
    items = []
    for entry in entries:
        pair = pair_of(entry)
        if pair is None or not pair[0].strip() or not pair[1].strip():
            collected.skipped_pairs += 1
            continue
        question, sql = pair[0].strip(), pair[1].strip()
        document = json.dumps({"question": question, "sql": sql}, ensure_ascii=False)
        theme = entry.get("theme") if isinstance(entry.get("theme"), str) else None
        items.append(make_item(**common, kind="sql", document=document, source=path.name,
                               question=question, sql=sql, theme=theme))
    if collected.skipped_pairs:
        log.warning("%s: %d entries are not question/SQL pairs and were skipped", path.name, collected.skipped_pairs)
    return items


def _manifest_tables(output_dir: Path, collected: Collected) -> dict[str, str]:
    """File name -> ``schema.table`` from step 1's manifest (empty without one: DDL names its table)."""
    try:
        manifest = load_manifest(output_dir)
    except ManifestMissing:
        return {}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        _problem(collected, output_dir / "manifest.json", f"unreadable ({exc}); tables are read from the DDL")
        return {}
    tables = {}
    for entry in manifest.entries:
        name = f"{entry.table.schema}.{entry.table.name}"
        tables[entry.ddl_file] = tables[entry.dictionary_file] = name
    return tables


def _read(path: Path, collected: Collected) -> str | None:
    collected.sources.append(path.name)
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        collected.unreadable.add(path.name)
        _problem(collected, path, f"cannot be read ({exc}); save it as UTF-8 text or re-run the step that wrote it")
        return None


def _problem(collected: Collected, path: Path, problem: str) -> None:
    log.warning("%s: %s", path.name, problem)
    collected.problems.append({"file": path.name, "problem": problem})
