"""Fixtures for the REST API tests: a real service database, the real Prefect stack, the real app.

* ``api_db_url``: a migrated database on the session's embedded PostgreSQL 18, shared by these
  tests; ``api_conn`` empties its tracking tables first and is a connection to it.
* ``make_client(**settings)``: a TestClient on ``create_app`` (lifespan run: pool, migrations, one
  Prefect client on the session's stack; no mirror thread unless ``api_mirror=True``), output root
  under the test's tmp dir. Every answer is
  checked: an envelope whose ``code`` is the status, and never a 500.
* ``live_api``: ``data-pipeline serve`` (uvicorn, the mirror in its process) on the stack's worker
  environment with a database of its own, for runs end to end; its log is kept to check it for
  secrets.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from dp.database import connection
from dp.sample_databases import with_database
from dp.settings import Settings
from service import store
from service.api.main import create_app
from service.api.runs import PrefectRuns
from service.api.routes import PREFIX
from service.migrate import migrate
from tests.prefect_stack import free_port

PASSWORD = "Api-Secret-pw-7"


def with_password(url: str) -> str:
    """The URL with PASSWORD as its password (the local test server trusts every login)."""
    assert "postgres@" in url, url
    return url.replace("postgres@", f"postgres:{PASSWORD}@", 1)


def check_answer(response: httpx.Response) -> None:
    assert response.status_code != 500, f"{response.request.method} {response.request.url} answered 500"
    downloaded = "attachment" in response.headers.get("content-disposition", "")
    if response.headers.get("content-type", "").startswith("application/json") and not downloaded:
        response.read()
        body = response.json()
        assert body["code"] == response.status_code and body["success"] == (response.status_code < 300), body


def _fresh_migrated(embedded_url: str):
    name = f"dp_api_{uuid.uuid4().hex[:8]}"
    with connection(embedded_url) as admin:
        admin.autocommit = True
        admin.cursor().execute(f'CREATE DATABASE "{name}"')
    url = with_database(embedded_url, name)
    migrate(url)
    yield url
    with connection(embedded_url) as admin:
        admin.autocommit = True
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def wait_started(client, task_id: str, timeout: float = 60) -> dict:
    """The task once its run was handed to Prefect (``POST /tasks`` may answer before that)."""
    deadline = time.monotonic() + timeout
    while True:
        task = client.get(f"/tasks/{task_id}").json()["data"]
        if task["flow_run_id"] or task["status"] == "failed" or time.monotonic() > deadline:
            assert task["flow_run_id"], task
            return task
        time.sleep(0.1)


def secret_exists(task_id: str, wait: float = 0) -> bool:
    """Whether the task's Secret block exists (within ``wait`` seconds: it is stored in the background)."""
    deadline = time.monotonic() + wait
    with PrefectRuns.connect() as runs:
        while not runs.has_connection(task_id) and time.monotonic() < deadline:
            time.sleep(0.1)
        return runs.has_connection(task_id)


@pytest.fixture(scope="session")
def api_db_url(embedded_url):
    """The in-process apps' database (no mirror writes to it; routes sync a task when they need to)."""
    yield from _fresh_migrated(embedded_url)


@pytest.fixture
def api_conn(api_db_url):
    with connection(api_db_url) as conn:
        with conn, conn.cursor() as cur:
            cur.execute("DELETE FROM data_pipeline_tasks")
        yield conn


@pytest.fixture
def make_task_row(api_conn, output_root):
    """A task row made through the store (no directory, no run), with any updatable field set."""

    def make(task_id: str, status: str = "pending", db_name: str = "pagila", created_by: str = "api", **fields) -> dict:
        with api_conn:
            store.create_task(api_conn, task_id=task_id, task_type="complete_workflow",
                              parameters={"db_connection": "postgresql://u:***@db/pagila"}, created_by=created_by,
                              output_directory=str(output_root / task_id), db_name=db_name,
                              business_context="DVD rental", status=status)
            return store.update_task(api_conn, task_id=task_id, **fields)

    return make


@pytest.fixture
def output_root(tmp_path) -> Path:
    root = tmp_path / "tasks"
    root.mkdir()
    return root


@pytest.fixture
def make_client(api_conn, api_db_url, output_root, tmp_path, prefect_api):
    clients = []

    def make(**settings) -> TestClient:
        values = {"database_url": api_db_url, "data_dir": tmp_path / "dp-data", "output_dir": output_root,
                  "api_mirror": False, **settings}
        client = TestClient(create_app(Settings(**values)), base_url="http://testserver" + PREFIX)
        client.event_hooks["response"].append(check_answer)
        clients.append(client.__enter__())
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client()


@dataclass(frozen=True)
class LiveApi:
    url: str  # .../api/v0/data_pipeline
    output_root: Path
    logs: list[Path]  # the server's output (its mirror's lines included)

    def client(self, record: list[str] | None = None) -> httpx.Client:
        """A client checking every answer; with ``record``, the text of each non-streamed answer is kept."""
        hooks = [check_answer]
        if record is not None:
            hooks.append(lambda r: None if r.headers.get("content-type", "").startswith("text/event-stream")
                         else record.append(r.read().decode(errors="replace")))
        return httpx.Client(base_url=self.url, timeout=60, event_hooks={"response": hooks})


def _wait_healthy(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text(errors="replace")[-3000:]
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"the API did not become healthy:\n{log.read_text(errors='replace')[-3000:]}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="session")
def live_db_url(embedded_url):
    """The live server's own database: its mirror also mirrors the runs of the other API tests."""
    yield from _fresh_migrated(embedded_url)


@pytest.fixture(scope="session")
def live_api(prefect_stack, live_db_url, tmp_path_factory):
    """``data-pipeline serve`` on the stack (its mirror included), with a database of its own."""
    base = tmp_path_factory.mktemp("live-api")
    root = base / "tasks"
    root.mkdir()
    port = free_port()
    env = {**prefect_stack.env, "DP_DATABASE_URL": live_db_url, "DP_OUTPUT_DIR": str(root),
           "DP_API_HOST": "127.0.0.1", "DP_API_PORT": str(port), "DP_API_EVENTS_POLL": "0.3",
           "DP_MAX_CONCURRENT_RUNS": "1"}
    log = base / "serve.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "dp.cli", "serve"], env=env, stdin=subprocess.DEVNULL,
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}{PREFIX}"
        _wait_healthy(url, process, log)
        yield LiveApi(url=url, output_root=root, logs=[log])
    finally:
        _stop(process)
