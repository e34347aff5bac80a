"""Turning catalog names and free text into pieces of SQL script text that are always valid.

The DDL files are written without a database connection, so quoting happens here: identifiers are
quoted as PostgreSQL's quote_ident does (keywords of versions up to 18), string literals use
standard-conforming quotes, and text put
behind ``--`` never contains a line break, so a hostile comment can never end the comment early.
"""

from __future__ import annotations

from dp.table_list import TableName, quote_ident

# An identifier as SQL text: bare when PostgreSQL reads it back unchanged, else double-quoted.
ident = quote_ident


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
