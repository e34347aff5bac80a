"""Cutting DDL and markdown into items that fit the embedding model's window, losing nothing.

DDL is cut per table, statement by statement (sqlglot's PostgreSQL tokenizer finds the boundaries,
so quotes, dollar quotes and comments are respected); a CREATE TABLE too long for the window becomes
several CREATE TABLE statements over groups of its columns. Markdown is cut by sections, then blocks;
a long table is cut by rows with its header repeated. A text that fits stays one item, unchanged; the
parts of a cut text start with a line naming their table or document and "part i/n", and whatever
still does not fit is split at line, word or character boundaries: no text is ever dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Sequence, TypeVar

import sqlglot
from sqlglot.errors import TokenError
from sqlglot.tokens import Token, TokenType

from dp.embeddings import Embedder
from dp.embeddings.windows import split_to_fit
from dp.table_list import TableListError, parse_table_list

Unit = TypeVar("Unit")
_HEADING = re.compile(r"^#{1,6}\s")
_MARKER_EXAMPLE = "part 999/999"


@dataclass
class Statement:
    """One SQL statement of a DDL file: its raw text (leading comments included) and what we know of it."""

    text: str
    table: str | None = None  # schema.table for CREATE TABLE / VIEW statements
    lead: str = ""  # comments and blank lines before the code
    header: str = ""  # "CREATE TABLE t (" of a statement with a column list
    elements: list[tuple[str, int]] = field(default_factory=list)  # (column text, offset of its comma or -1)
    footer: str = ""  # ");" and whatever follows the column list


@dataclass
class DdlPart:
    text: str
    table: str | None


class _Budget:
    """The window minus room for a part's first line."""

    def __init__(self, embedder: Embedder, first_line_example: str):
        self.embedder = embedder
        reserve = embedder.count_tokens(first_line_example + "\n") - embedder.count_tokens("") + 1
        self.limit = embedder.max_tokens - reserve

    def fits(self, text: str) -> bool:
        return self.embedder.count_tokens(text) <= self.limit

    def split(self, text: str) -> list[str]:
        return split_to_fit(self.embedder, text, self.limit)


def _groups(
    units: Sequence[Unit],
    render: Callable[[list[Unit]], str],
    budget: _Budget,
    oversize: Callable[[Unit], list[str]] | None = None,
) -> list[str]:
    """Greedy runs of units rendered as one text each; a unit too big on its own goes to ``oversize``
    (default: its rendered text split hard)."""
    texts: list[str] = []
    current: list[Unit] = []
    for unit in units:
        if budget.fits(render(current + [unit])):
            current.append(unit)
            continue
        if current:
            texts.append(render(current))
        if budget.fits(render([unit])):
            current = [unit]
        else:
            texts.extend(oversize(unit) if oversize else budget.split(render([unit])))
            current = []
    if current:
        texts.append(render(current))
    return texts


def _labelled(pieces: list[str], budget: _Budget, separator: str, first_line: Callable[[int, int], str]) -> list[str]:
    packed = _groups(pieces, separator.join, budget)
    parts = [f"{first_line(i, len(packed))}\n{text}" for i, text in enumerate(packed, start=1)]
    embedder = budget.embedder
    return [piece for part in parts for piece in split_to_fit(embedder, part)]  # token counts are estimates


# --- DDL -----------------------------------------------------------------------------------------


def split_ddl(text: str, embedder: Embedder, *, table: str | None, name: str) -> list[DdlPart]:
    """Items of one DDL file: one per table when it fits, else parts of each table's DDL."""
    try:
        statements = _statements(text)
    except TokenError:
        statements = [Statement(text)]  # unreadable SQL is still text: split at lines below
    blocks: list[list[Statement]] = []
    for statement in statements:
        if statement.table and blocks and any(s.table for s in blocks[-1]):
            blocks.append([])
        if not blocks:
            blocks.append([])
        blocks[-1].append(statement)
    parts: list[DdlPart] = []
    for block in blocks:
        owner = next((s.table for s in block if s.table), None) or table
        block_text = "".join(s.text for s in block).strip()
        if not block_text:
            continue
        if embedder.count_tokens(block_text) <= embedder.max_tokens:
            parts.append(DdlPart(block_text, owner))
            continue
        label = owner or name
        budget = _Budget(embedder, f"-- {label} ({_MARKER_EXAMPLE})")
        pieces = [piece for statement in block for piece in _statement_pieces(statement, budget)]
        texts = _labelled(pieces, budget, "\n", lambda i, n: f"-- {label} (part {i}/{n})")
        parts.extend(DdlPart(t, owner) for t in texts)
    return parts


def _statement_pieces(statement: Statement, budget: _Budget) -> list[str]:
    whole = statement.text.strip()
    if budget.fits(whole):
        return [whole]
    if not statement.elements:
        return budget.split(whole)
    lead = budget.split(statement.lead.strip()) if statement.lead.strip() else []

    def render(elements: list[tuple[str, int]]) -> str:
        lines = []
        for index, (element, comma) in enumerate(elements):
            if index == len(elements) - 1 and comma >= 0:
                element = element[:comma] + element[comma + 1 :]
            lines.append("    " + element.strip())
        return statement.header + "\n" + "\n".join(lines) + "\n" + statement.footer

    return lead + _groups(statement.elements, render, budget)


