"""What a column is good for in a generated query, judged from its type, name, keys and comment.

Measures are numeric non-key columns (never money, domains or anything unknown, so ``sum``/``avg``
always type-check); event times are dates and timestamps other than audit columns; a name expression
is what a person would read to tell rows apart; soft-delete columns are filtered out as every report
of such a system does. Labels are the words a question uses: a column's comment cut to its first
phrase (Chinese) or its humanised name (English).
"""

from __future__ import annotations

import re

from dp.table_list import quote_ident
from steps.ddl_generation.model import Column, Table

NUMERIC_TYPES = {"smallint", "integer", "bigint", "numeric", "decimal", "real", "double precision"}
TEXT_TYPES = {"text", "character varying", "varchar", "character", "char", "bpchar", "citext", "name"}
_OPAQUE_TYPES = {"bytea", "tsvector", "tsquery", "json", "jsonb", "xml"}
_AUDIT_TIMES = re.compile(
    r"(last_?update|updated?_?(at|on|time|ts|date)|modif|delete|created?_?(at|on|time|ts|date)|_ts$)", re.I
)
_AUDIT_PERSON = re.compile(r"(created?_?by|updated?_?by|modified_?by|creator|operator|editor)$", re.I)
_CREATED = re.compile(r"created?_?(at|on|time|ts|date)", re.I)
_NOT_A_MEASURE = re.compile(
    r"(year|code|phone|fax|zip|postal|lat(itude)?$|lng$|lon(gitude)?$|_no$|number$|^no$|seq|sort|level|version)", re.I
)
_FLAG = re.compile(
    r"^(?:is_?)?(active|enabled|disabled|deleted|visible|verified|valid|available|archived|locked|paid|approved)"
    r"(?:_?bool|_?flag)?$", re.I,
)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_NOT_ADDITIVE = re.compile(r"(price|rate|ratio|percent|pct|discount|score|rating|age$|temperature|balance)", re.I)
_ID_NAME = re.compile(r"(^id$|_id$|[a-z]Id$|ID$)")
_SOFT_DELETE_TIME = re.compile(r"^(delete_?ts|deleted?_?(at|time|on|date))$", re.I)
_SOFT_DELETE_FLAG = re.compile(r"^(is_?deleted|deleted|del_?flag)$", re.I)
_LABEL_CUT = re.compile(r"[：:，,。；;（(\n]")
_UNCOUNTABLE = frozenset({"staff", "data", "information", "equipment", "media", "personnel", "feedback", "metadata"})
_IRREGULAR = {"person": "people", "child": "children", "man": "men", "woman": "women", "analysis": "analyses"}


def base_type(column: Column) -> str:
    """The type without modifiers or pg_catalog prefix: ``numeric(10,2)`` -> ``numeric``."""
    text = column.type.lower().removeprefix("pg_catalog.")
    return re.sub(r"\(.*?\)", "", text).strip()


def is_numeric(column: Column) -> bool:
    return base_type(column) in NUMERIC_TYPES


def is_text(column: Column) -> bool:
    return base_type(column) in TEXT_TYPES


def is_plain(column: Column) -> bool:
    """Not binary, array, document or search data: fit to show, group on or compare."""
    return base_type(column) not in _OPAQUE_TYPES and not column.type.rstrip().endswith("]")


def is_temporal(column: Column) -> bool:
    kind = base_type(column)
    return kind == "date" or kind.startswith("timestamp")


def queryable(table: Table) -> bool:
    """False for a materialized view step 1 sampled nothing from: it may never have been refreshed,
    and then every query on it fails."""
    return table.kind != "materialized_view" or any(c.samples for c in table.columns)


def known_empty(table: Table) -> bool:
    """Analysed as empty and sampled nothing: every query on it answers with no rows."""
    return table.row_estimate == 0 and not any(c.samples for c in table.columns)


def key_columns(table: Table) -> set[str]:
    keys = set(table.primary_key)
    for fk in table.foreign_keys:
        keys.update(fk.columns)
    return keys


def is_key(table: Table, column: Column) -> bool:
    return column.name in key_columns(table) or column.identity is not None or bool(_ID_NAME.search(column.name))


def is_link_table(table: Table) -> bool:
    """A many-to-many link: two single-column foreign keys, on different columns, that together are
    its primary key (film_actor, playlist_track, order_details); so each row is one distinct pair."""
    keys = [fk.columns[0] for fk in table.foreign_keys if len(fk.columns) == 1]
    return len(table.foreign_keys) == 2 and len(set(keys)) == 2 and set(table.primary_key) == set(keys)


def measures(table: Table) -> list[Column]:
    return [
        c for c in table.columns
        if is_numeric(c) and not is_key(table, c) and not _NOT_A_MEASURE.search(c.name)
        and not (c.enum_values and len(c.enum_values) <= 2)  # a 0/1 flag is no measure
    ]


def additive_measures(table: Table) -> list[Column]:
    """Measures whose sum means something: an amount or a quantity, not a unit price, rate or discount
    (their averages and extremes still do)."""
    return [c for c in measures(table) if not _NOT_ADDITIVE.search(c.name)]


