"""Enum detection (type, CHECK, distinct values) and sampling, on the sample databases and made-up tables."""

from __future__ import annotations

import psycopg2
import pytest

from dp.database import connection
from dp.settings import Settings
from dp.table_list import TableName
from steps.ddl_generation.enums import check_constraint_values, name_suggests_category
from steps.ddl_generation.manifest import load_manifest
from steps.ddl_generation.sampling import read_only_session
from tests.steps.ddl_generation.conftest import execute, run_step


@pytest.mark.parametrize(
    ("definition", "expected"),
    [
        ("CHECK (((status)::text = ANY ((ARRAY['a'::character varying, 'b''c'::character varying])::text[])))",
         {"status": ["a", "b'c"]}),
        ("CHECK ((VALUE = ANY (ARRAY['x'::text, 'y'::text])))", {"VALUE": ["x", "y"]}),
        ("CHECK (((kind = 'a'::text) OR (kind = 'b'::text)))", {"kind": ["a", "b"]}),
        ("CHECK ((level = ANY (ARRAY[1, 2, '-3'::integer])))", {"level": ["1", "2", "-3"]}),
        ('CHECK (("状态" = ANY (ARRAY[\'开\'::text, \'关\'::text]))) NOT VALID', {"状态": ["开", "关"]}),
        ("CHECK (((a > 0) AND (b = ANY (ARRAY['x'::text, 'y'::text]))))", {"b": ["x", "y"]}),
        ("CHECK (((VALUE >= 1901) AND (VALUE <= 2155)))", {}),
        ("CHECK ((a <> ALL (ARRAY['x'::text])))", {}),
        ("CHECK (((a = 'x'::text) OR (b = 'y'::text)))", {}),
        ("CHECK ((a = ANY (ARRAY[b, 'y'::text])))", {}),
        ("CHECK (this is not sql (", {}),
    ],
)
def test_check_constraint_values(definition, expected):
    assert check_constraint_values(definition) == expected


def test_category_names():
    assert all(map(name_suggests_category, ["status", "order_status", "OrderType", "支付方式", "user_level"]))
    assert not any(map(name_suggests_category, ["status_id", "name", "statusline", "created_at"]))


def test_pagila_rating_is_an_enum_type(pagila_run):
    film = next(t for t in load_manifest(pagila_run.output_dir).tables if t.name == "film")
    rating = film.column("rating")
    assert (rating.enum_source, rating.enum_values) == ("enum_type", ["G", "PG", "PG-13", "R", "NC-17"])
    assert film.column("title").enum_values is None
    assert len(film.column("title").samples) == 5  # distinct non-null values, at most sample_values_max


def test_enum_evidence_and_samples(scratch_db, tmp_path):
    execute(
        scratch_db,
        """
        CREATE DOMAIN level_t AS text CHECK (VALUE IN ('low', 'high'));
        CREATE TABLE tickets (
            id int PRIMARY KEY,
            priority text CHECK (priority IN ('p1', 'p2', 'p3')),
            level level_t,
            order_status varchar(20),
            city text,
            status_id int,
            is_open boolean,
            note text,
            payload bytea,
            wide_status text
        );
        INSERT INTO tickets
        SELECT i, 'p1', 'low', (ARRAY['new', 'paid', 'shipped'])[1 + i % 3], (ARRAY['Xi''an', 'Lanzhou'])[1 + i % 2],
               i % 3, i % 2 = 0, repeat('long note ', 20) || i, 'binary', 'v' || i
        FROM generate_series(1, 300) i;
        ANALYZE tickets;
        """,
    )
    run = run_step(scratch_db, [TableName("public", "tickets")], tmp_path / "out", sample_text_max=12)
    table = load_manifest(run.output_dir).tables[0]
    evidence = {c.name: (c.enum_source, c.enum_values) for c in table.columns if c.enum_values is not None}
    assert evidence == {
        "priority": ("check_constraint", ["p1", "p2", "p3"]),
        "level": ("check_constraint", ["low", "high"]),
        "order_status": ("distinct_values", ["new", "paid", "shipped"]),
        "city": ("distinct_values", ["Lanzhou", "Xi'an"]),  # no hint in the name, but repeats in the samples
    }  # status_id: an id; is_open: boolean; wide_status: 300 values; note: prose
    assert run.result["enum_columns"] == 4
    assert table.column("note").samples[0] == "long note lo…"
    assert table.column("payload").samples == []
    assert table.column("is_open").samples == ["false", "true"]
    assert table.column("priority").samples == ["p1"]
    markdown = (run.output_dir / "tickets_detail.md").read_text()
    assert "| priority | text | yes |  |" in markdown and "p1, p2, p3 (CHECK constraint)" in markdown
    assert "`Lanzhou`, `Xi'an`" in markdown

    # Big tables are read through TABLESAMPLE; without samples only names suggest probes.
    run = run_step(scratch_db, [TableName("public", "tickets")], tmp_path / "sampled", sample_tablesample_rows=10)
    table = load_manifest(run.output_dir).tables[0]
    assert 0 < len(table.column("id").samples) <= 5
    run = run_step(scratch_db, [TableName("public", "tickets")], tmp_path / "none", sample_rows=0)
    table = load_manifest(run.output_dir).tables[0]
    assert all(c.samples == [] for c in table.columns)
    assert table.column("order_status").enum_source == "distinct_values"
    assert table.column("city").enum_values is None


