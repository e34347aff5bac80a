"""Turning catalog names and free text into pieces of SQL script text that are always valid.

The DDL files are written without a database connection, so quoting happens here: identifiers are
quoted when PostgreSQL would need it (including every keyword that is not unreserved in any version
from 12 to 18, quoted conservatively), string literals use standard-conforming quotes, and text put
behind ``--`` never contains a line break, so a hostile comment can never end the comment early.
"""

from __future__ import annotations

import functools
import re

from dp.table_list import TableName, quote_ident

# Keywords that are reserved, type/function-name or column-name keywords in PostgreSQL 12-18
# (pg_get_keywords() with catcode <> 'U'); quoting an identifier that needs no quotes is harmless.
_KEYWORDS = frozenset(
    """all analyse analyze and any array as asc asymmetric authorization between bigint binary bit boolean
    both case cast char character check coalesce collate collation column concurrently constraint create
    cross current_catalog current_date current_role current_schema current_time current_timestamp
    current_user dec decimal default deferrable desc distinct do else end except exists extract false
    fetch float for foreign freeze from full grant greatest group grouping having ilike in initially inner
    inout int integer intersect interval into is isnull join json json_array json_arrayagg json_exists
    json_object json_objectagg json_query json_scalar json_serialize json_table json_value lateral
    leading least left like limit localtime localtimestamp merge_action national natural nchar none
    normalize not notnull null nullif numeric offset on only or order out outer overlaps overlay placing
    position precision primary real references returning right row select session_user setof similar
    smallint some substring symmetric system_user table tablesample then time timestamp to trailing treat
    trim true union unique user using values varchar variadic verbose when where window with
    xmlattributes xmlconcat xmlelement xmlexists xmlforest xmlnamespaces xmlparse xmlpi xmlroot
    xmlserialize xmltable""".split()
)


_PLAIN = re.compile(r"[a-z_][a-z0-9_]*")


@functools.lru_cache(maxsize=65536)
def ident(name: str) -> str:
    """An identifier as SQL text: bare when PostgreSQL reads it back unchanged, else double-quoted."""
    if _PLAIN.fullmatch(name):
        return f'"{name}"' if name in _KEYWORDS else name
    quoted = quote_ident(name)
    if quoted == name and name in _KEYWORDS:
        return f'"{name}"'
    return quoted


def qualified(schema: str, name: str) -> str:
    """``schema.name`` with both parts quoted as needed."""
    return f"{ident(schema)}.{ident(name)}"


def table_ref(table: TableName) -> str:
    return qualified(table.schema, table.name)


def literal(text: str) -> str:
    """A string literal (standard_conforming_strings is on in every supported version)."""
    return "'" + text.replace("'", "''") + "'"


def one_line(text: str) -> str:
    """Text safe to put after ``--``: every run of whitespace, line breaks included, becomes one space."""
    return " ".join(text.split())


def dollar_quote(body: str) -> str:
    """``$tag$body$tag$`` with a tag that does not occur in the body."""
    tag, n = "$dp$", 0
    while tag in body:
        n += 1
        tag = f"$dp{n}$"
    return f"{tag}{body}{tag}"
