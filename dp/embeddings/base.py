"""The ``Embedder`` interface every provider implements, and the error they raise."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


class EmbeddingError(RuntimeError):
    """Embedding failed for good (model missing or corrupt, endpoint down); the message says the fix."""


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into vectors.

    ``model_id`` names the model (vectors of different models never mix); ``max_tokens`` is the input
    window that ``count_tokens`` measures against. ``embed`` returns one float32 row per text, in order,
    and raises ``ValueError`` for a text longer than the window instead of truncating it.
    """

    model_id: str
    max_tokens: int

    @property
    def dimension(self) -> int: ...

    def count_tokens(self, text: str) -> int: ...

    def embed(self, texts: list[str]) -> np.ndarray: ...
