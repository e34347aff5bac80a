"""The table-list format: which tables a task reads.

One name per line or several per line separated by commas; ``table`` (schema ``public``) or
``schema.table``; unquoted names fold to lower case as PostgreSQL folds them, ``"Quoted"."Names"``
keep their case and may hold any character; blank lines and ``#`` / ``--`` comments (also at the end
of a line) are ignored. Duplicates are dropped after normalising, so ``t`` and ``public.t`` are one
table. Any bad entry makes the whole list fail with every problem listed by line number, because a
silently skipped table is a table missing from the training data.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

_UNQUOTED = re.compile(r"[A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_$\u0080-\U0010ffff]*")
_SAFE_BARE = re.compile(r"[a-z_][a-z0-9_]*")  # what quote_ident() leaves unquoted
_FILE_UNSAFE = re.compile(r'[\x00-\x1f/\\:*?"<>|%]')
MAX_IDENTIFIER_BYTES = 63
# Keywords PostgreSQL's quote_ident() quotes: every category but "unreserved" (pg_get_keywords()), PG 15
# plus those PG 16-18 added; quoting a name that needs no quotes is harmless, missing one is a syntax error.
QUOTED_KEYWORDS = frozenset(
    """
    all analyse analyze and any array as asc asymmetric authorization between bigint binary bit
    boolean both case cast char character check coalesce collate collation column concurrently
    constraint create cross current_catalog current_date current_role current_schema
    current_time current_timestamp current_user dec decimal default deferrable desc distinct do
    else end except exists extract false fetch float for foreign freeze from full grant greatest
    group grouping having ilike in initially inner inout int integer intersect interval into is
    isnull join lateral leading least left like limit localtime localtimestamp national natural
    nchar none normalize not notnull null nullif numeric offset on only or order out outer
    overlaps overlay placing position precision primary real references returning right row
    select session_user setof similar smallint some substring symmetric table tablesample then
    time timestamp to trailing treat trim true union unique user using values varchar variadic
    verbose when where window with xmlattributes xmlconcat xmlelement xmlexists xmlforest
    xmlnamespaces xmlparse xmlpi xmlroot xmlserialize xmltable
    json json_array json_arrayagg json_exists json_object json_objectagg json_query json_scalar json_serialize
    json_table json_value merge_action system_user
    """.split()
)


class TableListError(ValueError):
    """A table list that cannot be used; ``problems`` holds one message per bad entry."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


@functools.lru_cache(maxsize=65536)  # pure; names recur in every file step 1 writes
def quote_ident(name: str) -> str:
    """Quote an identifier the way PostgreSQL's ``quote_ident`` does, for display and file headers."""
    if _SAFE_BARE.fullmatch(name) and name not in QUOTED_KEYWORDS:
        return name
    return '"' + name.replace('"', '""') + '"'


# Bases of files the pipeline writes beside the tables' (step 2: metadata.txt, metadata_detail.md).
_PIPELINE_FILE_BASES = frozenset({"metadata"})


def _ascii_lower(text: str) -> str:
    # PostgreSQL folds only ASCII letters of unquoted identifiers in UTF-8 databases.
    return "".join(ch.lower() if "A" <= ch <= "Z" else ch for ch in text)


def _file_part(text: str) -> str:
    text = _FILE_UNSAFE.sub(lambda m: "%{:02X}".format(ord(m.group())), text)
    if text.startswith("."):
        text = "%2E" + text[1:]
    # "__" separates schema from table in file names, so it may never occur inside a part.
    while "__" in text:
        text = text.replace("__", "_%5F", 1)
    return text


@dataclass(frozen=True, order=True)
class TableName:
    """A table's schema and name, exactly as stored in the catalog (case kept, no quotes)."""

    schema: str
    name: str

    @property
    def qualified(self) -> str:
        """``schema.table`` quoted where needed: what a human or a SQL script would write."""
        return f"{quote_ident(self.schema)}.{quote_ident(self.name)}"

    @property
    def display(self) -> str:
        """Short form: the table alone for ``public``, else ``schema.table``."""
        return quote_ident(self.name) if self.schema == "public" else self.qualified

    @property
    def file_base(self) -> str:
        """Base of this table's output files: ``table`` for public, else ``schema__table``; unique per table.

        A public table whose files would take a name of the pipeline's own (``metadata_detail.md``, step
        2's theme list) keeps its schema too: ``public__metadata``.
        """
        if self.schema == "public" and self.name.lower() not in _PIPELINE_FILE_BASES:
            return _file_part(self.name)
        return f"{_file_part(self.schema)}__{_file_part(self.name)}"


