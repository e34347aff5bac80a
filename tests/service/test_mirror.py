"""The mirror against a real Prefect server (on PostgreSQL) with a worker, and real tracking tables.

Runs started by ``data-pipeline run`` run in this process and are tracked by the CLI itself; runs
started from the Prefect API go through the stack's worker (its deployment queues them one at a
time) and are mirrored by a mirror thread, or by ``data-pipeline mirror`` as a process.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from io import StringIO
from pathlib import Path

import httpx
import psycopg2
import psycopg2.extras
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId
from prefect.client.schemas.objects import StateType
from prefect.states import Cancelling, Running

from dp.cli import main
from dp.database import connection
from dp.logs import OUR_LOGGERS
from dp.settings import get_settings
from flows.plan import STEPS
from service import run_tracking, store
from service.migrate import migrate
from service.mirror import rebuild, sync_flow_run, sync_task
from service.mirror_poll import Mirror
from service.mirror_service import MirrorThread
from service.prefect_reads import (
    RunHead,
    RunSnapshot,
    read_flow_run_or_none,
    read_run_heads,
    snapshots,
    state_type_of,
    task_id_of,
    utc,
)
from tests.service.conftest import _fresh_database

ON_DEMAND = "schema_workflow/on-demand"


def wait_for(what: str, check, timeout: float = 90.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def mirror_db(embedded_url):
    """A migrated service database of this module (tracking tables, and the vector store of step 4)."""
    with _fresh_database(embedded_url) as url:
        migrate(url)
        yield url


@pytest.fixture(scope="module")
def step_logs_to_prefect():
    """What PREFECT_LOGGING_EXTRA_LOGGERS does in a process of its own (Prefect was set up before our tests)."""
    handlers = [h for h in logging.getLogger("prefect.extra").handlers]
    loggers = [logging.getLogger(name) for name in OUR_LOGGERS]
    added = [(logger, h) for logger in loggers for h in handlers if h not in logger.handlers]
    for logger, handler in added:
        logger.addHandler(handler)
    yield
    for logger, handler in added:
        logger.removeHandler(handler)


@pytest.fixture
def db(mirror_db, prefect_api, step_logs_to_prefect, monkeypatch):
    """A connection to the tracking tables; this process's settings and Prefect clients point at the stack."""
    monkeypatch.setenv("DP_DATABASE_URL", mirror_db)
    monkeypatch.setenv("DP_MIRROR_POLL_INTERVAL", "0.2")
    get_settings.cache_clear()
    with connection(mirror_db) as conn:
        yield conn


@pytest.fixture
def mirror_thread(db):
    out = StringIO()
    mirror = MirrorThread(get_settings(), out)
    mirror.start()
    yield out
    mirror.stop()


def task(conn, task_id: str) -> dict | None:
    with conn:
        return store.get_task(conn, task_id=task_id)


def executions(conn, task_id: str) -> list[dict]:
    with conn:
        return store.list_executions(conn, task_id=task_id)


def logs(conn, task_id: str) -> list[dict]:
    with conn:
        return store.list_logs(conn, task_id=task_id, limit=1000)


def outputs(conn, task_id: str) -> list[dict]:
    with conn:
        return store.list_outputs(conn, task_id=task_id)


def cli_run(tmp_path: Path, db_url: str, task_id: str, *options: str, tables: str = "language\n") -> int:
    table_list = tmp_path / f"{task_id}_tables.txt"
    table_list.write_text(tables)
    return main(["run", "--db-connection", db_url, "--table-list", str(table_list), "--business-context",
                 "DVD rental store", "--output-dir", str(tmp_path / "tasks"), "--task-id", task_id, *options])


# --- runs of `data-pipeline run`, tracked by the CLI ------------------------------------------------


