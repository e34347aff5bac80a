"""Text embeddings behind one interface (``Embedder``), chosen by ``DP_EMBEDDING_PROVIDER``.

* ``local`` (default): all-MiniLM-L6-v2 as an int8 ONNX model, 384-d, offline, no torch.
* ``openai``: any OpenAI-compatible ``/v1/embeddings`` endpoint.

Providers never truncate: a text longer than ``max_tokens`` is an error, and ``windows`` holds the
helpers that split such texts (or average their windows) before they reach a provider.
"""

from __future__ import annotations

from dp.embeddings.base import Embedder, EmbeddingError
from dp.settings import Settings, get_settings

__all__ = ["Embedder", "EmbeddingError", "get_embedder"]


def get_embedder(settings: Settings | None = None) -> Embedder:
    """The configured provider (the local model is loaded once per process and shared)."""
    settings = settings or get_settings()
    if settings.embedding_provider == "openai":
        from dp.embeddings.openai_api import OpenAIEmbedder

        return OpenAIEmbedder.from_settings(settings)
    from dp.embeddings.local import local_embedder

    return local_embedder(settings.embedding_batch_size)
