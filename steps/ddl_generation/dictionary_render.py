"""One table's ``<file_base>_detail.md``: the data dictionary a person (and an embedding) reads.

Title with the table's comment, its kind and row estimate, one markdown table row per column (name,
type, nullability, keys, comment, samples, enum values with their source), then relationships
(foreign keys out, and in from the other listed tables), constraints and indexes. Headings are in
Chinese when the run's language is ``zh``. Cell text is escaped (``dp.markdown``) so a ``|`` or a line
break inside a value can never break the table.
"""

from __future__ import annotations

from dp.markdown import row
from dp.table_list import TableName
from steps.ddl_generation.model import ForeignKey, Table

_TEXT = {
    "en": {
        "kind": "Kind", "rows": "Row estimate", "unknown": "unknown (never analysed)", "columns": "Columns",
        "header": ["Column", "Type", "Nullable", "Key", "Comment", "Sample values", "Enum values"],
        "yes": "yes", "no": "no", "relationships": "Relationships", "out": "References", "in": "Referenced by",
        "none": "none", "constraints": "Constraints", "indexes": "Indexes", "partition_key": "Partition key",
        "partition_of": "Partition of", "definition": "Definition",
        "kinds": {"table": "table", "partitioned_table": "partitioned table", "view": "view",
                  "materialized_view": "materialized view", "foreign_table": "foreign table"},
        "sources": {"enum_type": "enum type", "check_constraint": "CHECK constraint",
                    "distinct_values": "distinct values"},
    },
    "zh": {
        "kind": "类型", "rows": "估计行数", "unknown": "未知（从未分析）", "columns": "字段",
        "header": ["字段名", "数据类型", "可空", "键", "注释", "示例值", "枚举值"],
        "yes": "是", "no": "否", "relationships": "关联关系", "out": "引用", "in": "被引用",
        "none": "无", "constraints": "约束", "indexes": "索引", "partition_key": "分区键",
        "partition_of": "所属分区表", "definition": "定义",
        "kinds": {"table": "表", "partitioned_table": "分区表", "view": "视图",
                  "materialized_view": "物化视图", "foreign_table": "外部表"},
        "sources": {"enum_type": "枚举类型", "check_constraint": "CHECK 约束", "distinct_values": "数据取值"},
    },
}


def _code(value: str) -> str:
    """A value as an inline code span, so commas inside values stay readable."""
    fence = "``" if "`" in value else "`"
    return f"{fence} {value} {fence}" if fence == "``" else f"`{value}`"


def _keys(table: Table) -> dict[str, str]:
    """``PK``/``FK``/``UK`` marks per column name."""
    marks: dict[str, list[str]] = {}
    for name in table.primary_key:
        marks.setdefault(name, []).append("PK")
    for name in dict.fromkeys(n for fk in table.foreign_keys for n in fk.columns):
        marks.setdefault(name, []).append("FK")
    for name in dict.fromkeys(n for c in table.constraints if c.kind == "unique" for n in c.columns):
        marks.setdefault(name, []).append("UK")
    return {name: ", ".join(kinds) for name, kinds in marks.items()}


def _link(owner: TableName, fk: ForeignKey) -> str:
    target = TableName(fk.ref_schema, fk.ref_table).display
    return (
        f"`{owner.display}`({', '.join(fk.columns)}) → `{target}`({', '.join(fk.ref_columns)})"
        f" — {fk.name}"
    )


def render_dictionary(
    table: Table, *, language: str, referenced_by: list[tuple[TableName, ForeignKey]],
    partition_of: TableName | None = None,
) -> str:
    """The markdown dictionary of ``table``; ``referenced_by`` lists keys of other listed tables into it."""
    text = _TEXT["zh" if language == "zh" else "en"]
    name = TableName(table.schema, table.name)
    separator = "：" if language == "zh" else ": "
    lines = [f"# {name.qualified}" + (f"{separator}{' '.join(table.comment.split())}" if table.comment else ""), ""]
    lines.append(f"- {text['kind']}: {text['kinds'][table.kind]}")
    rows = text["unknown"] if table.row_estimate is None else f"{table.row_estimate:,}"
    lines.append(f"- {text['rows']}: {rows}")
    if table.partition_key:
        lines.append(f"- {text['partition_key']}: `{table.partition_key}`")
    if partition_of is not None:
        lines.append(f"- {text['partition_of']}: `{partition_of.qualified}`")
    lines += ["", f"## {text['columns']}", "", "| " + " | ".join(text["header"]) + " |", "|" + "---|" * 7]
    keys = _keys(table)
    for column in table.columns:
        enum = ""
        if column.enum_values is not None:
            enum = ", ".join(column.enum_values) + f" ({text['sources'][column.enum_source]})"
        cells = [
            column.name, column.type, text["yes"] if column.nullable else text["no"], keys.get(column.name, ""),
            column.comment or "", ", ".join(map(_code, column.samples)) if column.samples else "", enum,
        ]
        lines.append(row(cells))
    lines += ["", f"## {text['relationships']}", ""]
    outgoing = [f"- {text['out']}: {_link(name, fk)}" for fk in table.foreign_keys]
    incoming = [f"- {text['in']}: {_link(owner, fk)}" for owner, fk in referenced_by]
    lines += outgoing + incoming or [f"- {text['none']}"]
    if table.constraints:
        lines += ["", f"## {text['constraints']}", ""]
        lines += [f"- {c.name}: `{c.definition}`" for c in table.constraints]
    if table.indexes:
        lines += ["", f"## {text['indexes']}", ""] + [f"- `{index}`" for index in table.indexes]
    if table.view_definition:
        lines += ["", f"## {text['definition']}", "", "```sql", table.view_definition, "```"]
    return "\n".join(lines) + "\n"
