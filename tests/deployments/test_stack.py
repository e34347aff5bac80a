"""The real stack: Prefect server on PostgreSQL, the set-up applied, a worker running a flow.

Applying the set-up a second time is checked in test_up.py, where `data-pipeline up` applies it again.
"""

import json
import time
import urllib.request

import pytest

from deployments.setup import WORK_POOL
from dp.database import connection
from tests.prefect_stack import read_setup_state


def test_server_answers_and_keeps_its_tables_in_postgresql(prefect_stack):
    with urllib.request.urlopen(f"{prefect_stack.api_url}/health", timeout=10) as reply:
        assert reply.read().strip() == b"true"
    with urllib.request.urlopen(f"{prefect_stack.ui_url}/ui-settings", timeout=10) as reply:
        assert json.load(reply)["api_url"] == prefect_stack.api_url  # the UI talks to this server
    with connection(prefect_stack.prefect_db_url) as conn:
        cur = conn.cursor()
        cur.execute("SELECT to_regclass('public.flow_run'), to_regclass('public.deployment'), to_regclass('public.automation')")
        assert all(cur.fetchone())
        cur.execute("SELECT count(*) FROM deployment")
        assert cur.fetchone()[0] == len(prefect_stack.applied.deployment_ids)
    assert not list((prefect_stack.settings.data_dir / "prefect-server").glob("*.db"))  # no SQLite anywhere


def test_setup_is_applied(prefect_stack, prefect_api):
    pool, deployments, automations = read_setup_state()
    assert pool.type == "process" and pool.id == prefect_stack.applied.work_pool_id
    for name, deployment in deployments.items():
        assert deployment.id == prefect_stack.applied.deployment_ids[name]
        assert deployment.work_pool_name == WORK_POOL
        assert deployment.global_concurrency_limit.limit == 1
        assert deployment.concurrency_options.collision_strategy.value == "ENQUEUE"
        assert deployment.pull_steps == [
            {"prefect.deployments.steps.set_working_directory": {"directory": "{{ $DP_REPO_DIR }}"}}
        ]
    nightly = deployments["schema_workflow/nightly"]
    assert [s.active for s in nightly.schedules] == [False]
    assert [s.active for s in deployments["retention/nightly"].schedules] == [True]
    assert nightly.parameters["output_dir"] == str(prefect_stack.settings.data_dir.resolve() / "tasks" / "nightly")
    [automation] = automations
    assert automation.id == prefect_stack.applied.automation_id
    trigger = automation.trigger
    assert trigger.posture.value == "Proactive" and trigger.after == {"prefect.flow-run.heartbeat"}
    assert trigger.match.root == {"prefect.resource.id": ["prefect.flow-run.*"]}
    assert trigger.for_each == {"prefect.resource.id"} and trigger.within.total_seconds() == prefect_stack.settings.zombie_after_seconds == 60
    assert automation.actions[0].state.value == "CRASHED"


def test_worker_runs_the_on_demand_deployment(prefect_stack, prefect_api, pagila_url, tmp_path):
    pytest.importorskip("flows.schema_workflow", reason="steps 1-4 are not all importable yet")
    from prefect.deployments import run_deployment

    task_dir = tmp_path / "stack_run"
    task_dir.mkdir()
    (task_dir / "table_list.txt").write_text("language\ncategory\n", encoding="utf-8")
    flow_run = run_deployment(
        "schema_workflow/on-demand",
        parameters={"task_id": "stack_run", "connection": pagila_url, "output_dir": str(task_dir),
                    "business_context": "DVD rental store", "execution_mode": "single", "single_step": "1"},
        timeout=240,
    )
    worker_log = (prefect_stack.logs / "worker.log").read_text(errors="replace")[-4000:]
    assert flow_run.state.is_completed(), f"{flow_run.state}\n{worker_log}"
    assert (task_dir / "ddl_generation_result.json").exists()
    assert flow_run.work_pool_name == WORK_POOL
    # its heartbeats reached the server: what the zombie-run automation watches
    assert _heartbeats(prefect_stack.prefect_db_url, flow_run.id) >= 1


def _heartbeats(prefect_db_url, flow_run_id, timeout=60):
    """Heartbeat events of a flow run stored by the server (its event persister writes in batches)."""
    deadline = time.monotonic() + timeout
    with connection(prefect_db_url) as conn:
        conn.autocommit = True
        cur = conn.cursor()
        while True:
            cur.execute("SELECT count(*) FROM events WHERE event = 'prefect.flow-run.heartbeat' AND resource_id = %s",
                        (f"prefect.flow-run.{flow_run_id}",))
            count = cur.fetchone()[0]
            if count or time.monotonic() > deadline:
                return count
            time.sleep(0.5)
