"""One table's ``.ddl`` file: a PostgreSQL script that recreates the table in an empty database.

Applied in manifest order, the files rebuild every listed table with its columns, defaults,
identity/generated columns, keys, constraints, foreign keys, indexes and comments, plus what a table
needs that is not a table: schemas, enum types and domains (inside DO blocks that tolerate an
earlier file having created them) and sequences of ``nextval`` defaults. The table itself is one
statement with one column per line and the column's comment after the comma, so the file reads
well and embeds well; every name is quoted by ``sqltext`` and every comment is made one-line.
"""

from __future__ import annotations

from dp.table_list import TableName
from steps.ddl_generation.introspect import Relation, SequenceDef, TypeDef
from steps.ddl_generation.model import Column, Table
from steps.ddl_generation.ordering import ForeignKeyPlan
from steps.ddl_generation.sqltext import dollar_quote, ident, literal, one_line, qualified, table_ref

_COMMENT_TARGET = {
    "table": "TABLE",
    "partitioned_table": "TABLE",
    "view": "VIEW",
    "materialized_view": "MATERIALIZED VIEW",
    "foreign_table": "FOREIGN TABLE",
}
_BUILTIN_SCHEMAS = {"public", "pg_catalog"}


def _tolerate_duplicate(statement: str) -> str:
    body = f" BEGIN {statement}; EXCEPTION WHEN duplicate_object THEN NULL; END "
    return f"DO {dollar_quote(body)};"


def _type_statement(typedef: TypeDef) -> str:
    name = qualified(typedef.schema, typedef.name)
    if typedef.kind == "enum":
        labels = ", ".join(literal(label) for label in typedef.labels)
        return _tolerate_duplicate(f"CREATE TYPE {name} AS ENUM ({labels})")
    parts = [f"CREATE DOMAIN {name} AS {typedef.base_type}"]
    if typedef.collation:
        parts.append(f"COLLATE {typedef.collation}")
    if typedef.default is not None:
        parts.append(f"DEFAULT {typedef.default}")
    if typedef.not_null:
        parts.append("NOT NULL")
    parts.extend(f"CONSTRAINT {ident(check_name)} {definition}" for check_name, definition in typedef.checks)
    return _tolerate_duplicate(" ".join(parts))


def _sequence_statement(seq: SequenceDef) -> str:
    return (
        f"CREATE SEQUENCE IF NOT EXISTS {qualified(seq.schema, seq.name)} AS {seq.data_type} "
        f"START WITH {seq.start} INCREMENT BY {seq.increment} MINVALUE {seq.min_value} "
        f"MAXVALUE {seq.max_value} CACHE {seq.cache}{' CYCLE' if seq.cycle else ''};"
    )


def column_definition(column: Column) -> str:
    parts = [ident(column.name), column.type]
    if column.collation:
        parts.append(f"COLLATE {column.collation}")
    if column.identity:
        parts.append(f"GENERATED {'ALWAYS' if column.identity == 'always' else 'BY DEFAULT'} AS IDENTITY")
    elif column.generated is not None:
        parts.append(f"GENERATED ALWAYS AS ({column.generated}) {(column.generated_kind or 'stored').upper()}")
    elif column.default is not None:
        parts.append(f"DEFAULT {column.default}")
    if not column.nullable:
        parts.append("NOT NULL")
    return " ".join(parts)


def _lines_with_comments(items: list[tuple[str, str | None]], indent: str = "    ") -> list[str]:
    """``item,`` lines with each comment after the comma, so the comment never hides a comma."""
    lines = []
    for i, (text, comment) in enumerate(items):
        line = f"{indent}{text}{',' if i < len(items) - 1 else ''}"
        if comment:
            line += f" -- {one_line(comment)}"
        lines.append(line)
    return lines


def _schemas_needed(relation: Relation) -> list[str]:
    schemas = [relation.table.schema]
    schemas += [t.schema for t in relation.types] + [s.schema for s in relation.sequences]
    return [s for s in dict.fromkeys(schemas) if s not in _BUILTIN_SCHEMAS]


def _header(table: Table) -> list[str]:
    name = TableName(table.schema, table.name).qualified
    return [f"-- {one_line(name)}: {one_line(table.comment)}" if table.comment else f"-- {one_line(name)}"]


