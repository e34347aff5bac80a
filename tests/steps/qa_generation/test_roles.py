"""English nouns in the heuristic's questions: a table's name, made plural as a question asks for it."""

from __future__ import annotations

import pytest

from steps.qa_generation.roles import plural


@pytest.mark.parametrize(("noun", "expected"), [
    ("film", "films"), ("customers", "customers"), ("category", "categories"), ("film category", "film categories"),
    ("box", "boxes"), ("address", "addresses"), ("status", "statuses"), ("key", "keys"),
    ("staff", "staff"), ("media", "media"), ("person", "people"), ("sales person", "sales people"),
])
def test_plural(noun, expected):
    assert plural(noun) == expected
