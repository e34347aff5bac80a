"""Schemathesis against the running API's OpenAPI schema: whatever it sends, no 5xx, always an envelope.

The server is the live one (uvicorn, real PostgreSQL, Prefect triggers pointing at the session's
real Prefect server). Fuzzed creations almost never reach Prefect: a body must pass every check
(a postgresql:// URL, a parsable table list, consistent options) first, and one run slot
(DP_MAX_CONCURRENT_RUNS=1) bounds what could start. 20 examples per operation keep it short.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from service.api.main import create_app



# the schema the app serves at /openapi.json (building the app connects to nothing)
schema = schemathesis.openapi.from_dict(create_app().openapi())


@pytest.fixture(scope="module")
def root_url(live_api) -> str:
    return live_api.url.split("/api/", 1)[0]


@schema.parametrize()
@settings(max_examples=20, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case, root_url):
    response = case.call(base_url=root_url, timeout=30)
    case.validate_response(response, checks=[not_a_server_error])
    assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:500])
    if response.headers.get("content-type", [""])[0].startswith("application/json"):
        body = response.json()
        assert body["code"] == response.status_code and set(body) == {"code", "success", "message", "data"}


def test_the_server_logged_no_unexpected_error(live_api):
    assert "unexpected error" not in live_api.logs[0].read_text(errors="replace")
