"""Store rows as the API shows them: task summaries and details, step details, log lines.

Every text that leaves through the API is masked once more (``service.states.mask_value``),
although the store already refuses unmasked connection strings: a password that slipped into an
error message or a step result is still never answered. Step details show the step runs of the task's current flow
run, so a re-run does not mix in the times of an older one.
"""

from __future__ import annotations

from datetime import datetime, timezone

from flows.plan import STEPS
from service.states import mask_value


def _seconds_between(start: str | None, end: str | None) -> float | None:
    if not start:
        return None
    finish = datetime.fromisoformat(end) if end else datetime.now(timezone.utc)
    return round((finish - datetime.fromisoformat(start)).total_seconds(), 3)


def task_summary(row: dict) -> dict:
    return {
        "task_id": row["id"],
        "task_type": row["task_type"],
        "status": row["status"],
        "progress": row["progress"],
        "current_step": row["current_step"],
        "step_status": row["step_status"],
        "created_at": row["created_at"],
        "started_at": row["started_at"],
        "completed_at": row["completed_at"],
        "updated_at": row["updated_at"],
        "created_by": row["created_by"],
        "db_name": row["db_name"],
        "business_context": row["business_context"],
        "output_directory": row["output_directory"],
        "flow_run_id": row["prefect_flow_run_id"],
        "duration": _seconds_between(row["started_at"], row["completed_at"]),
    }


def _step_detail(step: str, status: str, runs: list[dict], current: list[dict]) -> dict:
    latest = current[-1] if current else None
    return {
        "step": step,
        "status": status,
        "started_at": latest["started_at"] if latest else None,
        "completed_at": latest["completed_at"] if latest else None,
        "duration": latest["duration_seconds"] if latest else None,
        "error_message": mask_value(latest["error_message"]) if latest else None,
        "execution_id": latest["execution_id"] if latest else None,
        "runs": len(runs),
    }


def task_detail(row: dict, executions: list[dict]) -> dict:
    flow_run = row["prefect_flow_run_id"]
    details = []
    for step in STEPS:
        runs = [e for e in executions if e["execution_step"] == step]
        current = [e for e in runs if flow_run is None or e["prefect_flow_run_id"] == flow_run]
        details.append(_step_detail(step, row["step_status"].get(step) or "pending", runs, current))
    return {
        **task_summary(row),
        "parameters": mask_value(row["parameters"]),
        "result": mask_value(row["result"]),
        "error_message": mask_value(row["error_message"]),
        "error_step": row["error_step"],
        "step_details": details,
    }


def log_line(row: dict) -> dict:
    return {
        "id": row["id"],
        "timestamp": row["timestamp"],
        "level": row["log_level"],
        "step": row["step_name"],
        "logger": row["module_name"],
        "message": mask_value(row["message"]),
        "execution_id": row["execution_id"],
    }
