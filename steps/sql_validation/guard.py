"""The static gate in front of the database: only one read-only query gets through.

Generated SQL is hostile input. A query passes only when PostgreSQL's own lexing rules (as sqlglot's
tokenizer applies them) find exactly one statement, sqlglot parses it into a ``SELECT``, a set
operation or a parenthesised / ``WITH`` form of those, no write or session node occurs anywhere in
its tree (a ``DELETE`` in a CTE, ``SELECT INTO``, ``FOR UPDATE``) and it calls no side-effecting
function. "It parsed" never means valid: sqlglot is lenient, so this is an allow-list. What fails
here is never sent to the database; the database check still runs read-only as a second wall.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import cache

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import Token, TokenType

_DIALECT = sqlglot.Dialect.get_or_raise("postgres")

_QUERY_NODES = (exp.Select, exp.Union, exp.Except, exp.Intersect)
_FORBIDDEN_NODES = (
    exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Create, exp.Drop, exp.Alter, exp.TruncateTable,
    exp.Command, exp.Copy, exp.Grant, exp.Revoke, exp.Set, exp.SetItem, exp.Into, exp.Lock, exp.Analyze,
    exp.Transaction, exp.Commit, exp.Rollback, exp.Comment, exp.Declare, exp.Execute, exp.Refresh,
    exp.Cache, exp.Uncache, exp.LoadData, exp.Kill, exp.Use, exp.Pragma,
)  # fmt: skip

# Functions with side effects (writes, sleeps, files, other servers, session state, signals). Matched
# on the bare name of any call, schema-qualified or quoted, by token so a mis-parsed tree cannot hide one.
_FORBIDDEN_FUNCTIONS = re.compile(
    r"""^(
        pg_sleep.* | set_config | dblink.* | lo_.* | pg_terminate_backend | pg_cancel_backend
      | pg_read_file | pg_read_binary_file | pg_ls_.* | pg_stat_file | pg_file_.* | nextval | setval
      | pg_advisory.* | pg_try_advisory.* | pg_notify | txid_current.* | pg_current_xact_id.*
      | pg_reload_conf | pg_rotate_logfile | pg_switch_wal | pg_promote | pg_create_.* | pg_drop_.*
      | pg_copy_.* | pg_replication_origin_.* | pg_logical_emit_message | pg_backup_.* | pg_start_backup
      | pg_stop_backup | pg_wal_replay_.* | pg_stat_reset.* | pg_stat_statements_reset
      | pg_log_backend_memory_contexts | pg_import_system_collations | pg_export_snapshot
      | query_to_xml.* | cursor_to_xml.* | copy
    )$""",
    re.VERBOSE,
)
_STRING_TOKENS = {t for t in TokenType if t.name == "STRING" or t.name.endswith("_STRING")}
_per_thread = threading.local()  # a tokenizer and a parser per thread: they keep state while working


class GuardRejected(ValueError):
    """SQL the guard will not let through; ``kind`` is ``syntax`` (a repair may fix it) or ``forbidden``."""

    def __init__(self, kind: str, message: str):
        self.kind = kind
        super().__init__(message)


@dataclass(frozen=True)
class GuardedSql:
    """A query that passed the guard: ``sql`` is the one statement, without trailing ``;`` or comments."""

    sql: str
    tree: exp.Expression

    def table_names(self) -> list[tuple[str | None, str]]:
        """``(schema, name)`` of every table the query reads, folded as PostgreSQL folds identifiers."""
        return table_names(self.tree)


def guard_sql(sql: str) -> GuardedSql:
    """Let one read-only query through, or raise ``GuardRejected`` saying why."""
    if not isinstance(sql, str) or not sql.strip():
        raise GuardRejected("syntax", "the SQL is empty")
    tokens = tokenize_sql(sql)
    statement = _single_statement(tokens)
    _check_functions(statement)
    body = sql[statement[0].start : statement[-1].end + 1]
    tree = _parse(statement, body)
    _check_tree(tree, statement[0].text)
    return GuardedSql(body, tree)


def table_names(tree: exp.Expression) -> list[tuple[str | None, str]]:
    """``(schema, name)`` of every table node in a tree, unquoted names folded to lower case; CTEs excluded."""
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    found: list[tuple[str | None, str]] = []
    for table in tree.find_all(exp.Table):
        if not table.name:
            continue
        schema = _folded(table.args.get("db")) if table.args.get("db") else None
        name = _folded(table.this)
        if schema is None and name.lower() in ctes:
            continue
        if (schema, name) not in found:
            found.append((schema, name))
    return found


def _folded(identifier: exp.Expression) -> str:
    if isinstance(identifier, exp.Identifier) and identifier.quoted:
        return identifier.name
    return "".join(ch.lower() if "A" <= ch <= "Z" else ch for ch in identifier.name)


def tokenize_sql(sql: str) -> list[Token]:
    """PostgreSQL tokens of ``sql`` (comments dropped, offsets into ``sql``); ``GuardRejected`` if unreadable."""
    tokenizer = getattr(_per_thread, "tokenizer", None)
    if tokenizer is None:
        tokenizer = _per_thread.tokenizer = _DIALECT.tokenizer()
    try:
        return tokenizer.tokenize(sql)
    except TokenError as exc:
        raise GuardRejected("syntax", f"cannot read the SQL: {exc} (an unclosed quote or comment?)") from None


def _single_statement(tokens: list[Token]) -> list[Token]:
    """The tokens of the only statement; empty statements (``;;``) around it are allowed."""
    cuts = [i for i, token in enumerate(tokens) if token.token_type == TokenType.SEMICOLON]
    bounds = zip([-1, *cuts], [*cuts, len(tokens)])
    non_empty = [tokens[start + 1 : end] for start, end in bounds if end - start > 1]
    if not non_empty:
        raise GuardRejected("syntax", "the SQL holds no statement (only comments or semicolons)")
    if len(non_empty) > 1:
        raise GuardRejected(
            "forbidden", f"the SQL holds {len(non_empty)} statements; exactly one SELECT is allowed"
        )
    return non_empty[0]


def _check_functions(tokens: list[Token]) -> None:
    for paren in [i for i, token in enumerate(tokens) if token.token_type == TokenType.L_PAREN and i]:
        token = tokens[paren - 1]
        if token.token_type in _STRING_TOKENS:
            continue
        name = token.text if token.token_type == TokenType.IDENTIFIER else token.text.lower()
        if _FORBIDDEN_FUNCTIONS.match(name):
            raise GuardRejected("forbidden", f"the SQL calls {name}(), which has side effects; only reads are allowed")


def _parse(tokens: list[Token], body: str) -> exp.Expression:
    parser = getattr(_per_thread, "parser", None)
    if parser is None:
        parser = _per_thread.parser = _DIALECT.parser()
    try:
        trees = parser.parse(tokens, body)
    except ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        where = f" at line {first['line']}, column {first['col']}" if first.get("line") else ""
        description = first.get("description") or str(exc).splitlines()[0]
        raise GuardRejected("syntax", f"syntax error{where}: {description}") from None
    if len(trees) != 1 or trees[0] is None:
        raise GuardRejected("forbidden", "the SQL does not parse as exactly one statement")
    return trees[0]


def _check_tree(tree: exp.Expression, first_word: str) -> None:
    top = tree
    while isinstance(top, exp.Subquery):
        top = top.this
    if isinstance(top, _FORBIDDEN_NODES):
        raise GuardRejected("forbidden", f"not a query: the statement is {_describe(top)}; only a SELECT is allowed")
    if not isinstance(top, _QUERY_NODES):
        raise GuardRejected("syntax", f"not a SELECT: the statement starts with {first_word!r}; write one SELECT query")
    for node in tree.walk():
        if _forbidden(type(node)):
            raise GuardRejected("forbidden", f"the query contains {_describe(node)}; only pure reads are allowed")


@cache
def _forbidden(node_type: type) -> bool:
    """``isinstance(node, _FORBIDDEN_NODES)`` answered once per node class (trees have many nodes)."""
    return issubclass(node_type, _FORBIDDEN_NODES)


def _describe(node: exp.Expression) -> str:
    if isinstance(node, exp.Into):
        return "SELECT ... INTO (it creates a table)"
    if isinstance(node, exp.Lock):
        return "a row lock (FOR UPDATE / FOR SHARE)"
    if isinstance(node, exp.Command):
        return f"{str(node.this).upper()} (a command)"
    return node.key.upper()
