"""The tracking-table store against real PostgreSQL 15 and 18: every function's behaviour, the
ordering rules the Prefect mirror relies on, and the atomic run-slot claim."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import datetime, timedelta, timezone

import psycopg2
import pytest

from dp.database import connection, mask_url
from dp.task_ids import new_task_id
from service import store

T0 = datetime(2025, 6, 27, 14, 30, 52, tzinfo=timezone.utc)


def _sql(conn, query: str, args=()) -> None:
    """Test set-up the store deliberately cannot do (back-dating rows)."""
    with conn.cursor() as cur:
        cur.execute(query, args)


def _execution(conn, task_id, run_id, status, at, step="ddl_generation", **more):
    return store.upsert_execution(
        conn, task_id=task_id, step=step, prefect_task_run_id=run_id, status=status,
        state_timestamp=T0 + timedelta(seconds=at), **more,
    )


# --- tasks ------------------------------------------------------------------------------------


def test_created_task_comes_back_json_ready(conn, make_task):
    task = make_task("task_20250627_143052_a1b2")
    assert task == store.get_task(conn, task_id="task_20250627_143052_a1b2")
    assert json.loads(json.dumps(task, ensure_ascii=False)) == task
    assert task["status"] == "pending" and task["progress"] == 0
    assert task["parameters"]["business_context"] == "高速公路服务区管理"
    assert list(task["step_status"].items()) == [(step, "pending") for step in store.STEPS]
    assert datetime.fromisoformat(task["created_at"]).tzinfo is not None
    assert store.get_task(conn, task_id="task_20250627_143052_none") is None


def test_a_taken_task_id_is_a_clear_error_and_the_transaction_survives(conn, make_task):
    make_task("task_20250627_143052_dupe")
    with pytest.raises(store.TaskExistsError, match="already exists"):
        make_task("task_20250627_143052_dupe")
    assert store.get_task(conn, task_id="task_20250627_143052_dupe")["status"] == "pending"


@pytest.mark.parametrize("bad", ["../etc", "task/1", "", "t" * 41, "task 1", "-task"])
def test_task_ids_must_be_safe_directory_names(make_task, bad):
    with pytest.raises(ValueError, match="task id"):
        make_task(bad)


def test_the_schema_accepts_every_id_dp_task_ids_makes(make_task):
    assert make_task(new_task_id("task"))["id"].startswith("task_")
    assert make_task("manual-2025_x" + "9" * 27)["id"].endswith("9")


@pytest.mark.parametrize(
    "parameters",
    [
        {"db_connection": "postgresql://postgres:secret@db:5432/highway"},
        {"nested": {"urls": ["postgresql://u:pw@h/d"]}},
        {"db_connection": "host=db dbname=highway user=postgres password=secret"},
    ],
)
def test_a_readable_password_is_never_stored(conn, make_task, parameters):
    with pytest.raises(store.UnmaskedSecretError, match="password"):
        make_task(parameters=parameters)
    task = make_task(parameters={"db_connection": mask_url("postgresql://postgres:secret@db:5432/highway")})
    with pytest.raises(store.UnmaskedSecretError):
        store.update_task(conn, task_id=task["id"], parameters=parameters)
    with pytest.raises(store.UnmaskedSecretError):
        store.update_task(conn, task_id=task["id"], result={"echo": parameters})
    stored = store.get_task(conn, task_id=task["id"])["parameters"]
    assert stored == {"db_connection": "postgresql://postgres:***@db:5432/highway"}


def test_list_tasks_filters_sorts_and_counts(conn, make_task):
    specs = [
        ("pending", "api", "highway", 0),
        ("in_progress", "api", "highway", 1),
        ("completed", "manual", "highway", 2),
        ("failed", "api", "pagila", 3),
        ("partial_completed", "schedule", "pagila", 4),
        ("completed", "api", "pagila", 5),
        ("cancelled", "system", "chinook", 6),
    ]
    for index, (status, created_by, db_name, day) in enumerate(specs):
        task = make_task(f"task_2025062{day}_000000_{index:04d}", created_by=created_by, db_name=db_name, status=status)
        _sql(conn, "UPDATE data_pipeline_tasks SET created_at = %s WHERE id = %s",
             (T0 + timedelta(days=day), task["id"]))

    page, total = store.list_tasks(conn, limit=3)
    assert total == 7 and [t["id"][-4:] for t in page] == ["0006", "0005", "0004"]
    page, total = store.list_tasks(conn, limit=3, offset=6)
    assert total == 7 and [t["id"][-4:] for t in page] == ["0000"]
    page, total = store.list_tasks(conn, limit=3, offset=9)
    assert (page, total) == ([], 7)
    page, total = store.list_tasks(conn, sort="created_at", order="asc", limit=2)
    assert [t["id"][-4:] for t in page] == ["0000", "0001"]

    assert store.list_tasks(conn, status="completed")[1] == 2
    assert store.list_tasks(conn, status=["in_progress", "partial_completed"])[1] == 2
    assert store.list_tasks(conn, created_by="api")[1] == 4
    assert store.list_tasks(conn, db_name="pagila", status="completed")[1] == 1
    window, total = store.list_tasks(conn, created_from=T0 + timedelta(days=2), created_to=T0 + timedelta(days=4))
    assert total == 2 and {t["id"][-4:] for t in window} == {"0002", "0003"}
    assert store.list_tasks(conn, created_from=(T0 + timedelta(days=6)).isoformat())[1] == 1


@pytest.mark.parametrize(
    "bad",
    [
        {"sort": "created_at; DROP TABLE x"},
        {"order": "sideways"},
        {"status": "running"},
        {"limit": 0},
        {"limit": 5000},
        {"offset": -1},
        {"created_from": datetime(2025, 1, 1)},
    ],
)
def test_list_tasks_refuses_bad_arguments(conn, bad):
    with pytest.raises(ValueError):
        store.list_tasks(conn, **bad)


def test_update_task_sets_allow_listed_fields_only(conn, make_task):
    task = make_task()
    conn.commit()
    flow_run = uuid.uuid4()
    updated = store.update_task(
        conn, task_id=task["id"], status="failed", progress=40, current_step="qa_generation",
        error_message="LLM unreachable", error_step="qa_generation", result={"tables": 7},
        completed_at=T0, prefect_flow_run_id=flow_run, last_flow_run_state="Failed",
    )
    assert updated["status"] == "failed" and updated["progress"] == 40 and updated["result"] == {"tables": 7}
    assert updated["prefect_flow_run_id"] == str(flow_run)
    assert updated["completed_at"] == T0.isoformat()
    assert updated["updated_at"] > task["updated_at"]
    conn.commit()
    mirrored = store.update_task(conn, task_id=task["id"], mirrored_at="now")
    assert mirrored["mirrored_at"] is not None and mirrored["updated_at"] == updated["updated_at"]

    with pytest.raises(ValueError, match="cannot update id"):
        store.update_task(conn, task_id=task["id"], id="other")
    with pytest.raises(ValueError, match="status"):
        store.update_task(conn, task_id=task["id"], status="running")
    with pytest.raises(ValueError, match="progress"):
        store.update_task(conn, task_id=task["id"], progress=101)
    with pytest.raises(ValueError, match="current_step"):
        store.update_task(conn, task_id=task["id"], current_step="ddl_md_generation")
    with pytest.raises(ValueError, match="timezone"):
        store.update_task(conn, task_id=task["id"], started_at=datetime(2025, 1, 1))
    assert store.update_task(conn, task_id="task_20250627_143052_none", progress=1) is None
    assert store.update_task(conn, task_id=task["id"]) == store.get_task(conn, task_id=task["id"])


def test_step_status_takes_only_known_steps_and_statuses(conn, make_task):
    task = make_task()
    updated = store.set_step_status(conn, task_id=task["id"], step="sql_validation", status="skipped")
    assert updated["step_status"]["sql_validation"] == "skipped"
    assert updated["step_status"]["ddl_generation"] == "pending"
    with pytest.raises(ValueError, match="step"):
        store.set_step_status(conn, task_id=task["id"], step="ddl_md_generation", status="running")
    with pytest.raises(ValueError, match="status"):
        store.set_step_status(conn, task_id=task["id"], step="ddl_generation", status="done")
    assert store.set_step_status(conn, task_id="task_none", step="qa_generation", status="running") is None
    fresh = {step: "pending" for step in store.STEPS}
    assert store.update_task(conn, task_id=task["id"], step_status=fresh)["step_status"] == fresh
    with pytest.raises(ValueError, match="exactly"):
        store.update_task(conn, task_id=task["id"], step_status={"ddl_generation": "pending"})


def test_active_tasks_and_tasks_to_mirror(conn, make_task):
    queued = make_task(status="pending")
    store.update_task(conn, task_id=queued["id"], prefect_flow_run_id=uuid.uuid4())
    running = make_task(status="in_progress")
    store.update_task(conn, task_id=running["id"], prefect_flow_run_id=uuid.uuid4())
    make_task(status="pending")  # no flow run yet: holds no slot, nothing to mirror
    finished = make_task(status="completed")
    store.update_task(conn, task_id=finished["id"], prefect_flow_run_id=uuid.uuid4())
    claimed = make_task(status="in_progress")  # claimed, flow run not created yet

    assert {t["id"] for t in store.active_tasks(conn)} == {queued["id"], running["id"], claimed["id"]}
    assert store.task_ids_to_mirror(conn) == [queued["id"], running["id"]]


def test_claims_without_flow_run_finds_only_old_ones(conn, make_task):
    stuck, recent = make_task(status="in_progress"), make_task(status="in_progress")
    store.update_task(conn, task_id=stuck["id"], started_at=datetime.now(timezone.utc) - timedelta(minutes=10))
    store.update_task(conn, task_id=recent["id"], started_at="now")
    assert store.claims_without_flow_run(conn, older_than_seconds=300) == [stuck["id"]]


def test_writing_under_a_missing_task_says_so(conn):
    missing = "task_20250627_143052_none"
    writes = [
        lambda: _execution(conn, missing, uuid.uuid4(), "running", 0),
        lambda: store.insert_logs(conn, task_id=missing, logs=[{"message": "x", "log_level": "INFO"}]),
        lambda: store.upsert_outputs(conn, task_id=missing, files=[{"file_path": "a.ddl", "file_type": "ddl"}]),
    ]
    for write in writes:
        with pytest.raises(store.TaskNotFoundError, match=missing):
            write()
        conn.rollback()


# --- deleting ---------------------------------------------------------------------------------


def test_delete_task_cascades_to_everything(conn, make_task):
    task = make_task()
    run_id = uuid.uuid4()
    _execution(conn, task["id"], run_id, "completed", 1)
    store.insert_logs(conn, task_id=task["id"], logs=[{"message": "hi", "log_level": "INFO",
                                                       "prefect_task_run_id": run_id}])
    store.upsert_outputs(conn, task_id=task["id"], files=[{"file_path": "film.ddl", "file_type": "ddl"}])
    store.get_or_store_idempotency_key(conn, key="k1", request_hash="h", task_id=task["id"])

    assert store.delete_task(conn, task_id=task["id"]) is True
    with conn.cursor() as cur:
        for table in ("data_pipeline_task_executions", "data_pipeline_task_logs", "data_pipeline_task_outputs",
                      "data_pipeline_idempotency_keys"):
            cur.execute(f"SELECT count(*) FROM {table}")
            assert cur.fetchone()[0] == 0, table
    assert store.delete_task(conn, task_id=task["id"]) is False


def test_a_task_holding_a_run_slot_is_not_deleted(conn, make_task):
    task = make_task(status="in_progress")
    with pytest.raises(store.TaskActiveError, match="cancel"):
        store.delete_task(conn, task_id=task["id"])
    assert store.get_task(conn, task_id=task["id"]) is not None


def test_cleanup_deletes_only_old_finished_tasks(conn, make_task):
    old = datetime.now(timezone.utc) - timedelta(days=45)
    doomed = set()
    for status in ("completed", "failed", "cancelled", "pending", "in_progress", "partial_completed"):
        task = make_task(status=status)
        _sql(conn, "UPDATE data_pipeline_tasks SET created_at = %s, completed_at = %s WHERE id = %s",
             (old, old if status in ("completed", "failed", "cancelled") else None, task["id"]))
        if status in ("completed", "failed", "cancelled"):
            doomed.add(task["id"])
    make_task(status="completed")  # recent
    rerun = make_task(status="completed")  # created long ago, finished yesterday
    _sql(conn, "UPDATE data_pipeline_tasks SET created_at = %s, completed_at = now() - interval '1 day' WHERE id = %s",
         (old, rerun["id"]))

    with conn.cursor() as cur:
        cur.execute("SAVEPOINT s")
        cur.execute("SELECT cleanup_old_data_pipeline_tasks(30)")
        assert cur.fetchone()[0] == 3
        cur.execute("ROLLBACK TO SAVEPOINT s")
    deleted = store.cleanup_old_tasks(conn, days=30)
    assert {row["task_id"] for row in deleted} == doomed
    assert all(row["output_directory"].endswith(row["task_id"]) for row in deleted)
    assert store.list_tasks(conn)[1] == 5
    with pytest.raises(ValueError):
        store.cleanup_old_tasks(conn, days=-1)


# --- step runs --------------------------------------------------------------------------------


def test_execution_is_keyed_by_task_run_and_never_regresses(conn, make_task):
    task = make_task()
    run_id, flow_run = uuid.uuid4(), uuid.uuid4()
    first = _execution(conn, task["id"], run_id, "running", 0, started_at=T0, prefect_flow_run_id=flow_run)
    assert first["execution_id"] == f"{task['id']}_ddl_generation_{run_id.hex[-8:]}"
    assert first["status"] == "running" and first["duration_seconds"] is None

    done = _execution(conn, task["id"], run_id, "completed", 90, completed_at=T0 + timedelta(seconds=90.5),
                      execution_result={"tables": 14}, state_name="Completed")
    assert done["id"] == first["id"] and done["status"] == "completed"
    assert done["duration_seconds"] == 90.5 and done["started_at"] == T0.isoformat()
    assert done["prefect_flow_run_id"] == str(flow_run)

    late_running = _execution(conn, task["id"], run_id, "running", 120)  # newer stamp, still not allowed back
    older_failure = _execution(conn, task["id"], run_id, "failed", 60, error_message="stale")
    assert late_running == done and older_failure == done
    remirrored = _execution(conn, task["id"], run_id, "completed", 90, completed_at=T0 + timedelta(seconds=90.5),
                            execution_result={"tables": 14}, state_name="Completed")
    assert remirrored == done
    assert len(store.list_executions(conn, task_id=task["id"])) == 1


def test_an_older_running_state_does_not_overwrite_a_newer_one(conn, make_task):
    task = make_task()
    run_id = uuid.uuid4()
    _execution(conn, task["id"], run_id, "running", 10, state_name="Retrying")
    assert _execution(conn, task["id"], run_id, "pending", 5, state_name="Pending")["state_name"] == "Retrying"


def test_crashed_is_stored_as_failed_with_prefects_word_kept(conn, make_task):
    task = make_task()
    row = _execution(conn, task["id"], uuid.uuid4(), "crashed", 1, state_name="Crashed", step="qa_generation")
    assert row["status"] == "failed" and row["state_name"] == "Crashed" and "crashed" in row["error_message"]


def test_execution_arguments_are_checked(conn, make_task):
    task = make_task()
    with pytest.raises(ValueError, match="step"):
        _execution(conn, task["id"], uuid.uuid4(), "running", 0, step="complete")
    with pytest.raises(ValueError, match="status"):
        _execution(conn, task["id"], uuid.uuid4(), "Running", 0)
    with pytest.raises(ValueError, match="timezone"):
        store.upsert_execution(conn, task_id=task["id"], step="ddl_generation", prefect_task_run_id=uuid.uuid4(),
                               status="running", state_timestamp=datetime(2025, 1, 1))


def test_close_running_executions_leaves_no_step_running(conn, make_task):
    task = make_task(status="in_progress")
    ddl, qa, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    _execution(conn, task["id"], ddl, "completed", 5, step="ddl_generation")
    _execution(conn, task["id"], qa, "running", 6, step="qa_generation")
    _execution(conn, task["id"], other, "pending", 7, step="sql_validation")
    store.set_step_status(conn, task_id=task["id"], step="ddl_generation", status="completed")
    store.set_step_status(conn, task_id=task["id"], step="qa_generation", status="running")

    assert store.close_running_executions(conn, task_id=task["id"], status="crashed", error_message="worker died") == 2
    rows = {row["execution_step"]: row for row in store.list_executions(conn, task_id=task["id"])}
    assert rows["ddl_generation"]["status"] == "completed" and rows["ddl_generation"]["error_message"] is None
    assert rows["qa_generation"]["status"] == "failed" and rows["qa_generation"]["error_message"] == "worker died"
    assert rows["qa_generation"]["completed_at"] is not None
    assert rows["sql_validation"]["status"] == "failed"
    steps = store.get_task(conn, task_id=task["id"])["step_status"]
    assert steps == {"ddl_generation": "completed", "qa_generation": "failed", "sql_validation": "pending",
                     "training_load": "pending"}
    assert store.close_running_executions(conn, task_id=task["id"], status="cancelled") == 0

    # Prefect later reports what really happened: a newer finished state wins, a late running does not.
    assert _execution(conn, task["id"], qa, "running", 8, step="qa_generation")["status"] == "failed"
    assert _execution(conn, task["id"], qa, "completed", 9, step="qa_generation")["status"] == "completed"


# --- logs -------------------------------------------------------------------------------------


def _prefect_logs(n, run_id=None, start=0):
    levels = ["DEBUG", "INFO", "WARNING", "ERROR"]
    return [
        {
            "prefect_log_id": uuid.uuid5(uuid.NAMESPACE_OID, f"log{i}"),
            "log_level": levels[i % 4],
            "message": f"table {i} done",
            "timestamp": T0 + timedelta(seconds=i),
            "module_name": "steps.ddl_generation.step",
            "prefect_task_run_id": run_id,
        }
        for i in range(start, start + n)
    ]


def test_a_prefect_log_is_stored_once(conn, make_task):
    task = make_task()
    logs = _prefect_logs(5)
    assert store.insert_logs(conn, task_id=task["id"], logs=logs) == 5
    assert store.insert_logs(conn, task_id=task["id"], logs=logs) == 0
    assert store.insert_logs(conn, task_id=task["id"], logs=logs[:1] + _prefect_logs(1, start=5) * 2) == 1
    assert len(store.list_logs(conn, task_id=task["id"])) == 6
    unsourced = [{"log_level": "ERROR", "message": "marked failed by the mirror"}]
    assert store.insert_logs(conn, task_id=task["id"], logs=unsourced * 2) == 2  # no Prefect id: not deduplicated
    assert store.insert_logs(conn, task_id=task["id"], logs=[]) == 0


def test_list_logs_pages_by_id_and_filters(conn, make_task):
    task = make_task()
    run_id = uuid.uuid4()
    _execution(conn, task["id"], run_id, "running", 0)
    store.insert_logs(conn, task_id=task["id"], logs=_prefect_logs(25, run_id) + _prefect_logs(4, None, start=25))

    seen, after = [], None
    while page := store.list_logs(conn, task_id=task["id"], after=after, limit=10):
        seen += [row["message"] for row in page]
        after = page[-1]["id"]
    assert seen == [f"table {i} done" for i in range(29)]
    newest = store.list_logs(conn, task_id=task["id"], order="desc", limit=3)
    assert [row["message"] for row in newest] == ["table 28 done", "table 27 done", "table 26 done"]
    older = store.list_logs(conn, task_id=task["id"], order="desc", after=newest[-1]["id"], limit=2)
    assert [row["message"] for row in older] == ["table 25 done", "table 24 done"]

    warnings_up = store.list_logs(conn, task_id=task["id"], level="warning", limit=100)
    assert {row["log_level"] for row in warnings_up} == {"WARNING", "ERROR"} and len(warnings_up) == 14
    in_step = store.list_logs(conn, task_id=task["id"], step="ddl_generation", limit=100)
    assert len(in_step) == 25 and all(row["execution_id"] for row in in_step)
    assert store.list_logs(conn, task_id="task_20250627_143052_none") == []
    with pytest.raises(ValueError):
        store.list_logs(conn, task_id=task["id"], step="ddl_md_generation")


def test_logs_arriving_before_their_step_run_are_linked_later(conn, make_task):
    task = make_task()
    run_id = uuid.uuid4()
    store.insert_logs(conn, task_id=task["id"], logs=_prefect_logs(3, run_id))
    assert all(row["step_name"] is None for row in store.list_logs(conn, task_id=task["id"]))
    execution = _execution(conn, task["id"], run_id, "running", 0, step="sql_validation")
    rows = store.list_logs(conn, task_id=task["id"])
    assert {(row["execution_id"], row["step_name"]) for row in rows} == {(execution["execution_id"], "sql_validation")}


def test_log_entries_are_checked(conn, make_task):
    task = make_task()
    with pytest.raises(ValueError, match="unknown keys"):
        store.insert_logs(conn, task_id=task["id"], logs=[{"message": "x", "log_level": "INFO", "logger": "a"}])
    with pytest.raises(ValueError, match="log_level"):
        store.insert_logs(conn, task_id=task["id"], logs=[{"message": "x", "log_level": "LOUD"}])
    assert store.insert_logs(conn, task_id=task["id"], logs=[{"message": "x", "log_level": 30}]) == 1
    assert store.list_logs(conn, task_id=task["id"])[0]["log_level"] == "WARNING"


# --- output files -----------------------------------------------------------------------------


def test_outputs_follow_the_latest_scan(conn, make_task):
    task = make_task()
    digest = "ab" * 32
    first = [
        {"file_path": "film.ddl", "file_type": "ddl", "file_size": 120, "content_hash": digest},
        {"file_path": "film_detail.md", "file_type": "md", "file_size": 300},
        {"file_path": "qs_pagila_pair.json", "file_type": "json", "is_primary": True, "description": "pairs"},
    ]
    assert store.upsert_outputs(conn, task_id=task["id"], files=first) == {"upserted": 3, "removed": 0}
    listed = store.list_outputs(conn, task_id=task["id"])
    assert [row["file_path"] for row in listed] == ["qs_pagila_pair.json", "film.ddl", "film_detail.md"]
    assert listed[1]["file_name"] == "film.ddl" and listed[1]["content_hash"] == digest
    conn.commit()

    second = [
        {"file_path": "film.ddl", "file_type": "ddl", "file_size": 150, "modified_at": T0},
        {"file_path": "reports/validation.json", "file_type": "json"},
    ]
    assert store.upsert_outputs(conn, task_id=task["id"], files=second) == {"upserted": 2, "removed": 2}
    film = store.get_output(conn, task_id=task["id"], file_path="film.ddl")
    assert film["file_size"] == 150 and film["modified_at"] == T0.isoformat()
    assert film["created_at"] == listed[1]["created_at"] and film["id"] == listed[1]["id"]
    assert store.get_output(conn, task_id=task["id"], file_path="film_detail.md") is None
    report = store.get_output(conn, task_id=task["id"], file_path="reports/validation.json")
    assert report["file_name"] == "validation.json"
    assert store.upsert_outputs(conn, task_id=task["id"], files=[]) == {"upserted": 0, "removed": 2}


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"file_path": "../secret", "file_type": "x"}, "relative"),
        ({"file_path": "/etc/passwd", "file_type": "x"}, "relative"),
        ({"file_path": "a\\b", "file_type": "x"}, "relative"),
        ({"file_path": "a.ddl", "file_type": "ddl", "content_hash": "XYZ"}, "sha256"),
        ({"file_path": "a.ddl"}, "file_type"),
        ({"file_path": "a.ddl", "file_type": "ddl", "size": 3}, "unknown keys"),
    ],
)
def test_output_entries_are_checked(conn, make_task, entry, message):
    task = make_task()
    with pytest.raises(ValueError, match=message):
        store.upsert_outputs(conn, task_id=task["id"], files=[entry])


# --- idempotency keys -------------------------------------------------------------------------


def test_idempotency_key_returns_the_first_task(conn, make_task):
    task = make_task()
    assert store.get_or_store_idempotency_key(conn, key="k-1", request_hash="h1", task_id=task["id"]) is None
    assert store.get_or_store_idempotency_key(conn, key="k-1", request_hash="h1", task_id="task_x") == task["id"]
    with pytest.raises(store.IdempotencyConflictError, match="different request"):
        store.get_or_store_idempotency_key(conn, key="k-1", request_hash="h2", task_id="task_x")


def test_idempotency_key_may_precede_its_task_in_a_transaction(conn, make_task):
    late = "task_20250627_143052_late"
    assert store.get_or_store_idempotency_key(conn, key="k-2", request_hash="h", task_id=late) is None
    make_task(late)
    conn.commit()
    store.get_or_store_idempotency_key(conn, key="k-3", request_hash="h", task_id="task_20250627_143052_never")
    with pytest.raises(psycopg2.errors.ForeignKeyViolation):
        conn.commit()


# --- run slots --------------------------------------------------------------------------------


def test_claim_run_slot_counts_running_and_queued_tasks(conn, make_task):
    a, b, c = make_task(), make_task(), make_task()
    assert store.claim_run_slot(conn, task_id=a["id"], limit=1) is True
    claimed = store.get_task(conn, task_id=a["id"])
    assert claimed["status"] == "in_progress" and claimed["started_at"] is not None
    assert store.claim_run_slot(conn, task_id=b["id"], limit=1) is False
    assert store.claim_run_slot(conn, task_id=a["id"], limit=5) is False  # already running
    assert store.claim_run_slot(conn, task_id=b["id"], limit=2) is True

    store.update_task(conn, task_id=a["id"], status="failed", error_message="boom", completed_at="now")
    store.update_task(conn, task_id=c["id"], prefect_flow_run_id=uuid.uuid4())  # queued in Prefect
    assert store.claim_run_slot(conn, task_id=a["id"], limit=2) is False  # b runs, c is queued
    store.update_task(conn, task_id=b["id"], status="completed")
    assert store.claim_run_slot(conn, task_id=c["id"], limit=1) is True  # c itself does not count
    assert store.claim_run_slot(conn, task_id=a["id"], limit=2) is True  # a re-run starts clean
    again = store.get_task(conn, task_id=a["id"])
    assert again["error_message"] is None and again["completed_at"] is None

    with pytest.raises(store.TaskNotFoundError):
        store.claim_run_slot(conn, task_id="task_20250627_143052_none", limit=1)


def test_claim_run_slot_needs_a_read_committed_transaction(conn, make_task):
    task = make_task()
    conn.commit()
    conn.autocommit = True
    with pytest.raises(ValueError, match="transaction"):
        store.claim_run_slot(conn, task_id=task["id"], limit=1)
    conn.autocommit = False
    conn.set_session(isolation_level="REPEATABLE READ")
    with pytest.raises(ValueError, match="READ COMMITTED"):
        store.claim_run_slot(conn, task_id=task["id"], limit=1)


def test_fifty_concurrent_claims_with_limit_one_let_exactly_one_through(conn, make_task, service_db_url):
    tasks = [make_task()["id"] for _ in range(50)]
    conn.commit()
    barrier = threading.Barrier(len(tasks))
    results, errors = [], []

    def claim(task_id):
        try:
            with connection(service_db_url) as own:
                barrier.wait()
                with own:
                    results.append(store.claim_run_slot(own, task_id=task_id, limit=1))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=claim, args=(task_id,)) for task_id in tasks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(results) == [False] * 49 + [True]
    assert len(store.active_tasks(conn)) == 1