def _statements(text: str) -> list[Statement]:
    tokens = sqlglot.tokenize(text, read="postgres")
    statements: list[Statement] = []
    start, current = 0, []
    for token in tokens:
        current.append(token)
        if token.token_type == TokenType.SEMICOLON:
            end = _line_end(text, token.end + 1)
            statements.append(_statement(text, start, end, current))
            start, current = end, []
    if current or text[start:].strip():
        statements.append(_statement(text, start, len(text), current))
    return statements


def _line_end(text: str, position: int) -> int:
    """Past the end of the line when only blanks or a ``--`` comment follow ``position`` on it."""
    newline = text.find("\n", position)
    rest_end = len(text) if newline < 0 else newline + 1
    rest = text[position:rest_end].strip()
    return rest_end if not rest or rest.startswith("--") else position


def _statement(text: str, start: int, end: int, tokens: list[Token]) -> Statement:
    statement = Statement(text[start:end])
    if not tokens or tokens[0].token_type != TokenType.CREATE:
        return statement
    statement.lead = text[start : tokens[0].start]
    kind = next((i for i, t in enumerate(tokens[:6]) if t.token_type in (TokenType.TABLE, TokenType.VIEW)), None)
    if kind is None:
        return statement
    i = kind + 1
    if [t.text.upper() for t in tokens[i : i + 3]] == ["IF", "NOT", "EXISTS"]:
        i += 3
    if i >= len(tokens):
        return statement
    first = last = i
    while last + 2 < len(tokens) and tokens[last + 1].token_type == TokenType.DOT:
        last += 2
    try:
        [name] = parse_table_list([text[tokens[first].start : tokens[last].end + 1]])
        statement.table = f"{name.schema}.{name.name}"
    except (TableListError, ValueError):
        pass
    if tokens[kind].token_type == TokenType.TABLE and last + 1 < len(tokens):
        if tokens[last + 1].token_type == TokenType.L_PAREN:
            _column_list(statement, text, start, end, tokens, last + 1)
    return statement


def _column_list(statement: Statement, text: str, start: int, end: int, tokens: list[Token], open_at: int) -> None:
    depth, commas, close = 0, [], None
    for token in tokens[open_at:]:
        if token.token_type == TokenType.L_PAREN:
            depth += 1
        elif token.token_type == TokenType.R_PAREN:
            depth -= 1
            if depth == 0:
                close = token
                break
        elif token.token_type == TokenType.COMMA and depth == 1:
            commas.append(token.end)
    if close is None or not commas:
        return
    position = tokens[open_at].end + 1
    for comma in commas:
        cut = _line_end(text, comma + 1)
        statement.elements.append((text[position:cut], comma - position))
        position = cut
    statement.elements.append((text[position : close.start], -1))
    statement.header = text[tokens[0].start : tokens[open_at].end + 1]
    statement.footer = text[close.start : end].strip()


# --- markdown ------------------------------------------------------------------------------------


def split_markdown(text: str, embedder: Embedder, *, name: str) -> list[str]:
    """Items of one markdown document: the whole text when it fits, else labelled parts."""
    if embedder.count_tokens(text.strip()) <= embedder.max_tokens:
        return [text.strip()] if text.strip() else []
    lines = text.strip().splitlines()
    title = f"# {name}"
    if lines and lines[0].startswith("# "):
        title, lines = lines[0].strip(), lines[1:]
    budget = _Budget(embedder, f"{title} ({_MARKER_EXAMPLE})")
    pieces: list[str] = []
    for heading, body in _sections(lines):
        section = "\n".join(([heading, ""] if heading else []) + body).strip()
        if not section:
            continue
        if budget.fits(section):
            pieces.append(section)
            continue
        prefix = heading + "\n\n" if heading else ""
        for block in _blocks(body):
            pieces.extend(_block_pieces(prefix, block, budget))
    return _labelled(pieces, budget, "\n\n", lambda i, n: f"{title} (part {i}/{n})")


def _sections(lines: list[str]) -> list[tuple[str, list[str]]]:
    sections: list[tuple[str, list[str]]] = [("", [])]
    for line in lines:
        if _HEADING.match(line):
            sections.append((line.strip(), []))
        else:
            sections[-1][1].append(line)
    return sections


def _blocks(lines: list[str]) -> list[list[str]]:
    """Paragraphs split at blank lines, with every run of table rows (``|``) a block of its own."""
    blocks: list[list[str]] = []
    previous_kind = None
    for line in lines:
        kind = "blank" if not line.strip() else "table" if line.lstrip().startswith("|") else "text"
        if kind != "blank" and (kind != previous_kind or not blocks):
            blocks.append([])
        if kind != "blank":
            blocks[-1].append(line)
        previous_kind = kind
    return blocks


def _block_pieces(prefix: str, block: list[str], budget: _Budget) -> list[str]:
    text = prefix + "\n".join(block)
    if budget.fits(text):
        return [text]
    if block[0].lstrip().startswith("|"):
        header_size = 2 if len(block) > 1 and set(block[1].strip()) <= set("|-: ") else 1
        prefix += "\n".join(block[:header_size]) + "\n"
        block = block[header_size:]

    def oversize(line: str) -> list[str]:  # a huge row keeps the heading and table header on each piece
        room = budget.limit - (budget.embedder.count_tokens(prefix) - budget.embedder.count_tokens(""))
        return [prefix + piece for piece in split_to_fit(budget.embedder, line, max(room, 8))]

    return _groups(block, lambda rows: prefix + "\n".join(rows), budget, oversize)
