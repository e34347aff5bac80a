"""Offline repairs: fix what a rule can pin down to exactly one answer, else give up.

Works from PostgreSQL's own error (``column "x" does not exist``, ``relation "x" does not exist`` and
the HINT) plus step 1's tables and columns. Three rules: quote identifiers written in the wrong case
(unquoted ``FirstName`` folds to ``firstname``), replace an unknown column with its one close match in
the tables the query reads, replace an unknown table with its one close match. Edits are made on the
tokens of the original text, so everything else in the query stays byte for byte.
"""

from __future__ import annotations

import difflib
import re

from sqlglot import exp
from sqlglot.tokens import Token, TokenType

from dp.table_list import TableName
from steps.ddl_generation.sqltext import ident
from steps.sql_validation.guard import table_names, tokenize_sql
from steps.sql_validation.repair import RepairRequest, referenced_tables
from steps.sql_validation.schema_context import SchemaContext
from steps.sql_validation.validator import UNDEFINED_COLUMN, UNDEFINED_TABLE

_MISSING_COLUMN = re.compile(r'^column (?:"(?P<quoted>.+)"|(?P<dotted>\S+)) does not exist')
_MISSING_RELATION = re.compile(r'^relation "(?P<name>.+)" does not exist')
_HINT_ONE_COLUMN = re.compile(r'^Perhaps you meant to reference the column "(?P<ref>[^"]+)"\.$')
_NAME_TOKENS = (TokenType.VAR, TokenType.IDENTIFIER)
_CUTOFF = 0.75


class HeuristicRepairer:
    """Rule-based repairs against one task's schema; ``repair`` returns None when no rule applies."""

    def __init__(self, context: SchemaContext):
        self.context = context

    def repair(self, request: RepairRequest) -> str | None:
        check = request.check
        if check is None or check.message is None or request.tree is None:
            return None  # the guard refused it or the database said nothing a rule can use
        tokens = tokenize_sql(request.sql)
        referenced = referenced_tables(request, self.context)
        if check.sqlstate == UNDEFINED_COLUMN:
            return self._fix_column(request, tokens, referenced)
        if check.sqlstate == UNDEFINED_TABLE:
            return self._fix_table(request, tokens)
        return None

    def _fix_column(self, request: RepairRequest, tokens: list[Token], referenced: list[TableName]) -> str | None:
        match = _MISSING_COLUMN.match(request.check.message)
        if not match:
            return None
        if match.group("quoted") is not None:
            qualifier, missing = None, match.group("quoted")
        else:
            qualifier, _, missing = match.group("dotted").rpartition(".")
            qualifier = qualifier or None
        scope = self._alias_table(request.tree, qualifier) if qualifier else referenced
        candidates = self.context.columns(scope)
        if missing in candidates:
            return None  # it exists, just not where the query looks: not a spelling problem
        fixed = _quote_case(request.sql, tokens, self.context.columns(referenced))
        if fixed:
            return fixed
        replacement = _hinted(request.check.hint, qualifier) or _one_close_match(missing, candidates)
        if replacement is None:
            return None
        return _replace(request.sql, tokens, missing, replacement, qualifier)

    def _fix_table(self, request: RepairRequest, tokens: list[Token]) -> str | None:
        match = _MISSING_RELATION.match(request.check.message)
        if not match:
            return None
        schema, _, missing = match.group("name").rpartition(".")
        names = [key.name for key in self.context.tables if not schema or key.schema == schema]
        fixed = _quote_case(request.sql, tokens, names)
        if fixed:
            return fixed
        replacement = _one_close_match(missing, names)
        return _replace(request.sql, tokens, missing, replacement, schema or None) if replacement else None

    def _alias_table(self, tree: exp.Expression, alias: str) -> list[TableName]:
        """The known table a qualifier (alias or table name) in the query stands for."""
        for table in tree.find_all(exp.Table):
            if _fold(table.alias_or_name) == alias or table.alias_or_name == alias:
                return self.context.resolve(table_names(table))
        return []


def _fold(name: str) -> str:
    return "".join(ch.lower() if "A" <= ch <= "Z" else ch for ch in name)


def _quote_case(sql: str, tokens: list[Token], names: list[str]) -> str | None:
    """Quote every unquoted identifier that means a known name only when written in that name's case."""
    by_fold: dict[str, set[str]] = {}
    for name in names:
        by_fold.setdefault(_fold(name), set()).add(name)
    edits = []
    for token in tokens:
        if token.token_type != TokenType.VAR:
            continue
        meant = by_fold.get(_fold(token.text), set())
        if len(meant) == 1 and _fold(token.text) not in names:
            edits.append((token, ident(next(iter(meant)))))
    return _apply(sql, edits) if edits else None


def _hinted(hint: str | None, qualifier: str | None) -> str | None:
    """The column PostgreSQL's HINT suggests, when it suggests exactly one for the same qualifier."""
    match = _HINT_ONE_COLUMN.match(hint or "")
    if not match:
        return None
    hinted_qualifier, _, column = match.group("ref").rpartition(".")
    if qualifier is not None and hinted_qualifier != qualifier:
        return None
    return column


def _one_close_match(name: str, candidates: list[str]) -> str | None:
    matches = difflib.get_close_matches(name, candidates, n=2, cutoff=_CUTOFF)
    return matches[0] if len(matches) == 1 else None


def _replace(sql: str, tokens: list[Token], missing: str, replacement: str, qualifier: str | None) -> str | None:
    """``sql`` with each identifier token meaning ``missing`` (after ``qualifier.`` if given) replaced."""
    edits = []
    for i, token in enumerate(tokens):
        if token.token_type not in _NAME_TOKENS or _meaning(token) != missing:
            continue
        after_dot = i >= 2 and tokens[i - 1].token_type == TokenType.DOT
        if qualifier is not None and not (after_dot and _meaning(tokens[i - 2]) == qualifier):
            continue
        edits.append((token, ident(replacement)))
    return _apply(sql, edits) if edits else None


def _meaning(token: Token) -> str:
    """The name an identifier token stands for, as PostgreSQL folds it."""
    return token.text if token.token_type == TokenType.IDENTIFIER else _fold(token.text)


def _apply(sql: str, edits: list[tuple[Token, str]]) -> str:
    for token, text in sorted(edits, key=lambda edit: edit[0].start, reverse=True):
        sql = sql[: token.start] + text + sql[token.end + 1 :]
    return sql
