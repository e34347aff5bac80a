"""A fake OpenAI-compatible server over real HTTP, for tests and benches.

It serves ``POST /v1/chat/completions`` and ``POST /v1/embeddings`` in the OpenAI wire format from a
uvicorn thread on a free loopback port. Tests steer it (``chat_handler``, ``fail_next``, ``latency``)
and inspect it (``requests``, ``max_in_flight``). Embeddings are a hashed bag of words: deterministic,
L2-normalised, and texts sharing words get similar vectors. One server lives per test session; the
``fake_openai`` fixture resets it before each test, and requests still running from an earlier test
(e.g. one a client gave up on) no longer count.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import socket
import threading
import time
from typing import Any, Callable

import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

DEFAULT_REPLY = "fake reply"
_TOKEN = re.compile(r"[a-z0-9]+|[\u3400-\u9fff]")


class FakeError(Exception):
    """Raise or return from ``chat_handler`` to make the server answer with this HTTP status."""

    def __init__(self, status: int, retry_after: float | None = None, message: str = "fake error"):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.retry_after = retry_after
        self.message = message


ChatHandler = Callable[[dict[str, Any]], Any]


def default_chat_handler(body: dict[str, Any]) -> str:
    return DEFAULT_REPLY


def last_user_message(body: dict[str, Any]) -> str:
    """The text of the last user message of a chat request body."""
    users = [m for m in body.get("messages", []) if m.get("role") == "user"]
    content = users[-1].get("content", "") if users else ""
    return content if isinstance(content, str) else " ".join(p.get("text", "") for p in content)


def comment_reply(body: dict[str, Any]) -> dict[str, Any]:
    """A chat handler answering the comment writer's prompt (steps/ddl_generation/comments.py).

    It reads the JSON facts the prompt carries and comments every column asked for, as
    ``"<column> comment"``, and the table as ``"<table> comment"`` when one is asked for.
    """
    text = last_user_message(body)
    facts = json.loads(text[text.index("{") : text.rindex("}") + 1])
    return {
        "table_comment": f"{facts['table']} comment" if facts.get("table_comment_needed") else None,
        "columns": {name: f"{name} comment" for name in facts["columns_to_comment"]},
    }


def _tokens(text: str) -> list[str]:
    words = _TOKEN.findall(text.lower())
    cjk = [w for w in words if len(w) == 1 and w >= "\u3400"]
    return words + [a + b for a, b in zip(cjk, cjk[1:])]


def fake_embedding(text: str, dim: int = 384) -> list[float]:
    """Deterministic unit vector of a text: its words hashed into ``dim`` signed buckets."""
    vector = np.zeros(dim, dtype=np.float64)
    for token in _tokens(text) or ["<empty>"]:
        digest = hashlib.md5(token.encode()).digest()
        index = int.from_bytes(digest[:4], "little") % dim
        vector[index] += 1.0 if digest[4] & 1 else -1.0
    norm = float(np.linalg.norm(vector))
    if norm == 0.0:
        vector[0], norm = 1.0, 1.0
    return (vector / norm).tolist()


class FakeOpenAI:
    """A running fake server and the knobs and records tests use."""

    def __init__(self, *, latency: float = 0.0, embedding_dim: int = 384, chat_handler: ChatHandler | None = None):
        self._lock = threading.Lock()
        self._generation = 0
        self.reset(latency=latency, embedding_dim=embedding_dim, chat_handler=chat_handler)
        # proto IPPROTO_TCP (not 0) lets asyncio set TCP_NODELAY on accepted connections; without it
        # Nagle holds back the response body until the client's delayed ACK, ~40 ms per request.
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        config = uvicorn.Config(
            self._app(), log_level="warning", lifespan="off", timeout_graceful_shutdown=1, access_log=False
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name="fake-openai", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake OpenAI server did not start")
            time.sleep(0.01)

    def reset(
        self, *, latency: float = 0.0, embedding_dim: int = 384, chat_handler: ChatHandler | None = None
    ) -> None:
        """Forget everything recorded and go back to default behaviour."""
        with self._lock:
            self._generation += 1
            self.requests: list[dict[str, Any]] = []
            self.request_headers: list[dict[str, str]] = []
            self.chat_handler: ChatHandler = chat_handler or default_chat_handler
            self.latency = latency
            self.embedding_dim = embedding_dim
            self.in_flight = 0
            self.max_in_flight = 0
            self._failures: list[FakeError] = []

    def fail_next(self, n: int, status: int = 500, retry_after: float | None = None) -> None:
        """Answer the next ``n`` requests (any endpoint) with ``status``."""
        with self._lock:
            self._failures.extend(FakeError(status, retry_after, f"injected failure {i + 1}/{n}") for i in range(n))

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"].endswith("/chat/completions")]

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> "FakeOpenAI":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- the HTTP side ---------------------------------------------------------------------

    def _app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> JSONResponse:
            return await self._serve(request, self._chat)

        @app.post("/v1/embeddings")
        async def embeddings(request: Request) -> JSONResponse:
            return await self._serve(request, self._embeddings)

        return app

    async def _serve(self, request: Request, answer: Callable[[dict[str, Any]], dict[str, Any]]) -> JSONResponse:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _error_response(FakeError(400, message="request body is not JSON"))
        with self._lock:
            generation = self._generation
            self.requests.append({**body, "path": request.url.path})
            self.request_headers.append(dict(request.headers))
            failure = self._failures.pop(0) if self._failures else None
            latency = self.latency
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if latency:
                await asyncio.sleep(latency)
            if failure:
                return _error_response(failure)
            return JSONResponse(answer(body))
        except FakeError as error:
            return _error_response(error)
        except Exception as exc:  # a broken test handler: say so in the answer instead of a bare 500
            return _error_response(FakeError(500, message=f"chat_handler raised {exc!r}"))
        finally:
            with self._lock:
                if generation == self._generation:
                    self.in_flight -= 1

    def _chat(self, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("stream"):
            raise FakeError(400, message="the fake does not stream")
        reply = self.chat_handler(body)
        if isinstance(reply, FakeError):
            raise reply
        content = reply if isinstance(reply, str) else json.dumps(reply, ensure_ascii=False)
        prompt_tokens = sum(len(str(m.get("content", ""))) for m in body.get("messages", [])) // 4
        return {
            "id": f"chatcmpl-fake-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": len(content) // 4,
                "total_tokens": prompt_tokens + len(content) // 4,
            },
        }

    def _embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        inputs = body.get("input")
        if isinstance(inputs, str) or (isinstance(inputs, list) and inputs and isinstance(inputs[0], int)):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs:
            raise FakeError(400, message="input must be a string or a non-empty list")
        texts = [t if isinstance(t, str) else " ".join(f"tok{n}" for n in t) for t in inputs]
        dim = int(body.get("dimensions") or self.embedding_dim)
        data = []
        for index, text in enumerate(texts):
            vector: Any = fake_embedding(text, dim)
            if body.get("encoding_format") == "base64":
                vector = base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()
            data.append({"object": "embedding", "index": index, "embedding": vector})
        tokens = sum(len(_tokens(t)) for t in texts)
        return {
            "object": "list",
            "data": data,
            "model": body.get("model", "fake-embedding"),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }


def _error_response(error: FakeError) -> JSONResponse:
    headers = {"retry-after": format(error.retry_after, "g")} if error.retry_after is not None else None
    body = {"error": {"message": error.message, "type": "fake_error", "code": error.status}}
    return JSONResponse(body, status_code=error.status, headers=headers)


def start_fake_openai(
    latency: float = 0.0, embedding_dim: int = 384, chat_handler: ChatHandler | None = None
) -> FakeOpenAI:
    """Start a fake server outside pytest (benches); call ``.stop()`` or use it as a context manager."""
    return FakeOpenAI(latency=latency, embedding_dim=embedding_dim, chat_handler=chat_handler)


@pytest.fixture(scope="session")
def fake_openai_server():
    server = start_fake_openai()
    yield server
    server.stop()


@pytest.fixture
def fake_openai(fake_openai_server: FakeOpenAI) -> FakeOpenAI:
    """The session's fake OpenAI server, reset for this test."""
    fake_openai_server.reset()
    return fake_openai_server
