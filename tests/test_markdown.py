"""Markdown cells and rows: no value breaks the table, and the one-search-per-row fast path agrees with
escaping every cell."""

import pytest

from dp.markdown import cell, row

TRICKY = ["a|b", "a\\|b", " lead", "trail ", "two  spaces", "line\nbreak", "tab\there", "\u2028sep", "x\x1fy",
          "", "plain", "中文 注释", "ok ok", "\u00a0nbsp", "nbsp\u00a0"]


@pytest.mark.parametrize("text", TRICKY)
def test_a_row_escapes_each_cell_as_cell_does(text):
    cells = ["plain", text, "", "x"]
    assert row(cells) == "| " + " | ".join(cell(c) for c in cells) + " |"
    assert row([text]) == f"| {cell(text)} |"


def test_escaped_cells_never_end_a_cell_or_a_row():
    for text in TRICKY:
        escaped = cell(text)
        assert "\n" not in escaped and "\r" not in escaped
        assert escaped.replace("\\\\", "").count("|") == escaped.replace("\\\\", "").count("\\|")
    assert cell("a\\|b") == "a\\\\\\|b" and cell(" two  words ") == "two words"
