"""The mirror: the tracking tables as a projection of Prefect, kept in step and rebuildable.

Prefect is the source of truth for run state. For each flow run of ``schema_workflow`` the mirror
writes the task row (status, progress, steps, error, result), one step-run row per task run, the
run's logs (each once) and the files of the task directory. Every value is derived from what
Prefect and the directory hold, so syncing twice changes nothing and ``rebuild`` gives the same rows.
A task's current run is its newest flow run; older runs only add their step runs and logs. A flow
run whose task has no row gets one (see ``service.states.created_by_for``). The poll loop is
service/mirror_poll.py.

Functions taking a connection write in the caller's transaction and never commit (like
service/store.py), except ``rebuild``, which commits after each task.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterable
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterName, Operator
from prefect.client.schemas.objects import FlowRun

from dp.logs import redact
from flows.plan import STEPS
from service import store
from service.outputs import OutputScanner
from service.prefect_reads import RunSnapshot, read_flow_run_or_none, read_flow_runs, snapshots, state_type_of, task_id_of, utc
from service.states import (
    created_by_for,
    db_name_for,
    execution_status,
    is_final,
    mask_value,
    progress,
    run_plan,
    step_of,
    step_statuses,
    task_status,
    task_type_for,
)

log = logging.getLogger(__name__)

_RESULT_SLACK = timedelta(seconds=1)
STEP_STATE_LAG = timedelta(seconds=30)  # how long after a completed flow run its step states may still lag


def steps_lag(snap: RunSnapshot) -> bool:
    """Whether this read shows a completed flow run with a step not yet ended, within ``STEP_STATE_LAG``.

    Prefect 3 records task runs and their states from events, after the flow run's own state, so a
    read right after the end can show a step still running, or not yet there. A completed run ran
    every step it planned to completion (a failed step fails the flow), so such a read is not
    mirrored into the task row yet; after the lag limit it is, as it stands.
    """
    flow_run = snap.flow_run
    if state_type_of(flow_run) != "COMPLETED" or flow_run.end_time is None:
        return False
    if datetime.now(timezone.utc) - utc(flow_run.end_time) >= STEP_STATE_LAG:
        return False
    ended = {step_of(t.name) for t in snap.task_runs if is_final(state_type_of(t))}
    running = any(step_of(t.name) and not is_final(state_type_of(t)) for t in snap.task_runs)
    return running or not ended.issuperset(run_plan(flow_run.parameters or {}).run)


def new_task_fields(parameters: dict[str, Any], task_id: str, created_by: str) -> dict[str, Any]:
    """``store.create_task`` arguments for a task known only from its flow-run parameters (masked)."""
    return dict(
        task_id=task_id,
        task_type=task_type_for(parameters.get("execution_mode")),
        parameters=mask_value(dict(parameters)),
        created_by=created_by,
        output_directory=parameters.get("output_dir"),
        db_name=db_name_for(parameters.get("connection")),
        business_context=parameters.get("business_context"),
    )


def _step_result(output_dir: str | None, step: str, started: datetime | None, ended: datetime | None) -> dict | None:
    """``<step>_result.json`` written during this step run: in the task directory or, after a re-run
    of step 1, in a ``file_bak_*`` folder (moved files keep their modification time)."""
    if not output_dir or started is None or ended is None:
        return None
    root = Path(output_dir)
    name = f"{step}_result.json"
    try:
        candidates = [root / name, *sorted(root.glob(f"file_bak_*/{name}"))]
    except OSError:
        return None
    for path in candidates:
        try:
            modified = datetime.fromtimestamp(path.stat().st_mtime_ns / 1e9, timezone.utc)
            if started <= modified <= ended + _RESULT_SLACK:
                return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
    return None


def _write_executions(conn: store.Connection, task_id: str, snap: RunSnapshot, output_dir: str | None) -> None:
    flow_run, flow_state = snap.flow_run, state_type_of(snap.flow_run)
    for task_run in snap.task_runs:
        step = step_of(task_run.name)
        if step is None or task_run.state is None:
            continue
        state_type = state_type_of(task_run)
        status = execution_status(state_type, task_run.start_time is not None)
        started, ended = utc(task_run.start_time), utc(task_run.end_time) if is_final(state_type) else None
        error = task_run.state.message if status in ("failed", "crashed", "cancelled") else None
        if is_final(flow_state) and status in ("pending", "running"):
            # the run ended around this step (crash, cancel, flow timeout): Prefect leaves it open
            status = "cancelled" if flow_state == "CANCELLED" else "crashed"
            ended = utc(flow_run.end_time)
            error = flow_run.state.message if flow_run.state else None
        elif flow_state in ("CANCELLING", "CANCELLED") and status == "crashed":
            status = "cancelled"  # stopped by the cancellation's termination signal
        store.upsert_execution(
            conn, task_id=task_id, step=step, prefect_task_run_id=task_run.id, status=status,
            state_timestamp=utc(task_run.state.timestamp), state_name=task_run.state.name,
            prefect_flow_run_id=flow_run.id, started_at=started, completed_at=ended,
            execution_result=_step_result(output_dir, step, started, ended) if status == "completed" else None,
            error_message=redact(error) if error else None,
        )


def _write_logs(conn: store.Connection, task_id: str, snap: RunSnapshot) -> int:
    steps = {task_run.id: step_of(task_run.name) for task_run in snap.task_runs}
    return store.insert_logs(conn, task_id=task_id, logs=[
        {
            "message": redact(entry.message),
            "log_level": entry.level,
            "timestamp": utc(entry.timestamp),
            "module_name": entry.name[:255] if entry.name else None,
            "step_name": steps.get(entry.task_run_id),
            "prefect_log_id": entry.id,
            "prefect_task_run_id": entry.task_run_id,
            "extra_data": {"flow_run_id": str(entry.flow_run_id)} if entry.flow_run_id else {},
        }
        for entry in snap.logs
    ])


def _task_fields(snap: RunSnapshot, executions: list[dict], previous_status: str | None) -> dict[str, Any]:
    """The task row's run fields from its current flow run and all its step runs."""
    flow_run = snap.flow_run
    flow_state = state_type_of(flow_run)
    this_run_id = str(flow_run.id)
    this_run, earlier, latest_completed = {}, {}, {}
    for execution in executions:  # in start order: later runs of a step win
        target = this_run if execution["prefect_flow_run_id"] == this_run_id else earlier
        target[execution["execution_step"]] = execution["status"]
        if execution["status"] == "completed":
            latest_completed[execution["execution_step"]] = execution
    plan = run_plan(flow_run.parameters or {})
    run_executions = [e for e in executions if e["prefect_flow_run_id"] == this_run_id]
    status = task_status(flow_state, all(step in latest_completed for step in STEPS), previous_status)
    error_message = error_step = None
    if status == "failed":
        error_message = redact(flow_run.state.message) if flow_run.state and flow_run.state.message else flow_state.title()
        failed = [e for e in run_executions if e["status"] == "failed"]
        error_step = failed[-1]["execution_step"] if failed else None
    results = {step: latest_completed[step]["execution_result"] for step in STEPS
               if step in latest_completed and latest_completed[step]["execution_result"] is not None}
    return dict(
        status=status,
        progress=progress(plan, this_run),
        current_step=run_executions[-1]["execution_step"] if run_executions else None,
        step_status=step_statuses(plan, this_run, earlier, flow_state),
        error_message=error_message,
        error_step=error_step,
        result=results or None,
        started_at=utc(flow_run.start_time),
        completed_at=utc(flow_run.end_time) if is_final(flow_state) else None,
        prefect_flow_run_id=this_run_id,
        last_flow_run_state=flow_run.state.name if flow_run.state else flow_state.title(),
        prefect_updated_at=utc(flow_run.updated),
    )


