"""Joins implied by column names where no foreign key is declared.

Many business databases declare no foreign keys (and PostgreSQL keeps those of a partitioned table
on its partitions, as pagila's ``payment`` shows), so the tables of such a schema would look
unrelated: every theme one table, no join in any pair, groups cut at random. A column
``customer_id`` (or ``CustomerId``) is taken as a reference to the one listed table named
``customer`` or ``customers`` (also with a prefix: ``crm_customer``) whose single-column primary key
is ``customer_id`` (``CustomerId``) or ``id`` and of a comparable type. Ambiguous names imply nothing. Declared
foreign keys always win; the implied ones live only in step 2's copy of the schema.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dp.table_list import TableName, quote_ident
from steps.ddl_generation.model import Column, ForeignKey, Table
from steps.qa_generation.roles import base_type, plural

_REFERENCE = re.compile(r"^(?P<stem>.+?)(_id|_ID|(?<=[a-z0-9])Id)$")
_TYPE_FAMILIES = {
    "smallint": "integer", "integer": "integer", "bigint": "integer",
    "text": "text", "character varying": "text", "character": "text",
}


def _type_family(column: Column) -> str:
    base = base_type(column)
    return _TYPE_FAMILIES.get(base, base)


def _plain(name: str) -> str:
    """``CategoryId`` and ``category_id`` are one name."""
    return name.replace("_", "").casefold()


def _names_for(stem: str) -> set[str]:
    word = stem.casefold()
    return {word, plural(word)}


def _is_named(table: Table, names: set[str]) -> bool:
    name = table.name.casefold()
    return name in names or any(name.endswith("_" + n) for n in names)


def _target(table: Table, column: Column, candidates: list[tuple[Table, Column]]) -> tuple[Table, Column] | None:
    match = _REFERENCE.match(column.name)
    if match is None:
        return None
    names = _names_for(match["stem"])
    found = [
        (other, key) for other, key in candidates
        if other is not table and _is_named(other, names)
        and _plain(key.name) in (_plain(column.name), "id")
        and _type_family(key) == _type_family(column)
    ]
    return found[0] if len(found) == 1 else None


@dataclass(frozen=True)
class ImpliedJoin:
    child: TableName
    column: str
    parent: TableName
    key: str

    def __str__(self) -> str:
        return f"{self.child.display}.{self.column} -> {self.parent.display}.{self.key}"


def add_implied_foreign_keys(tables: list[Table]) -> list[ImpliedJoin]:
    """Add the joins the column names imply to ``tables`` (in place), and return them."""
    candidates = []
    for table in tables:
        key = table.primary_key
        if len(key) == 1 and table.column(key[0]) is not None:
            candidates.append((table, table.column(key[0])))
    implied: list[ImpliedJoin] = []
    for table in tables:
        declared = {c for fk in table.foreign_keys for c in fk.columns}
        for column in table.columns:
            if column.name in declared:
                continue
            target = _target(table, column, candidates)
            if target is None:
                continue
            other, key = target
            parent = TableName(other.schema, other.name)
            table.foreign_keys.append(ForeignKey(
                name=f"implied_{table.name}_{column.name}", columns=[column.name], ref_schema=other.schema,
                ref_table=other.name, ref_columns=[key.name],
                definition=f"FOREIGN KEY ({quote_ident(column.name)}) REFERENCES {parent.qualified}({quote_ident(key.name)})",
            ))
            implied.append(ImpliedJoin(TableName(table.schema, table.name), column.name, parent, key.name))
    return implied
