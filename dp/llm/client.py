"""``ChatClient``: the one way any step talks to an OpenAI-compatible chat endpoint.

Retries are ours alone (the openai package's own are switched off): 429, 5xx, connection errors and
timeouts are retried with exponential backoff and jitter, honouring a server's Retry-After up to a cap;
any other 4xx fails at once. Calls in flight are capped per process by one semaphore shared by every
client of the same endpoint, because steps call from many threads. A failed call always raises
``LLMError`` (never text that could end up in a file), and no message ever holds the API key.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from typing import Any, Callable

import openai

from dp.database import mask_url
from dp.llm.replies import parse_json_reply
from dp.settings import Settings, get_settings

log = logging.getLogger(__name__)

_NO_KEY = "no-key"  # sent when no key is configured: local servers ignore it, the openai package needs one
_REASK = (
    "Your previous reply could not be used: {problem}. Reply again with only the JSON value, "
    "no explanation and no code fences."
)

_semaphores: dict[tuple[str, int], threading.BoundedSemaphore] = {}
_semaphores_lock = threading.Lock()


class LLMError(RuntimeError):
    """An LLM call that failed for good; the message says what failed (status, timeout, bad JSON).

    ``transient`` is True when the last failure was a 429, a 5xx, a timeout or a lost connection:
    the flow may retry the whole step later, when the service has recovered.
    """

    def __init__(self, message: str, *, transient: bool = False):
        super().__init__(message)
        self.transient = transient


def _shared_semaphore(base_url: str, size: int) -> threading.BoundedSemaphore:
    key = (base_url.rstrip("/"), size)
    with _semaphores_lock:
        if key not in _semaphores:
            _semaphores[key] = threading.BoundedSemaphore(size)
        return _semaphores[key]


def _retry_after(headers: Any) -> float | None:
    """Seconds a server asked us to wait (``retry-after-ms``, ``retry-after`` seconds or HTTP date)."""
    if headers is None:
        return None
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) / divisor)
        except ValueError:
            pass
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            continue  # unreadable: fall back to our own backoff
        return max(0.0, when.timestamp() - time.time())
    return None


def _error_detail(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        message = body.get("message") or body.get("error") or body
        if isinstance(message, dict):
            message = message.get("message", message)
        return str(message)[:300]
    return str(body or exc.message)[:300]


class ChatClient:
    """A chat model behind an OpenAI-compatible ``/chat/completions`` endpoint; thread-safe."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | None,
        model: str,
        timeout: float,
        max_retries: int,
        max_concurrency: int,
        backoff_base: float = 1.0,
        backoff_max: float = 30.0,
        temperature: float | None = None,
    ):
        if not base_url:
            raise ValueError("the LLM base URL is empty; set DP_LLM_BASE_URL, e.g. http://host:8000/v1")
        self.base_url = base_url
        self.model = model
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.temperature = temperature
        self._api_key = api_key or None
        self._openai = openai.OpenAI(base_url=base_url, api_key=api_key or _NO_KEY, timeout=timeout, max_retries=0)
        self._semaphore = _shared_semaphore(base_url, max_concurrency)
        self._json_mode = True  # cleared when the server rejects response_format
        self._calls = 0
        self._calls_lock = threading.Lock()
        self._random = random.Random()

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> "ChatClient":
        settings = settings or get_settings()
        if not settings.llm_base_url:
            raise ValueError(
                "DP_LLM_PROVIDER=openai needs an endpoint: set DP_LLM_BASE_URL to the OpenAI-compatible API "
                "(e.g. http://host:8000/v1), or set DP_LLM_PROVIDER=heuristic to work offline"
            )
        return cls(
            base_url=settings.llm_base_url,
            api_key=settings.llm_api_key.get_secret_value() if settings.llm_api_key else None,
            model=settings.llm_model,
            timeout=settings.llm_timeout,
            max_retries=settings.llm_max_retries,
            max_concurrency=settings.llm_max_concurrency,
            backoff_base=settings.llm_backoff_base,
            backoff_max=settings.llm_backoff_max,
            temperature=settings.llm_temperature,
        )

    @property
    def calls(self) -> int:
        """HTTP calls made so far, retries included."""
        return self._calls

    def close(self) -> None:
        self._openai.close()

    def chat_text(self, *, system: str, user: str) -> str:
        """The model's reply, as text (reasoning blocks included: callers strip what they do not want)."""
        return self._complete(_messages(system, user), json_mode=False)

    def chat_json(self, *, system: str, user: str, validate: Callable[[Any], Any] | None = None) -> Any:
        """The JSON value the model replies with, re-asking once when it is unparseable.

        ``validate`` (optional) checks the value's shape and returns what to hand back; a ``ValueError``
        from it also earns the one re-ask, so the model gets a chance to fix the shape too.
        """
        messages = _messages(system, user)
        text = self._complete(messages, json_mode=True)
        try:
            return _checked(text, validate)
        except ValueError as exc:
            log.warning("LLM reply unusable (%s); asking once more", exc)
            messages += [
                {"role": "assistant", "content": text[:4000]},
                {"role": "user", "content": _REASK.format(problem=exc)},
            ]
        text = self._complete(messages, json_mode=True)
        try:
            return _checked(text, validate)
        except ValueError as exc:
            raise self._error(f"reply unusable after one re-ask: {exc}; reply began {text[:200]!r}") from None

    def _complete(self, messages: list[dict[str, str]], *, json_mode: bool) -> str:
        attempt = 0
        while True:
            use_json_mode = json_mode and self._json_mode
            try:
                with self._semaphore:
                    with self._calls_lock:
                        self._calls += 1
                    response = self._openai.chat.completions.create(
                        model=self.model,
                        messages=messages,
                        **({"response_format": {"type": "json_object"}} if use_json_mode else {}),
                        **({"temperature": self.temperature} if self.temperature is not None else {}),
                    )
            except openai.APIStatusError as exc:
                detail = _error_detail(exc)
                if use_json_mode and exc.status_code in (400, 422) and "response_format" in detail.lower():
                    log.info("%s rejects response_format; asking for JSON in the prompt only", self._where())
                    self._json_mode = False
                    continue
                problem = f"HTTP {exc.status_code}: {detail}"
                if exc.status_code != 429 and exc.status_code < 500:
                    raise self._error(problem) from None
                retry_after = _retry_after(exc.response.headers)
            except openai.APITimeoutError:
                problem, retry_after = f"timed out after {self.timeout:g} s", None
            except openai.APIConnectionError as exc:
                problem, retry_after = f"connection failed: {exc.__cause__ or exc}", None
            except openai.OpenAIError as exc:
                raise self._error(f"unusable response: {exc}") from None
            else:
                return self._content(response)
            if attempt >= self.max_retries:
                raise self._error(f"{problem} (after {attempt + 1} attempts)", transient=True)
            delay = self._delay(attempt, retry_after)
            log.warning(
                "LLM call failed (%s); retry %d/%d in %.2f s",
                self._scrub(problem), attempt + 1, self.max_retries, delay,
            )
            time.sleep(delay)
            attempt += 1

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.backoff_max)
        ceiling = min(self.backoff_base * 2**attempt, self.backoff_max)
        return self._random.uniform(ceiling / 2, ceiling)

    def _content(self, response: Any) -> str:
        choices = getattr(response, "choices", None) or []
        if not choices:
            raise self._error("response has no choices")
        content = choices[0].message.content
        if not content or not content.strip():
            raise self._error(f"empty reply (finish_reason={choices[0].finish_reason})")
        return content

    def _where(self) -> str:
        return f"LLM {self.model} at {mask_url(self.base_url)}"

    def _scrub(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text

    def _error(self, problem: str, *, transient: bool = False) -> LLMError:
        return LLMError(self._scrub(f"{self._where()}: {problem}"), transient=transient)


def _messages(system: str, user: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def _checked(text: str, validate: Callable[[Any], Any] | None) -> Any:
    value = parse_json_reply(text)
    return validate(value) if validate else value
