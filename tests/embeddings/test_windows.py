import numpy as np

from dp.embeddings.local import local_embedder
from dp.embeddings.windows import embed_whole, split_to_fit


def test_split_keeps_every_character_and_each_piece_fits():
    embedder = local_embedder(32)
    for text in ["short text", "line of words\n" * 200, "words " * 700, "电影租赁" * 300]:
        pieces = split_to_fit(embedder, text)
        assert "".join(pieces) == text
        assert all(embedder.count_tokens(piece) <= embedder.max_tokens for piece in pieces)
    assert len(split_to_fit(embedder, "words " * 700)) >= 3


def test_long_text_is_embedded_whole_as_a_mean_of_its_windows():
    embedder = local_embedder(32)
    head = "The rental table records every film rental with its customer and staff member. " * 12
    tail = "Payments are made in dollars by customers for each rental they make. " * 12
    long_vector, head_vector, tail_vector = embed_whole(embedder, [head + tail, head, tail])
    assert abs(float(np.linalg.norm(long_vector)) - 1.0) < 1e-5
    # the whole-text vector sees both halves: closer to each than they are to each other
    assert long_vector @ head_vector > head_vector @ tail_vector
    assert long_vector @ tail_vector > head_vector @ tail_vector


def test_progress_reports_texts_done():
    seen = []
    embed_whole(local_embedder(32), [f"text {i}" for i in range(70)], progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (70, 70) and len(seen) == 3