def test_complete_run_is_mirrored_with_steps_logs_and_outputs(db, pagila_url, tmp_path):
    assert cli_run(tmp_path, pagila_url, "manual_mirror_full") == 0
    row = task(db, "manual_mirror_full")
    assert row["status"] == "completed" and row["progress"] == 100 and row["created_by"] == "manual"
    assert row["step_status"] == dict.fromkeys(STEPS, "completed")
    assert row["error_message"] is None and row["completed_at"] and row["started_at"]
    assert row["db_name"] == "dp_sample_pagila" and row["parameters"]["connection"] == pagila_url
    assert set(row["result"]) == set(STEPS) and row["result"]["ddl_generation"]["succeeded"] == 1
    runs = executions(db, "manual_mirror_full")
    assert [e["execution_step"] for e in runs] == list(STEPS)
    assert all(e["status"] == "completed" and e["execution_result"] for e in runs)
    assert {e["prefect_flow_run_id"] for e in runs} == {row["prefect_flow_run_id"]}

    lines = logs(db, "manual_mirror_full")
    with get_client(sync_client=True) as client:
        prefect_logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[row["prefect_flow_run_id"]])))
        assert {str(entry.id) for entry in prefect_logs} == {line["prefect_log_id"] for line in lines}
        assert any(line["step_name"] == "ddl_generation" and line["message"] == "step ddl_generation started"
                   and line["execution_id"] == runs[0]["execution_id"] for line in lines)
        # logged from step 3's worker threads: they run in the task run's context
        assert any(line["step_name"] == "sql_validation" and re.fullmatch(r"pair (\d+)/\1 checked", line["message"])
                   for line in lines), [line["message"] for line in lines]
        with db:  # syncing again copies nothing twice and changes nothing
            again = sync_task(db, client, "manual_mirror_full")
    assert len(logs(db, "manual_mirror_full")) == len(lines)
    skip = {"mirrored_at", "updated_at"}
    assert {k: v for k, v in again.items() if k not in skip} == {k: v for k, v in row.items() if k not in skip}

    task_dir = tmp_path / "tasks" / "manual_mirror_full"
    files = {f["file_path"]: f for f in outputs(db, "manual_mirror_full")}
    on_disk = {p.relative_to(task_dir).as_posix() for p in task_dir.rglob("*") if p.is_file()}
    assert set(files) == on_disk
    for path, entry in files.items():
        content = (task_dir / path).read_bytes()
        assert entry["content_hash"] == hashlib.sha256(content).hexdigest() and entry["file_size"] == len(content)
    assert files["language.ddl"]["is_primary"] and files["language.ddl"]["file_type"] == "ddl"
    assert files["language_detail.md"]["is_primary"]
    assert any(path.endswith("_pair.json") and f["is_primary"] for path, f in files.items())
    assert not files["manifest.json"]["is_primary"] and files["data_pipeline.log"]["file_type"] == "log"
    assert files["language.ddl"]["execution_id"] == runs[0]["execution_id"]


def test_single_step_then_resume_then_last_step(db, pagila_url, tmp_path):
    task_id = "manual_mirror_resume"
    assert cli_run(tmp_path, pagila_url, task_id, "--execution-mode", "single", "--single-step", "1") == 0
    first = task(db, task_id)
    assert (first["status"], first["progress"], first["task_type"]) == ("partial_completed", 100, "single_step")
    assert first["step_status"] == {"ddl_generation": "completed", "qa_generation": "skipped",
                                    "sql_validation": "skipped", "training_load": "skipped"}

    assert cli_run(tmp_path, pagila_url, task_id, "--from-step", "2", "--skip-training-load") == 0
    resumed = task(db, task_id)
    assert resumed["prefect_flow_run_id"] != first["prefect_flow_run_id"]
    assert (resumed["status"], resumed["progress"]) == ("partial_completed", 100)
    assert resumed["step_status"] == {**dict.fromkeys(STEPS, "completed"), "training_load": "skipped"}
    runs = executions(db, task_id)
    assert [(e["execution_step"], e["prefect_flow_run_id"] == first["prefect_flow_run_id"]) for e in runs] == [
        ("ddl_generation", True), ("qa_generation", False), ("sql_validation", False)]

    # every step has now completed in some run: the last one makes the task complete
    assert cli_run(tmp_path, pagila_url, task_id, "--execution-mode", "single", "--single-step", "4") == 0
    done = task(db, task_id)
    assert (done["status"], done["progress"]) == ("completed", 100)
    assert done["step_status"] == dict.fromkeys(STEPS, "completed")
    assert done["created_by"] == "manual" and len(executions(db, task_id)) == 4


