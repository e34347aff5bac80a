"""Finds columns that hold one of a fixed set of values, and records the strongest evidence for it.

Evidence, strongest first: the column's type is an enum (``enum_type``, labels in pg_enum order); a
CHECK constraint of the table or of the column's domain allows only listed values
(``check_constraint``, read from sqlglot's tokens or syntax tree, never with regular expressions); or
a probe of the data finds at most ``enum_max_values`` distinct values (``distinct_values``). Probes
run only on columns whose name, type or samples suggest categories, never on a table known to be
empty, all of one table's probes in one UNION ALL query.
"""

from __future__ import annotations

import functools
import logging
import re

import psycopg2
import psycopg2.extensions
import sqlglot
from psycopg2 import sql
from sqlglot import exp
from sqlglot.dialects.postgres import Postgres
from sqlglot.tokens import TokenType

from dp.settings import Settings
from steps.ddl_generation.introspect import Relation
from steps.ddl_generation.model import Column
from steps.ddl_generation.sampling import SampleRows, table_identifier, tablesample_clause

log = logging.getLogger(__name__)

_NAME_HINTS = {
    "status", "type", "kind", "level", "category", "gender", "sex", "state", "method", "class", "flag",
    "mode", "rating", "grade", "tier", "priority", "stage", "phase", "channel", "role", "currency",
}
_CHINESE_HINTS = ("状态", "类型", "类别", "级别", "等级", "方式", "性别", "种类", "分类", "标志", "模式", "阶段", "渠道")
_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_INTEGER_TYPES = {"int2", "int4", "int8"}
_LONGEST_CATEGORY_TYPE = 255  # varchar(n) longer than this holds prose, not categories
_CLAUSE_SUFFIXES = ("NOT VALID", "NO INHERIT")
_POSTGRES = Postgres()


def _words(name: str) -> list[str]:
    return [w.lower() for w in _WORDS.findall(name)]


def names_an_id(name: str) -> bool:
    """``id``, ``status_id``, ``OrderID``: a reference to rows, whatever its values look like."""
    words = _words(name)
    return bool(words) and words[-1] in ("id", "ids")


def name_suggests_category(name: str) -> bool:
    if names_an_id(name):
        return False
    return any(w in _NAME_HINTS for w in _words(name)) or any(h in name for h in _CHINESE_HINTS)


def _literal_value(node: exp.Expression) -> str | None:
    while isinstance(node, (exp.Paren, exp.Cast)):
        node = node.this
    if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal) and not node.this.is_string:
        return "-" + str(node.this.this)
    if isinstance(node, exp.Literal):
        return str(node.this)
    return None


def _column_name(node: exp.Expression) -> str | None:
    while isinstance(node, (exp.Paren, exp.Cast)):
        node = node.this
    return node.name if isinstance(node, exp.Column) and not node.table else None


def _allowed_values(node: exp.Expression) -> tuple[str, list[str]] | None:
    """``(column, values)`` when ``node`` only lets a column take listed literal values."""
    while isinstance(node, exp.Paren):
        node = node.this
    items: list[exp.Expression] | None = None
    if isinstance(node, exp.In) and not node.args.get("query"):
        column, items = _column_name(node.this), node.expressions
    elif isinstance(node, exp.EQ) and isinstance(node.expression, exp.Any):
        array = node.expression.this
        while isinstance(array, (exp.Paren, exp.Cast)):
            array = array.this
        column = _column_name(node.this)
        items = array.expressions if isinstance(array, exp.Array) else None
    elif isinstance(node, exp.EQ):
        column, items = _column_name(node.this), [node.expression]
    elif isinstance(node, exp.Or):
        left, right = _allowed_values(node.this), _allowed_values(node.expression)
        if left and right and left[0] == right[0]:
            return left[0], left[1] + [v for v in right[1] if v not in left[1]]
        return None
    else:
        return None
    if column is None or not items:
        return None
    values = [_literal_value(item) for item in items]
    if any(v is None for v in values):
        return None
    return column, list(dict.fromkeys(values))


def check_constraint_values(definition: str) -> dict[str, list[str]]:
    """Columns a ``CHECK (...)`` definition (pg_get_constraintdef) limits to listed values.

    A domain's checks name the value ``VALUE``. Conditions joined by AND are read one by one, so
    ``CHECK (a IN ('x', 'y') AND b > 0)`` still limits ``a``.
    """
    body = definition.strip()
    if not body.upper().startswith("CHECK"):
        return {}
    body = body[len("CHECK"):].strip()
    for suffix in _CLAUSE_SUFFIXES:
        if body.upper().endswith(suffix):
            body = body[: -len(suffix)].strip()
    # Every listing form (=, = ANY, IN) has "=" or "IN"; parsing costs about a millisecond.
    if "=" not in body and " IN " not in body.upper():
        return {}
    return {column: list(values) for column, values in _listed_values(body)}


