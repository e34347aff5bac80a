"""A numpy fp32 forward pass of all-MiniLM-L6-v2 from the gt wheel's safetensors file.

Test-only reference for the int8 ONNX model: BERT (6 layers, 12 heads, exact GELU) with mean pooling
and L2 normalisation, read straight from the safetensors format (8-byte header length, JSON header,
raw little-endian tensors), so no torch or safetensors package is needed.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np

LAYERS, HEADS, EPS = 6, 12, 1e-12
_erf = np.vectorize(math.erf, otypes=[np.float32])


def load_safetensors(path: Path) -> dict[str, np.ndarray]:
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + length])
    base = 8 + length
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__" or info["dtype"] != "F32":
            continue
        start, end = info["data_offsets"]
        tensors[name] = np.frombuffer(raw[base + start : base + end], dtype="<f4").reshape(info["shape"])
    return tensors


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + EPS) * weight + bias


def _dense(w: dict[str, np.ndarray], prefix: str, x: np.ndarray) -> np.ndarray:
    return x @ w[prefix + ".weight"].T + w[prefix + ".bias"]


def embed_fp32(w: dict[str, np.ndarray], ids: list[int]) -> np.ndarray:
    """The sentence vector of one tokenised text ([CLS] ... [SEP] ids)."""
    n = len(ids)
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:n]
    x = x + w["embeddings.token_type_embeddings.weight"][0]
    x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
    size = x.shape[1] // HEADS
    for i in range(LAYERS):
        p = f"encoder.layer.{i}"
        q, k, v = (
            _dense(w, f"{p}.attention.self.{name}", x).reshape(n, HEADS, size).transpose(1, 0, 2)
            for name in ("query", "key", "value")
        )
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(size)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        context = (scores / scores.sum(-1, keepdims=True)) @ v
        attended = _dense(w, f"{p}.attention.output.dense", context.transpose(1, 0, 2).reshape(n, -1))
        x = _layer_norm(attended + x, w[f"{p}.attention.output.LayerNorm.weight"], w[f"{p}.attention.output.LayerNorm.bias"])
        hidden = _dense(w, f"{p}.intermediate.dense", x)
        hidden = 0.5 * hidden * (1.0 + _erf(hidden / math.sqrt(2.0)))
        x = _layer_norm(_dense(w, f"{p}.output.dense", hidden) + x, w[f"{p}.output.LayerNorm.weight"], w[f"{p}.output.LayerNorm.bias"])
    pooled = x.mean(0)
    return pooled / np.linalg.norm(pooled)
