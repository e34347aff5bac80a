"""The retrieval check: do a pair's own question find its SQL and its tables in the store?

For every loaded pair the question is embedded and searched among the task's ``sql`` items and its
``ddl`` items. recall@k for ``sql`` is the share of pairs whose own item is among the top k; for
``ddl`` it is the mean, over pairs, of the share of the pair's tables (read from its SQL with sqlglot)
that some top-k DDL item describes. Tables with no DDL item in the store (not loaded) are left out of
the ratio and counted, as are pairs whose SQL cannot be parsed. A load that changed nothing reuses
the newest report's result when its fingerprint (store kind and the sorted item ids, which already
encode text and model) is the same: the same items give the same searches.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import psycopg2.extensions

from dp.embeddings import Embedder
from dp.embeddings.windows import embed_whole
from steps.sql_validation.guard import GuardRejected, guard_sql
from steps.training_load.items import TrainingItem
from steps.training_load.store import Layout, search

log = logging.getLogger(__name__)

KS = (1, 5, 10)
REPORT_GLOB = "training_load_*_report.json"
_MAX_MISSES = 20


def check_retrieval(
    cur: psycopg2.extensions.cursor,
    layout: Layout,
    *,
    collections: dict[str, str],
    task_id: str,
    items: list[TrainingItem],
    embedder: Embedder,
) -> dict:
    """recall@1/5/10 of the pairs' own SQL and tables; None where there is nothing to measure."""
    pairs = [item for item in items if item.kind == "sql"]
    ddl_tables = {item.id: item.table for item in items if item.kind == "ddl" and item.table}
    result: dict = {"recall_at_k": {"sql": _empty(), "ddl": _empty()}, "pairs_checked": len(pairs)}
    if not pairs:
        return result
    queries = embed_whole(embedder, [pair.question or "" for pair in pairs])
    k = max(KS)
    sql_hits = search(cur, layout, collection_id=collections["sql"], task_id=task_id, queries=queries, k=k)
    ddl_hits = search(cur, layout, collection_id=collections["ddl"], task_id=task_id, queries=queries, k=k)

    result["recall_at_k"]["sql"] = {str(n): _mean([pair.id in hits[:n] for pair, hits in zip(pairs, sql_hits)]) for n in KS}
    result["sql_misses_at_10"] = [pair.question for pair, hits in zip(pairs, sql_hits) if pair.id not in hits][:_MAX_MISSES]

    known = set(ddl_tables.values())
    per_k: dict[int, list[float]] = {n: [] for n in KS}
    unparsed = unknown = 0
    for pair, hits in zip(pairs, ddl_hits):
        tables = _tables_of(pair.sql or "")
        if tables is None:
            unparsed += 1
            continue
        wanted = [_resolve(table, known) for table in tables]
        unknown += sum(1 for w in wanted if not w)
        wanted = [w for w in wanted if w]
        if not wanted:
            continue
        for n in KS:
            found = {ddl_tables.get(item_id) for item_id in hits[:n]}
            per_k[n].append(sum(1 for candidates in wanted if candidates & found) / len(wanted))
    result["recall_at_k"]["ddl"] = {str(n): _mean(per_k[n]) for n in KS}
    result["ddl_pairs_checked"] = len(per_k[KS[0]])
    result["unparsed_sql"] = unparsed
    result["tables_without_ddl"] = unknown
    return result


def fingerprint(layout: Layout, items: list[TrainingItem]) -> str:
    """What a check's result depends on: the store kind, the ks and the items (ids encode text and model)."""
    parts = [layout.kind, *map(str, KS), *sorted(item.id for item in items)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def reusable_check(output_dir: Path, wanted: str) -> dict | None:
    """The newest report's check when it carries the fingerprint ``wanted``, else None."""
    for path in sorted(Path(output_dir).glob(REPORT_GLOB), reverse=True):
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
            retrieval = report["retrieval"]
            if retrieval.get("fingerprint") != wanted:
                return None
            log.info("retrieval check: items unchanged since %s, its recall@k is reused", path.name)
            return {"recall_at_k": report["recall_at_k"], **retrieval}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue  # only the newest readable report counts
    return None


def _tables_of(sql_text: str) -> list[tuple[str | None, str]] | None:
    try:
        return guard_sql(sql_text).table_names()
    except GuardRejected:
        return None


def _resolve(table: tuple[str | None, str], known: set[str]) -> set[str]:
    """The loaded tables a reference can mean: exact with a schema, any schema without one."""
    schema, name = table
    if schema is not None:
        return {f"{schema}.{name}"} & known
    return {k for k in known if k.split(".", 1)[1] == name}


def _mean(values: list) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def _empty() -> dict[str, float | None]:
    return {str(n): None for n in KS}