def _split_identifiers(entry: str) -> list[str] | str:
    """Split ``a.b`` / ``"A"."B"`` into raw parts; returns an error message on bad syntax."""
    parts: list[str] = []
    i = 0
    while True:
        if i < len(entry) and entry[i] == '"':
            j = i + 1
            buf = []
            while True:
                k = entry.find('"', j)
                if k < 0:
                    return "unterminated quoted name; close it with a double quote"
                if entry.startswith('""', k):
                    buf.append(entry[j:k] + '"')
                    j = k + 2
                    continue
                buf.append(entry[j:k])
                i = k + 1
                break
            name = "".join(buf)
            if not name:
                return 'empty quoted name ""'
            parts.append(name)
        else:
            m = _UNQUOTED.match(entry, i)
            if not m:
                return (
                    f"{entry!r} is not a table name; write table or schema.table, and put names with "
                    'spaces or special characters in double quotes ("My Table")'
                )
            parts.append(_ascii_lower(m.group()))
            i = m.end()
        if i == len(entry):
            break
        if entry[i] != ".":
            return (
                f"unexpected {entry[i]!r} in {entry!r}; write table or schema.table, and put names with "
                'special characters in double quotes'
            )
        i += 1
    if len(parts) > 2:
        return f"{entry!r} has {len(parts)} dotted parts; write table or schema.table (no database name)"
    for part in parts:
        if len(part.encode()) > MAX_IDENTIFIER_BYTES:
            return f"name {part[:20]!r}... is longer than PostgreSQL's {MAX_IDENTIFIER_BYTES}-byte limit"
    return parts


def _strip_comment(line: str) -> str:
    """Cut a ``#`` or ``--`` comment, but not inside a quoted name."""
    in_quotes = False
    for i, ch in enumerate(line):
        if ch == '"':
            in_quotes = not in_quotes
        elif not in_quotes and (ch == "#" or line.startswith("--", i)):
            return line[:i]
    return line


def _split_commas(line: str) -> list[str]:
    entries, buf, in_quotes = [], [], False
    for ch in line:
        if ch == '"':
            in_quotes = not in_quotes
        if ch == "," and not in_quotes:
            entries.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    entries.append("".join(buf))
    return entries


def parse_table_list(text: str | Iterable[str]) -> list[TableName]:
    """Parse a table list (file text, or an iterable of entries) into unique tables, in order."""
    lines = text.splitlines() if isinstance(text, str) else list(text)
    problems: list[str] = []
    tables: list[TableName] = []
    seen: set[TableName] = set()
    for number, raw in enumerate(lines, start=1):
        line = _strip_comment(raw.lstrip("\ufeff")).strip()
        if not line:
            continue
        for entry in _split_commas(line):
            entry = entry.strip()
            if not entry:
                if "," in line:
                    problems.append(f"line {number}: empty entry between commas; remove the extra comma")
                continue
            parts = _split_identifiers(entry)
            if isinstance(parts, str):
                problems.append(f"line {number}: {parts}")
                continue
            table = TableName(*parts) if len(parts) == 2 else TableName("public", parts[0])
            if table not in seen:
                seen.add(table)
                tables.append(table)
    if problems:
        raise TableListError(problems)
    if not tables:
        raise TableListError(["the table list names no table; add one table per line (table or schema.table)"])
    return tables


def read_table_list_file(path: Path) -> tuple[str, list[TableName]]:
    """The text of a table-list file and its tables; ``TableListError`` names the file and the fix."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TableListError([f"table list {path} not found; write the tables to read into it, one per line"]) from None
    except UnicodeDecodeError:
        raise TableListError([f"table list {path} is not UTF-8 text; save it as UTF-8"]) from None
    try:
        return text, parse_table_list(text)
    except TableListError as exc:
        raise TableListError([f"table list {path}: {exc}"]) from None


def render_table_list(tables: Iterable[TableName]) -> str:
    """Write tables back in the list format, one per line, so that parsing gives the same tables."""
    return "".join(f"{t.qualified}\n" for t in tables)
