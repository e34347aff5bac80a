"""A running Prefect stack for tests: the server on the embedded PostgreSQL, the set-up, one worker.

Registered in tests/conftest.py's ``pytest_plugins``. Session-scoped, because the server takes a
while to start; nothing starts unless a test asks for a fixture:

* ``prefect_stack``: a ``PrefectStack`` (API and UI URLs, its settings, the service and Prefect
  database URLs, the worker's environment for starting more parts, the applied set-up, log dir);
* ``prefect_api``: the stack's API URL, with in-process Prefect clients and ``PREFECT_API_URL``
  pointed at it for one test;
* ``read_setup_state()``: the work pool, deployments and zombie automation the server holds (call
  it inside a test using ``prefect_api``).

Prefect's tables go to a database of their own per session (``prefect_test_<hex>``) on the
session's embedded PostgreSQL, dropped afterwards; the worker polls every second; a run silent for 60 s
is crashed by the zombie automation (the shortest window the settings allow).
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from deployments.server import api_url, ensure_prefect_database, server_component, ui_url, wait_until_healthy
from deployments.prefect_file import deployment_specs, load_prefect_file
from deployments.setup import WORK_POOL, ZOMBIE_AUTOMATION, AppliedSetup, apply_setup, prefect_api as prefect_api_settings
from deployments.stack import worker_component, worker_environment
from deployments.supervisor import Supervisor
from dp.database import connection
from dp.settings import Settings


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def clean_environment(**dp_settings: str) -> dict[str, str]:
    """This process's environment without any DP_/PREFECT_ variable, plus the given DP_ settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DP_", "PREFECT_"))}
    if "DP_DATASETS_DIR" in os.environ:
        env["DP_DATASETS_DIR"] = os.environ["DP_DATASETS_DIR"]
    env.update(dp_settings)
    return env


def settings_from(env: dict[str, str]) -> Settings:
    """The Settings a process started with ``env`` sees."""
    with pytest.MonkeyPatch.context() as patch:
        for key in [k for k in os.environ if k.startswith("DP_")]:
            patch.delenv(key)
        for key, value in env.items():
            if key.startswith("DP_"):
                patch.setenv(key, value)
        return Settings()


def drop_database(admin_url: str, name: str) -> None:
    with connection(admin_url) as admin:
        admin.autocommit = True
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass(frozen=True)
class PrefectStack:
    api_url: str
    ui_url: str
    settings: Settings  # what the stack's processes see (data dir, port, Prefect database)
    service_url: str  # the service PostgreSQL (the session's embedded server)
    prefect_db_url: str  # Prefect's own database on it
    env: dict[str, str]  # environment of the worker and its flow runs; start further parts with it
    applied: AppliedSetup
    logs: Path  # prefect-server.log, worker.log


@pytest.fixture(scope="session")
def prefect_stack(embedded_url, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("prefect-stack")
    database = f"prefect_test_{uuid.uuid4().hex[:8]}"
    base = clean_environment(DP_DATA_DIR=str(data_dir), DP_DATABASE_URL=embedded_url,
                             DP_PREFECT_PORT=str(free_port()), DP_PREFECT_DATABASE=database,
                             PREFECT_WORKER_QUERY_SECONDS="1", DP_ZOMBIE_AFTER_SECONDS="60")
    settings = settings_from(base)
    url = api_url(settings)
    logs = data_dir / "logs"
    with Supervisor(stop_timeout=15) as children:
        try:
            prefect_db = ensure_prefect_database(embedded_url, database)
            server = children.start(server_component(settings, embedded_url, base, log=logs / "prefect-server.log"))
            wait_until_healthy(url, 180, lambda: server.poll() is None)
            assert server.poll() is None, (logs / "prefect-server.log").read_text()[-3000:]
            applied = apply_setup(settings, url, base)
            children.start(worker_component(settings, url, base, log=logs / "worker.log"))
            yield PrefectStack(api_url=url, ui_url=ui_url(settings), settings=settings, service_url=embedded_url,
                               prefect_db_url=prefect_db, env=worker_environment(settings, url, base),
                               applied=applied, logs=logs)
        finally:
            children.stop()
            drop_database(embedded_url, database)


def read_setup_state():
    """Work pool, deployments (by full name) and zombie automations as the server holds them."""
    from prefect.client.orchestration import get_client

    async def read():
        async with get_client() as client:
            pool = await client.read_work_pool(WORK_POOL)
            deployments = {spec.full_name: await client.read_deployment_by_name(spec.full_name)
                           for spec in deployment_specs(load_prefect_file())}
            return pool, deployments, await client.read_automations_by_name(ZOMBIE_AUTOMATION)

    return asyncio.run(read())


@pytest.fixture
def prefect_api(prefect_stack, monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", prefect_stack.api_url)
    with prefect_api_settings(prefect_stack.api_url):
        yield prefect_stack.api_url


_UNFINISHED = ("SCHEDULED", "PENDING", "RUNNING", "CANCELLING", "PAUSED")


def cancel_unfinished_runs(url: str) -> int:
    """Move every unfinished flow run to Cancelled, so its deployment concurrency slot is freed."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType
    from prefect.states import Cancelled

    with prefect_api_settings(url), get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(state=FlowRunFilterState(
            type=FlowRunFilterStateType(any_=[StateType[name] for name in _UNFINISHED]))))
        for run in runs:
            result = client.set_flow_run_state(run.id, Cancelled(message="left unfinished by a test"))
            if result.status.value != "ACCEPT":
                client.set_flow_run_state(run.id, Cancelled(message="left unfinished by a test"), force=True)
        return len(runs)


@pytest.fixture(autouse=True)
def _no_run_outlives_its_test(request):
    """A run a test left unfinished must not hold the deployment's only slot for the next test."""
    yield
    if "prefect_stack" in request.fixturenames:
        cancel_unfinished_runs(request.getfixturevalue("prefect_stack").api_url)