def _body_constraints(relation: Relation, attached: bool) -> tuple[list[str], list[str]]:
    """Constraint clauses for the CREATE TABLE, and NOT VALID ones that must be added afterwards."""
    inside, after = [], []
    for constraint in relation.table.constraints:
        if attached and constraint.kind != "check" and constraint.name in relation.inherited_constraints:
            continue  # ATTACH PARTITION creates the partition's copy of the parent's key
        clause = f"CONSTRAINT {ident(constraint.name)} {constraint.definition}"
        (after if constraint.definition.rstrip().endswith("NOT VALID") else inside).append(clause)
    return inside, after


def _relation_statement(relation: Relation, attached: bool) -> tuple[str, list[str]]:
    table, name = relation.table, table_ref(relation.name)
    if table.kind in ("view", "materialized_view"):
        listing = ["-- columns:"] + [
            f"--   {one_line(ident(c.name))} {c.type}" + (f" -- {one_line(c.comment)}" if c.comment else "")
            for c in table.columns
        ]
        if table.kind == "view":
            return "\n".join(listing + [f"CREATE OR REPLACE VIEW {name} AS", f"{table.view_definition};"]), []
        statement = [f"CREATE MATERIALIZED VIEW IF NOT EXISTS {name} AS", table.view_definition or "", "WITH NO DATA;"]
        return "\n".join(listing + statement), []
    inside, after = _body_constraints(relation, attached)
    items = [(column_definition(c), c.comment) for c in table.columns] + [(clause, None) for clause in inside]
    keyword = "CREATE FOREIGN TABLE" if table.kind == "foreign_table" else "CREATE TABLE"
    tail = ")"
    if table.partition_key:
        tail += f" PARTITION BY {table.partition_key}"
    if table.kind == "foreign_table" and relation.foreign_server:
        tail += f" SERVER {ident(relation.foreign_server)}"
    lines = [f"{keyword} {name} ("] + _lines_with_comments(items) + [tail + ";"]
    return "\n".join(lines), [f"ALTER TABLE {name} ADD {clause};" for clause in after]


def render_ddl(relation: Relation, fk_plan: ForeignKeyPlan, *, listed: set[TableName]) -> str:
    """The ``.ddl`` text of one relation; ``listed`` holds the tables that get files in this run."""
    table, name = relation.table, table_ref(relation.name)
    attached = relation.partition_of is not None and relation.partition_of in listed
    prelude = [f"CREATE SCHEMA IF NOT EXISTS {ident(s)};" for s in _schemas_needed(relation)]
    prelude += [_type_statement(t) for t in relation.types]
    prelude += [_sequence_statement(s) for s in relation.sequences]
    statement, after = _relation_statement(relation, attached)
    if attached:
        after.append(f"ALTER TABLE {table_ref(relation.partition_of)} ATTACH PARTITION {name} {relation.partition_bound};")
    elif relation.partition_of is not None:
        after.append(f"-- partition of {one_line(relation.partition_of.qualified)} {one_line(relation.partition_bound or '')}")
    after += [
        f"ALTER SEQUENCE {qualified(s.schema, s.name)} OWNED BY {name}.{ident(s.owned_by)};"
        for s in relation.sequences if s.owned_by
    ]
    after += [f"{index};" for index in table.indexes]
    target = _COMMENT_TARGET[table.kind]
    if table.comment is not None:
        after.append(f"COMMENT ON {target} {name} IS {literal(table.comment)};")
    after += [
        f"COMMENT ON COLUMN {name}.{ident(c.name)} IS {literal(c.comment)};" for c in table.columns if c.comment is not None
    ]
    for owner, fk in fk_plan.add:
        after.append(f"ALTER TABLE {table_ref(owner)} ADD CONSTRAINT {ident(fk.name)} {fk.definition};")
    for fk, file_table in fk_plan.moved:
        after.append(
            f"-- foreign key {one_line(ident(fk.name))} is added in the file of {one_line(file_table.qualified)}, "
            "which comes later in the manifest"
        )
    for fk in fk_plan.outside:
        target_name = TableName(fk.ref_schema, fk.ref_table).qualified
        after.append(f"-- references {one_line(target_name)} (not in the table list): {one_line(fk.definition)}")
    sections = [_header(table), prelude, [statement], after]
    return "\n\n".join("\n".join(section) for section in sections if section) + "\n"
