"""Batched catalog introspection against the sample databases, checked through information_schema."""

from __future__ import annotations

import uuid

import pytest

from dp.database import connection
from dp.table_list import TableName
from steps.ddl_generation.introspect import introspect
from tests.steps.ddl_generation.catalog_snapshot import information_schema_counts, listed_relations
from tests.steps.ddl_generation.conftest import execute, run_step


def _introspect(url: str, tables: list[TableName]):
    with connection(url) as conn:
        conn.set_session(readonly=True)
        with conn:
            return introspect(conn, tables)


@pytest.mark.parametrize("database", ["pagila", "chinook", "northwind"])
def test_every_table_matches_information_schema(database, request):
    url = request.getfixturevalue(f"{database}_url")
    tables = listed_relations(url, "rpv", partitions=True)  # information_schema omits materialized views
    found = _introspect(url, tables)
    assert not found.failures
    expected = information_schema_counts(url, tables)
    actual = {
        name: (len(rel.table.columns), len(rel.table.foreign_keys)) for name, rel in found.relations.items()
    }
    assert actual == expected


def test_query_count_does_not_grow_with_tables(pagila_url):
    tables = listed_relations(pagila_url, "rpvm", partitions=True)
    one = _introspect(pagila_url, tables[:1])
    everything = _introspect(pagila_url, tables)
    assert len(tables) > 20
    assert one.catalog_queries == everything.catalog_queries <= 8


def test_pagila_facts(pagila_url):
    names = [TableName("public", n) for n in ("film", "payment", "payment_p2022_01", "actor_info", "rental_by_category")]
    found = _introspect(pagila_url, names).relations
    film = found[names[0]]
    assert film.table.kind == "table" and film.table.row_estimate == 1000
    assert film.table.primary_key == ["film_id"]
    assert {fk.ref_table for fk in film.table.foreign_keys} == {"language"}
    assert film.table.column("rating").type == "public.mpaa_rating"
    assert [t.name for t in film.types] == ["mpaa_rating", "year"]
    assert film.traits["release_year"].domain_checks == ["CHECK (((VALUE >= 1901) AND (VALUE <= 2155)))"]
    assert [s.name for s in film.sequences] == ["film_film_id_seq"]
    assert any("film_fulltext_idx" in index for index in film.table.indexes)
    payment = found[names[1]]
    assert payment.table.kind == "partitioned_table" and payment.table.partition_key == "RANGE (payment_date)"
    assert payment.table.row_estimate and payment.table.row_estimate > 10000  # summed over partitions
    partition = found[names[2]]
    assert partition.partition_of == names[1] and partition.partition_bound.startswith("FOR VALUES FROM")
    assert partition.inherited_constraints == {"payment_p2022_01_pkey"}
    assert found[names[3]].table.kind == "view" and "group_concat" in found[names[3]].table.view_definition
    assert found[names[4]].table.kind == "materialized_view"
    assert film.oid in found[names[3]].depends_on


def test_missing_and_forbidden_tables_fail_with_the_fix(scratch_db):
    role = f"dp_reader_{uuid.uuid4().hex[:8]}"
    execute(
        scratch_db,
        f"""
        CREATE TABLE public.open_t (id int); CREATE TABLE public.secret (id int);
        CREATE ROLE {role} LOGIN; GRANT SELECT ON public.open_t TO {role}; CREATE SEQUENCE public.seq_only;
        """,
    )
    reader_url = scratch_db.replace("postgres@", f"{role}@")
    try:
        names = [TableName("public", n) for n in ("open_t", "secret", "nope", "seq_only")]
        names.append(TableName("no_schema", "t"))
        found = _introspect(reader_url, names)
    finally:
        execute(scratch_db, f"DROP OWNED BY {role}; DROP ROLE {role}")
    assert list(found.relations) == [names[0]]
    assert found.failures[names[1]] == (
        f"no SELECT privilege on public.secret; GRANT SELECT ON public.secret TO {role}"
    )
    assert found.failures[names[2]] == (
        "table public.nope does not exist; check the name and schema in the table list"
    )
    assert "is a sequence" in found.failures[names[3]]
    assert "no_schema.t does not exist" in found.failures[names[4]]


def test_a_locked_table_fails_alone(scratch_db, tmp_path):
    execute(scratch_db, "CREATE TABLE busy (id serial PRIMARY KEY, note text DEFAULT 'x'); "
                        "CREATE TABLE calm (id int PRIMARY KEY); CREATE VIEW busy_view AS SELECT id FROM busy")
    names = [TableName("public", n) for n in ("busy", "calm", "busy_view")]
    with connection(scratch_db) as holder:  # ALTER TABLE, TRUNCATE, VACUUM FULL hold this lock
        holder.cursor().execute("LOCK TABLE busy IN ACCESS EXCLUSIVE MODE")
        with connection(scratch_db) as conn:
            conn.set_session(readonly=True)
            with conn:
                found = introspect(conn, names, lock_timeout=0.2)
        run = run_step(scratch_db, names, tmp_path / "task", lock_timeout=0.2)
        holder.rollback()
    assert list(found.relations) == [names[1]] and found.relations[names[1]].table.primary_key == ["id"]
    assert sorted(found.failures) == [names[0], names[2]]
    assert "public.busy (or a table it reads) is locked by another session" in found.failures[names[0]]
    assert run.result["succeeded"] == 1
    assert [f["table"] for f in run.result["failed"]] == ["public.busy", "public.busy_view"]
    assert "run step 1 again once it is released" in run.result["failed"][0]["reason"]
    assert _introspect(scratch_db, names).failures == {}  # released: all three read in one batch
