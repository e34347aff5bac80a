"""Runs end to end through the running API (uvicorn) on the real stack, with the mirror running:
a task created over HTTP runs to completed with its logs, step runs and files queryable and its
events streamed; cancel; delete while running; 50 concurrent creations with one run slot; and the
password of the connection in no answer, log line, file or Prefect parameter."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable
from uuid import UUID

import httpx
import pytest

from dp.database import connection, database_name
from service.api.runs import PrefectRuns, secret_block_name
from service.states import is_final
from tests.service.api.conftest import PASSWORD, wait_started, with_password
from tests.service.test_mirror import wait_for

TABLES = ["language", "category", "film", "film_category"]


def _params(url: str, tables: list[str], **more) -> dict:
    return {"parameters": {"db_connection": with_password(url), "business_context": "DVD rental store",
                           "tables": tables, **more}}


def _flow_run_state(flow_run_id: str) -> str | None:
    with PrefectRuns.connect() as runs:
        state = runs.state(flow_run_id)
    return state[0] if state else None


def _wait_no_active(client: httpx.Client) -> None:
    wait_for("no active task", lambda: client.get("/tasks/active").json()["data"]["total"] == 0)


def _read_events(client: httpx.Client, task_id: str, **params) -> list[tuple[str, dict, str | None]]:
    """The stream's events until it ends; fails after 180 s (keep-alive comments come every 15 s)."""
    events, kind, event_id = [], None, None
    deadline = time.monotonic() + 180
    with client.stream("GET", f"/tasks/{task_id}/events", params=params, timeout=300) as reply:
        assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/event-stream")
        for line in reply.iter_lines():
            assert time.monotonic() < deadline, f"the events stream of {task_id} did not end in 180 s: {events}"
            if line.startswith("id: "):
                event_id = line[4:]
            elif line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                events.append((kind, json.loads(line[6:]), event_id))
                event_id = None
    return events


@dataclass
class LockedTable:
    url: str
    release: Callable[[], None]


@pytest.fixture
def locked_table(scratch_db):
    """A business database whose table ``slow`` stays locked: step 1 waits on it until ``release()``.

    A run blocked in a query only takes its SIGTERM once the query returns (else the worker kills it
    after its grace period), so tests release the lock once they asked for the cancellation.
    """
    with connection(scratch_db) as setup:
        setup.autocommit = True
        setup.cursor().execute("CREATE TABLE slow (id integer PRIMARY KEY, name text)")
    with connection(scratch_db) as holder:
        holder.cursor().execute("LOCK TABLE slow IN ACCESS EXCLUSIVE MODE")
        lock = threading.Lock()

        def release() -> None:
            with lock:
                if not holder.closed:
                    holder.rollback()

        yield LockedTable(scratch_db, release)
        release()


def _running_task(client: httpx.Client, locked: LockedTable) -> dict:
    _wait_no_active(client)
    reply = client.post("/tasks", json=_params(locked.url, ["slow"]))
    assert reply.status_code == 201, reply.json()
    created = wait_started(client, reply.json()["data"]["task_id"])
    wait_for("the run to start", lambda: _flow_run_state(created["flow_run_id"]) == "RUNNING", 120, 0.3)
    return created


