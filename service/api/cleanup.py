"""Removing what a deleted task leaves outside the tracking tables: flow runs, directory, Secret block.

``DELETE /tasks/{id}`` and the scheduled retention flow (flows/retention.py) both end here, so a
task removed by either leaves nothing behind. Its Prefect flow runs go too: the mirror re-creates
the row of any flow run it finds, so they would bring the task back. Retention takes the tasks
``store.cleanup_old_tasks`` deletes (completed, failed or cancelled, ended DP_RETENTION_DAYS ago);
a directory that cannot be removed safely (outside the output root, a link) is logged and kept.
"""

from __future__ import annotations

import logging

import httpx
import psycopg2.extensions

from dp.settings import Settings
from service import store
from service.api.files import UnsafePath, remove_task_directory, stored_task_directory
from service.api.runs import PrefectRuns

log = logging.getLogger(__name__)


def remove_task_files(settings: Settings, task_id: str, output_directory: str | None) -> dict:
    """Remove the task's directory; ``{"removed", "files", "bytes"}``."""
    return remove_task_directory(settings, stored_task_directory(settings, task_id, output_directory))


def remove_leftovers(settings: Settings, runs: PrefectRuns, task_id: str, output_directory: str | None) -> dict:
    """Flow runs, directory and Secret block of a task whose rows are being deleted (commit after this)."""
    flow_runs = runs.forget_runs(task_id)
    removed = remove_task_files(settings, task_id, output_directory)
    return {**removed, "flow_runs_removed": flow_runs, "secret_removed": runs.forget_connection(task_id)}


def sweep_expired_tasks(conn: psycopg2.extensions.connection, runs: PrefectRuns, settings: Settings,
                        days: int | None = None) -> list[dict]:
    """Delete finished tasks older than ``days`` (default DP_RETENTION_DAYS) with their runs, files and secrets.

    The rows go in one transaction, committed after the leftovers of each task were removed (a
    leftover that cannot be removed is logged and kept; the rows go anyway).
    """
    days = settings.retention_days if days is None else days
    report = []
    with conn:
        for task in store.cleanup_old_tasks(conn, days=days):
            try:
                outcome = remove_leftovers(settings, runs, task["task_id"], task["output_directory"])
            except (UnsafePath, OSError, httpx.HTTPError) as exc:
                log.warning("task %s: rows deleted, some of its files, runs or secret kept: %s", task["task_id"], exc)
                outcome = {"removed": False, "error": str(exc)}
            log.info("retention: deleted task %s (%s)", task["task_id"], outcome)
            report.append({"task_id": task["task_id"], **outcome})
    return report
