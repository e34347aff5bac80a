"""Texts longer than a model's window: split them, or embed them whole as a mean of windows.

Nothing here ever drops text. ``split_to_fit`` cuts at line breaks first, then at spaces, then
between characters (CJK text has no spaces), so every piece fits and the pieces joined back give the
original text. ``embed_whole`` gives one vector per text: a text that fits is embedded as is, a longer
one as the token-weighted mean of its pieces' vectors, re-normalised.
"""

from __future__ import annotations

import re
from typing import Callable

import numpy as np

from dp.embeddings.base import Embedder

Progress = Callable[[int, int], None]


def split_to_fit(embedder: Embedder, text: str, max_tokens: int | None = None) -> list[str]:
    """Consecutive pieces of ``text`` (concatenating to it exactly), each within ``max_tokens``.

    ``max_tokens`` defaults to the model's window; callers that add a line to each piece pass less.
    """
    limit = embedder.max_tokens if max_tokens is None else max_tokens

    def fits(piece: str) -> bool:
        return embedder.count_tokens(piece) <= limit

    if fits(text):
        return [text]
    for pattern in (r"(?<=\n)", r"(?<=\s)"):
        parts = [part for part in re.split(pattern, text) if part]
        if len(parts) > 1:
            return _pack(parts, fits, lambda part: split_to_fit(embedder, part, limit))
    return _split_characters(text, fits)


def _pack(parts: list[str], fits: Callable[[str], bool], split: Callable[[str], list[str]]) -> list[str]:
    pieces: list[str] = []
    current = ""
    for part in parts:
        if current and fits(current + part):
            current += part
            continue
        if current:
            pieces.append(current)
        if fits(part):
            current = part
        else:
            pieces.extend(split(part))
            current = ""
    if current:
        pieces.append(current)
    return pieces


def _split_characters(text: str, fits: Callable[[str], bool]) -> list[str]:
    pieces: list[str] = []
    while text:
        low, high = 1, len(text)  # longest prefix that fits, by bisection
        while low < high:
            middle = (low + high + 1) // 2
            if fits(text[:middle]):
                low = middle
            else:
                high = middle - 1
        pieces.append(text[:low])
        text = text[low:]
    return pieces


def embed_whole(embedder: Embedder, texts: list[str], progress: Progress | None = None) -> np.ndarray:
    """One unit vector per text, however long; ``progress(done, total)`` after each batch of texts."""
    pieces: list[str] = []
    owners: list[int] = []
    for index, text in enumerate(texts):
        for piece in split_to_fit(embedder, text):
            pieces.append(piece)
            owners.append(index)
    if not texts:
        return np.zeros((0, embedder.dimension), dtype=np.float32)
    step = max(1, getattr(embedder, "batch_size", 32))
    vectors = []
    for start in range(0, len(pieces), step):
        vectors.append(embedder.embed(pieces[start : start + step]))
        if progress:
            progress(owners[min(start + step, len(pieces)) - 1] + 1, len(texts))
    piece_vectors = np.vstack(vectors)
    if len(pieces) == len(texts):
        return piece_vectors
    weights = np.array([embedder.count_tokens(piece) for piece in pieces], dtype=np.float32)
    summed = np.zeros((len(texts), piece_vectors.shape[1]), dtype=np.float32)
    np.add.at(summed, owners, piece_vectors * weights[:, None])
    return (summed / np.maximum(np.linalg.norm(summed, axis=1, keepdims=True), 1e-12)).astype(np.float32)