def test_failed_step_records_error_and_step(db, pagila_url, tmp_path):
    # step 2 of a task whose step 1 left nothing fails as a whole
    (tmp_path / "tasks" / "manual_mirror_fail").mkdir(parents=True)
    assert cli_run(tmp_path, pagila_url, "manual_mirror_fail", "--execution-mode", "single", "--single-step", "2") == 1
    row = task(db, "manual_mirror_fail")
    assert row["status"] == "failed" and row["error_step"] == "qa_generation"
    assert "step qa_generation failed" in row["error_message"] and "manifest.json" in row["error_message"]
    assert row["step_status"]["qa_generation"] == "failed" and row["last_flow_run_state"] == "Failed"
    (run,) = executions(db, "manual_mirror_fail")
    assert run["status"] == "failed" and "manifest.json" in run["error_message"]


def test_untracked_run_leaves_no_row(db, pagila_url, tmp_path):
    assert cli_run(tmp_path, pagila_url, "manual_mirror_untracked", "--execution-mode", "single",
                   "--single-step", "1", "--no-db-tracking") == 0
    assert task(db, "manual_mirror_untracked") is None


# --- runs from the Prefect API, on the worker ---------------------------------------------------------


@pytest.fixture
def slow_db(scratch_db):
    """A database whose only table is locked while the test runs: step 1 waits on it until the lock goes."""
    with connection(scratch_db) as setup:
        setup.autocommit = True
        setup.cursor().execute("CREATE TABLE slow (id int PRIMARY KEY, name text); INSERT INTO slow VALUES (1, 'a')")
    locker = psycopg2.connect(scratch_db)
    locker.cursor().execute("LOCK TABLE slow IN ACCESS EXCLUSIVE MODE")
    yield scratch_db
    locker.rollback()
    locker.close()


def start_deployment_run(prefect_stack, tmp_path: Path, task_id: str, db_url: str, tables: str,
                         env: dict[str, str] | None = None, **options) -> uuid.UUID:
    """A flow run of the on-demand deployment, as the REST API or `prefect deployment run` starts one."""
    task_dir = tmp_path / task_id
    task_dir.mkdir(parents=True)
    (task_dir / "table_list.txt").write_text(tables)
    parameters = {"task_id": task_id, "connection": db_url, "output_dir": str(task_dir),
                  "business_context": "test", **options}
    deployment_id = prefect_stack.applied.deployment_ids[ON_DEMAND]
    with get_client(sync_client=True) as client:
        job_variables = None
        if env:  # a run's job variables replace the deployment's env: keep those
            job_variables = {"env": {**client.read_deployment(deployment_id).job_variables.get("env", {}), **env}}
        run = client.create_flow_run_from_deployment(deployment_id, parameters=parameters, name=task_id,
                                                     job_variables=job_variables)
    return run.id


def flow_run_process(flow_run_id: uuid.UUID) -> int | None:
    """PID of the process executing the flow run (the worker starts ``python -m prefect.engine``)."""
    marker = f"PREFECT__FLOW_RUN_ID={flow_run_id}".encode()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"prefect.engine" in cmdline and marker in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                return int(pid)
        except OSError:
            continue
    return None


def test_killed_flow_process_shows_failed_with_no_step_running(db, mirror_thread, prefect_stack, slow_db, tmp_path):
    flow_run_id = start_deployment_run(prefect_stack, tmp_path, "task_mirror_killed", slow_db, "slow\n",
                                       execution_mode="single", single_step="ddl_generation")
    wait_for("step 1 running in the tables",
             lambda: (row := task(db, "task_mirror_killed")) and row["step_status"]["ddl_generation"] == "running")
    pid = wait_for("the flow-run process", lambda: flow_run_process(flow_run_id))
    os.kill(pid, signal.SIGKILL)
    row = wait_for("the crash in the tables",
                   lambda: (r := task(db, "task_mirror_killed")) and r["status"] == "failed" and r, timeout=60)
    assert row["last_flow_run_state"] == "Crashed" and row["created_by"] == "api"
    assert row["error_step"] == "ddl_generation" and row["step_status"]["ddl_generation"] == "failed"
    assert row["prefect_flow_run_id"] == str(flow_run_id)
    assert [e["status"] for e in executions(db, "task_mirror_killed")] == ["failed"]
    assert "task_mirror_killed: failed" in mirror_thread.getvalue()


