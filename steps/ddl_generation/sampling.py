"""Reads a few rows of a table to show what its columns hold, without ever writing or running long.

One query per table, read-only and under a statement timeout (see ``read_only_session``).
Tables whose planner estimate exceeds ``sample_tablesample_rows`` are read through
``TABLESAMPLE SYSTEM`` so the query touches a few blocks instead of scanning from the start. Binary
columns are skipped, values are cast to text server-side and cut to ``sample_text_max`` characters;
a column keeps up to ``sample_values_max`` distinct non-null values.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import psycopg2.extensions
from psycopg2 import sql

from dp.settings import Settings
from steps.ddl_generation.introspect import Relation

log = logging.getLogger(__name__)

_BINARY_TYPES = {"bytea"}
_NO_TABLESAMPLE = {"view", "foreign_table"}
ELLIPSIS = "…"


@dataclass
class SampleRows:
    """The sampled values per column (non-null, cut, in row order) and how many rows were read."""

    rows: int = 0
    values: dict[str, list[str]] = field(default_factory=dict)
    read: bool = False  # the table was actually read (sampling on, something to read)


def read_only_session(conn: psycopg2.extensions.connection, settings: Settings, *, autocommit: bool = True) -> None:
    """Make every later transaction on ``conn`` read-only and bounded by the statement timeout.

    With ``autocommit`` each statement is its own read-only transaction (one round trip instead of
    three for BEGIN, query, COMMIT); without it the caller's ``with conn:`` block is one transaction,
    as introspection needs for a single snapshot of the catalog.
    """
    conn.set_session(readonly=True, autocommit=autocommit)
    with conn.cursor() as cur:
        cur.execute("SET statement_timeout = %s", (f"{int(settings.sample_statement_timeout * 1000)}ms",))
        # Catalog queries over thousands of tables look costly to the planner; JIT compiling them
        # costs more than running them.
        cur.execute("SET jit = off")
    conn.commit()


def table_identifier(relation: Relation) -> sql.Identifier:
    return sql.Identifier(relation.table.schema, relation.table.name)


def tablesample_clause(relation: Relation, settings: Settings, wanted_rows: int) -> sql.Composable | None:
    """``TABLESAMPLE SYSTEM (p)`` reading about ``wanted_rows`` rows of a big table; None for small ones."""
    estimate = relation.table.row_estimate or 0
    if relation.table.kind in _NO_TABLESAMPLE or estimate <= settings.sample_tablesample_rows:
        return None
    percent = min(100.0, max(0.0001, 100.0 * wanted_rows / estimate))
    return sql.SQL(" TABLESAMPLE SYSTEM ({})").format(sql.Literal(round(percent, 6)))


def cut(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[:limit] + ELLIPSIS


def sample_table(conn: psycopg2.extensions.connection, relation: Relation, settings: Settings) -> SampleRows:
    """Read up to ``settings.sample_rows`` rows and store each column's distinct samples on the table."""
    columns = [
        c.name for c in relation.table.columns if relation.traits[c.name].base_type not in _BINARY_TYPES
    ]
    if settings.sample_rows <= 0 or not columns or not relation.populated:
        return SampleRows()
    limit = settings.sample_text_max
    select_list = sql.SQL(", ").join(
        sql.SQL("left(({})::text, {})").format(sql.Identifier(name), sql.Literal(limit + 1)) for name in columns
    )
    base = sql.SQL("SELECT {} FROM {}").format(select_list, table_identifier(relation))
    sampled = tablesample_clause(relation, settings, settings.sample_rows * 10)
    first_rows = sql.SQL("{} LIMIT {}").format(base, sql.Literal(settings.sample_rows))
    with conn.cursor() as cur:
        rows: list[tuple] = []
        if sampled is not None:
            cur.execute(sql.SQL("{}{} LIMIT {}").format(base, sampled, sql.Literal(settings.sample_rows)))
            rows = cur.fetchall()
        if len(rows) < settings.sample_rows:
            # Small tables, views, or a SYSTEM sample that came back short (it picks whole blocks).
            cur.execute(first_rows)
            rows = cur.fetchall()
    result = SampleRows(rows=len(rows), values={name: [] for name in columns}, read=True)
    for row in rows:
        for name, value in zip(columns, row):
            if value is not None:
                result.values[name].append(cut(value, limit))
    for column in relation.table.columns:
        distinct = list(dict.fromkeys(result.values.get(column.name, [])))
        column.samples = distinct[: settings.sample_values_max]
    return result
