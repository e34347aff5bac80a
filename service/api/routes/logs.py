"""A task's log lines: pages with a cursor, and a server-sent event stream while it runs.

Pages are cursor-based (``after`` = the last id seen) so a page never repeats or skips lines while
the mirror keeps adding them. The event stream polls the tracking tables every DP_API_EVENTS_POLL
seconds without holding a connection in between; it sends ``status`` when status, progress or a
step changes, ``log`` for each new line (its SSE id is the line id, so a reconnect with
``Last-Event-ID`` resumes), and ``end`` once the run is over (or the task is gone, or ``timeout``).
"""

from __future__ import annotations

import json
import time
from typing import Annotated, AsyncIterator, Literal

import anyio
from fastapi import APIRouter, Header, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from service import store
from service.api import lifecycle, views
from service.api.deps import PoolDep, ReadConnDep, SettingsDep, TaskId
from service.api.envelope import documented, ok
from service.api.errors import bad_request, not_found
from service.api.pool import ConnectionPool
from service.api.schemas import LogPage, Step
from service.states import UNFINISHED_TASK_STATUSES, mask_value

router = APIRouter(prefix="/tasks", tags=["logs"])

Level = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "debug", "info", "warning", "error", "critical"]
Cursor = Annotated[int | None, Query(ge=0, le=2**63 - 1, description="the last log id seen: lines after it")]
_PAGE = 500
_SHOWN = ("status", "progress", "current_step", "step_status", "error_message", "completed_at")


@router.get("/{task_id}/logs", responses=documented(LogPage), summary="A page of the task's log lines")
def task_logs(
    task_id: TaskId, conn: ReadConnDep,
    level: Annotated[Level | None, Query(description="this level and above")] = None,
    step: Step | None = None,
    after: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    order: Annotated[Literal["asc", "desc"], Query(description="asc: oldest first; desc: newest first")] = "asc",
):
    with conn:
        if store.get_task(conn, task_id=task_id) is None:
            raise not_found(f"task {task_id}")
        rows = store.list_logs(conn, task_id=task_id, level=level.upper() if level else None, step=step, after=after,
                               limit=limit, order=order)
    lines = [views.log_line(row) for row in rows]
    return ok({"logs": lines, "next_after": lines[-1]["id"] if lines else after, "has_more": len(lines) == limit})


def _poll(pool: ConnectionPool, task_id: str, after: int | None, lines: int = _PAGE) -> tuple[dict | None, list[dict]]:
    with pool.connection() as conn, conn:
        task = store.get_task(conn, task_id=task_id)
        logs = store.list_logs(conn, task_id=task_id, after=after, limit=lines) if task and lines else []
    return task, logs


def _event(kind: str, data: dict, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def _finished(task: dict) -> bool:
    return task["status"] not in UNFINISHED_TASK_STATUSES and not lifecycle.is_active(task)


async def _stream(pool: ConnectionPool, task_id: str, after: int | None, poll: float, keepalive: float,
                  timeout: float) -> AsyncIterator[str]:
    deadline = time.monotonic() + timeout
    last_sent = time.monotonic()
    shown: dict | None = None
    ending = False
    while True:
        task, logs = await run_in_threadpool(_poll, pool, task_id, after)
        if task is None:
            yield _event("end", {"task_id": task_id, "reason": "deleted"})
            return
        state = {key: mask_value(task[key]) for key in _SHOWN}
        if state != shown or logs:
            last_sent = time.monotonic()
        if state != shown:
            shown = state
            yield _event("status", {"task_id": task_id, **state})
        for row in logs:
            after = row["id"]
            yield _event("log", views.log_line(row), row["id"])
        if len(logs) == _PAGE:
            continue  # more lines are waiting: no pause
        if ending:  # one more look after the end, for lines the mirror copied last
            yield _event("end", {"task_id": task_id, "reason": "finished", "status": task["status"]})
            return
        if time.monotonic() >= deadline:
            yield _event("end", {"task_id": task_id, "reason": "timeout", "status": task["status"]})
            return
        ending = _finished(task)
        if time.monotonic() - last_sent >= keepalive:
            last_sent = time.monotonic()
            yield ": keep-alive\n\n"
        await anyio.sleep(poll)


@router.get("/{task_id}/events", summary="Server-sent events: status, progress and new log lines until the run ends",
            responses={200: {"content": {"text/event-stream": {}}, "description": "an event stream"},
                       **{k: v for k, v in documented(LogPage).items() if k != 200}})
async def task_events(
    task_id: TaskId, pool: PoolDep, settings: SettingsDep,
    after: Cursor = None,
    last_event_id: Annotated[str | None, Header(max_length=30)] = None,
    timeout: Annotated[float, Query(gt=0, le=86400, description="seconds before the stream ends anyway")] = 3600,
):
    if last_event_id is not None:
        if not last_event_id.isdigit() or int(last_event_id) > 2**63 - 1:
            raise bad_request("Last-Event-ID must be a log id", invalid={"last-event-id": "a log id (digits)"})
        after = int(last_event_id)
    task, _ = await run_in_threadpool(_poll, pool, task_id, None, 0)
    if task is None:
        raise not_found(f"task {task_id}")
    return StreamingResponse(_stream(pool, task_id, after, settings.api_events_poll, settings.api_events_keepalive,
                                     timeout),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
