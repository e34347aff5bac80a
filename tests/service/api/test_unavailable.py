"""With Prefect out of reach: health says so (503), and a created task ends failed with the reason,
its run slot freed; never a 500."""

from __future__ import annotations

import time

from prefect.client.orchestration import SyncPrefectClient

from service.api.runs import PrefectRuns
from tests.prefect_stack import free_port
from tests.service.api.conftest import with_password


def test_prefect_out_of_reach(make_client, pagila_url):
    client = make_client()
    with SyncPrefectClient(f"http://127.0.0.1:{free_port()}/api") as dead:
        client.app.state.runs = PrefectRuns(dead)
        health = client.get("/health")
        assert health.status_code == 503
        assert health.json()["data"]["database"] == "ok" and health.json()["data"]["prefect"].startswith("unavailable")

        reply = client.post("/tasks", json={"parameters": {"db_connection": with_password(pagila_url),
                                                           "business_context": "DVD", "tables": ["film"]}})
        assert reply.status_code in (201, 503), reply.json()
        task_id = reply.json()["data"]["task_id"]
        deadline = time.monotonic() + 30
        while (task := client.get(f"/tasks/{task_id}").json()["data"])["status"] != "failed":
            assert time.monotonic() < deadline, task
            time.sleep(0.1)
        assert "could not be started" in task["error_message"]
        assert client.get("/tasks/active").json()["data"]["total"] == 0
        assert client.post(f"/tasks/{task_id}/execute").status_code in (409, 503)
