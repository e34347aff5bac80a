"""SQL as text: one-line cleaning, statement counting, literals and a canonical form for dedup.

A small lexer walks the text once, keeping string literals, quoted identifiers and dollar-quoted
bodies byte for byte (collapsing whitespace inside them would change what the query means) and
dropping comments (a ``--`` comment on a single line would swallow the rest of the query).
"""

from __future__ import annotations

import re

import sqlglot
from sqlglot.errors import ErrorLevel

_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_\u0080-\U0010ffff]*)?\$")
_FENCE = re.compile(r"^\s*```[A-Za-z]*\s*\n?(.*?)\n?\s*```\s*$", re.DOTALL)


class SqlTextError(ValueError):
    """SQL text that cannot be turned into one clean statement; the message says why."""


def _quoted_end(text: str, start: int, quote: str, backslash_escapes: bool) -> int:
    """Index just past the literal that opens at ``start`` (doubled quotes stay inside)."""
    i = start + 1
    while i < len(text):
        ch = text[i]
        if backslash_escapes and ch == "\\":
            i += 2
            continue
        if ch == quote:
            if text.startswith(quote * 2, i):
                i += 2
                continue
            return i + 1
        i += 1
    raise SqlTextError(f"unterminated {quote} quote")


def _word_char(text: str, i: int) -> bool:
    """Whether position ``i`` holds part of a word (so ``E'`` or ``$x$`` there is no quote opener)."""
    return i >= 0 and (text[i].isalnum() or text[i] in "_$")


def _statements(text: str) -> list[str]:
    """Split into statements with comments removed and whitespace outside literals collapsed."""
    statements: list[str] = []
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            if out and out[-1] != " ":
                out.append(" ")
            i += 1
        elif text.startswith("--", i):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while depth:
                if i >= len(text):
                    raise SqlTextError("unterminated /* comment")
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
            if out and out[-1] != " ":
                out.append(" ")
        elif ch in "'\"":
            escaped = ch == "'" and i > 0 and text[i - 1] in "eE" and not _word_char(text, i - 2)
            end = _quoted_end(text, i, ch, escaped)
            out.append(text[i:end])
            i = end
        elif ch == "$" and (tag := _DOLLAR_TAG.match(text, i)) and not _word_char(text, i - 1):
            close = text.find(tag.group(), tag.end())
            if close < 0:
                raise SqlTextError(f"unterminated dollar quote {tag.group()}")
            end = close + len(tag.group())
            out.append(text[i:end])
            i = end
        elif ch == ";":
            statements.append("".join(out).strip())
            out = []
            i += 1
        else:
            out.append(ch)
            i += 1
    statements.append("".join(out).strip())
    return [s for s in statements if s]


def clean_sql(text: str) -> str:
    """One statement on one line without comments or trailing ``;``; ``SqlTextError`` otherwise."""
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    statements = _statements(text)
    if not statements:
        raise SqlTextError("the SQL is empty")
    if len(statements) > 1:
        raise SqlTextError(f"the SQL holds {len(statements)} statements; a pair needs exactly one")
    return statements[0]


def normalise_sql(sql: str) -> str:
    """A canonical form for spotting the same query written twice (case, spacing, quoting style).

    sqlglot re-generates the query in one style (keywords in one case, functions and unquoted
    identifiers lower case; literals and quoted identifiers kept); SQL it cannot parse falls back to
    the text with whitespace collapsed, in lower case.
    """
    try:
        tree = sqlglot.parse_one(sql, read="postgres")
        return tree.sql(
            dialect="postgres",
            normalize=True,
            normalize_functions="lower",
            comments=False,
            unsupported_level=ErrorLevel.IGNORE,
        )
    except Exception:  # sqlglot raises several unrelated types on SQL it does not know
        return " ".join(sql.split()).lower()


def sql_literal(value: str) -> str:
    """A PostgreSQL string literal that means ``value`` whatever ``standard_conforming_strings`` says."""
    value = value.replace("\x00", "")
    if "\\" in value:
        return "E'" + value.replace("\\", "\\\\").replace("'", "''") + "'"
    return "'" + value.replace("'", "''") + "'"
