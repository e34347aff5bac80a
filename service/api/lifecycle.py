"""What the task routes do beyond reading: create, start, cancel and delete a task, change its table list.

Invariants: a task's row, directory, table list and run slot are created in one transaction (a
full house answers 409 at once and leaves nothing behind: ``store.claim_run_slot`` counts in
PostgreSQL, so the limit holds under any concurrency); its Secret block and flow run follow in the
background, and a task whose run cannot be started ends failed with the reason. A claim clears
the previous flow run id, so the mirror never ends the new run with the old run's final state.
Files are removed only after the flow run has stopped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

import httpx
import psycopg2.extensions

from dp.logs import redact
from dp.settings import Settings
from dp.task_dir import TABLE_LIST_NAME
from dp.task_ids import new_task_id
from flows.plan import STEPS, Plan
from service import store
from service.api.cleanup import remove_leftovers, remove_task_files
from service.api.errors import bad_request, conflict, not_found, unavailable
from service.api.files import SCANNER, stored_task_directory, task_directory
from service.api.pool import ConnectionPool
from service.api.requests import OPTION_NAMES, NewTask, TableList, check_execute, run_options
from service.api.runs import PrefectRuns, RunsUnavailable, connection_reference
from service.api.schemas import TaskCreate, TaskExecute
from service.api.starter import Starter
from service.states import is_final, mask_value

log = logging.getLogger(__name__)

Connection = psycopg2.extensions.connection
_ID_ATTEMPTS = 8
ABANDONED_AFTER = 300.0  # seconds: far beyond any Prefect request's timeout


def is_active(task: dict) -> bool:
    """Holds a run slot: running, or queued in Prefect (the store's rule, for rows already read)."""
    return task["status"] == "in_progress" or (task["status"] == "pending" and task["prefect_flow_run_id"] is not None)


def read_task(conn: Connection, task_id: str) -> dict:
    with conn:
        task = store.get_task(conn, task_id=task_id)
    if task is None:
        raise not_found(f"task {task_id}")
    return task


def _settled(conn: Connection, task: dict) -> dict:
    """The task once a start under way has recorded its flow run (the start holds the row meanwhile)."""
    if not is_active(task) or task["prefect_flow_run_id"] is not None:
        return task
    with conn:  # an update that changes nothing, to wait for the row
        current = store.update_task(conn, task_id=task["id"], parameters=task["parameters"])
    if current is None:
        raise not_found(f"task {task['id']}")
    return current


def request_hash(body: TaskCreate) -> str:
    """Identifies a creation request for its Idempotency-Key; computed on the masked parameters."""
    shown = body.model_dump(mode="json")
    shown["parameters"] = mask_value(shown["parameters"])
    return hashlib.sha256(json.dumps(shown, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _write_table_list(task_dir: Path, table_list: TableList) -> None:
    temporary = task_dir / f".{TABLE_LIST_NAME}.{os.getpid()}.tmp"
    temporary.write_text(table_list.text, encoding="utf-8")
    os.replace(temporary, task_dir / TABLE_LIST_NAME)


def _reset_steps(task: dict, plan: Plan) -> dict:
    return {s: "pending" if s in plan.run else "skipped" if s in plan.skipped else task["step_status"][s] for s in STEPS}


def _claim(conn: Connection, settings: Settings, task: dict, plan: Plan, parameters: dict) -> dict:
    """Inside the caller's transaction: take a run slot for the task (409 when none is free)."""
    task_id = task["id"]
    if not store.claim_run_slot(conn, task_id=task_id, limit=settings.max_concurrent_runs):
        conn.rollback()
        running = [t["id"] for t in store.active_tasks(conn)]
        if task_id in running:
            raise conflict(f"task {task_id} is already running; wait for it or cancel it", active_tasks=running)
        raise conflict(
            f"{len(running)} task(s) already hold the {settings.max_concurrent_runs} run slot(s) "
            f"(DP_MAX_CONCURRENT_RUNS): wait for one to finish or cancel it", active_tasks=running)
    return store.update_task(conn, task_id=task_id, prefect_flow_run_id=None, prefect_updated_at=None,
                             progress=0, current_step=None,
                             step_status=_reset_steps(task, plan), parameters=parameters)


def _flow_parameters(task: dict, task_dir: Path, run: dict) -> dict:
    return {
        "connection": connection_reference(task["id"]),
        "output_dir": str(task_dir),
        "business_context": task["business_context"] or "",
        "execution_mode": run["execution_mode"],
        "single_step": None if run.get("single_step") is None else str(run["single_step"]),
        "from_step": None if run.get("from_step") is None else str(run["from_step"]),
        **{name: run[name] for name in OPTION_NAMES},
    }


def _start(runs: PrefectRuns, task: dict, task_dir: Path, run: dict) -> str:
    """Create the flow run of a claimed task (keyed by the claim, so a retry never starts a second)."""
    return runs.start(task["id"], _flow_parameters(task, task_dir, run), f"{task['id']}:{task['started_at']}")


def _record_run(conn: Connection, task_id: str, flow_run_id: str) -> dict:
    with conn:
        return store.update_task(conn, task_id=task_id, prefect_flow_run_id=flow_run_id)


def _launch(conn: Connection, runs: PrefectRuns, task: dict, task_dir: Path, run: dict) -> str:
    """Start and record the flow run of a claimed task; the claim is released when that fails."""
    try:
        flow_run_id = _start(runs, task, task_dir, run)
    except Exception as exc:
        with conn:
            store.update_task(conn, task_id=task["id"], status="failed", completed_at="now",
                              error_message=f"the flow run could not be created: {type(exc).__name__}")
        raise
    _record_run(conn, task["id"], flow_run_id)
    return flow_run_id


def fail_abandoned_claims(pool: ConnectionPool, older_than_seconds: float = ABANDONED_AFTER) -> list[str]:
    """Fail tasks that took a run slot but never got their flow run (the process starting it died)."""
    with pool.connection() as conn, conn:
        abandoned = store.claims_without_flow_run(conn, older_than_seconds=older_than_seconds)
        for task_id in abandoned:
            store.update_task(conn, task_id=task_id, status="failed", completed_at="now",
                              error_message="its run was never started (the service stopped while starting it); "
                              "execute it again")
    for task_id in abandoned:
        log.warning("task %s: run slot taken but no flow run since %.0f s; marked failed", task_id, older_than_seconds)
    return abandoned


# --- creating ----------------------------------------------------------------------------------


def _insert(conn: Connection, settings: Settings, body: TaskCreate, new: NewTask,
            key: str | None) -> tuple[dict, Path | None]:
    """The new task's row, directory and table list (and run slot), committed; or an earlier task for ``key``."""
    for _ in range(_ID_ATTEMPTS):
        task_id = new_task_id("task")
        task_dir = task_directory(settings, task_id, new.output_parent)
        with conn:
            try:
                task = store.create_task(
                    conn, task_id=task_id, task_type=body.task_type, parameters=new.parameters, created_by="api",
                    output_directory=str(task_dir), db_name=new.db_name, business_context=new.business_context)
            except store.TaskExistsError:
                continue
            if key is not None:
                earlier = store.get_or_store_idempotency_key(conn, key=key, request_hash=request_hash(body),
                                                             task_id=task_id)
                if earlier is not None:
                    conn.rollback()
                    return store.get_task(conn, task_id=earlier), None
            if new.table_list is not None:
                task = _claim(conn, settings, task, new.plan, {**new.parameters, "last_run": _run_of(new)})
            try:
                task_dir.parent.mkdir(parents=True, exist_ok=True)
                task_dir.mkdir()
            except FileExistsError:  # a leftover directory of that name: take another id
                conn.rollback()
                continue
            except OSError as exc:  # e.g. a name too long for the file system
                raise bad_request(f"the task directory cannot be created: {exc.strerror}",
                                  invalid={"parameters.output_dir": exc.strerror or "cannot be created"}) from None
            try:
                if new.table_list is not None:
                    _write_table_list(task_dir, new.table_list)
            except BaseException:
                shutil.rmtree(task_dir, ignore_errors=True)
                raise
            return task, task_dir
    raise RuntimeError(f"no free task id after {_ID_ATTEMPTS} attempts")


def _run_of(new: NewTask) -> dict:
    p = new.parameters
    return {"execution_mode": p["execution_mode"], "single_step": p["single_step"], "from_step": None,
            **{name: p[name] for name in OPTION_NAMES}}


def _fail_start(conn: Connection, runs: PrefectRuns, task_id: str, exc: Exception) -> None:
    """A created task whose run could not be started: failed, with the reason; nothing left in Prefect."""
    log.error("task %s: its run could not be started: %s", task_id, redact(f"{type(exc).__name__}: {exc}"))
    with conn:
        store.update_task(conn, task_id=task_id, status="failed", completed_at="now",
                          error_message=f"its run could not be started ({type(exc).__name__}); create the task again")
    try:
        runs.forget_runs(task_id)
        runs.forget_connection(task_id)
    except Exception as cleanup:  # Prefect failing again: the retention flow or a DELETE removes them later
        log.warning("task %s: could not remove its flow run or secret: %s", task_id, redact(str(cleanup)))


def _start_created(conn: Connection, runs: PrefectRuns, task: dict, task_dir: Path, new: NewTask) -> dict | None:
    """After the insert: the Secret block and, with a table list, the flow run; the task row after.

    The row stays locked meanwhile, so a DELETE of the task waits until the secret it has to remove
    exists. The secret and the flow run are created at once: a worker starts a run seconds later.
    """
    try:
        with conn:
            if store.update_task(conn, task_id=task["id"], prefect_flow_run_id=None) is None:
                return None  # deleted meanwhile
            with ThreadPoolExecutor(max_workers=1) as helper:
                saving = helper.submit(runs.save_connection, task["id"], new.url)
                flow_run_id = None if new.table_list is None else _start(runs, task, task_dir, _run_of(new))
                saving.result()
            return store.update_task(conn, task_id=task["id"], prefect_flow_run_id=flow_run_id)
    except Exception as exc:
        _fail_start(conn, runs, task["id"], exc)
        raise


def create_task(conn: Connection, runs: PrefectRuns, starter: Starter, settings: Settings, body: TaskCreate,
                new: NewTask, idempotency_key: str | None) -> dict:
    """Create a task and start its run when it has a table list; the data of the 201 answer.

    The Prefect calls run in the background: the answer waits for them DP_API_START_WAIT seconds at
    most, then says the run is starting (its flow run id shows in GET /tasks/{id} once it is there).
    """
    task, task_dir = _insert(conn, settings, body, new, idempotency_key)
    if task_dir is None:
        return created(task, replay=True)
    starting = starter.submit(lambda later: _start_created(later, runs, task, task_dir, new))
    try:
        task = starting.result(timeout=settings.api_start_wait) or task
    except FutureTimeout:
        pass
    except (httpx.HTTPError, RunsUnavailable) as exc:
        raise unavailable(f"task {task['id']} was created but its run could not be started: {exc}",
                          task_id=task["id"]) from None
    return created(task, table_count=None if new.table_list is None else len(new.table_list.tables))


def created(task: dict, replay: bool = False, table_count: int | None = None) -> dict:
    waiting = task["prefect_flow_run_id"] is None and task["status"] == "pending"
    return {
        "task_id": task["id"],
        "status": task["status"],
        "created_at": task["created_at"],
        "output_directory": task["output_directory"],
        "flow_run_id": task["prefect_flow_run_id"],
        "table_count": table_count,
        "next_step": (f"POST /api/v0/data_pipeline/tasks/{task['id']}/table-list, then .../execute" if waiting
                      else None if task["prefect_flow_run_id"] else "its run is being started: GET the task for news"),
        "idempotent_replay": replay,
    }


# --- running -----------------------------------------------------------------------------------


def start_run(conn: Connection, runs: PrefectRuns, settings: Settings, task_id: str, body: TaskExecute) -> dict:
    plan = check_execute(body)
    task = read_task(conn, task_id)
    task_dir = stored_task_directory(settings, task_id, task["output_directory"])
    if not (task_dir / TABLE_LIST_NAME).is_file():
        raise conflict(f"task {task_id} has no table list yet; POST it to /tasks/{task_id}/table-list first")
    if not runs.has_connection(task_id):
        raise conflict(f"the connection secret of task {task_id} is missing (still being stored: retry in a "
                       "moment; else it is gone: create a new task)")
    run = {"execution_mode": body.execution_mode, "single_step": body.single_step, "from_step": body.from_step,
           **run_options(body)}
    with conn:
        task = _claim(conn, settings, task, plan, {**task["parameters"], "last_run": run})
    flow_run_id = _launch(conn, runs, task, task_dir, run)
    return {"task_id": task_id, "status": task["status"], "flow_run_id": flow_run_id, "steps": list(plan.run),
            "skipped_steps": list(plan.skipped)}


def refresh(conn: Connection, runs: PrefectRuns, task_id: str) -> None:
    """Bring the task's rows up to date with Prefect now (the mirror's own sync), not at its next poll."""
    from service.mirror import sync_task

    with conn:
        sync_task(conn, runs.client, task_id, scanner=SCANNER)


def cancel_task(conn: Connection, runs: PrefectRuns, task_id: str) -> dict:
    task = _settled(conn, read_task(conn, task_id))
    flow_run_id = task["prefect_flow_run_id"]
    if flow_run_id is None:
        if task["status"] != "pending":
            raise conflict(f"task {task_id} is {task['status']} and has no flow run to cancel"
                           + ("; it is starting, retry in a moment" if task["status"] == "in_progress" else ""))
        with conn:
            task = store.update_task(conn, task_id=task_id, status="cancelled", completed_at="now")
        return {"task_id": task_id, "status": task["status"], "flow_run_state": None}
    if not is_active(task):
        raise conflict(f"task {task_id} is {task['status']}; its run has ended")
    state = runs.cancel(flow_run_id)
    refresh(conn, runs, task_id)
    task = read_task(conn, task_id)
    return {"task_id": task_id, "status": task["status"], "flow_run_state": state[1] if state else None}


# --- deleting, table lists --------------------------------------------------------------------


def _stop(conn: Connection, runs: PrefectRuns, settings: Settings, task: dict) -> bool:
    """Make sure the task's flow run has stopped (cancel it, wait) and the rows say so; True if it ran."""
    flow_run_id = task["prefect_flow_run_id"]
    if flow_run_id is None:
        if is_active(task):
            raise conflict(f"task {task['id']} is starting its run; retry in a moment")
        return False
    state = runs.state(flow_run_id)
    running = state is not None and not is_final(state[0])
    if running:
        runs.cancel(flow_run_id)
        if not runs.wait_until_final(flow_run_id, settings.api_cancel_wait):
            raise conflict(f"task {task['id']} was asked to stop but is still stopping after "
                           f"{settings.api_cancel_wait:.0f} s (DP_API_CANCEL_WAIT); retry in a moment")
    if running or is_active(task):
        refresh(conn, runs, task["id"])
    return running


def delete_task(conn: Connection, runs: PrefectRuns, settings: Settings, task_id: str, files_only: bool) -> dict:
    task = _settled(conn, read_task(conn, task_id))
    was_cancelled = _stop(conn, runs, settings, task)
    outcome = {"task_id": task_id, "files_only": files_only, "was_cancelled": was_cancelled, "secret_removed": False,
               "records_deleted": False, "flow_runs_removed": 0}
    if files_only:
        removed = remove_task_files(settings, task_id, task["output_directory"])
        with conn:
            store.upsert_outputs(conn, task_id=task_id, files=[])
    else:
        with conn:  # rows go only when the files and the secret went too
            if not store.delete_task(conn, task_id=task_id):
                raise not_found(f"task {task_id}")
            removed = remove_leftovers(settings, runs, task_id, task["output_directory"])
        outcome.update(records_deleted=True, secret_removed=removed["secret_removed"],
                       flow_runs_removed=removed["flow_runs_removed"])
    outcome.update(directory_removed=removed["removed"], files_removed=removed["files"], bytes_removed=removed["bytes"])
    return outcome


def replace_table_list(conn: Connection, settings: Settings, task_id: str, table_list: TableList) -> dict:
    """Write the task's table list; 409 while it runs (the row stays locked until the file is written)."""
    with conn:
        task = store.get_task(conn, task_id=task_id)
        if task is None:
            raise not_found(f"task {task_id}")
        task = store.update_task(conn, task_id=task_id, parameters={**task["parameters"], "table_source": "upload"})
        if is_active(task):
            raise conflict(f"task {task_id} is running; cancel it or wait before changing its table list")
        task_dir = stored_task_directory(settings, task_id, task["output_directory"])
        task_dir.mkdir(parents=True, exist_ok=True)
        _write_table_list(task_dir, table_list)
    path = task_dir / TABLE_LIST_NAME
    return {"task_id": task_id, "file_name": TABLE_LIST_NAME, "file_size": path.stat().st_size,
            "table_count": len(table_list.tables), "tables": [t.display for t in table_list.tables]}
