"""How the Prefect server is pointed at PostgreSQL: the URL forms, and where a password may go."""

import pytest

from deployments.server import (
    DATABASE_ENV_KEYS,
    check_port_free,
    ensure_prefect_database,
    prefect_database_url,
    server_component,
)
from deployments.setup import deploy_environment
from deployments.stack import worker_environment
from deployments.supervisor import StackError
from dp.database import connection
from dp.settings import get_settings
from tests.prefect_stack import drop_database, free_port

SECRET_URL = "postgresql://svc:s3cret@db.example:5433/service?sslmode=require"


def test_asyncpg_url_forms():
    assert prefect_database_url("postgresql://postgres:@/postgres?host=/run/pg", "prefect") == (
        "postgresql+asyncpg://postgres@/prefect?host=%2Frun%2Fpg"
    )
    assert prefect_database_url(SECRET_URL, "prefect") == "postgresql+asyncpg://svc:s3cret@db.example:5433/prefect?ssl=require"


def test_the_database_password_reaches_only_the_server_environment():
    settings = get_settings()
    base = {"PATH": "/usr/bin", "PREFECT_API_DATABASE_CONNECTION_URL": "postgresql+asyncpg://old:pw@x/y"}
    server = server_component(settings, SECRET_URL, base_env=base)
    assert "s3cret" not in " ".join(server.argv) and "s3cret" not in repr(server)
    assert [k for k, v in server.env.items() if "s3cret" in v] == ["PREFECT_SERVER_DATABASE_CONNECTION_URL"]
    assert "PREFECT_API_DATABASE_CONNECTION_URL" not in server.env  # a stale value cannot win
    for env in (worker_environment(settings, "http://127.0.0.1:1/api", base),
                deploy_environment(settings, "http://127.0.0.1:1/api", base)):
        assert not set(DATABASE_ENV_KEYS) & set(env)
        assert env["PREFECT_API_URL"] == "http://127.0.0.1:1/api"


def test_worker_environment_turns_heartbeats_on_and_names_the_checkout(monkeypatch, tmp_path):
    monkeypatch.setenv("DP_HEARTBEAT_SECONDS", "45")
    monkeypatch.setenv("DP_REPO_DIR", str(tmp_path))
    get_settings.cache_clear()
    env = worker_environment(get_settings(), "http://h:4200/api", {})
    assert env["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] == "45"
    assert env["DP_REPO_DIR"] == str(tmp_path)


def test_prefect_database_is_created_once(business_server_url):
    name = f"dp_prefect_probe_{free_port()}"
    try:
        url = ensure_prefect_database(business_server_url, name)
        assert ensure_prefect_database(business_server_url, name) == url
        with connection(url) as conn:
            conn.cursor().execute("SELECT 1")
    finally:
        drop_database(business_server_url, name)


def test_a_taken_port_is_refused_before_starting():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(StackError, match="DP_PREFECT_PORT"):
            check_port_free("127.0.0.1", taken.getsockname()[1])
    check_port_free("127.0.0.1", free_port())


def test_zombie_window_must_outlast_a_heartbeat(monkeypatch):
    from deployments.setup import zombie_automation

    monkeypatch.setenv("DP_HEARTBEAT_SECONDS", "90")
    get_settings.cache_clear()
    with pytest.raises(StackError, match="DP_ZOMBIE_AFTER_SECONDS"):
        zombie_automation(get_settings())
