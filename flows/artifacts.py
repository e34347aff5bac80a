"""Prefect artifacts per step, so the Prefect UI shows each step's outcome without opening files."""

from __future__ import annotations

import re
from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact

_SUMMARY_KEYS = {
    "ddl_generation": ("tables_total", "succeeded", "enum_columns", "comments_generated", "catalog_queries"),
    "qa_generation": ("themes_total", "themes_succeeded", "pairs", "duplicates_removed", "pair_file"),
    "sql_validation": ("total", "valid", "invalid", "success_rate", "modified", "deleted"),
    "training_load": ("by_type", "items", "recall_at_k"),
}


def _key(task_id: str, step: str) -> str:
    # Artifact keys allow lower-case letters, digits and dashes only.
    return re.sub(r"[^a-z0-9-]+", "-", f"{task_id}-{step}".lower()).strip("-")


def _rows(step: str, result: dict[str, Any]) -> list[dict[str, Any]]:
    if step == "ddl_generation":
        rows = [{"table": t, "status": "ok", "reason": ""} for t in result.get("tables", [])]
        rows += [{"table": f["table"], "status": "failed", "reason": f["reason"]} for f in result.get("failed", [])]
        return rows
    if step == "qa_generation":
        return [{"theme": t, "status": "failed", "reason": r} for t, r in
                ((f.get("theme"), f.get("reason")) for f in result.get("themes_failed", []))]
    if step == "sql_validation":
        return [{"metric": k, "value": result.get(k)} for k in _SUMMARY_KEYS[step]]
    if step == "training_load":
        return [{"type": k, "items": v} for k, v in (result.get("by_type") or {}).items()]
    return []


def publish_step_artifacts(task_id: str, step: str, result: dict[str, Any]) -> None:
    summary = "\n".join(f"- **{k}**: {result.get(k)}" for k in _SUMMARY_KEYS.get(step, ()) if k in result)
    create_markdown_artifact(
        key=_key(task_id, step),
        markdown=f"## {step} ({task_id})\n\n{summary or 'done'}\n\nDuration: {result.get('duration_s', '?')} s\n",
        description=f"{step} summary",
    )
    rows = _rows(step, result)
    if rows:
        create_table_artifact(key=_key(task_id, step) + "-table", table=rows, description=f"{step} details")
