import numpy as np
import pytest

from dp.embeddings import EmbeddingError, get_embedder
from dp.embeddings.openai_api import OpenAIEmbedder
from dp.settings import get_settings
from tests.fakes.openai_server import fake_embedding

SECRET = "sk-embedding-secret"


def embedder_for(server, monkeypatch, **env) -> OpenAIEmbedder:
    settings = {
        "DP_EMBEDDING_PROVIDER": "openai",
        "DP_EMBEDDING_BASE_URL": server.base_url,
        "DP_EMBEDDING_API_KEY": SECRET,
        "DP_EMBEDDING_MODEL": "fake-embed",
        "DP_EMBEDDING_BATCH_SIZE": "3",
        "DP_EMBEDDING_MAX_RETRIES": "2",
        **env,
    }
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    embedder = get_embedder()
    assert isinstance(embedder, OpenAIEmbedder)
    return embedder


def test_batches_requests_and_keeps_order(fake_openai, monkeypatch):
    embedder = embedder_for(fake_openai, monkeypatch)
    texts = [f"text number {i}" for i in range(7)]
    vectors = embedder.embed(texts)
    assert vectors.shape == (7, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors[5], fake_embedding("text number 5"), atol=1e-6)
    assert [len(r["input"]) for r in fake_openai.requests] == [3, 3, 1]
    assert {r["model"] for r in fake_openai.requests} == {"fake-embed"}
    assert fake_openai.request_headers[0]["authorization"] == f"Bearer {SECRET}"
    assert embedder.dimension == 384 and embedder.model_id == "openai:fake-embed"


def test_dimension_is_read_from_the_first_answer(fake_openai, monkeypatch):
    fake_openai.embedding_dim = 16
    embedder = embedder_for(fake_openai, monkeypatch)
    assert embedder.dimension == 16
    assert embedder.embed(["a", "b"]).shape == (2, 16)


@pytest.mark.parametrize("status", [429, 500, 503])
def test_retries_rate_limits_and_server_errors(fake_openai, monkeypatch, status):
    embedder = embedder_for(fake_openai, monkeypatch)
    fake_openai.fail_next(2, status, retry_after=0.01)
    assert embedder.embed(["film rental"]).shape == (1, 384)
    assert len(fake_openai.requests) == 3


def test_gives_up_after_the_retries_without_leaking_the_key(fake_openai, monkeypatch):
    embedder = embedder_for(fake_openai, monkeypatch, DP_EMBEDDING_MAX_RETRIES="1")
    fake_openai.fail_next(5, 503, retry_after=0.01)
    with pytest.raises(EmbeddingError, match="HTTP 503") as caught:
        embedder.embed(["film"])
    assert SECRET not in str(caught.value)
    assert len(fake_openai.requests) == 2


def test_client_errors_are_not_retried(fake_openai, monkeypatch):
    embedder = embedder_for(fake_openai, monkeypatch)
    fake_openai.fail_next(1, 400)
    with pytest.raises(EmbeddingError, match="HTTP 400"):
        embedder.embed(["film"])
    assert len(fake_openai.requests) == 1


def test_over_long_text_is_refused_before_any_request(fake_openai, monkeypatch):
    embedder = embedder_for(fake_openai, monkeypatch, DP_EMBEDDING_MAX_TOKENS="50")
    with pytest.raises(ValueError, match="DP_EMBEDDING_MAX_TOKENS"):
        embedder.embed(["x" * 500])
    assert fake_openai.requests == []


def test_missing_endpoint_says_what_to_set(monkeypatch):
    monkeypatch.setenv("DP_EMBEDDING_PROVIDER", "openai")
    get_settings.cache_clear()
    with pytest.raises(EmbeddingError, match="DP_EMBEDDING_BASE_URL"):
        get_embedder()
