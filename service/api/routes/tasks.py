"""Task routes: create, list, show, run, cancel, delete.

Thin: each checks its input (schemas, requests.py), calls the store or lifecycle.py, and answers
an envelope. The lifecycle owns transactions that span more than one store call.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query

from service import store
from service.api import lifecycle, views
from service.api.deps import ConnDep, ReadConnDep, RunsDep, SettingsDep, StarterDep, TaskId
from service.api.envelope import documented, ok
from service.api.errors import bad_request, not_found
from service.api.requests import check_new_task
from service.api.schemas import (
    ActiveTasks,
    CancelResult,
    DeleteResult,
    RunStarted,
    TaskCreate,
    TaskCreated,
    TaskDetail,
    TaskExecute,
    TaskPage,
    Text,
)

router = APIRouter(prefix="/tasks", tags=["tasks"])

TaskStatus = Literal["pending", "in_progress", "partial_completed", "completed", "failed", "cancelled"]
TaskSort = Literal["created_at", "started_at", "completed_at", "updated_at", "status", "progress", "id", "db_name",
                   "task_type", "created_by"]


def _utc(moment: datetime | None, name: str) -> datetime | None:
    """The time in UTC; one without zone is taken as UTC already (the store refuses naive times)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:
        raise bad_request(f"{name} is out of range", invalid={name: "out of range"}) from None


@router.post("", status_code=201, responses=documented(TaskCreated, 201, (400, 401, 409, 413, 503)),
             summary="Create a task; with a table list its run starts at once")
def create_task(
    body: TaskCreate, conn: ConnDep, runs: RunsDep, starter: StarterDep, settings: SettingsDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255,
                                                  description="repeat a creation safely: the same key answers the same task")] = None,
):
    new = check_new_task(body.parameters, settings)
    data = lifecycle.create_task(conn, runs, starter, settings, body, new, idempotency_key)
    message = "task already created for this Idempotency-Key" if data["idempotent_replay"] else (
        "task created and its run started" if data["flow_run_id"] else
        "task created; it waits for its table list" if data["table_count"] is None else
        "task created; its run is being started")
    return ok(data, message, 201)


@router.get("", responses=documented(TaskPage, errors=(400, 401, 503)), summary="List tasks, filtered and paged")
def list_tasks(
    conn: ReadConnDep,
    status: Annotated[list[TaskStatus] | None, Query(description="one or more statuses")] = None,
    created_by: Literal["api", "manual", "schedule", "system"] | None = None,
    db_name: Annotated[Text | None, Query(max_length=100)] = None,
    created_from: Annotated[datetime | None, Query(description="created at or after (ISO 8601; no zone: UTC)")] = None,
    created_to: Annotated[datetime | None, Query(description="created before (ISO 8601; no zone: UTC)")] = None,
    sort: TaskSort = "created_at",
    order: Literal["asc", "desc"] = "desc",
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=100)] = 20,
):
    with conn:
        rows, total = store.list_tasks(conn, status=status, created_by=created_by, db_name=db_name,
                                       created_from=_utc(created_from, "created_from"), created_to=_utc(created_to, "created_to"), sort=sort,
                                       order=order, limit=page_size, offset=(page - 1) * page_size)
    pages = (total + page_size - 1) // page_size
    return ok({
        "tasks": [views.task_summary(row) for row in rows],
        "total": total,
        "pagination": {"page": page, "page_size": page_size, "total": total, "total_pages": pages,
                       "has_next": page < pages, "has_prev": page > 1},
    })


@router.get("/active", responses=documented(ActiveTasks, errors=(401, 503)), summary="Tasks holding a run slot")
def active_tasks(conn: ReadConnDep, settings: SettingsDep):
    with conn:
        rows = store.active_tasks(conn)
    return ok({"tasks": [views.task_summary(row) for row in rows], "total": len(rows),
               "limit": settings.max_concurrent_runs})


@router.get("/{task_id}", responses=documented(TaskDetail), summary="A task with its steps, parameters and result")
def get_task(task_id: TaskId, conn: ReadConnDep):
    with conn:
        task, executions = store.get_task_with_executions(conn, task_id=task_id)
    if task is None:
        raise not_found(f"task {task_id}")
    return ok(views.task_detail(task, executions))


@router.post("/{task_id}/execute", status_code=202, responses=documented(RunStarted, 202, (400, 401, 404, 409, 503)),
             summary="Run the task: all steps, one step, or from a step on")
def execute_task(task_id: TaskId, conn: ConnDep, runs: RunsDep, settings: SettingsDep, body: TaskExecute | None = None):
    data = lifecycle.start_run(conn, runs, settings, task_id, body or TaskExecute())
    return ok(data, f"run started: {', '.join(data['steps'])}", 202)


@router.post("/{task_id}/cancel", status_code=202, responses=documented(CancelResult, 202, (400, 401, 404, 409, 503)),
             summary="Cancel the task's run (Prefect: Cancelling; the task shows cancelled once it stopped)")
def cancel_task(task_id: TaskId, conn: ConnDep, runs: RunsDep):
    data = lifecycle.cancel_task(conn, runs, task_id)
    return ok(data, "cancellation requested", 202)


@router.delete("/{task_id}", responses=documented(DeleteResult, errors=(400, 401, 404, 409, 503)),
               summary="Delete a task: cancel its run first, then remove its files and rows (or only its files)")
def delete_task(task_id: TaskId, conn: ConnDep, runs: RunsDep, settings: SettingsDep,
                files_only: Annotated[bool, Query(description="remove the files, keep the task's rows")] = False):
    data = lifecycle.delete_task(conn, runs, settings, task_id, files_only)
    return ok(data, "task files removed" if files_only else "task deleted")