def test_task_created_over_http_runs_to_completed(live_api, prefect_stack, pagila_url, prefect_api):
    answers: list[str] = []
    with live_api.client(record=answers) as client:
        _wait_no_active(client)
        answer = client.post("/tasks", json=_params(pagila_url, TABLES)).json()["data"]
        task_id = answer["task_id"]
        assert answer["table_count"] == 4 and answer["status"] in ("in_progress", "pending")
        created = wait_started(client, task_id)

        events = _read_events(client, task_id)
        kinds = [kind for kind, _, _ in events]
        assert kinds[0] == "status" and kinds[-1] == "end" and "log" in kinds
        assert events[-1][1] == {"task_id": task_id, "reason": "finished", "status": "completed"}
        statuses = [data["status"] for kind, data, _ in events if kind == "status"]
        assert statuses[-1] == "completed" and len(statuses) >= 2
        claimed = statuses.index("in_progress") if "in_progress" in statuses else len(statuses)
        assert "pending" not in statuses[claimed:], statuses  # queued in Prefect, the task stays in_progress
        log_ids = [int(event_id) for kind, _, event_id in events if kind == "log"]
        assert log_ids == sorted(log_ids)
        answers.append(json.dumps(events))
        resumed = _read_events(client, task_id, after=log_ids[len(log_ids) // 2])
        assert all(int(i) > log_ids[len(log_ids) // 2] for kind, _, i in resumed if kind == "log")

        detail = client.get(f"/tasks/{task_id}").json()["data"]
        assert detail["status"] == "completed" and detail["progress"] == 100 and detail["error_message"] is None
        assert [s["status"] for s in detail["step_details"]] == ["completed"] * 4
        assert all(s["started_at"] and s["completed_at"] and s["duration"] is not None for s in detail["step_details"])
        assert detail["duration"] > 0 and detail["result"]
        assert detail["parameters"]["db_connection"].endswith(":***@127.0.0.1:5432/dp_sample_pagila")

        wait_for("step 4 logs", lambda: client.get(f"/tasks/{task_id}/logs",
                                                   params={"step": "training_load"}).json()["data"]["logs"], 30)
        first = client.get(f"/tasks/{task_id}/logs", params={"limit": 5}).json()["data"]
        second = client.get(f"/tasks/{task_id}/logs", params={"limit": 5, "after": first["next_after"]}).json()["data"]
        assert len(first["logs"]) == 5 and first["has_more"]
        assert second["logs"][0]["id"] > first["logs"][-1]["id"]
        newest = client.get(f"/tasks/{task_id}/logs", params={"order": "desc", "limit": 3}).json()["data"]["logs"]
        assert [line["id"] for line in newest] == sorted((line["id"] for line in newest), reverse=True)
        steps = {line["step"] for line in client.get(f"/tasks/{task_id}/logs",
                                                     params={"step": "ddl_generation", "limit": 1000}).json()["data"]["logs"]}
        assert steps == {"ddl_generation"}
        for line in client.get(f"/tasks/{task_id}/logs", params={"level": "warning", "limit": 1000}).json()["data"]["logs"]:
            assert line["level"] in ("WARNING", "ERROR", "CRITICAL")

        files = client.get(f"/tasks/{task_id}/files").json()["data"]["files"]
        names = {f["name"] for f in files}
        assert {"film.ddl", "film_detail.md", "table_list.txt", "manifest.json"} <= names
        pair = next(f for f in files if f["name"].endswith("_pair.json"))
        assert pair["primary"]
        download = client.get(f"/tasks/{task_id}/files/download/{pair['name']}")
        assert download.status_code == 200 and json.loads(download.content)
        assert len(download.content) == pair["size"]

        with PrefectRuns.connect() as runs:
            flow_run = runs.client.read_flow_run(UUID(created["flow_run_id"]))
        assert flow_run.parameters["connection"] == f"secret:{secret_block_name(task_id)}"
        assert PASSWORD not in json.dumps(flow_run.parameters)
        task_dir = live_api.output_root / task_id
        for path in task_dir.rglob("*"):
            if path.is_file():
                assert PASSWORD not in path.read_text(errors="replace"), path
        deleted = client.delete(f"/tasks/{task_id}").json()["data"]
        assert deleted["records_deleted"] and deleted["flow_runs_removed"] == 1 and not task_dir.exists()
    for text in answers:
        assert PASSWORD not in text
    for log in [*live_api.logs, prefect_stack.logs / "worker.log"]:
        assert PASSWORD not in log.read_text(errors="replace"), log
    served = live_api.logs[0].read_text(errors="replace")
    assert "mirror: task_" in served and "[httpx]" not in served  # the mirror's news, not its every request


def test_cancel_a_running_task(live_api, locked_table, prefect_api):
    with live_api.client() as client:
        created = _running_task(client, locked_table)
        task_id = created["task_id"]
        reply = client.post(f"/tasks/{task_id}/cancel")
        assert reply.status_code == 202, reply.json()
        assert reply.json()["data"]["flow_run_state"] in ("Cancelling", "Cancelled")
        threading.Timer(2, locked_table.release).start()
        wait_for("Prefect to cancel the run", lambda: _flow_run_state(created["flow_run_id"]) == "CANCELLED", 60, 0.3)
        wait_for("the task to show cancelled",
                 lambda: client.get(f"/tasks/{task_id}").json()["data"]["status"] == "cancelled", 30, 0.3)
        assert client.post(f"/tasks/{task_id}/cancel").status_code == 409
        assert client.get("/tasks/active").json()["data"]["total"] == 0
        reply = client.delete(f"/tasks/{task_id}")
        assert reply.status_code == 200, reply.json()


def test_delete_while_running(live_api, locked_table, prefect_api):
    with live_api.client() as client:
        created = _running_task(client, locked_table)
        task_id = created["task_id"]
        threading.Timer(3, locked_table.release).start()  # DELETE waits while the run stops
        reply = client.delete(f"/tasks/{task_id}")
        assert reply.status_code == 200, reply.json()
        data = reply.json()["data"]
        assert data["was_cancelled"] and data["records_deleted"] and data["directory_removed"] and data["secret_removed"]
        assert not (live_api.output_root / task_id).exists()
        assert client.get(f"/tasks/{task_id}").status_code == 404
        assert _flow_run_state(created["flow_run_id"]) is None  # the run went with the task
        time.sleep(1.5)  # a few mirror polls: the deleted task does not come back
        assert client.get(f"/tasks/{task_id}").status_code == 404


def _cancel_while_pending(client: httpx.Client, url: str) -> dict | None:
    """Create a task and cancel its run while the worker starts its process (Prefect's Pending);
    None when the run got past Pending first (it is cancelled and waited for then)."""
    _wait_no_active(client)
    reply = client.post("/tasks", json=_params(url, ["language"]))
    assert reply.status_code == 201, reply.json()
    created = wait_started(client, reply.json()["data"]["task_id"])
    wait_for("the worker to take the run", lambda: _flow_run_state(created["flow_run_id"]) != "SCHEDULED", 120, 0.02)
    caught = _flow_run_state(created["flow_run_id"]) == "PENDING"
    assert client.post(f"/tasks/{created['task_id']}/cancel").status_code == 202
    if not caught:
        wait_for("the run to stop", lambda: is_final(_flow_run_state(created["flow_run_id"])), 60)
    return created if caught else None


def test_a_run_cancelled_while_its_process_starts_ends_cancelled(live_api, pagila_url, prefect_api):
    """Prefect 3.9 leaves worker-side cancellation off: such a run stayed Cancelling forever and held
    the deployment's only slot (every later run waited). The worker environment turns it on."""
    with live_api.client() as client:
        created = next(filter(None, (_cancel_while_pending(client, pagila_url) for _ in range(3))), None)
        assert created is not None, "the run never was Pending when polled"
        wait_for("the run to end cancelled", lambda: _flow_run_state(created["flow_run_id"]) == "CANCELLED", 60)
        wait_for("the task to show it", lambda: client.get(f"/tasks/{created['task_id']}").json()["data"]["status"]
                 == "cancelled", 30)
        assert client.get("/tasks/active").json()["data"]["total"] == 0


def test_fifty_concurrent_creations_with_one_slot_start_one_run(live_api, locked_table, prefect_api):
    with live_api.client() as client:
        _wait_no_active(client)

        def create(_):
            with live_api.client() as own:
                reply = own.post("/tasks", json=_params(locked_table.url, ["slow"]))
                return reply.status_code, reply.json()

        with ThreadPoolExecutor(max_workers=50) as pool:
            answers = list(pool.map(create, range(50)))
        codes = sorted(code for code, _ in answers)
        assert codes == [201] + [409] * 49, codes
        [winner] = [body["data"] for code, body in answers if code == 201]
        active = client.get("/tasks/active").json()["data"]["tasks"]
        assert [t["task_id"] for t in active] == [winner["task_id"]]
        assert client.get("/tasks", params={"db_name": database_name(locked_table.url)}).json()["data"]["total"] == 1
        with PrefectRuns.connect() as runs:
            assert runs.state(wait_started(client, winner["task_id"])["flow_run_id"]) is not None
        threading.Timer(3, locked_table.release).start()
        reply = client.delete(f"/tasks/{winner['task_id']}")
        assert reply.status_code == 200, reply.json()