def heartbeats(api_url: str, flow_run_id: str) -> int:
    """How many heartbeat events of the flow run the Prefect server has received."""
    answer = httpx.post(f"{api_url}/events/filter", timeout=10, json={"limit": 10, "filter": {
        "event": {"name": ["prefect.flow-run.heartbeat"]},
        "any_resource": {"id": [f"prefect.flow-run.{flow_run_id}"]},
        "occurred": {"since": (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat()}}})
    answer.raise_for_status()
    return len(answer.json()["events"])


def test_run_whose_machine_died_is_crashed_by_the_zombie_automation(db, mirror_thread, prefect_stack, slow_db,
                                                                   tmp_path):
    """A `data-pipeline run` process (heartbeats on) killed with its process group, as when its machine
    dies: no worker is there to report the end, only the set-up's automation can mark it Crashed, once
    its heartbeats have been silent for DP_ZOMBIE_AFTER_SECONDS."""
    table_list = tmp_path / "tables.txt"
    table_list.write_text("slow\n")
    run = subprocess.Popen([sys.executable, "-m", "dp.cli", "run", "--db-connection", slow_db, "--table-list",
                            str(table_list), "--output-dir", str(tmp_path / "tasks"), "--task-id", "manual_mirror_zombie",
                            "--business-context", "test", "--execution-mode", "single", "--single-step", "1", "--no-db-tracking"],
                           env=prefect_stack.env, stdin=subprocess.DEVNULL, stdout=open(tmp_path / "run.log", "wb"),
                           stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def step_1_running():
            assert run.poll() is None, (tmp_path / "run.log").read_text(errors="replace")
            row = task(db, "manual_mirror_zombie")
            return row and row["step_status"]["ddl_generation"] == "running" and row

        row = wait_for("step 1 running in the tables", step_1_running)
        wait_for("a heartbeat", lambda: heartbeats(prefect_stack.api_url, row["prefect_flow_run_id"]), timeout=30)
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
    time.sleep(5)
    assert task(db, "manual_mirror_zombie")["status"] == "in_progress"  # nobody saw it die
    window = prefect_stack.settings.zombie_after_seconds
    row = wait_for("the zombie run failed in the tables",
                   lambda: (r := task(db, "manual_mirror_zombie")) and r["status"] == "failed" and r, timeout=window + 90)
    assert row["last_flow_run_state"] == "Crashed" and "heartbeats stopped" in row["error_message"]
    assert row["created_by"] == "manual" and row["step_status"]["ddl_generation"] == "failed"
    assert [e["status"] for e in executions(db, "manual_mirror_zombie")] == ["failed"]


def test_cancelled_run_shows_cancelled(db, mirror_thread, prefect_stack, slow_db, tmp_path):
    # a query waiting on the lock ends after 3 s, so the run sees the worker's termination signal soon
    flow_run_id = start_deployment_run(prefect_stack, tmp_path, "task_mirror_cancel", slow_db, "slow\n",
                                       env={"DP_SAMPLE_STATEMENT_TIMEOUT": "3"},
                                       execution_mode="single", single_step="ddl_generation")
    wait_for("step 1 running in the tables",
             lambda: (row := task(db, "task_mirror_cancel")) and row["step_status"]["ddl_generation"] == "running")
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(flow_run_id, Cancelling())
    row = wait_for("the cancelled run in the tables",
                   lambda: (r := task(db, "task_mirror_cancel")) and r["last_flow_run_state"] == "Cancelled" and r,
                   timeout=60)
    assert row["status"] == "cancelled" and row["step_status"]["ddl_generation"] == "cancelled"
    assert [e["status"] for e in executions(db, "task_mirror_cancel")] == ["cancelled"]


def slot_intervals(client, flow_run_id) -> tuple[float, float]:
    """From the run's first Pending state (when Prefect grants the deployment's slot) to its final state."""
    states = sorted(client.read_flow_run_states(flow_run_id), key=lambda s: s.timestamp)
    start = next(s.timestamp for s in states if s.type.value == "PENDING")
    end = next(s.timestamp for s in states if s.is_final())
    return start.timestamp(), end.timestamp()


def test_api_runs_are_mirrored_by_the_mirror_process_within_the_concurrency_limit(db, mirror_db, prefect_stack,
                                                                                   pagila_url, tmp_path):
    env = {**prefect_stack.env, "DP_DATABASE_URL": mirror_db, "DP_MIRROR_POLL_INTERVAL": "0.2"}
    mirror = subprocess.Popen([sys.executable, "-m", "dp.cli", "mirror"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        ids = {task_id: start_deployment_run(prefect_stack, tmp_path, task_id, pagila_url, "language\n",
                                             execution_mode="single", single_step="ddl_generation")
               for task_id in ("task_mirror_queued", "manual_mirror_queued")}
        wait_for("the queued runs in the tables", lambda: all(task(db, t) for t in ids))
        with db:  # the queued runs hold the run slots: the REST API's claim is refused
            store.create_task(db, task_id="task_mirror_claim", task_type="complete_workflow", parameters={},
                              created_by="api", output_directory=None, db_name=None, business_context=None)
            assert not store.claim_run_slot(db, task_id="task_mirror_claim", limit=1)
        rows = wait_for("both runs finished in the tables", lambda: all(
            (r := task(db, t)) and r["status"] == "partial_completed" for t in ids) and [task(db, t) for t in ids],
            timeout=120)
    finally:
        mirror.send_signal(signal.SIGTERM)
        printed, _ = mirror.communicate(timeout=30)
    assert mirror.returncode == 0, printed
    assert "mirror: stopped" in printed and "task_mirror_queued: partial_completed" in printed
    assert [r["created_by"] for r in rows] == ["api", "manual"]
    assert all(r["step_status"]["ddl_generation"] == "completed" and r["progress"] == 100 for r in rows)
    assert [r["prefect_flow_run_id"] for r in rows] == [str(i) for i in ids.values()]
    with get_client(sync_client=True) as client:  # the deployment's limit (1) held: slot times never overlap
        intervals = sorted(slot_intervals(client, i) for i in ids.values())
    assert all(earlier[1] <= later[0] for earlier, later in zip(intervals, intervals[1:])), intervals
    with db:
        assert store.claim_run_slot(db, task_id="task_mirror_claim", limit=1)
        store.update_task(db, task_id="task_mirror_claim", status="cancelled")


# --- rebuild -----------------------------------------------------------------------------------------


def snapshot(conn, task_ids: str = "manual_mirror_%") -> dict:
    """The mirrored rows of these tasks (a LIKE pattern; runs of other modules may still be moving),
    without what differs by nature between two writes (serial ids, write times)."""
    def rows(query: str, drop: set[str]) -> list[dict]:
        with conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute(query, (task_ids,))
            return [{k: v for k, v in r.items() if k not in drop} for r in cur.fetchall()]

    return {
        "tasks": rows("SELECT * FROM data_pipeline_tasks WHERE prefect_flow_run_id IS NOT NULL AND id LIKE %s "
                      "ORDER BY id", {"created_at", "updated_at", "mirrored_at"}),
        "executions": rows("SELECT * FROM data_pipeline_task_executions WHERE task_id LIKE %s ORDER BY execution_id",
                           {"id"}),
        "logs": rows("SELECT * FROM data_pipeline_task_logs WHERE task_id LIKE %s ORDER BY prefect_log_id", {"id"}),
        "outputs": rows("SELECT * FROM data_pipeline_task_outputs WHERE task_id LIKE %s ORDER BY task_id, file_path",
                        {"id", "created_at"}),
    }


def test_rebuild_from_prefect_gives_the_same_rows(db, pagila_url, tmp_path):
    task_id = "manual_mirror_rebuild"
    assert cli_run(tmp_path, pagila_url, task_id, "--execution-mode", "single", "--single-step", "1") == 0
    assert cli_run(tmp_path, pagila_url, task_id, "--execution-mode", "single", "--single-step", "2") == 0
    with get_client(sync_client=True) as client:
        with db, db.cursor() as cur:  # forget what the CLI tracked: only Prefect knows these runs now
            cur.execute("DELETE FROM data_pipeline_tasks")
        Mirror(db, client).cycle()  # a mirror starting now catches up with runs no mirror saw
        before = snapshot(db)
        with db, db.cursor() as cur:
            cur.execute("DELETE FROM data_pipeline_tasks")
        rebuilt = rebuild(db, client)
    after = snapshot(db)
    assert rebuilt >= 1
    (row,) = [t for t in after["tasks"] if t["id"] == task_id]
    # the row is the task's first run's (its parameters), its state the newest run's
    assert row["parameters"]["single_step"] == "1" and row["step_status"]["qa_generation"] == "completed"
    for table in before:
        assert after[table] == before[table], table


def test_a_polls_run_heads_are_what_prefects_flow_run_models_say(db, pagila_url, tmp_path):
    """The poll reads runs as plain JSON (``RunHead``) and reads in full only those whose head changed:
    a field read wrongly would leave a change unseen."""
    task_id = "manual_mirror_heads"
    assert cli_run(tmp_path, pagila_url, task_id, "--execution-mode", "single", "--single-step", "1") == 0
    run_id = uuid.UUID(task(db, task_id)["prefect_flow_run_id"])
    with get_client(sync_client=True) as client:
        (head,) = read_run_heads(client, FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
        run = client.read_flow_run(run_id)
    assert head == RunHead(id=run.id, name=run.name, parameters=run.parameters, state_id=run.state_id,
                           state_type=run.state_type, state_name=run.state.name, created=utc(run.created),
                           expected_start_time=utc(run.expected_start_time), end_time=utc(run.end_time))
    assert (task_id_of(head), state_type_of(head), head.state_name) == (task_id, "COMPLETED", "Completed")


def test_a_run_read_before_its_task_was_deleted_does_not_bring_the_task_back(db, mirror_db, pagila_url, tmp_path):
    """The mirror read a run; DELETE /tasks/{id} then removed the rows and the run (in one
    transaction, the runs first). The mirror's write waits for the deleted row, finds none, and
    must not create the task again from what it read (it did: a deleted task came back)."""
    task_id = "manual_mirror_deleted"
    assert cli_run(tmp_path, pagila_url, task_id, "--execution-mode", "single", "--single-step", "1") == 0
    with get_client(sync_client=True) as client:
        (read,) = snapshots(client, [client.read_flow_run(uuid.UUID(task(db, task_id)["prefect_flow_run_id"]))])
        written: list = []

        def mirror_write():
            with connection(mirror_db) as own, own:
                written.append(sync_flow_run(own, read, exists=lambda run_id: read_flow_run_or_none(client, run_id)
                                             is not None))

        with connection(mirror_db) as api, api:  # as DELETE does it
            assert store.delete_task(api, task_id=task_id)
            writer = threading.Thread(target=mirror_write)
            writer.start()
            writer.join(1.0)
            assert writer.is_alive(), "the mirror's write did not wait for the row"
            client.delete_flow_run(read.flow_run.id)
        writer.join(30)
    assert written == [None]
    assert task(db, task_id) is None and executions(db, task_id) == []


def test_a_completed_run_read_before_its_steps_ended_leaves_the_task_row_alone(db, pagila_url, tmp_path):
    """Prefect 3 records task-run states from events, after the flow run's own state: a read right
    after the end can show the run Completed and its step still Running. Mirrored as it stands, the
    task showed partial_completed with its step not completed (or crashed); it waits for a later read."""
    task_id = "manual_mirror_lag"
    assert cli_run(tmp_path, pagila_url, task_id, "--execution-mode", "single", "--single-step", "1") == 0
    with get_client(sync_client=True) as client:
        (fresh,) = snapshots(client, [client.read_flow_run(uuid.UUID(task(db, task_id)["prefect_flow_run_id"]))])
    early = RunSnapshot(
        fresh.flow_run.model_copy(update={"end_time": datetime.now(timezone.utc)}),
        [t.model_copy(update={"state": Running(), "state_type": StateType.RUNNING, "end_time": None})
         for t in fresh.task_runs])
    with db:  # as mirrored while the step ran
        store.update_task(db, task_id=task_id, status="in_progress", progress=0, current_step="ddl_generation",
                          last_flow_run_state="Running")
        db.cursor().execute("UPDATE data_pipeline_task_executions SET status = 'running', completed_at = NULL "
                    "WHERE task_id = %s", (task_id,))
    with db:
        sync_flow_run(db, early)
    row = task(db, task_id)
    assert (row["status"], row["last_flow_run_state"], row["progress"]) == ("in_progress", "Running", 0)
    assert [e["status"] for e in executions(db, task_id)] == ["running"]
    with db:  # nor a read where Prefect shows no run of the step yet
        sync_flow_run(db, RunSnapshot(early.flow_run, []))
    assert (task(db, task_id)["status"], task(db, task_id)["progress"]) == ("in_progress", 0)
    with db:  # the next read shows the step ended
        sync_flow_run(db, fresh)
    row = task(db, task_id)
    assert (row["status"], row["progress"], row["step_status"]["ddl_generation"]) == ("partial_completed", 100,
                                                                                      "completed")
    assert [e["status"] for e in executions(db, task_id)] == ["completed"]


def test_a_tracked_run_whose_steps_prefect_does_not_show_is_still_recorded_as_ended(db, pagila_url, tmp_path,
                                                                                      monkeypatch):
    """The CLI's last sync waits for Prefect to show the steps ended, at most SETTLE_SECONDS, then
    records the run as Prefect has it: with no mirror running, the task must not stay in progress."""
    task_id = "manual_mirror_settle"
    assert cli_run(tmp_path, pagila_url, task_id, "--execution-mode", "single", "--single-step", "1") == 0
    flow_run_id = uuid.UUID(task(db, task_id)["prefect_flow_run_id"])
    with get_client(sync_client=True) as client:  # as if the step's events never reached Prefect
        for task_run in snapshots(client, [client.read_flow_run(flow_run_id)])[0].task_runs:
            client.delete_task_run(task_run.id)
    with db:
        store.update_task(db, task_id=task_id, status="in_progress", progress=0, last_flow_run_state="Running")
    monkeypatch.setattr(run_tracking, "SETTLE_SECONDS", 1.0)
    tracker = run_tracking.RunTracker(get_settings(), task_id)
    tracker.flow_run_id = flow_run_id
    run_tracking._last_sync(tracker)
    row = task(db, task_id)
    assert (row["status"], row["last_flow_run_state"]) == ("partial_completed", "Completed")  # one step of four


def test_each_cli_run_gets_an_events_worker_aimed_at_its_own_prefect_server(db, pagila_url, tmp_path):
    """Prefect keeps one events worker per process whatever the API URL: one left from a run against
    another server sent a later run's step states there (a CI run lost every step of a run so)."""
    from prefect.events.worker import EventsWorker

    left = EventsWorker.instance()  # as an earlier flow in this process leaves it
    assert cli_run(tmp_path, pagila_url, "manual_mirror_events", "--no-db-tracking",
                   "--execution-mode", "single", "--single-step", "1") == 0
    assert EventsWorker.instance() is not left


def test_a_stale_read_of_a_run_never_overwrites_a_newer_state(db, mirror_db, pagila_url, tmp_path):
    """The mirror's poll and the REST API's refresh read the same run at different moments; whichever
    writes last, the row ends with the newer state (a cancelled task never shows as running again)."""
    task_id = "manual_mirror_stale"
    assert cli_run(tmp_path, pagila_url, task_id, "--execution-mode", "single", "--single-step", "1") == 0
    with get_client(sync_client=True) as client:
        (fresh,) = snapshots(client, [client.read_flow_run(uuid.UUID(task(db, task_id)["prefect_flow_run_id"]))])
    read = fresh.flow_run.updated
    stale = RunSnapshot(fresh.flow_run.model_copy(update={
        "state": Running(), "state_type": StateType.RUNNING, "end_time": None, "updated": read - timedelta(seconds=5),
    }), fresh.task_runs)
    # its state is newer by its own timestamp (a skewed clock), older by the Prefect server's: it is stale
    with db:  # as the row was before either read: running, as read earlier than both
        store.update_task(db, task_id=task_id, status="in_progress", last_flow_run_state="Running",
                          prefect_updated_at=read - timedelta(seconds=10))

    def write_stale():
        with connection(mirror_db) as own, own:
            sync_flow_run(own, stale)

    with connection(mirror_db) as other:
        with other:  # the newer read writes first and holds the row until it commits
            sync_flow_run(other, fresh)
            writer = threading.Thread(target=write_stale)
            writer.start()
            writer.join(1.0)
            assert writer.is_alive(), "the stale write did not wait for the row"
        writer.join(30)
    row = task(db, task_id)
    assert (row["status"], row["last_flow_run_state"]) == ("partial_completed", "Completed")

    with db:  # alone, too, the stale read changes nothing
        sync_flow_run(db, stale)
    assert task(db, task_id)["status"] == "partial_completed"