def event_times(table: Table) -> list[Column]:
    """Business dates first (order date, rental date); a creation time only when nothing else exists."""
    temporal = [c for c in table.columns if is_temporal(c) and not _SOFT_DELETE_TIME.match(c.name)]
    business = [c for c in temporal if not _AUDIT_TIMES.search(c.name)]
    return business or [c for c in temporal if _CREATED.search(c.name)]


def enum_columns(table: Table) -> list[Column]:
    """Columns with a known small set of values worth grouping or filtering on."""
    return [
        c for c in table.columns
        if c.enum_values and len(c.enum_values) >= 2 and not is_key(table, c) and is_plain(c)
        and not _AUDIT_PERSON.search(c.name)
        and (compares_as_literal(c) or is_numeric(c) or base_type(c) == "boolean")
    ]


def flag_word(column: Column) -> str | None:
    """The adjective a yes/no column states ("active" for ``active``, ``is_active``, ``activebool``), or None."""
    values = column.enum_values or []
    match = _FLAG.match(column.name)
    return match.group(1).lower() if match and len(values) == 2 else None


def number_literal(column: Column, value: str) -> str | None:
    """``value`` as a bare SQL number when the column is numeric and the value a plain decimal, else None."""
    return value if is_numeric(column) and _NUMBER.fullmatch(value) else None


def compares_as_literal(column: Column) -> bool:
    """Whether ``col = 'value'`` type-checks as is; other columns are compared as ``col::text``."""
    return is_text(column) or column.enum_source in ("enum_type", "check_constraint")


def name_columns(table: Table) -> list[Column]:
    """The columns that name a row: first+last name, name/title, the table's own name (``city.city``),
    a *name column, a title/description/code, else the first text column."""
    texts = [c for c in table.columns if is_text(c) and not is_key(table, c) and not _SOFT_DELETE_TIME.match(c.name)]
    lowered = {c.name.lower().replace("_", ""): c for c in texts}
    if "firstname" in lowered and "lastname" in lowered:
        return [lowered["firstname"], lowered["lastname"]]
    for exact in ("name", "title"):
        if exact in lowered:
            return [lowered[exact]]
    if table.name.lower().replace("_", "") in lowered:
        return [lowered[table.name.lower().replace("_", "")]]
    table_word = table.name.lower().replace("_", "").rstrip("s")
    named = [c for c in texts if c.name.lower().endswith("name")]
    named.sort(key=lambda c: not c.name.lower().replace("_", "").startswith(table_word))
    if named:
        return [named[0]]
    for word in ("title", "description", "label", "code"):
        found = [c for c in texts if word in c.name.lower()]
        if found:
            return [found[0]]
    return texts[:1]


def name_expression(table: Table, alias: str) -> tuple[str, str] | None:
    """SQL expression naming a row of ``table`` (as ``alias``) and its output column name."""
    columns = name_columns(table)
    if not columns:
        return None
    if len(columns) == 2:
        first, last = (f"{alias}.{quote_ident(c.name)}" for c in columns)
        return f"concat_ws(' ', {first}, {last})", "full_name"
    return f"{alias}.{quote_ident(columns[0].name)}", columns[0].name


def soft_delete_condition(table: Table, alias: str) -> str | None:
    for column in table.columns:
        if _SOFT_DELETE_TIME.match(column.name) and is_temporal(column):
            return f"{alias}.{quote_ident(column.name)} IS NULL"
        if _SOFT_DELETE_FLAG.match(column.name) and base_type(column) == "boolean":
            return f"{alias}.{quote_ident(column.name)} IS NOT TRUE"
    return None


def humanise(name: str) -> str:
    """``rental_date`` / ``InvoiceDate`` -> ``rental date`` / ``invoice date``."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).replace("_", " ")
    return " ".join(spaced.lower().split())


def plural(noun: str) -> str:
    """English plural of a table's noun, as a question names it ("How many staff", not "staffs")."""
    head, _, last = noun.rpartition(" ")
    if last in _UNCOUNTABLE:
        return noun
    if last in _IRREGULAR:
        return f"{head} {_IRREGULAR[last]}".lstrip()
    if noun.endswith("s") and not noun.endswith(("ss", "us")):  # already plural ("customers")
        return noun
    if re.search(r"[^aeiou]y$", noun):
        return noun[:-1] + "ies"
    if re.search(r"(x|ch|sh|ss|us)$", noun):
        return noun + "es"
    return noun + "s"


def _short_comment(comment: str | None) -> str | None:
    if not comment:
        return None
    head = _LABEL_CUT.split(comment.strip(), maxsplit=1)[0].strip()
    return head if 0 < len(head) <= 20 else None


def column_label(column: Column, language: str) -> str:
    if language == "zh":
        return _short_comment(column.comment) or column.name
    return humanise(column.name)


def table_label(table: Table, language: str) -> str:
    if language == "zh":
        return _short_comment(table.comment) or table.name
    return humanise(table.name)
