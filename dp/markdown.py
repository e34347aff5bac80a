"""Markdown table cells that no value can break: the data dictionaries and step 2's theme list.

A ``|`` or a line break inside a sample value, a comment or an LLM-written theme would otherwise end
the cell or the row; a backslash before a ``|`` would otherwise un-escape it.
"""

from __future__ import annotations

import re

_NEEDS_CARE = re.compile(r"[|\\\n\r\t\x0b\x0c\x1c-\x1f\x85\u2028\u2029]| {2}|^\s|\s$")


def cell(text: str) -> str:
    """Text safe inside a markdown table cell: ``|`` and ``\\`` escaped, whitespace runs made one space."""
    if not _NEEDS_CARE.search(text):
        return text
    return " ".join(text.replace("\\", "\\\\").replace("|", "\\|").split())


# A cell separator no cell text needs: when a row's cells joined by it need no care, none does
# (one regex search per row instead of one per cell: a quarter of step 1's rendering time).
_JOINED = "\x00"
_ROW_NEEDS_CARE = re.compile(r"[|\\\n\r\t\x0b\x0c\x1c-\x1f\x85\u2028\u2029]| {2}|(?:^|\x00)\s|\s(?:\x00|$)")


def row(cells: list[str]) -> str:
    """One markdown table row of ``cells``, each made safe by ``cell``."""
    if _ROW_NEEDS_CARE.search(_JOINED.join(cells)):
        cells = [cell(c) for c in cells]
    return "| " + " | ".join(cells) + " |"