def sync_flow_run(
    conn: store.Connection,
    snap: RunSnapshot,
    *,
    scanner: OutputScanner | None = None,
    created_of: Callable[[UUID], datetime | None] | None = None,
    exists: Callable[[UUID], bool] | None = None,
    settle: bool = True,
) -> dict | None:
    """Mirror one flow run into the tables (in the caller's transaction); returns the task row.

    The run becomes the task's current run when it is the recorded one, newer than the recorded one
    (``created_of`` gives the recorded run's creation time; None: it is gone from Prefect; without
    ``created_of`` this run is taken as not newer), or, with none recorded, created after the task
    row (or its run-slot claim). ``scanner`` also rescans the task directory. Returns None for a
    run whose task id is not a valid id, and for a run without a task row that ``exists`` says is
    gone from Prefect: its task was deleted (DELETE removes the runs before it commits, and the row
    lookup here waits for that commit) after the snapshot was read, and must not come back. A read
    where ``steps_lag`` writes only the run's logs, unless ``settle`` is False (mirror it as it is).
    """
    flow_run = snap.flow_run
    task_id = task_id_of(flow_run)
    if task_id is None:
        log.warning("flow run %s has no valid task_id parameter; not mirrored", flow_run.id)
        return None
    # locked: another writer (the API's refresh, a second mirror) may hold a newer snapshot of this run
    row = store.get_task(conn, task_id=task_id, for_update=True)
    created_here = row is None
    if created_here:
        if exists is not None and not exists(flow_run.id):
            log.info("flow run %s is gone from Prefect with its task %s; not mirrored", flow_run.id, task_id)
            return None
        fields = new_task_fields(flow_run.parameters or {}, task_id, created_by_for(task_id, flow_run.auto_scheduled))
        try:
            row = store.create_task(conn, **fields)
        except store.TaskExistsError:  # another mirror created it just now
            row = store.get_task(conn, task_id=task_id, for_update=True)
    recorded = row["prefect_flow_run_id"]
    if created_here:
        current = True
    elif recorded is None:
        # a task created (or a run slot claimed) before its flow run exists: only a run created
        # since then is its run, never an earlier run of the same task id
        current = utc(flow_run.created) >= datetime.fromisoformat(row["started_at"] or row["created_at"])
    elif recorded == str(flow_run.id):
        current = not _older_than_recorded(flow_run, row)
    else:
        recorded_created = created_of(UUID(recorded)) if created_of is not None else flow_run.created
        current = recorded_created is None or utc(flow_run.created) > utc(recorded_created)
    _write_logs(conn, task_id, snap)
    if settle and steps_lag(snap):
        return row  # step runs and task row from a later read, once Prefect shows the steps ended
    _write_executions(conn, task_id, snap, row["output_directory"])
    executions = store.list_executions(conn, task_id=task_id)
    if current:
        flow_state = state_type_of(flow_run)
        if is_final(flow_state) and flow_state != "COMPLETED":
            store.close_running_executions(conn, task_id=task_id,
                                           status="cancelled" if flow_state == "CANCELLED" else "failed")
        row = store.update_task(conn, task_id=task_id, mirrored_at="now", **_task_fields(snap, executions, row["status"]))
    if scanner is not None and row["output_directory"]:
        files = scanner.scan(row["output_directory"], executions)
        if files is not None:
            store.upsert_outputs(conn, task_id=task_id, files=files)
    return row


