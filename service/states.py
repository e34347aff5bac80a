"""How Prefect's words become the tracking tables' words: statuses, steps, progress, who started a run.

Pure functions on plain values (Prefect state types as their names, e.g. ``"RUNNING"``), so the
rules test without Prefect and read in one place. The mirror (service/mirror.py) applies them;
the REST API can reuse the parameter helpers for the rows it creates itself.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from dp.database import database_name
from dp.logs import redact
from flows.plan import STEPS, Plan, PlanError, make_plan

FINAL_STATE_TYPES = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})
# Flow runs the mirror reads on every poll, whatever their age.
UNFINISHED_STATE_TYPES = ("SCHEDULED", "PENDING", "RUNNING", "PAUSED", "CANCELLING")
# Task statuses of a run not yet ended (or not yet started).
UNFINISHED_TASK_STATUSES = ("pending", "in_progress")

_DSN_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('[^']*'|[^\s']+)", re.IGNORECASE)


def is_final(state_type: str) -> bool:
    return state_type in FINAL_STATE_TYPES


def step_of(task_run_name: str) -> str | None:
    """The step a task run belongs to: Prefect names it ``<task name>-<suffix>`` (e.g. ``qa_generation-1a2``)."""
    for step in STEPS:
        if task_run_name == step or task_run_name.startswith(step + "-"):
            return step
    return None


# Prefect state type -> (the status of a step run in that state, of a task whose current run is in it)
_STATUSES = {
    "SCHEDULED": ("pending", "pending"),
    "PENDING": ("pending", "pending"),
    "RUNNING": ("running", "in_progress"),
    "PAUSED": ("running", "in_progress"),
    "CANCELLING": ("running", "cancelled"),
    "COMPLETED": ("completed", "completed"),
    "FAILED": ("failed", "failed"),
    "CRASHED": ("crashed", "failed"),
    "CANCELLED": ("cancelled", "cancelled"),
}
_UNKNOWN = ("pending", "pending")


def execution_status(state_type: str, started: bool) -> str:
    """A step run's status from its task run's state type; "crashed" is stored as failed by the store.

    A scheduled or pending task run that already started is between retries: still running.
    """
    if state_type in ("SCHEDULED", "PENDING") and started:
        return "running"
    return _STATUSES.get(state_type, _UNKNOWN)[0]


def task_status(state_type: str, all_steps_completed: bool, previous: str | None = None) -> str:
    """A task's status from its current flow run's state type (``previous``: the row's status now).

    A completed run is ``completed`` only once every one of the four steps has completed in some
    run of the task (a single-step run, a run with skipped steps); else ``partial_completed``. A
    task already ``in_progress`` (its run slot claimed, or its run started) stays so while the run
    waits in Prefect's queue or for a retry: a status never goes back from in_progress to pending.
    """
    if state_type == "COMPLETED" and not all_steps_completed:
        return "partial_completed"
    status = _STATUSES.get(state_type, _UNKNOWN)[1]
    return "in_progress" if status == "pending" and previous == "in_progress" else status


def created_by_for(task_id: str, auto_scheduled: bool) -> str:
    """Who started a run the mirror found without a task row.

    ``manual_...`` ids are the CLI's (``data-pipeline run``): manual. A run Prefect's scheduler made
    from a deployment schedule: schedule. Anything else (the REST API, the Prefect UI or CLI, a
    ``run_deployment`` call): api.
    """
    if task_id.startswith("manual_"):
        return "manual"
    if auto_scheduled:
        return "schedule"
    return "api"


def task_type_for(execution_mode: str | None) -> str:
    return "single_step" if execution_mode == "single" else "complete_workflow"


def mask_value(value: Any) -> Any:
    """``value`` with every password in a connection string (URL or key=value form) replaced by ``***``."""
    if isinstance(value, str):
        if "@" not in value and "=" not in value:  # no URL password (user:pw@) and no password=: most texts
            return value
        return _DSN_PASSWORD.sub(r"\1***", redact(value))
    if isinstance(value, (list, tuple)):
        return [mask_value(item) for item in value]
    if value is None or isinstance(value, (int, float)):  # before the Mapping check, which is slow
        return value
    if isinstance(value, Mapping):
        return {key: mask_value(item) for key, item in value.items()}
    return value


def db_name_for(connection: str | None) -> str | None:
    """The database a connection reference names, as far as the reference itself says.

    A URL reference names its database; ``named:``, ``secret:`` and ``process:`` references are
    resolved only inside a run, so the reference itself is shown (never resolved here).
    """
    if not connection:
        return None
    if "://" in connection:
        return database_name(connection)[:100]
    return connection[:100]


def run_plan(parameters: Mapping[str, Any]) -> Plan:
    """The steps a run executes; a run with contradictory options fails before any step (plans nothing)."""
    try:
        return make_plan(
            parameters.get("execution_mode") or "complete",
            parameters.get("single_step"),
            parameters.get("from_step"),
            bool(parameters.get("skip_validation")),
            bool(parameters.get("skip_training_load")),
        )
    except PlanError:
        return Plan(run=(), skipped=())


def step_statuses(plan: Plan, this_run: Mapping[str, str], earlier: Mapping[str, str], run_state_type: str) -> dict:
    """Each step's status in the task row.

    Steps the current run plans show that run's step runs (``pending`` until started; ``cancelled``
    when a cancelled run never reached them). Steps it skips are ``skipped``. Steps outside the run
    (before ``from_step``, around a single step) keep their latest status from earlier runs, else
    ``skipped``.
    """
    statuses = {}
    for step in STEPS:
        if step in plan.run:
            default = "cancelled" if run_state_type in ("CANCELLED", "CANCELLING") else "pending"
            status = this_run.get(step, default)
        elif step in plan.skipped:
            status = "skipped"
        else:
            status = earlier.get(step, "skipped")
        statuses[step] = "failed" if status == "crashed" else status
    return statuses


def progress(plan: Plan, this_run: Mapping[str, str]) -> int:
    """Share (0-100) of the run's planned steps that completed."""
    if not plan.run:
        return 0
    done = sum(1 for step in plan.run if this_run.get(step) == "completed")
    return round(100 * done / len(plan.run))
