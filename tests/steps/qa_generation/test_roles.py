"""Words in the heuristic's questions: a table's name made plural, a yes/no column's adjective."""

from __future__ import annotations

import pytest

from steps.ddl_generation.model import Column
from steps.qa_generation.roles import flag_word, plural


@pytest.mark.parametrize(("noun", "expected"), [
    ("film", "films"), ("customers", "customers"), ("category", "categories"), ("film category", "film categories"),
    ("box", "boxes"), ("address", "addresses"), ("status", "statuses"), ("key", "keys"),
    ("staff", "staff"), ("media", "media"), ("person", "people"), ("sales person", "sales people"),
])
def test_plural(noun, expected):
    assert plural(noun) == expected


@pytest.mark.parametrize(("name", "values", "expected"), [
    ("active", ["0", "1"], "active"), ("is_active", ["false", "true"], "active"), ("activebool", ["t", "f"], "active"),
    ("is_deleted", ["0", "1"], "deleted"), ("active", ["0", "1", "2"], None), ("status", ["a", "b"], None),
    ("inactive_reason", ["x", "y"], None),
])
def test_flag_word(name, values, expected):
    assert flag_word(Column(name, "integer", enum_values=values)) == expected