def _older_than_recorded(flow_run: FlowRun, row: dict) -> bool:
    """Whether this read of the run predates the one the row shows (compared on the Prefect server's
    clock: a state's own timestamp comes from whichever machine proposed it)."""
    recorded = row["prefect_updated_at"]
    if recorded is None or flow_run.updated is None:
        return False
    return utc(flow_run.updated) < datetime.fromisoformat(recorded)


def _newest(flow_runs: Iterable[FlowRun], task_id: str) -> FlowRun | None:
    mine = [run for run in flow_runs if task_id_of(run) == task_id]
    return max(mine, key=lambda run: utc(run.created), default=None)


def sync_task(conn: store.Connection, client: SyncPrefectClient, task_id: str,
              scanner: OutputScanner | None = None, *, settle: bool = True) -> dict | None:
    """Refresh one task from Prefect now, in the caller's transaction; returns its row (None: no task).

    Looks at the task's recorded flow run and at runs named after the task (the flow names its runs
    ``{task_id}``), so a run started for the task by someone else (a re-run from the CLI or the
    Prefect UI) becomes its current run. Rescans the task directory. A task without any flow run is
    returned as it is. ``settle``: as for ``sync_flow_run``.
    """
    row = store.get_task(conn, task_id=task_id)
    if row is None:
        return None
    criteria: dict[str, Any] = {"name": FlowRunFilterName(any_=[task_id])}
    if row["prefect_flow_run_id"]:
        criteria["id"] = FlowRunFilterId(any_=[UUID(row["prefect_flow_run_id"])])
    runs = read_flow_runs(client, FlowRunFilter(operator=Operator.or_, **criteria))
    newest = _newest(runs, task_id)
    if newest is None:
        return row
    (snap,) = snapshots(client, [newest])
    return sync_flow_run(conn, snap, scanner=scanner or OutputScanner(), settle=settle,
                         created_of=lambda run_id: next((r.created for r in runs if r.id == run_id), None))


def rebuild(conn: store.Connection, client: SyncPrefectClient, *, batch: int = 50,
            on_task: Callable[[dict], None] | None = None) -> int:
    """Re-derive every row from Prefect: all flow runs of ``schema_workflow``, oldest first per task.

    Commits after each task; returns how many tasks were mirrored. Rows of tasks Prefect knows
    nothing about (created by the API, never started) are left as they are.
    """
    by_task: dict[str, list[FlowRun]] = {}
    created: dict[UUID, datetime] = {}
    for run in read_flow_runs(client):
        task_id = task_id_of(run)
        if task_id is not None:
            by_task.setdefault(task_id, []).append(run)
            created[run.id] = run.created
    scanner = OutputScanner()
    task_ids = sorted(by_task, key=lambda t: min(utc(r.created) for r in by_task[t]))
    done = 0
    for start in range(0, len(task_ids), batch):
        chunk = task_ids[start:start + batch]
        runs = sorted((run for task_id in chunk for run in by_task[task_id]), key=lambda r: utc(r.created))
        snaps = {snap.flow_run.id: snap for snap in snapshots(client, runs)}
        for task_id in chunk:
            ordered = sorted(by_task[task_id], key=lambda r: utc(r.created))
            with conn:
                for run in ordered:
                    row = sync_flow_run(conn, snaps[run.id], scanner=scanner if run is ordered[-1] else None,
                                        created_of=created.get,
                                        exists=lambda run_id: read_flow_run_or_none(client, run_id) is not None)
            done += 1
            if on_task is not None and row is not None:
                on_task(row)
    return done
