"""The retention flow removes expired finished tasks with their files and secrets (the code DELETE uses)
and leaves everything else alone."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from dp.settings import get_settings
from flows.retention import retention
from service import store
from service.api.runs import PrefectRuns
from tests.service.api.conftest import secret_exists, with_password


def _task(client, url: str) -> str:
    reply = client.post("/tasks", json={"parameters": {"db_connection": with_password(url), "business_context": "DVD"}})
    task_id = reply.json()["data"]["task_id"]
    assert client.post(f"/tasks/{task_id}/table-list", json={"tables": ["film"]}).status_code == 200
    assert secret_exists(task_id, wait=30)
    return task_id


def test_retention_flow_removes_expired_tasks_only(client, api_conn, api_db_url, output_root, pagila_url, monkeypatch):
    long_ago = datetime.now(timezone.utc) - timedelta(days=40)
    expired = {status: _task(client, pagila_url) for status in ("completed", "failed", "cancelled")}
    recent, pending = _task(client, pagila_url), _task(client, pagila_url)
    with api_conn:
        for status, task_id in expired.items():
            store.update_task(api_conn, task_id=task_id, status=status, completed_at=long_ago)
        store.update_task(api_conn, task_id=recent, status="completed", completed_at="now")

    monkeypatch.setenv("DP_DATABASE_URL", api_db_url)
    monkeypatch.setenv("DP_OUTPUT_DIR", str(output_root))
    get_settings.cache_clear()
    result = retention(days=30)

    assert result["days"] == 30 and sorted(r["task_id"] for r in result["removed"]) == sorted(expired.values())
    assert all(r["removed"] and r["secret_removed"] for r in result["removed"])
    with PrefectRuns.connect() as runs:
        for task_id in expired.values():
            assert client.get(f"/tasks/{task_id}").status_code == 404
            assert not (output_root / task_id).exists() and not runs.has_connection(task_id)
        for task_id in (recent, pending):
            assert client.get(f"/tasks/{task_id}").status_code == 200
            assert (output_root / task_id / "table_list.txt").exists() and runs.has_connection(task_id)
