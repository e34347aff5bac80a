"""Reads everything step 1 needs about the listed tables from pg_catalog, in a fixed number of queries.

Every query takes all tables at once (arrays of names or oids), so the count in
``Introspection.catalog_queries`` is the same for 1 table or 1,000 (unless a table another session
holds locked makes them read one by one). Queries run in one read-only
transaction with ``search_path = pg_catalog``, which makes every server-rendered type, default and
definition schema-qualified (valid in any database). Only catalog columns present in PostgreSQL 12
are used; PG18's NOT NULL constraint rows (contype ``n``) are left out. A table that is missing or
unreadable gets a failure reason instead of facts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg2.errors
import psycopg2.extensions

from dp.table_list import TableName
from steps.ddl_generation.model import Column, Constraint, ForeignKey, Table

_KINDS = {"r": "table", "p": "partitioned_table", "v": "view", "m": "materialized_view", "f": "foreign_table"}
_OTHER_KINDS = {"S": "a sequence", "i": "an index", "I": "an index", "c": "a composite type", "t": "a TOAST table"}
_CONSTRAINT_KINDS = {"p": "primary_key", "u": "unique", "c": "check", "x": "exclusion"}

_RELATIONS_SQL = """
SELECT r.ord, r.nspname, r.relname, c.oid, c.relkind, current_user, ds.description,
       CASE WHEN c.relkind = 'p' THEN (
           SELECT CASE WHEN bool_or(lc.reltuples >= 0) THEN sum(greatest(lc.reltuples, 0)) END
           FROM pg_partition_tree(c.oid) pt JOIN pg_class lc ON lc.oid = pt.relid WHERE pt.isleaf)
       ELSE c.reltuples END,
       CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END,
       CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END,
       CASE WHEN c.oid IS NOT NULL THEN has_table_privilege(c.oid, 'SELECT') END,
       pn.nspname, pc.relname,
       CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END,
       fs.srvname, c.relkind <> 'm' OR c.relispopulated
FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS r(nspname, relname, ord)
LEFT JOIN pg_namespace n ON n.nspname = r.nspname
LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = r.relname
LEFT JOIN pg_description ds ON ds.objoid = c.oid AND ds.classoid = 'pg_class'::regclass AND ds.objsubid = 0
LEFT JOIN pg_inherits i ON c.relispartition AND i.inhrelid = c.oid
LEFT JOIN pg_class pc ON pc.oid = i.inhparent
LEFT JOIN pg_namespace pn ON pn.oid = pc.relnamespace
LEFT JOIN pg_foreign_table ft ON ft.ftrelid = c.oid
LEFT JOIN pg_foreign_server fs ON fs.oid = ft.ftserver
ORDER BY r.ord
"""

_COLUMNS_SQL = """
SELECT a.attrelid, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       CASE WHEN a.attgenerated = '' THEN pg_get_expr(d.adbin, d.adrelid) END,
       a.attidentity, a.attgenerated,
       CASE WHEN a.attgenerated <> '' THEN pg_get_expr(d.adbin, d.adrelid) END,
       CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation
            THEN quote_ident(cn.nspname) || '.' || quote_ident(co.collname) END,
       ds.description, a.atttypid, bt.typname, bt.typcategory,
       CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
LEFT JOIN pg_collation co ON co.oid = a.attcollation
LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace
LEFT JOIN pg_description ds ON ds.objoid = a.attrelid AND ds.classoid = 'pg_class'::regclass
                           AND ds.objsubid = a.attnum
WHERE a.attrelid = ANY(%s::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
"""

_CONSTRAINTS_SQL = """
SELECT con.conrelid, con.conname, con.contype, con.conkey, pg_get_constraintdef(con.oid), fn.nspname, fc.relname,
       CASE WHEN con.contype = 'f' THEN
           ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(num, ord)
                 JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.num ORDER BY k.ord) END,
       NOT con.conislocal
