"""Fixtures for step 2 tests: real step-1 outputs of the sample and demo databases, and a checker
that runs SQL the way step 3 does (read-only transaction, statement timeout, LIMIT 1 wrapper)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest

from dp.database import connection
from dp.settings import Settings
from dp.table_list import TableName
from steps.ddl_generation.step import run_ddl_generation
from tests.steps.ddl_generation.catalog_snapshot import listed_relations


@dataclass
class Step1Outputs:
    """A finished step-1 run: the database it read and the directory it wrote."""

    url: str
    output_dir: Path

    def copy_to(self, target: Path) -> Path:
        """A private copy of the outputs, so a test's step-2 files never meet another test's."""
        shutil.copytree(self.output_dir, target)
        return target


def step1(url: str, output_dir: Path, business_context: str, tables: list[TableName] | None = None) -> Step1Outputs:
    run_ddl_generation(
        db_url=url,
        tables=tables if tables is not None else listed_relations(url, "rpvm"),
        output_dir=output_dir,
        business_context=business_context,
        settings=Settings(llm_provider="heuristic", comment_language="auto"),
    )
    return Step1Outputs(url, output_dir)


def failing_sql(url: str, sqls: list[str]) -> list[tuple[str, str]]:
    """The SQL that fails EXPLAIN or a read-only LIMIT 1 execution, with the error."""
    failures = []
    with connection(url) as conn:
        for sql in sqls:
            try:
                with conn.cursor() as cur:
                    cur.execute("SET TRANSACTION READ ONLY")
                    cur.execute("SET LOCAL statement_timeout = '10s'")
                    cur.execute(f"EXPLAIN {sql}")
                    cur.execute(f"SELECT * FROM ({sql}) AS checked LIMIT 1")
                    cur.fetchall()
            except psycopg2.Error as exc:
                failures.append((sql, str(exc).strip()))
            finally:
                conn.rollback()
    return failures


@pytest.fixture(scope="session")
def pagila_step1(pagila_url, tmp_path_factory) -> Step1Outputs:
    return step1(pagila_url, tmp_path_factory.mktemp("qa_pagila"), "DVD rental business")


@pytest.fixture(scope="session")
def chinook_step1(chinook_url, tmp_path_factory) -> Step1Outputs:
    return step1(chinook_url, tmp_path_factory.mktemp("qa_chinook"), "digital music store")


@pytest.fixture(scope="session")
def northwind_step1(northwind_url, tmp_path_factory) -> Step1Outputs:
    return step1(northwind_url, tmp_path_factory.mktemp("qa_northwind"), "food trading company")


@pytest.fixture(scope="session")
def demo_step1(business_server_url, tmp_path_factory) -> Step1Outputs:
    from dp.demo import DEMO_BUSINESS_CONTEXT, demo_table_list, load_demo_database
    from dp.table_list import parse_table_list

    url = load_demo_database(business_server_url)
    return step1(url, tmp_path_factory.mktemp("qa_demo"), DEMO_BUSINESS_CONTEXT, parse_table_list(demo_table_list()))


ODD_NAMES = """
CREATE SCHEMA "Sales";
CREATE TYPE "Sales"."Order State" AS ENUM ('new', 'it''s shipped', 'done');
CREATE TABLE "Sales"."Customer" ("ID" serial PRIMARY KEY, "Full Name" text NOT NULL,
    "select" text CHECK ("select" IN ('a''b', 'c\\d')));
CREATE TABLE "Sales"."Order" (
    "Order ID" serial PRIMARY KEY,
    "Customer ID" int NOT NULL REFERENCES "Sales"."Customer" ("ID"),
    "State" "Sales"."Order State" NOT NULL,
    "Amount" numeric(10, 2),
    "Ordered At" timestamp NOT NULL,
    "group" int
);
INSERT INTO "Sales"."Customer" ("Full Name", "select")
    SELECT 'C' || i, CASE WHEN i % 2 = 0 THEN 'a''b' ELSE 'c\\d' END FROM generate_series(1, 20) i;
INSERT INTO "Sales"."Order" ("Customer ID", "State", "Amount", "Ordered At", "group")
    SELECT 1 + i % 20, (ARRAY['new', 'it''s shipped', 'done'])[1 + i % 3]::"Sales"."Order State", i * 1.5,
           timestamp '2024-01-01' + i * interval '3 days', i % 4 FROM generate_series(1, 200) i;
ANALYZE;
"""


def step1_of_script(url: str, script: str, output_dir: Path, business_context: str) -> Step1Outputs:
    """Step-1 outputs of every table ``script`` creates in the empty database at ``url``."""
    with connection(url) as conn:
        conn.autocommit = True
        conn.cursor().execute(script)
    return step1(url, output_dir, business_context)


@pytest.fixture
def odd_names_step1(scratch_db, tmp_path) -> Step1Outputs:
    """Step-1 outputs of a schema whose names need quotes: mixed case, spaces, keywords, quotes in values."""
    return step1_of_script(scratch_db, ODD_NAMES, tmp_path / "odd", "shop")


NO_FOREIGN_KEYS = """
CREATE TABLE member (member_id serial PRIMARY KEY, member_name text NOT NULL,
                     level text NOT NULL CHECK (level IN ('gold', 'silver', 'bronze')));
CREATE TABLE shop_order (order_id serial PRIMARY KEY, member_id integer NOT NULL, amount numeric(10, 2) NOT NULL,
                         ordered_at timestamptz NOT NULL, status text NOT NULL CHECK (status IN ('paid', 'refunded')));
INSERT INTO member (member_name, level) SELECT 'member ' || g, (ARRAY['gold', 'silver', 'bronze'])[g % 3 + 1]
    FROM generate_series(1, 50) g;
INSERT INTO shop_order (member_id, amount, ordered_at, status)
    SELECT g % 50 + 1, g * 1.5, now() - g * interval '1 day', (ARRAY['paid', 'refunded'])[g % 2 + 1]
    FROM generate_series(1, 500) g;
ANALYZE;
"""


@pytest.fixture
def no_foreign_keys_step1(scratch_db, tmp_path) -> Step1Outputs:
    """Step-1 outputs of two related tables with no foreign key declared (shop_order.member_id)."""
    return step1_of_script(scratch_db, NO_FOREIGN_KEYS, tmp_path / "no_fk", "online shop")
