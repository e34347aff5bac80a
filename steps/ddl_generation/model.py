"""What step 1 knows about a table: the facts read from the catalog, plus samples, enums and comments.

This is the contract between introspection, comment writing, rendering and later steps (which read it
back from ``manifest.json`` through ``Table.from_dict``). Names are stored exactly as in the catalog.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

TableKind = Literal["table", "partitioned_table", "view", "materialized_view", "foreign_table"]
EnumSource = Literal["enum_type", "check_constraint", "distinct_values"]
CommentSource = Literal["database", "generated"]


def _plain(obj: Any, *list_fields: str) -> dict[str, Any]:
    """A flat dataclass's fields, with its list fields (lists of strings) copied."""
    data = dict(vars(obj))
    for name in list_fields:
        if data[name] is not None:
            data[name] = list(data[name])
    return data


@dataclass
class Column:
    name: str
    type: str  # format_type(), e.g. "character varying(50)", "public.mpaa_rating"
    nullable: bool = True
    default: str | None = None  # pg_get_expr of the default, None for identity/generated columns
    identity: Literal["always", "by_default"] | None = None
    generated: str | None = None  # expression of a GENERATED ALWAYS AS (...) STORED column
    collation: str | None = None  # only when it differs from the type's default
    comment: str | None = None
    comment_source: CommentSource | None = None
    enum_values: list[str] | None = None
    enum_source: EnumSource | None = None
    samples: list[str] = field(default_factory=list)  # distinct non-null sample values, as text
    generated_kind: Literal["stored", "virtual"] | None = None  # virtual exists from PostgreSQL 18 on


@dataclass
class Constraint:
    name: str
    kind: Literal["primary_key", "unique", "check", "exclusion"]
    columns: list[str]
    definition: str  # pg_get_constraintdef(), valid after "CONSTRAINT <name>"


@dataclass
class ForeignKey:
    name: str
    columns: list[str]
    ref_schema: str
    ref_table: str
    ref_columns: list[str]
    definition: str  # pg_get_constraintdef()


@dataclass
class Table:
    schema: str
    name: str
    kind: TableKind = "table"
    comment: str | None = None
    comment_source: CommentSource | None = None
    columns: list[Column] = field(default_factory=list)
    constraints: list[Constraint] = field(default_factory=list)
    foreign_keys: list[ForeignKey] = field(default_factory=list)
    row_estimate: int | None = None  # planner estimate (reltuples); None when never analysed
    partition_key: str | None = None  # pg_get_partkeydef() of a partitioned table
    view_definition: str | None = None  # pg_get_viewdef() of a view or materialized view
    indexes: list[str] = field(default_factory=list)  # pg_get_indexdef() of non-constraint indexes

    @property
    def primary_key(self) -> list[str]:
        for constraint in self.constraints:
            if constraint.kind == "primary_key":
                return constraint.columns
        return []

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data, equal to ``dataclasses.asdict`` but without its deep copies, which
        dominated writing the manifest of 1,000 tables."""
        data = _plain(self, "indexes")
        data["columns"] = [_plain(c, "samples", "enum_values") for c in self.columns]
        data["constraints"] = [_plain(c, "columns") for c in self.constraints]
        data["foreign_keys"] = [_plain(f, "columns", "ref_columns") for f in self.foreign_keys]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Table":
        data = dict(data)
        data["columns"] = [Column(**c) for c in data.get("columns", [])]
        data["constraints"] = [Constraint(**c) for c in data.get("constraints", [])]
        data["foreign_keys"] = [ForeignKey(**f) for f in data.get("foreign_keys", [])]
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})
