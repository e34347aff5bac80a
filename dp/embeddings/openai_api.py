"""Embeddings from any OpenAI-compatible ``/v1/embeddings`` endpoint (OpenAI, DashScope, Ollama, vLLM).

Texts go out in batches of ``DP_EMBEDDING_BATCH_SIZE``; the openai package retries 429, 5xx,
timeouts and connection errors with exponential backoff (honouring Retry-After), up to
``DP_EMBEDDING_MAX_RETRIES`` times. The dimension is whatever the first answer carries, and every
later answer must match it. The remote tokenizer is unknown, so token counts are a conservative
estimate (UTF-8 bytes / 2). No error message ever holds the API key.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import openai

from dp.database import mask_url
from dp.embeddings.base import EmbeddingError
from dp.settings import Settings

log = logging.getLogger(__name__)

_NO_KEY = "no-key"  # local servers ignore the key, but the openai package insists on one


class OpenAIEmbedder:
    """An embedding model behind an OpenAI-compatible endpoint; thread-safe."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | None,
        model: str,
        max_tokens: int,
        batch_size: int,
        timeout: float,
        max_retries: int,
    ):
        if not base_url:
            raise EmbeddingError(
                "DP_EMBEDDING_PROVIDER=openai needs an endpoint: set DP_EMBEDDING_BASE_URL (or DP_LLM_BASE_URL), "
                "e.g. http://host:8000/v1, or set DP_EMBEDDING_PROVIDER=local to work offline"
            )
        self.base_url = base_url
        self.model = model
        self.model_id = f"openai:{model}"
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        self._api_key = api_key or None
        self._client = openai.OpenAI(
            base_url=base_url, api_key=api_key or _NO_KEY, timeout=timeout, max_retries=max_retries
        )
        self._dimension: int | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> "OpenAIEmbedder":
        key = settings.embedding_api_key or settings.llm_api_key
        return cls(
            base_url=settings.embedding_base_url or settings.llm_base_url or "",
            api_key=key.get_secret_value() if key else None,
            model=settings.embedding_model,
            max_tokens=settings.embedding_max_tokens,
            batch_size=settings.embedding_batch_size,
            timeout=settings.embedding_timeout,
            max_retries=settings.embedding_max_retries,
        )

    @property
    def dimension(self) -> int:
        """Read from the first answer (one small request when nothing has been embedded yet)."""
        if self._dimension is None:
            self.embed(["dimension"])
        return self._dimension  # type: ignore[return-value]

    def count_tokens(self, text: str) -> int:
        return max(1, math.ceil(len(text.encode("utf-8")) / 2))

    def embed(self, texts: list[str]) -> np.ndarray:
        texts = list(texts)
        for index, text in enumerate(texts):
            if self.count_tokens(text) > self.max_tokens:
                raise ValueError(
                    f"text {index} is about {self.count_tokens(text)} tokens, more than the window of "
                    f"{self.max_tokens} (DP_EMBEDDING_MAX_TOKENS); split it first (dp.embeddings.windows)"
                )
        rows = [self._request(texts[start : start + self.batch_size]) for start in range(0, len(texts), self.batch_size)]
        if not rows:
            return np.zeros((0, self._dimension or 0), dtype=np.float32)
        return np.vstack(rows)

    def _request(self, batch: list[str]) -> np.ndarray:
        try:
            response = self._client.embeddings.create(model=self.model, input=batch, encoding_format="float")
        except openai.APIStatusError as exc:
            raise self._error(f"HTTP {exc.status_code}: {str(exc.message)[:300]}") from None
        except openai.APITimeoutError:
            raise self._error("timed out (after retries)") from None
        except openai.APIConnectionError as exc:
            raise self._error(f"connection failed: {exc.__cause__ or exc}") from None
        except openai.OpenAIError as exc:
            raise self._error(f"unusable response: {exc}") from None
        data = sorted(response.data or [], key=lambda item: item.index)
        if len(data) != len(batch):
            raise self._error(f"asked for {len(batch)} embeddings, got {len(data)}")
        vectors = np.asarray([item.embedding for item in data], dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] == 0:
            raise self._error("the answer holds no usable vectors")
        if self._dimension is None:
            self._dimension = vectors.shape[1]
            log.info("embedding model %s answers with %d-d vectors", self.model, self._dimension)
        elif vectors.shape[1] != self._dimension:
            raise self._error(f"vectors changed from {self._dimension} to {vectors.shape[1]} dimensions")
        return vectors

    def _error(self, problem: str) -> EmbeddingError:
        message = f"embedding model {self.model} at {mask_url(self.base_url)}: {problem}"
        if self._api_key:
            message = message.replace(self._api_key, "***")
        return EmbeddingError(message)
