"""Task routes on the real app (service database, Prefect stack): creation and its checks, table
lists, listing, details, starting runs and refusing them in the wrong state, cancel and delete."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta, timezone
from uuid import UUID

import pytest

from dp.task_dir import TABLE_LIST_NAME
from service import store
from service.api.runs import PrefectRuns
from tests.service.api.conftest import PASSWORD, secret_exists, with_password


def _params(url: str, **more) -> dict:
    return {"parameters": {"db_connection": with_password(url), "business_context": "DVD rental store", **more}}


def _pending(client, url: str) -> str:
    reply = client.post("/tasks", json=_params(url))
    assert reply.status_code == 201, reply.json()
    return reply.json()["data"]["task_id"]


# --- creation -----------------------------------------------------------------------------------


def test_pending_task_waits_for_its_table_list(client, pagila_url, output_root):
    reply = client.post("/tasks", json=_params(pagila_url))
    assert reply.status_code == 201
    body = reply.json()
    assert body["success"] and body["code"] == 201
    data = body["data"]
    assert data["status"] == "pending" and data["flow_run_id"] is None and "table-list" in data["next_step"]
    assert data["task_id"].startswith("task_") and len(data["task_id"]) == len("task_20250101_120000_abcd")
    assert data["output_directory"] == str(output_root / data["task_id"])
    assert (output_root / data["task_id"]).is_dir()
    assert secret_exists(data["task_id"], wait=30)
    detail = client.get(f"/tasks/{data['task_id']}").json()["data"]
    assert detail["parameters"]["db_connection"].endswith(":***@127.0.0.1:5432/dp_sample_pagila")
    assert detail["db_name"] == "dp_sample_pagila"
    assert PASSWORD not in reply.text + str(detail)


def test_every_problem_is_reported_at_once(client):
    reply = client.post("/tasks", json={"parameters": {"db_connection": "mysql://u:p@h/db", "tables": ["ok", "bad name!"],
                                                       "execution_mode": "single"}})
    assert reply.status_code == 400
    data = reply.json()["data"]
    assert data["missing_params"] == ["parameters.business_context"]
    reply = client.post("/tasks", json={"parameters": {"db_connection": "mysql://u:p@h/db", "business_context": "x",
                                                       "tables": ["ok", "bad name!"], "execution_mode": "single"}})
    assert reply.status_code == 400
    invalid = reply.json()["data"]["invalid_params"]
    assert "postgresql://" in invalid["parameters.db_connection"]
    assert "single step" in invalid["parameters.single_step"]
    assert "line 2" in invalid["parameters.tables"]


@pytest.mark.parametrize("parameters, field", [
    ({"execution_mode": "complete", "single_step": 2}, "parameters.single_step"),
    ({"execution_mode": "single", "single_step": 7}, "parameters.single_step"),
    ({"execution_mode": "single", "single_step": "sql_validation"}, "parameters.single_step"),  # nothing to validate yet
    ({"execution_mode": "sometimes"}, "parameters.execution_mode"),
    ({"tables": ["film"], "table_list_file": "x.txt"}, "parameters.tables"),
    ({"tables": []}, "parameters.tables"),
    ({"table_list_file": "tables.txt"}, "parameters.table_list_file"),  # DP_ALLOWED_INPUT_DIRS is empty
    ({"output_dir": "/etc"}, "parameters.output_dir"),
    ({"output_dir": "../../escape"}, "parameters.output_dir"),
    ({"skip_validaton": True}, "parameters.skip_validaton"),  # misspelt option: named, not ignored
    ({"skip_validation": "perhaps"}, "parameters.skip_validation"),
    ({"single_step": 1.5, "execution_mode": "single"}, "parameters.single_step"),
])
def test_bad_parameters_answer_400_naming_them(client, pagila_url, output_root, parameters, field):
    reply = client.post("/tasks", json=_params(pagila_url, **parameters))
    assert reply.status_code == 400, reply.json()
    assert field in reply.json()["data"]["invalid_params"]
    assert not list(output_root.iterdir())


@pytest.mark.parametrize("body", [None, "not json", [], {"parameters": "x"}, {"task_type": "other", "parameters": {}}])
def test_malformed_bodies_answer_400(client, body):
    reply = client.post("/tasks", content=body if isinstance(body, str) else None,
                        json=None if isinstance(body, str) else body,
                        headers={"content-type": "application/json"})
    assert reply.status_code == 400
    data = reply.json()["data"]
    assert data["missing_params"] or data["invalid_params"]


def test_missing_connection_is_named(client):
    reply = client.post("/tasks", json={"parameters": {"business_context": "x"}})
    assert reply.status_code == 400
    assert reply.json()["data"]["missing_params"] == ["parameters.db_connection"]


def test_oversized_table_list_answers_413(make_client, pagila_url):
    client = make_client(max_table_list_bytes=100)
    reply = client.post("/tasks", json=_params(pagila_url, tables=[f"table_{i}" for i in range(50)]))
    assert reply.status_code == 413
    assert reply.json()["data"]["limit_bytes"] == 100


def test_idempotency_key_answers_the_first_task(client, pagila_url, api_conn):
    headers = {"Idempotency-Key": "create-once-1"}
    first = client.post("/tasks", json=_params(pagila_url), headers=headers).json()["data"]
    again = client.post("/tasks", json=_params(pagila_url), headers=headers).json()["data"]
    assert again["task_id"] == first["task_id"] and again["idempotent_replay"] and not first["idempotent_replay"]
    with api_conn:
        assert store.list_tasks(api_conn)[1] == 1
    other = client.post("/tasks", json=_params(pagila_url, business_context="else"), headers=headers)
    assert other.status_code == 409 and "different request" in other.json()["message"]


# --- table lists --------------------------------------------------------------------------------


def test_table_list_as_json_and_as_upload(client, pagila_url, output_root):
    task_id = _pending(client, pagila_url)
    info = client.get(f"/tasks/{task_id}/table-list-info").json()["data"]
    assert info["has_file"] is False
    reply = client.post(f"/tasks/{task_id}/table-list", json={"tables": ["film", "public.actor", "film"]})
    assert reply.status_code == 200 and reply.json()["data"]["table_count"] == 2
    assert (output_root / task_id / TABLE_LIST_NAME).read_text() == "public.film\npublic.actor\n"
    upload = "# pagila\nlanguage, category\n".encode()
    reply = client.post(f"/tasks/{task_id}/table-list", files={"file": ("tables.txt", io.BytesIO(upload), "text/plain")})
    assert reply.status_code == 200, reply.json()
    info = client.get(f"/tasks/{task_id}/table-list-info").json()["data"]
    assert info["has_file"] and info["tables"] == ["language", "category"] and info["table_count"] == 2
    assert (output_root / task_id / TABLE_LIST_NAME).read_bytes() == upload


def test_bad_table_lists_are_refused_and_the_old_one_kept(make_client, pagila_url, output_root):
    client = make_client(max_table_list_bytes=64)
    task_id = _pending(client, pagila_url)
    assert client.post(f"/tasks/{task_id}/table-list", json={"tables": "film"}).status_code == 200
    path = f"/tasks/{task_id}/table-list"
    assert client.post(path, json={"tables": ["a.b.c.d"]}).status_code == 400
    assert client.post(path, json={"tabels": ["film"]}).json()["data"]["invalid_params"]
    assert client.post(path, content=b"{", headers={"content-type": "application/json"}).status_code == 400
    assert client.post(path, content=b"film", headers={"content-type": "text/plain"}).status_code == 400
    assert client.post(path, files={"file": ("t.txt", b"\xff\xfe bad", "text/plain")}).status_code == 400
    assert client.post(path, files={"other": ("t.txt", b"film", "text/plain")}).json()["data"]["missing_params"] == ["file"]
    assert client.post(path, files={"file": ("t.txt", b"film\n" * 40, "text/plain")}).status_code == 413
    assert client.post(path, json={"tables": ["film"] * 40}).status_code == 413
    assert (output_root / task_id / TABLE_LIST_NAME).read_text() == "film"
    assert client.post("/tasks/task_20000101_000000_0000/table-list", json={"tables": ["film"]}).status_code == 404


# --- listing and details ------------------------------------------------------------------------


def test_list_filters_sorts_and_pages(client, api_conn, make_task_row):
    for i in range(5):
        make_task_row(f"task_20250101_00000{i}_aaaa", db_name="pagila" if i % 2 else "chinook",
                      status="completed" if i < 3 else "failed", created_by="manual" if i == 4 else "api")
    page = client.get("/tasks", params={"page_size": 2, "sort": "id", "order": "asc"}).json()["data"]
    assert [t["task_id"] for t in page["tasks"]] == ["task_20250101_000000_aaaa", "task_20250101_000001_aaaa"]
    assert page["total"] == 5 and page["pagination"] == {"page": 1, "page_size": 2, "total": 5, "total_pages": 3,
                                                          "has_next": True, "has_prev": False}
    last = client.get("/tasks", params={"page_size": 2, "page": 3, "sort": "id"}).json()["data"]
    assert len(last["tasks"]) == 1 and not last["pagination"]["has_next"]
    assert client.get("/tasks", params={"status": "failed"}).json()["data"]["total"] == 2
    assert client.get("/tasks", params=[("status", "failed"), ("status", "completed")]).json()["data"]["total"] == 5
    assert client.get("/tasks", params={"db_name": "pagila"}).json()["data"]["total"] == 2
    assert client.get("/tasks", params={"created_by": "manual"}).json()["data"]["total"] == 1
    now = datetime.now(timezone.utc)
    assert client.get("/tasks", params={"created_from": (now - timedelta(hours=1)).isoformat(),
                                        "created_to": (now + timedelta(hours=1)).isoformat()}).json()["data"]["total"] == 5
    assert client.get("/tasks", params={"created_to": "2001-01-01T00:00:00"}).json()["data"]["total"] == 0


@pytest.mark.parametrize("query", [{"status": "running"}, {"sort": "password"}, {"page": 0}, {"page_size": 101},
                                   {"created_from": "yesterday"}, {"order": "up"}, {"created_by": "root"}])
def test_bad_list_queries_answer_400(client, query):
    reply = client.get("/tasks", params=query)
    assert reply.status_code == 400 and reply.json()["data"]["invalid_params"]


@pytest.mark.parametrize("path, query, unknown", [
    ("/tasks", {"sort_by": "created_at", "page": 1}, ["sort_by"]),  # the original system's name for sort
    ("/tasks", {"limit": 5, "offset": 10}, ["limit", "offset"]),
    ("/tasks/active", {"page": 2}, ["page"]),
    ("/health", {"verbose": 1}, ["verbose"]),
])
def test_unknown_query_parameters_answer_400_naming_them(client, path, query, unknown):
    reply = client.get(path, params=query)
    assert reply.status_code == 400, reply.text
    body = reply.json()
    assert sorted(body["data"]["invalid_params"]) == unknown
    assert all(name in body["message"] for name in unknown)
    if path == "/tasks":
        assert "page_size" in body["message"]  # names what the route does take


def test_a_cache_buster_query_parameter_is_ignored(client, make_task_row):
    task_id = "task_20261204_120000_cafe"
    make_task_row(task_id)
    assert client.get("/tasks", params={"_": "1733300000000"}).status_code == 200
    assert client.get(f"/tasks/{task_id}", params={"_": "1"}).status_code == 200
    assert client.get(f"/tasks/{task_id}/logs", params={"_": "1", "limit": 5}).status_code == 200
    assert client.get(f"/tasks/{task_id}/logs", params={"page_size": 5}).json()["data"]["invalid_params"] == {
        "page_size": "not a query parameter of this route (it takes after, level, limit, order, step)"}


def test_detail_masks_secrets_and_lists_steps(client, api_conn, make_task_row):
    make_task_row("task_20250101_000000_beef", status="failed",
                  error_message="connect to postgresql://bob:hunter2@db/x failed", error_step="ddl_generation")
    detail = client.get("/tasks/task_20250101_000000_beef").json()["data"]
    assert "hunter2" not in str(detail) and "bob:***@db" in detail["error_message"]
    assert [s["step"] for s in detail["step_details"]] == ["ddl_generation", "qa_generation", "sql_validation",
                                                           "training_load"]
    assert client.get("/tasks/task_20991231_000000_none").status_code == 404


def test_active_tasks(client, make_task_row):
    make_task_row("task_20250101_000000_0001", status="in_progress")
    make_task_row("task_20250101_000000_0002", status="completed")
    data = client.get("/tasks/active").json()["data"]
    assert [t["task_id"] for t in data["tasks"]] == ["task_20250101_000000_0001"] and data["limit"] == 1


def _event_stream_lines(client, task_id: str, timeout: float) -> list[str]:
    with client.stream("GET", f"/tasks/{task_id}/events", params={"timeout": timeout}) as reply:
        return list(reply.iter_lines())


def test_a_quiet_events_stream_sends_keep_alive_comments(make_client, pagila_url):
    client = make_client(api_events_poll=0.05, api_events_keepalive=0.2)
    task_id = _pending(client, pagila_url)  # waits for its table list: nothing happens
    lines = _event_stream_lines(client, task_id, timeout=1.5)
    assert [line for line in lines if line.startswith("event: ")] == ["event: status", "event: end"]
    assert ": keep-alive" in lines, lines
    patient = make_client(api_events_poll=0.05, api_events_keepalive=3600)
    assert ": keep-alive" not in _event_stream_lines(patient, task_id, timeout=0.5)


# --- running in the wrong state -----------------------------------------------------------------


def test_execute_needs_a_table_list_and_consistent_options(client, pagila_url):
    task_id = _pending(client, pagila_url)
    reply = client.post(f"/tasks/{task_id}/execute")
    assert reply.status_code == 409 and "table list" in reply.json()["message"]
    reply = client.post(f"/tasks/{task_id}/execute", json={"execution_mode": "single"})
    assert reply.status_code == 400 and "single step" in reply.json()["data"]["invalid_params"]["single_step"]
    reply = client.post(f"/tasks/{task_id}/execute", json={"from_step": 9})
    assert reply.status_code == 400 and "use 1-4" in reply.json()["data"]["invalid_params"]["from_step"]
    assert client.post("/tasks/task_20991231_000000_none/execute").status_code == 404


def test_execute_refused_while_every_slot_is_taken(client, pagila_url, make_task_row):
    make_task_row("task_20250101_000000_busy", status="in_progress")
    task_id = _pending(client, pagila_url)
    client.post(f"/tasks/{task_id}/table-list", json={"tables": ["language"]})
    reply = client.post(f"/tasks/{task_id}/execute")
    assert reply.status_code == 409
    assert reply.json()["data"]["active_tasks"] == ["task_20250101_000000_busy"]
    reply = client.post("/tasks", json=_params(pagila_url, tables=["language"]))
    assert reply.status_code == 409  # with a table list a new task needs a slot too: nothing is created
    assert client.get("/tasks").json()["data"]["total"] == 2


def test_cancel_pending_and_finished_tasks(client, pagila_url, make_task_row):
    task_id = _pending(client, pagila_url)
    reply = client.post(f"/tasks/{task_id}/cancel")
    assert reply.status_code == 202 and reply.json()["data"]["status"] == "cancelled"
    assert client.post(f"/tasks/{task_id}/cancel").status_code == 409
    make_task_row("task_20250101_000000_done", status="completed")
    assert client.post("/tasks/task_20250101_000000_done/cancel").status_code == 409
    assert client.post("/tasks/task_20991231_000000_none/cancel").status_code == 404


# --- deleting -----------------------------------------------------------------------------------


def test_delete_removes_files_rows_and_secret(client, pagila_url, output_root):
    task_id = _pending(client, pagila_url)
    client.post(f"/tasks/{task_id}/table-list", json={"tables": ["film"]})
    assert secret_exists(task_id, wait=30)
    data = client.delete(f"/tasks/{task_id}").json()["data"]
    assert data["records_deleted"] and data["directory_removed"] and data["secret_removed"] and data["files_removed"] == 1
    assert not (output_root / task_id).exists() and not secret_exists(task_id)
    assert client.get(f"/tasks/{task_id}").status_code == 404
    assert client.delete(f"/tasks/{task_id}").status_code == 404


def test_delete_removes_every_flow_run_of_the_task_also_one_that_never_started(client, pagila_url):
    """The flow names its run after the task only once it starts; a run that never did (a schedule's
    run, one cancelled while queued) keeps another name, and left behind it would bring the task back."""
    from prefect.states import Cancelled, Scheduled

    task_id = _pending(client, pagila_url)
    client.post(f"/tasks/{task_id}/table-list", json={"tables": ["language"]})
    assert secret_exists(task_id, wait=30)
    started = client.post(f"/tasks/{task_id}/execute").json()["data"]["flow_run_id"]
    assert client.post(f"/tasks/{task_id}/cancel").status_code == 202
    with PrefectRuns.connect() as runs:
        first = runs.client.read_flow_run(UUID(started))
        unnamed = [runs.client.create_flow_run_from_deployment(  # as a schedule makes them: not named, for later
            first.deployment_id, parameters=first.parameters,
            state=Scheduled(scheduled_time=datetime.now(timezone.utc) + timedelta(hours=1))) for _ in range(2)]
        runs.client.set_flow_run_state(unnamed[1].id, Cancelled())  # cancelled while queued: Prefect sets its start time
        assert runs.client.read_flow_run(unnamed[1].id).start_time is not None
    assert all(run.name != task_id for run in unnamed)
    data = client.delete(f"/tasks/{task_id}").json()["data"]
    assert data["records_deleted"] and data["flow_runs_removed"] == 3
    with PrefectRuns.connect() as runs:
        assert [runs.state(run_id) for run_id in (started, *(str(run.id) for run in unnamed))] == [None] * 3


def test_delete_files_only_keeps_the_task(client, pagila_url, output_root):
    task_id = _pending(client, pagila_url)
    client.post(f"/tasks/{task_id}/table-list", json={"tables": ["film"]})
    data = client.delete(f"/tasks/{task_id}", params={"files_only": True}).json()["data"]
    assert data["directory_removed"] and not data["records_deleted"]
    assert not (output_root / task_id).exists() and secret_exists(task_id, wait=30)
    assert client.get(f"/tasks/{task_id}/table-list-info").json()["data"]["has_file"] is False
    assert client.get(f"/tasks/{task_id}/files").json()["data"] == {
        "task_id": task_id, "directory_exists": False, "files": [], "total_files": 0, "total_size": 0}


def test_text_postgresql_cannot_hold_is_refused(client, pagila_url):
    for value in ("nul\x00byte", "lone \ud800 surrogate"):
        body = json.dumps(_params(pagila_url, business_context=value))  # ASCII: the surrogate as \\ud800
        reply = client.post("/tasks", content=body, headers={"content-type": "application/json"})
        assert reply.status_code == 400 and "parameters.business_context" in reply.json()["data"]["invalid_params"]
    assert client.get("/tasks", params={"db_name": "a\x00b"}).status_code == 400


def test_a_claim_never_started_is_failed_when_the_service_starts(make_task_row, make_client, api_conn):
    make_task_row("task_20250101_000000_lost", status="in_progress",
                  started_at=datetime.now(timezone.utc) - timedelta(hours=1))
    make_task_row("task_20250101_000000_new1", status="in_progress")  # another process may be starting it
    client = make_client()
    assert client.get("/tasks/task_20250101_000000_lost").json()["data"]["status"] == "failed"
    assert client.get("/tasks/task_20250101_000000_new1").json()["data"]["status"] == "in_progress"


def test_execute_starts_one_step_or_from_a_step(client, pagila_url):
    task_id = _pending(client, pagila_url)
    client.post(f"/tasks/{task_id}/table-list", json={"tables": ["language"]})
    assert secret_exists(task_id, wait=30)
    reply = client.post(f"/tasks/{task_id}/execute", json={"execution_mode": "single", "single_step": 1})
    assert reply.status_code == 202, reply.json()
    data = reply.json()["data"]
    assert data["steps"] == ["ddl_generation"] and data["status"] == "in_progress" and data["flow_run_id"]
    with PrefectRuns.connect() as runs:
        parameters = runs.client.read_flow_run(UUID(data["flow_run_id"])).parameters
    assert parameters["connection"] == f"secret:dp-task-{task_id.lower().replace('_', '-')}"
    assert parameters["execution_mode"] == "single" and parameters["single_step"] == "1"
    assert PASSWORD not in json.dumps(parameters)
    assert client.post(f"/tasks/{task_id}/execute").status_code == 409  # it is running already
    assert client.post(f"/tasks/{task_id}/cancel").json()["data"]["status"] == "cancelled"
    reply = client.post(f"/tasks/{task_id}/execute", json={"from_step": "qa_generation", "skip_training_load": True})
    assert reply.status_code == 202, reply.json()
    assert reply.json()["data"]["steps"] == ["qa_generation", "sql_validation"]
    assert reply.json()["data"]["skipped_steps"] == ["training_load"]
    detail = client.get(f"/tasks/{task_id}").json()["data"]
    assert detail["parameters"]["last_run"]["from_step"] == "qa_generation"
    assert detail["step_status"]["training_load"] == "skipped" and detail["step_status"]["qa_generation"] == "pending"


def test_detail_read_in_one_round_trip_matches_the_two_reads(api_conn, make_task_row):
    make_task_row("task_20250101_000000_runs")
    t0 = datetime(2025, 6, 27, 14, 30, 52, 123456, tzinfo=timezone.utc)
    with api_conn:
        with api_conn.cursor() as cur:
            cur.execute("SET TIME ZONE 'Asia/Shanghai'")  # JSON timestamps come in the session's zone
        for index, step in enumerate(("qa_generation", "ddl_generation")):
            store.upsert_execution(api_conn, task_id="task_20250101_000000_runs", step=step,
                                   prefect_task_run_id=f"00000000-0000-4000-8000-00000000000{index}",
                                   status="completed", state_timestamp=t0 + timedelta(seconds=index + 1),
                                   started_at=t0 - timedelta(seconds=index), completed_at=t0 + timedelta(seconds=1.5),
                                   execution_result={"tables": 2})
        task, executions = store.get_task_with_executions(api_conn, task_id="task_20250101_000000_runs")
        expected = store.list_executions(api_conn, task_id="task_20250101_000000_runs")
        assert task == store.get_task(api_conn, task_id="task_20250101_000000_runs")
        assert [e["execution_step"] for e in executions] == ["ddl_generation", "qa_generation"]
        assert [{**e, "duration_seconds": float(e["duration_seconds"])} for e in executions] == expected
        assert store.get_task_with_executions(api_conn, task_id="task_20991231_000000_none") == (None, [])