FROM pg_constraint con
LEFT JOIN pg_constraint parent ON parent.oid = con.conparentid
LEFT JOIN pg_class fc ON fc.oid = con.confrelid
LEFT JOIN pg_namespace fn ON fn.oid = fc.relnamespace
WHERE con.conrelid = ANY(%s::oid[]) AND con.contype IN ('p', 'u', 'c', 'x', 'f')
  AND (parent.oid IS NULL OR parent.conrelid <> con.conrelid)
ORDER BY con.conrelid, con.contype, con.conname
"""

_INDEXES_SQL = """
SELECT i.indrelid, pg_get_indexdef(i.indexrelid)
FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
WHERE i.indrelid = ANY(%s::oid[])
  AND NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = i.indexrelid
                  AND con.conrelid = i.indrelid AND con.contype IN ('p', 'u', 'x'))
ORDER BY i.indrelid, ic.relname
"""

# Walks from each column's type through domains (to their base type) and arrays (to their element
# type), returning every step so that Python can rebuild each column's chain of user types.
_TYPES_SQL = """
WITH RECURSIVE walk(oid) AS (
    SELECT DISTINCT a.atttypid FROM pg_attribute a
    WHERE a.attrelid = ANY(%s::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
  UNION
    SELECT CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.typelem END
    FROM walk w JOIN pg_type t ON t.oid = w.oid
    WHERE t.typtype = 'd' OR (t.typcategory = 'A' AND t.typelem <> 0)
)
SELECT t.oid, n.nspname, t.typname, t.typtype,
       CASE WHEN t.typtype = 'd' THEN t.typbasetype WHEN t.typcategory = 'A' THEN t.typelem END,
       t.typtype = 'd' OR t.typcategory <> 'A',
       CASE WHEN t.typtype = 'e' THEN
           ARRAY(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder) END,
       CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END,
       t.typnotnull, t.typdefault,
       CASE WHEN t.typtype = 'd' AND t.typcollation <> 0 AND t.typcollation <> bt.typcollation
            THEN quote_ident(cn.nspname) || '.' || quote_ident(co.collname) END,
       ARRAY(SELECT dc.conname::text FROM pg_constraint dc
             WHERE dc.contypid = t.oid AND dc.contype = 'c' ORDER BY dc.conname),
       ARRAY(SELECT pg_get_constraintdef(dc.oid) FROM pg_constraint dc
             WHERE dc.contypid = t.oid AND dc.contype = 'c' ORDER BY dc.conname)
FROM walk w
JOIN pg_type t ON t.oid = w.oid
JOIN pg_namespace n ON n.oid = t.typnamespace
LEFT JOIN pg_type bt ON bt.oid = t.typbasetype
LEFT JOIN pg_collation co ON co.oid = t.typcollation
LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace
"""

_SEQUENCES_SQL = """
SELECT DISTINCT ad.adrelid, sn.nspname, s.relname, format_type(seq.seqtypid, NULL), seq.seqstart,
       seq.seqincrement, seq.seqmin, seq.seqmax, seq.seqcache, seq.seqcycle,
       (SELECT a.attname FROM pg_depend od JOIN pg_attribute a ON a.attrelid = od.refobjid AND a.attnum = od.refobjsubid
        WHERE od.classid = 'pg_class'::regclass AND od.objid = s.oid AND od.deptype = 'a'
          AND od.refobjid = ad.adrelid LIMIT 1)
FROM pg_attrdef ad
JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid AND d.refclassid = 'pg_class'::regclass
JOIN pg_class s ON s.oid = d.refobjid AND s.relkind = 'S'
JOIN pg_namespace sn ON sn.oid = s.relnamespace
JOIN pg_sequence seq ON seq.seqrelid = s.oid
WHERE ad.adrelid = ANY(%s::oid[])
ORDER BY 1, 2, 3
"""

_VIEW_DEPENDENCIES_SQL = """
SELECT DISTINCT r.ev_class, d.refobjid
FROM pg_rewrite r
JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> r.ev_class
WHERE r.ev_class = ANY(%s::oid[])
"""


@dataclass
class TypeDef:
    """A user-defined enum or domain a table's columns need created before the table."""

    schema: str
    name: str
    kind: str  # "enum" | "domain"
    labels: list[str] = field(default_factory=list)
    base_type: str | None = None
    not_null: bool = False
    default: str | None = None
    collation: str | None = None
    checks: list[tuple[str, str]] = field(default_factory=list)  # (constraint name, definition)


@dataclass
class SequenceDef:
    """A sequence a column default calls ``nextval`` on."""

    schema: str
    name: str
    data_type: str
    start: int
    increment: int
    min_value: int
    max_value: int
    cache: int
    cycle: bool
    owned_by: str | None  # column of this table that owns it (serial)


@dataclass
class ColumnTraits:
    """Type facts that decide sampling and enum probing (not part of the saved model)."""

    base_type: str  # pg_type.typname of the column's (domain's base) type
    category: str  # pg_type.typcategory: S string, N numeric, B boolean, A array, E enum, ...
    max_length: int | None  # declared length of varchar(n)/char(n)
    enum_labels: list[str] | None = None  # labels when the type (or its domain chain) is an enum
    domain_checks: list[str] = field(default_factory=list)  # CHECK definitions of its domains
    type_oid: int = 0


@dataclass
class Relation:
    """One listed table: the saved facts plus what rendering and sampling need on top."""

    table: Table
    oid: int
    types: list[TypeDef] = field(default_factory=list)  # creation order: dependencies first
    sequences: list[SequenceDef] = field(default_factory=list)
    traits: dict[str, ColumnTraits] = field(default_factory=dict)
    inherited_constraints: set[str] = field(default_factory=set)  # names of constraints from a parent
    partition_of: TableName | None = None
    partition_bound: str | None = None
    foreign_server: str | None = None
    populated: bool = True  # False for a materialized view never refreshed: it has no data to read
    attnames: dict[int, str] = field(default_factory=dict)  # attnum -> column name
    depends_on: set[int] = field(default_factory=set)  # oids of relations a view reads

    @property
    def name(self) -> TableName:
        return TableName(self.table.schema, self.table.name)


@dataclass
class Introspection:
    relations: dict[TableName, Relation]
    failures: dict[TableName, str]
    catalog_queries: int
    current_user: str


def _row_estimate(reltuples: float | None) -> int | None:
    if reltuples is None or reltuples < 0:
        return None
    return int(reltuples)


def _char_length(base_type: str, typmod: int) -> int | None:
    if base_type in ("varchar", "bpchar") and typmod > 4:
        return typmod - 4
    return None


def introspect(conn: psycopg2.extensions.connection, tables: list[TableName], *,
               lock_timeout: float = 2.0) -> Introspection:
    """All catalog facts for ``tables``; missing, unreadable or locked tables land in ``failures``.

    Rendering a default, view or partition bound opens the table, so a table another session holds
    in ACCESS EXCLUSIVE mode (ALTER TABLE, TRUNCATE, VACUUM FULL) would stall the whole batch. After
    ``lock_timeout`` seconds the batch is read again one table at a time, and only the locked tables
    (and views over them) fail.
    """
    with conn.cursor() as cur:
        cur.execute("SET LOCAL search_path = pg_catalog")
        cur.execute("SET LOCAL work_mem = '64MB'")
        cur.execute("SET LOCAL lock_timeout = %s", (f"{max(1, int(lock_timeout * 1000))}ms",))
        reader = _CatalogReader(cur)
        try:
            found = reader.read_in_savepoint(tables)
        except psycopg2.errors.LockNotAvailable:
            found = reader.read_one_by_one(tables)
    found.catalog_queries = reader.queries
    return found


class _CatalogReader:
    """Runs the catalog queries on one cursor, counting them."""

    def __init__(self, cur: psycopg2.extensions.cursor):
        self.cur = cur
        self.queries = 0

    def fetch(self, query: str, *params) -> list[tuple]:
        self.queries += 1
        self.cur.execute(query, params)
        return self.cur.fetchall()

    def read_in_savepoint(self, tables: list[TableName]) -> Introspection:
        """``read``, undone on a lock timeout, so the transaction can go on."""
        self.cur.execute("SAVEPOINT catalog_read")
        try:
            found = self.read(tables)
        except psycopg2.errors.LockNotAvailable:
            self.cur.execute("ROLLBACK TO SAVEPOINT catalog_read")
            raise
        self.cur.execute("RELEASE SAVEPOINT catalog_read")
        return found

    def read_one_by_one(self, tables: list[TableName]) -> Introspection:
        merged = Introspection(relations={}, failures={}, catalog_queries=0, current_user="")
        for table in tables:
            try:
                found = self.read_in_savepoint([table])
            except psycopg2.errors.LockNotAvailable:
                merged.failures[table] = (
                    f"{table.qualified} (or a table it reads) is locked by another session (ALTER TABLE, TRUNCATE, "
                    "VACUUM FULL, REINDEX and LOCK TABLE take such locks); run step 1 again once it is released"
                )
                continue
            merged.relations.update(found.relations)
            merged.failures.update(found.failures)
            merged.current_user = merged.current_user or found.current_user
        return merged

    def read(self, tables: list[TableName]) -> Introspection:
        fetch = self.fetch
        rows = fetch(_RELATIONS_SQL, [t.schema for t in tables], [t.name for t in tables])
        relations: dict[int, Relation] = {}
        failures: dict[TableName, str] = {}
        current_user = rows[0][5] if rows else ""
        for row in rows:
            (_, schema, name, oid, relkind, user, comment, reltuples, partkey, viewdef, can_select,
             parent_schema, parent_name, bound, server, populated) = row
            table_name = TableName(schema, name)
            if oid is None:
                failures[table_name] = (
                    f"table {table_name.qualified} does not exist; check the name and schema in the table list"
                )
            elif relkind not in _KINDS:
                failures[table_name] = (
                    f"{table_name.qualified} is {_OTHER_KINDS.get(relkind, 'not a table')}, not a table or view; "
                    "remove it from the table list"
                )
            elif not can_select:
                failures[table_name] = (
                    f"no SELECT privilege on {table_name.qualified}; GRANT SELECT ON {table_name.qualified} TO {user}"
                )
            else:
                table = Table(
                    schema=schema, name=name, kind=_KINDS[relkind], comment=comment,
                    comment_source="database" if comment is not None else None,
                    row_estimate=_row_estimate(reltuples), partition_key=partkey,
                    view_definition=viewdef.strip().rstrip(";").strip() if viewdef else None,
                )
                relations[oid] = Relation(
                    table=table, oid=oid,
                    partition_of=TableName(parent_schema, parent_name) if parent_name else None,
                    partition_bound=bound, foreign_server=server, populated=populated,
                )
        if relations:
            oids = list(relations)
            # Sorted here: sorting 20,000 wide rows server-side costs more than in Python.
            _read_columns(sorted(fetch(_COLUMNS_SQL, oids), key=lambda row: (row[0], row[1])), relations)
            _read_constraints(fetch(_CONSTRAINTS_SQL, oids), relations)
            for relid, definition in fetch(_INDEXES_SQL, oids):
                relations[relid].table.indexes.append(definition)
            _read_types(fetch(_TYPES_SQL, oids), relations)
            _read_sequences(fetch(_SEQUENCES_SQL, oids), relations)
            for view, referenced in fetch(_VIEW_DEPENDENCIES_SQL, oids):
                relations[view].depends_on.add(referenced)
        by_name = {rel.name: rel for rel in relations.values()}
        return Introspection(relations=by_name, failures=failures, catalog_queries=0, current_user=current_user)


def _read_columns(rows: list[tuple], relations: dict[int, Relation]) -> None:
    for (relid, attnum, name, type_, notnull, default, identity, generated_kind, generated, collation, comment,
         type_oid, base_type, category, typmod) in rows:
        rel = relations[relid]
        rel.attnames[attnum] = name
        rel.table.columns.append(
            Column(
                name=name, type=type_, nullable=not notnull, default=default,
                identity={"a": "always", "d": "by_default"}.get(identity),
                generated=generated, generated_kind={"s": "stored", "v": "virtual"}.get(generated_kind),
                collation=collation, comment=comment,
                comment_source="database" if comment is not None else None,
            )
        )
        rel.traits[name] = ColumnTraits(
            base_type=base_type, category=category, max_length=_char_length(base_type, typmod), type_oid=type_oid
        )


def _read_constraints(rows: list[tuple], relations: dict[int, Relation]) -> None:
    for relid, name, contype, attnums, definition, ref_schema, ref_table, ref_columns, inherited in rows:
        rel = relations[relid]
        columns = [rel.attnames[n] for n in attnums or []]
        if contype == "f":
            rel.table.foreign_keys.append(
                ForeignKey(name=name, columns=list(columns), ref_schema=ref_schema, ref_table=ref_table,
                           ref_columns=list(ref_columns), definition=definition)
            )
        else:
            rel.table.constraints.append(
                Constraint(name=name, kind=_CONSTRAINT_KINDS[contype], columns=list(columns), definition=definition)
            )
        if inherited:
            rel.inherited_constraints.add(name)


def _read_types(rows: list[tuple], relations: dict[int, Relation]) -> None:
    """Resolve each column's chain of types (domain -> base, array -> element) into user types."""
    next_of: dict[int, tuple[int | None, bool]] = {}
    defs: dict[int, TypeDef] = {}
    for (oid, schema, name, typtype, next_oid, scalar_step, labels, base, notnull, default, collation,
         check_names, check_defs) in rows:
        next_of[oid] = (next_oid, scalar_step)
        if typtype in ("e", "d") and schema not in ("pg_catalog", "information_schema"):
            defs[oid] = TypeDef(
                schema=schema, name=name, kind="enum" if typtype == "e" else "domain",
                labels=list(labels or []), base_type=base, not_null=bool(notnull), default=default,
                collation=collation, checks=list(zip(check_names, check_defs)),
            )
    for rel in relations.values():
        needed: list[TypeDef] = []
        for traits in rel.traits.values():
            oid: int | None = traits.type_oid
            scalar = True  # still the column's own value, not an array element
            while oid is not None:
                typedef = defs.get(oid)
                if typedef is not None:
                    if typedef not in needed:
                        needed.append(typedef)
                    if scalar and typedef.kind == "enum" and traits.enum_labels is None:
                        traits.enum_labels = typedef.labels
                    if scalar and typedef.kind == "domain":
                        traits.domain_checks.extend(d for _, d in typedef.checks)
                next_oid, scalar_step = next_of.get(oid, (None, True))
                scalar = scalar and scalar_step
                oid = next_oid
        # A chain lists a type before what it is built on; create the foundations first.
        rel.types = _creation_order(needed, next_of, defs)


def _creation_order(needed: list[TypeDef], next_of: dict, defs: dict[int, TypeDef]) -> list[TypeDef]:
    oid_of = {id(t): oid for oid, t in defs.items()}

    def depth(typedef: TypeDef) -> int:
        oid, levels = oid_of[id(typedef)], 0
        while next_of.get(oid, (None,))[0] is not None:
            oid, levels = next_of[oid][0], levels + 1
        return levels

    return sorted(needed, key=lambda t: (depth(t), t.schema, t.name))


def _read_sequences(rows: list[tuple], relations: dict[int, Relation]) -> None:
    for relid, schema, name, data_type, start, increment, min_value, max_value, cache, cycle, owner in rows:
        relations[relid].sequences.append(
            SequenceDef(schema=schema, name=name, data_type=data_type, start=start, increment=increment,
                        min_value=min_value, max_value=max_value, cache=cache, cycle=cycle, owned_by=owner)
        )
