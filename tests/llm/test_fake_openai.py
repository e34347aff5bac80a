"""The fake server itself: wire format through the real openai client, embeddings, and start/stop."""

import numpy as np
import openai
import pytest

from tests.fakes.openai_server import fake_embedding, start_fake_openai


def test_embeddings_are_deterministic_unit_vectors_and_similar_for_similar_texts(fake_openai):
    client = openai.OpenAI(base_url=fake_openai.base_url, api_key="k", max_retries=0)
    texts = ["monthly revenue per service area", "revenue per service area by month", "actor first name", "服务区月度营业额"]
    floats = client.embeddings.create(model="e", input=texts, encoding_format="float")
    packed = client.embeddings.create(model="e", input=texts)  # the client asks for base64 by default
    vectors = np.array([d.embedding for d in floats.data])
    assert vectors.shape == (4, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(vectors, [d.embedding for d in packed.data], atol=1e-6)
    np.testing.assert_allclose(vectors[0], fake_embedding(texts[0]), atol=1e-9)
    assert vectors[0] @ vectors[1] > 0.5 > abs(vectors[0] @ vectors[2])
    assert fake_embedding("服务区营业额") @ np.array(fake_embedding(texts[3])) > 0.5
    assert [r["path"] for r in fake_openai.requests] == ["/v1/embeddings", "/v1/embeddings"]


def test_failures_apply_to_any_endpoint_and_reset_clears_them(fake_openai):
    client = openai.OpenAI(base_url=fake_openai.base_url, api_key="k", max_retries=0)
    fake_openai.fail_next(1, status=503)
    with pytest.raises(openai.APIStatusError) as caught:
        client.embeddings.create(model="e", input="x")
    assert caught.value.status_code == 503
    fake_openai.fail_next(3)
    fake_openai.reset()
    reply = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "fake reply"


def test_broken_handler_answers_500_with_the_reason(fake_openai):
    fake_openai.chat_handler = lambda body: 1 / 0
    client = openai.OpenAI(base_url=fake_openai.base_url, api_key="k", max_retries=0)
    with pytest.raises(openai.APIStatusError, match="ZeroDivisionError") as caught:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 500


def test_start_and_stop_outside_pytest():
    with start_fake_openai(latency=0.01, chat_handler=lambda body: {"ok": True}) as fake:
        client = openai.OpenAI(base_url=fake.base_url, api_key="k", max_retries=0)
        reply = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content == '{"ok": true}'
    assert not fake._thread.is_alive()