def test_sampling_connections_are_read_only(scratch_db):
    execute(scratch_db, "CREATE TABLE t (id int)")
    with connection(scratch_db) as conn:
        read_only_session(conn, Settings(sample_statement_timeout=0.5))
        with pytest.raises(psycopg2.errors.ReadOnlySqlTransaction), conn, conn.cursor() as cur:
            cur.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(psycopg2.errors.QueryCanceled), conn, conn.cursor() as cur:
            cur.execute("SELECT pg_sleep(5)")


@pytest.mark.parametrize(
    ("definition", "fast"),
    [
        ("CHECK (((status)::text = ANY ((ARRAY['a'::character varying, 'b''c'::character varying])::text[])))", True),
        ("CHECK ((VALUE = ANY (ARRAY['x'::text, 'y'::text])))", True),
        ("CHECK ((level = ANY (ARRAY[1, 2, '-3'::integer, (-4)])))", True),
        ('CHECK (("状态" = ANY (ARRAY[\'开\'::text, \'关\'::text])))', True),
        ("CHECK ((((a)::text = ANY ((ARRAY['x'::character varying])::text[])) OR flag))", False),
        ("CHECK ((((a)::text = ANY ((ARRAY['x'::character varying])::text[])) AND (b > 0)))", False),
        ("CHECK ((a = ANY (ARRAY[b, 'y'::text])))", False),
        ("CHECK ((a <> ALL (ARRAY['x'::text])))", False),
    ],
)
def test_token_fast_path_agrees_with_the_parser(definition, fast):
    """PostgreSQL's canonical ``= ANY (ARRAY[...])`` is read from tokens; the answer must not change."""
    from steps.ddl_generation.enums import _canonical_any, _parsed_values

    body = definition[len("CHECK "):]
    found = _canonical_any(body)
    assert (found is not None) == fast
    if fast:
        assert found == _parsed_values(body)


def test_tables_known_to_be_empty_are_not_probed(scratch_db, tmp_path):
    def scans() -> int:
        with connection(scratch_db) as conn, conn.cursor() as cur:
            cur.execute("SELECT coalesce(seq_scan, 0) FROM pg_stat_user_tables WHERE relname = 'orders'")
            return cur.fetchone()[0]

    execute(scratch_db, "CREATE TABLE orders (id int, order_status text); ANALYZE orders")
    table = [TableName("public", "orders")]
    run_step(scratch_db, table, tmp_path / "empty", sample_rows=0)  # planner: analysed, 0 rows
    assert scans() == 0
    execute(scratch_db, "INSERT INTO orders SELECT i, 'new' FROM generate_series(1, 60) i; ANALYZE orders")
    run = run_step(scratch_db, table, tmp_path / "filled", sample_rows=0)
    assert scans() == 1  # one probe query for the name-hinted column
    assert run.result["enum_columns"] == 0  # one distinct value is no category list
