import email.utils
import logging
import threading
import time

import pytest

from dp.llm.client import ChatClient, LLMError, _retry_after
from dp.settings import get_settings
from tests.fakes.openai_server import FakeError

SECRET = "sk-test-5ecr3t-never-show-me"


def client_for(fake, **overrides) -> ChatClient:
    options = dict(
        base_url=fake.base_url,
        api_key=SECRET,
        model="fake-model",
        timeout=5.0,
        max_retries=2,
        max_concurrency=4,
        backoff_base=0.01,
        backoff_max=0.5,
    )
    options.update(overrides)
    return ChatClient(**options)


def test_chat_text_sends_system_user_model_and_key(fake_openai):
    fake_openai.chat_handler = lambda body: "hello " + body["messages"][1]["content"]
    client = client_for(fake_openai)
    assert client.chat_text(system="be brief", user="world") == "hello world"
    [request] = fake_openai.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["model"] == "fake-model"
    assert request["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "world"}]
    assert "response_format" not in request
    assert fake_openai.request_headers[0]["authorization"] == f"Bearer {SECRET}"
    assert client.calls == 1


@pytest.mark.parametrize(
    "reply",
    [
        '{"a": 1, "b": ["x"]}',
        'Sure! Here it is:\n```json\n{"a": 1, "b": ["x"]}\n```\nAnything else?',
        "<think>The user wants {json}. Let me think about [a, b].</think>\n{\"a\": 1, \"b\": [\"x\"]}",
        'reasoning without an opening tag </think>```\n{"a": 1, "b": ["x"]}\n```',
        'The answer is {"a": 1, "b": ["x"]} as requested.',
    ],
)
def test_chat_json_accepts_fences_think_blocks_and_prose(fake_openai, reply):
    fake_openai.chat_handler = lambda body: reply
    client = client_for(fake_openai)
    assert client.chat_json(system="s", user="u") == {"a": 1, "b": ["x"]}
    assert fake_openai.requests[0]["response_format"] == {"type": "json_object"}
    assert client.calls == 1


def test_chat_json_reasks_once_then_succeeds(fake_openai):
    replies = iter(["I cannot do JSON today.", '{"ok": true}'])
    fake_openai.chat_handler = lambda body: next(replies)
    client = client_for(fake_openai)
    assert client.chat_json(system="s", user="u") == {"ok": True}
    second = fake_openai.requests[1]["messages"]
    assert second[2] == {"role": "assistant", "content": "I cannot do JSON today."}
    assert "only the JSON" in second[3]["content"]


def test_chat_json_gives_up_after_one_reask(fake_openai):
    fake_openai.chat_handler = lambda body: "<think>{still thinking"
    client = client_for(fake_openai)
    with pytest.raises(LLMError, match="after one re-ask"):
        client.chat_json(system="s", user="u")
    assert client.calls == 2


def test_chat_json_validator_shape_error_earns_the_reask(fake_openai):
    replies = iter(['["wrong shape"]', '{"items": []}'])
    fake_openai.chat_handler = lambda body: next(replies)

    def needs_object(value):
        if not isinstance(value, dict):
            raise ValueError("expected a JSON object")
        return value

    client = client_for(fake_openai)
    assert client.chat_json(system="s", user="u", validate=needs_object) == {"items": []}
    assert "expected a JSON object" in fake_openai.requests[1]["messages"][3]["content"]


def test_server_without_response_format_gets_plain_json_requests(fake_openai):
    def handler(body):
        if "response_format" in body:
            return FakeError(400, message="Unsupported parameter: response_format")
        return '{"ok": 1}'

    fake_openai.chat_handler = handler
    client = client_for(fake_openai, max_retries=0)
    assert client.chat_json(system="s", user="u") == {"ok": 1}
    assert client.chat_json(system="s", user="u") == {"ok": 1}
    assert ["response_format" in r for r in fake_openai.requests] == [True, False, False]


def test_429_then_success_honours_retry_after(fake_openai, caplog):
    fake_openai.fail_next(1, status=429, retry_after=0.05)
    client = client_for(fake_openai)
    with caplog.at_level(logging.WARNING, logger="dp.llm.client"):
        assert client.chat_text(system="s", user="u") == "fake reply"
    assert client.calls == 2
    assert "HTTP 429" in caplog.text and "in 0.05 s" in caplog.text


def test_retry_after_is_capped(fake_openai, caplog):
    fake_openai.fail_next(1, status=503, retry_after=3600)
    client = client_for(fake_openai, backoff_max=0.1)
    with caplog.at_level(logging.WARNING, logger="dp.llm.client"):
        assert client.chat_text(system="s", user="u") == "fake reply"
    assert "in 0.10 s" in caplog.text


def test_5xx_exhausting_retries_raises(fake_openai):
    fake_openai.fail_next(10, status=500)
    client = client_for(fake_openai, max_retries=2)
    with pytest.raises(LLMError, match=r"HTTP 500.*after 3 attempts") as err:
        client.chat_text(system="s", user="u")
    assert len(fake_openai.requests) == 3
    assert err.value.transient  # the flow may retry the step later


def test_400_is_not_retried(fake_openai):
    fake_openai.chat_handler = lambda body: FakeError(400, message="context length exceeded")
    client = client_for(fake_openai, max_retries=3)
    with pytest.raises(LLMError, match="HTTP 400: context length exceeded") as err:
        client.chat_json(system="s", user="u")
    assert len(fake_openai.requests) == 1
    assert not err.value.transient


def test_timeout_is_retried_then_raises(fake_openai):
    fake_openai.latency = 1.0
    client = client_for(fake_openai, timeout=0.3, max_retries=1)
    with pytest.raises(LLMError, match="timed out after 0.3 s"):
        client.chat_text(system="s", user="u")
    assert client.calls == 2


def test_connection_refused_is_an_llm_error():
    client = ChatClient(
        base_url="http://127.0.0.1:9/v1", api_key=None, model="m", timeout=1, max_retries=1,
        max_concurrency=1, backoff_base=0.01,
    )
    with pytest.raises(LLMError, match="connection failed"):
        client.chat_text(system="s", user="u")
    assert client.calls == 2


def test_concurrency_cap_holds_across_threads_and_clients(fake_openai):
    fake_openai.latency = 0.2
    clients = [client_for(fake_openai, max_concurrency=2) for _ in range(2)]
    errors = []

    def call(i):
        try:
            clients[i % 2].chat_text(system="s", user=str(i))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(fake_openai.requests) == 8
    assert fake_openai.max_in_flight == 2


def test_api_key_never_in_error_message(fake_openai):
    fake_openai.chat_handler = lambda body: FakeError(401, message=f"Incorrect API key provided: {SECRET}")
    client = client_for(fake_openai)
    with pytest.raises(LLMError) as caught:
        client.chat_text(system="s", user="u")
    assert "HTTP 401" in str(caught.value)
    assert SECRET not in str(caught.value) and "***" in str(caught.value)


def test_from_settings(fake_openai, monkeypatch):
    monkeypatch.setenv("DP_LLM_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("DP_LLM_API_KEY", SECRET)
    monkeypatch.setenv("DP_LLM_MODEL", "configured-model")
    monkeypatch.setenv("DP_LLM_TEMPERATURE", "0.1")
    get_settings.cache_clear()
    client = ChatClient.from_settings()
    assert client.chat_text(system="s", user="u") == "fake reply"
    assert fake_openai.requests[0]["model"] == "configured-model"
    assert fake_openai.requests[0]["temperature"] == 0.1


def test_from_settings_without_base_url_says_what_to_set():
    with pytest.raises(ValueError, match="set DP_LLM_BASE_URL"):
        ChatClient.from_settings()


@pytest.mark.parametrize(
    "headers, expected",
    [({"retry-after": "2"}, 2.0), ({"retry-after-ms": "150"}, 0.15), ({"retry-after": "soon"}, None), ({}, None)],
)
def test_retry_after_header_forms(headers, expected):
    assert _retry_after(headers) == expected


def test_retry_after_http_date():
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 20 < _retry_after({"retry-after": later}) <= 30
