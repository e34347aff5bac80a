"""prefect.yaml declares what the issue asks for, and settings fill it in without changing its shape."""


import pytest
import yaml

from deployments.prefect_file import (
    PREFECT_FILE,
    REPO_ROOT,
    PrefectFileError,
    deployment_specs,
    flows_in_file,
    load_prefect_file,
    render_prefect_file,
)
from deployments.setup import WORK_POOL
from dp.settings import get_settings


@pytest.fixture(scope="module")
def document():
    return load_prefect_file()


def _by_name(document):
    """Each deployment keyed ``<flow name>/<deployment name>``."""
    return {spec.full_name: entry for spec, entry in zip(deployment_specs(document), document["deployments"])}


def test_every_flow_has_an_on_demand_and_a_nightly_deployment(document):
    declared = {(spec.flow_name, spec.name) for spec in deployment_specs(document)}
    flows = {name for path in (REPO_ROOT / "flows").glob("*.py") for name in flows_in_file(path).values()}
    assert "schema_workflow" in flows
    for flow in flows:
        assert {(flow, "on-demand"), (flow, "nightly")} <= declared, f"flow {flow} lacks a deployment"


def test_pool_concurrency_and_local_code(document):
    assert document["pull"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": "{{ $DP_REPO_DIR }}"}}
    ]
    assert document["build"] is None and document["push"] is None  # no image, no git
    for deployment in document["deployments"]:
        assert deployment["work_pool"]["name"] == WORK_POOL
        assert deployment["concurrency_limit"] == {"limit": 1, "collision_strategy": "ENQUEUE"}
        env = deployment["work_pool"]["job_variables"]["env"]
        assert env["PREFECT_LOGGING_EXTRA_LOGGERS"] == "dp,steps,flows"


def test_nightly_refresh_is_inactive_and_uses_references(document):
    nightly = _by_name(document)["schema_workflow/nightly"]
    assert [s["active"] for s in nightly["schedules"]] == [False]
    assert nightly["schedules"][0]["cron"] == "0 2 * * *"
    params = nightly["parameters"]
    assert params["connection"] == "named:nightly"  # a reference: no URL, no password in the deployment
    assert params["output_dir"] == "{{ $DP_NIGHTLY_DIR }}"
    assert _by_name(document)["schema_workflow/on-demand"]["parameters"] == {}
    assert "schedules" not in _by_name(document)["schema_workflow/on-demand"]


def test_retention_runs_daily(document):
    schedules = _by_name(document)["retention/nightly"]["schedules"]
    assert [(s["cron"], s["active"]) for s in schedules] == [("30 3 * * *", True)]


def test_rendering_takes_the_concurrency_limit_from_settings(monkeypatch, tmp_path):
    monkeypatch.setenv("DP_DEPLOYMENT_CONCURRENCY", "3")
    get_settings.cache_clear()
    rendered = yaml.safe_load(render_prefect_file(get_settings(), tmp_path / "p.yaml").read_text())
    original = yaml.safe_load(PREFECT_FILE.read_text())
    for deployment in rendered["deployments"]:
        assert deployment["concurrency_limit"] == {"limit": 3, "collision_strategy": "ENQUEUE"}
        deployment["concurrency_limit"]["limit"] = 1
    assert rendered == original


def test_a_broken_entrypoint_is_named(tmp_path):
    bad = {"deployments": [{"name": "x", "entrypoint": "flows/schema_workflow.py:no_such_flow"}]}
    with pytest.raises(PrefectFileError, match="no_such_flow"):
        deployment_specs(bad)
    with pytest.raises(PrefectFileError, match="not found"):
        load_prefect_file(tmp_path / "missing.yaml")


def test_flow_names_come_from_the_decorator(tmp_path):
    source = tmp_path / "f.py"
    source.write_text(
        "from prefect import flow\nimport prefect\n"
        "@flow(name='named_one')\ndef a(): ...\n"
        "@prefect.flow\ndef b(): ...\n"
        "@flow\ndef c(): ...\n"
        "def plain(): ...\n"
    )
    assert flows_in_file(source) == {"a": "named_one", "b": "b", "c": "c"}