_NAME = re.compile(r"[^\W\d][\w ]*")  # an identifier or a type name such as CHARACTER VARYING
_PARENS = {TokenType.L_PAREN, TokenType.R_PAREN}
_CONNECTIVES = {TokenType.AND, TokenType.OR, TokenType.NOT}


def _is_word(token) -> bool:
    return token.token_type in (TokenType.VAR, TokenType.IDENTIFIER) or bool(_NAME.fullmatch(token.text))


def _cast_tail(tokens: list) -> bool:
    """Nothing, or ``::type words`` (with ``[]`` for arrays), between parentheses."""
    rest = [t for t in tokens if t.token_type not in _PARENS]
    if not rest:
        return True
    return rest[0].token_type == TokenType.DCOLON and all(
        _is_word(t) or t.token_type in (TokenType.L_BRACKET, TokenType.R_BRACKET) for t in rest[1:]
    )


def _one_literal(tokens: list) -> str | None:
    """``'x'``, ``1``, ``(-3)`` or ``'x'::text``: the literal's text, else None."""
    inner = [t for t in tokens if t.token_type not in _PARENS]
    sign = ""
    if inner and inner[0].token_type == TokenType.DASH:
        sign, inner = "-", inner[1:]
    if not inner or inner[0].token_type not in (TokenType.STRING, TokenType.NUMBER) or not _cast_tail(inner[1:]):
        return None
    if sign and inner[0].token_type != TokenType.NUMBER:
        return None
    return sign + inner[0].text


def _canonical_any(body: str) -> tuple[tuple[str, tuple[str, ...]], ...] | None:
    """The shape PostgreSQL prints for ``col IN (...)``: ``(col)::t = ANY ((ARRAY[...])::t[])``.

    Read from sqlglot's tokens (a tenth of a full parse); anything else returns None and gets the
    full parser.
    """
    try:
        tokens = _POSTGRES.tokenize(body)
    except sqlglot.errors.TokenError:
        return None
    kinds = [t.token_type for t in tokens]
    if kinds.count(TokenType.EQ) != 1 or TokenType.L_BRACKET not in kinds or _CONNECTIVES.intersection(kinds):
        return None
    eq = kinds.index(TokenType.EQ)
    left = [t for t in tokens[:eq] if t.token_type not in _PARENS]
    if not left or not _is_word(left[0]) or not _cast_tail(left[1:]):
        return None
    opening = kinds.index(TokenType.L_BRACKET)
    if [k for k in kinds[eq + 1 : opening] if k not in _PARENS] != [TokenType.ANY, TokenType.ARRAY]:
        return None
    closing = kinds.index(TokenType.R_BRACKET, opening)
    if not _cast_tail(tokens[closing + 1 :]):
        return None
    items: list[list] = [[]]
    for token in tokens[opening + 1 : closing]:
        if token.token_type == TokenType.COMMA:
            items.append([])
        else:
            items[-1].append(token)
    values = [_one_literal(item) for item in items]
    if any(v is None for v in values):
        return None
    return ((left[0].text, tuple(dict.fromkeys(values))),)


