"""An independent picture of some tables' definitions, for comparing a database with its DDL round trip.

Reads pg_catalog directly (not through the code under test) with ``search_path = pg_catalog`` so
that every rendered name is schema-qualified the same way in both databases.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dp.database import connection
from dp.table_list import TableName

_COLUMNS = """
SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated,
       CASE WHEN a.attcollation <> t.typcollation THEN a.attcollation::regcollation::text END,
       col_description(c.oid, a.attnum)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
WHERE (n.nspname, c.relname) IN (SELECT * FROM unnest(%s::text[], %s::text[]))
ORDER BY 1, 2, a.attnum
"""
_CONSTRAINTS = """
SELECT n.nspname, c.relname, con.conname, con.contype, pg_get_constraintdef(con.oid)
FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE (n.nspname, c.relname) IN (SELECT * FROM unnest(%s::text[], %s::text[])) AND con.contype IN ('p','u','c','f','x')
  AND NOT EXISTS (SELECT 1 FROM pg_constraint p WHERE p.oid = con.conparentid AND p.conrelid = con.conrelid)
"""
_TABLES = """
SELECT n.nspname, c.relname, c.relkind, obj_description(c.oid, 'pg_class'),
       CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END,
       CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END,
       CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE (n.nspname, c.relname) IN (SELECT * FROM unnest(%s::text[], %s::text[]))
"""


@dataclass
class Snapshot:
    """Definitions keyed by table (and column or constraint name); comments kept apart."""

    tables: dict[tuple, tuple] = field(default_factory=dict)  # (schema, table) -> (relkind, partkey, viewdef, bound)
    columns: dict[tuple, list[tuple]] = field(default_factory=dict)  # (schema, table) -> column facts in order
    constraints: dict[tuple, tuple] = field(default_factory=dict)  # (schema, table, name) -> (contype, definition)
    comments: dict[tuple, str | None] = field(default_factory=dict)  # (schema, table[, column]) -> comment


def catalog_snapshot(url: str, tables: list[TableName]) -> Snapshot:
    params = ([t.schema for t in tables], [t.name for t in tables])
    snapshot = Snapshot()
    with connection(url) as conn, conn.cursor() as cur:
        cur.execute("SET search_path = pg_catalog")
        cur.execute(_TABLES, params)
        for schema, name, relkind, comment, partkey, viewdef, bound in cur.fetchall():
            snapshot.tables[schema, name] = (relkind, partkey, viewdef, bound)
            snapshot.comments[schema, name] = comment
        cur.execute(_COLUMNS, params)
        for schema, name, column, *facts, comment in cur.fetchall():
            snapshot.columns.setdefault((schema, name), []).append((column, *facts))
            snapshot.comments[schema, name, column] = comment
        cur.execute(_CONSTRAINTS, params)
        for schema, name, conname, contype, definition in cur.fetchall():
            snapshot.constraints[schema, name, conname] = (contype, definition)
    return snapshot


def information_schema_counts(url: str, tables: list[TableName]) -> dict[TableName, tuple[int, int]]:
    """(columns, foreign keys) per table, counted through information_schema."""
    with connection(url) as conn, conn.cursor() as cur:
        cur.execute(
            """
            SELECT t.s, t.n,
                   (SELECT count(*) FROM information_schema.columns c WHERE c.table_schema = t.s AND c.table_name = t.n),
                   (SELECT count(*) FROM information_schema.table_constraints k
                    WHERE k.table_schema = t.s AND k.table_name = t.n AND k.constraint_type = 'FOREIGN KEY')
            FROM unnest(%s::text[], %s::text[]) AS t(s, n)
            """,
            ([t.schema for t in tables], [t.name for t in tables]),
        )
        return {TableName(s, n): (cols, fks) for s, n, cols, fks in cur.fetchall()}


def listed_relations(url: str, kinds: str = "rp", *, partitions: bool = False) -> list[TableName]:
    """Every user relation of the given relkinds (partitions excluded), by schema and name."""
    with connection(url) as conn, conn.cursor() as cur:
        cur.execute(
            """
            SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind = ANY(%s) AND (%s OR NOT c.relispartition)
              AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%%'
            ORDER BY 1, 2
            """,
            (list(kinds), partitions),
        )
        return [TableName(*row) for row in cur.fetchall()]


def apply_manifest_files(output_dir, url: str) -> None:
    """Run every DDL file in manifest order against ``url``, stopping at the first error."""
    from steps.ddl_generation.manifest import load_manifest

    manifest = load_manifest(output_dir)
    with connection(url) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            for entry in manifest.entries:
                script = (output_dir / entry.ddl_file).read_text(encoding="utf-8")
                try:
                    cur.execute(script)
                except Exception as exc:
                    raise AssertionError(f"{entry.ddl_file} failed: {exc}\n{script}") from exc