@functools.lru_cache(maxsize=4096)
def _listed_values(body: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Parsed once per distinct text: schemas repeat the same CHECK on many tables."""
    fast = _canonical_any(body)
    return fast if fast is not None else _parsed_values(body)


def _parsed_values(body: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The general case, from sqlglot's syntax tree."""
    try:
        tree = sqlglot.parse_one(body, read="postgres")
    except (sqlglot.errors.ParseError, sqlglot.errors.TokenError) as exc:
        log.debug("cannot parse CHECK %s: %s", body, exc)
        return ()
    conjuncts, found = [tree], {}
    while conjuncts:
        node = conjuncts.pop(0)
        while isinstance(node, exp.Paren):
            node = node.this
        if isinstance(node, exp.And):
            conjuncts[:0] = [node.this, node.expression]
            continue
        allowed = _allowed_values(node)
        if allowed:
            found.setdefault(allowed[0], tuple(allowed[1]))
    return tuple(found.items())


def _is_probe_candidate(relation: Relation, column: Column, samples: SampleRows, keyed: set[str]) -> bool:
    traits = relation.traits[column.name]
    if column.enum_values is not None or column.name in keyed or names_an_id(column.name):
        return False
    if traits.category == "S":
        if traits.max_length is not None and traits.max_length > _LONGEST_CATEGORY_TYPE:
            return False
    elif not (traits.category == "N" and traits.base_type in _INTEGER_TYPES):
        return False
    if name_suggests_category(column.name):
        return True
    values = samples.values.get(column.name, [])
    return len(values) >= 4 and len(set(values)) <= len(values) // 2


def _keyed_columns(relation: Relation) -> set[str]:
    """Columns that identify rows or point at other rows: never categories."""
    keyed = {fk_col for fk in relation.table.foreign_keys for fk_col in fk.columns}
    for constraint in relation.table.constraints:
        if constraint.kind in ("primary_key", "unique") and len(constraint.columns) == 1:
            keyed.update(constraint.columns)
    return keyed


def _sorted_values(values: list[str]) -> list[str]:
    try:
        return sorted(values, key=float)
    except ValueError:
        return sorted(values)


def _probe(conn, relation: Relation, names: list[str], settings: Settings) -> dict[str, list[str]]:
    """Distinct values (at most enum_max_values + 1) of each named column, in one query."""
    limit = settings.enum_max_values + 1
    source = table_identifier(relation)
    sampled = tablesample_clause(relation, settings, settings.sample_tablesample_rows)
    if sampled is not None:
        source = sql.SQL("{}{}").format(source, sampled)
    parts = [
        sql.SQL("(SELECT {i}, v FROM (SELECT DISTINCT ({c})::text AS v FROM {t} WHERE {c} IS NOT NULL LIMIT {n}) s)")
        .format(i=sql.Literal(i), c=sql.Identifier(name), t=source, n=sql.Literal(limit))
        for i, name in enumerate(names)
    ]
    found: dict[str, list[str]] = {name: [] for name in names}
    try:
        with conn.cursor() as cur:
            cur.execute(sql.SQL(" UNION ALL ").join(parts))
            for i, value in cur.fetchall():
                found[names[i]].append(value)
    except psycopg2.errors.QueryCanceled:
        log.warning("enum probe of %s timed out; its columns are not marked as enums", relation.name.qualified)
        return {}
    return found


def _known_empty(conn: psycopg2.extensions.connection, relation: Relation, samples: SampleRows) -> bool:
    """Nothing to probe: the sample read no row, or (sampling off) the planner saw the table empty.

    From PostgreSQL 14 on, reltuples is -1 until a table is first analysed, so an estimate of 0
    means VACUUM, ANALYZE or CREATE INDEX found it empty; before 14 it may mean "never analysed".
    """
    if samples.read:
        return samples.rows == 0
    return (
        relation.table.kind in ("table", "partitioned_table", "materialized_view")
        and relation.table.row_estimate == 0 and conn.server_version >= 140000
    )


def detect_enums(conn: psycopg2.extensions.connection, relation: Relation, samples: SampleRows,
                 settings: Settings) -> list[str]:
    """Set ``enum_values``/``enum_source`` on the table's columns; returns the enum columns' names."""
    table = relation.table
    for column in table.columns:
        labels = relation.traits[column.name].enum_labels
        if labels is not None:
            column.enum_values, column.enum_source = list(labels), "enum_type"
    for constraint in table.constraints:
        if constraint.kind == "check":
            for name, values in check_constraint_values(constraint.definition).items():
                _set_checked(table.column(name), values)
    for column in table.columns:
        for definition in relation.traits[column.name].domain_checks:
            values = check_constraint_values(definition).get("VALUE")
            if values:
                _set_checked(column, values)
    keyed = _keyed_columns(relation)
    probe = relation.populated and not _known_empty(conn, relation, samples)
    candidates = [c.name for c in table.columns if probe and _is_probe_candidate(relation, c, samples, keyed)]
    if candidates:
        for name, values in _probe(conn, relation, candidates, settings).items():
            # One value tells nothing about categories (an unused or constant column).
            if 2 <= len(values) <= settings.enum_max_values and all(
                len(v) <= settings.sample_text_max for v in values
            ):
                column = table.column(name)
                column.enum_values, column.enum_source = _sorted_values(values), "distinct_values"
    return [c.name for c in table.columns if c.enum_values is not None]


def _set_checked(column: Column | None, values: list[str]) -> None:
    if column is not None and column.enum_source not in ("enum_type", "check_constraint"):
        column.enum_values, column.enum_source = values, "check_constraint"
