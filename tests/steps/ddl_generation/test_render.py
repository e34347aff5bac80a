"""Rendering details that a round trip does not show: quoting, escaping and headings."""

from __future__ import annotations

from dp.table_list import TableName
from dp.markdown import cell
from steps.ddl_generation.dictionary_render import render_dictionary
from steps.ddl_generation.model import Column, Constraint, ForeignKey, Table
from steps.ddl_generation.sqltext import dollar_quote, ident, literal, one_line
from tests.steps.ddl_generation.conftest import execute, run_step


def test_identifiers_and_literals():
    assert ident("film") == "film"
    assert ident("order") == '"order"' and ident("user") == '"user"'
    assert ident("Film") == '"Film"' and ident('a"b') == '"a""b"' and ident("服务区") == '"服务区"' and ident("json_table") == '"json_table"'
    assert literal("it's") == "'it''s'"
    assert one_line("a\r\nb\u2028c  d") == "a b c d"
    assert dollar_quote("x $dp$ y") == "$dp1$x $dp$ y$dp1$"


def test_dictionary_in_english_escapes_cells():
    table = Table(
        schema="shop", name="orders", comment="Orders | placed online", row_estimate=1200,
        columns=[
            Column(name="id", type="integer", nullable=False, comment="Order id"),
            Column(name="customer_id", type="integer", comment="Buyer\nof the order"),
            Column(name="state", type="text", samples=["a|b", "c`d"], enum_values=["a|b", "new"],
                   enum_source="distinct_values"),
        ],
        constraints=[Constraint(name="orders_pkey", kind="primary_key", columns=["id"], definition="PRIMARY KEY (id)")],
        foreign_keys=[ForeignKey(name="orders_customer_fk", columns=["customer_id"], ref_schema="shop",
                                 ref_table="customers", ref_columns=["id"],
                                 definition="FOREIGN KEY (customer_id) REFERENCES shop.customers(id)")],
    )
    incoming = [(TableName("shop", "lines"), ForeignKey(name="lines_order_fk", columns=["order_id"], ref_schema="shop",
                                                      ref_table="orders", ref_columns=["id"], definition=""))]
    text = render_dictionary(table, language="en", referenced_by=incoming)
    assert text.startswith("# shop.orders: Orders | placed online\n")
    assert "- Kind: table\n- Row estimate: 1,200\n" in text
    assert "| customer_id | integer | yes | FK | Buyer of the order |  |  |" in text
    assert "| state | text | yes |  |  | `a\\|b`, `` c`d `` | a\\|b, new (distinct values) |" in text
    assert "- References: `shop.orders`(customer_id) → `shop.customers`(id) — orders_customer_fk" in text
    assert "- Referenced by: `shop.lines`(order_id) → `shop.orders`(id) — lines_order_fk" in text
    assert "## Constraints\n\n- orders_pkey: `PRIMARY KEY (id)`" in text
    assert cell("a\\|b") == "a\\\\\\|b"


def test_hostile_names_and_labels_stay_valid_sql(scratch_db, tmp_path, business_server_url):
    execute(
        scratch_db,
        """
        CREATE TYPE "we$dp$ird" AS ENUM ('$dp$', 'a'';DROP TABLE x;--');
        CREATE TABLE "select" ("from" "we$dp$ird", "user" int DEFAULT 1, "x-- y" text);
        COMMENT ON COLUMN "select"."x-- y" IS E'line one\\r\\nline two';
        """,
    )
    run = run_step(scratch_db, [TableName("public", "select")], tmp_path / "out")
    ddl = (tmp_path / "out" / "select.ddl").read_text()
    assert 'CREATE TABLE public."select" (' in ddl and '    "from" public."we$dp$ird",' in ddl
    assert run.result["succeeded"] == 1
    copy = scratch_db + "_hostile"
    execute(business_server_url, f'CREATE DATABASE "{copy.rsplit("/", 1)[1]}"')
    try:
        execute(copy, ddl)
        execute(copy, ddl.split("\n\nCREATE TABLE")[0])  # types already there: the DO blocks tolerate it
    finally:
        execute(business_server_url, f'DROP DATABASE IF EXISTS "{copy.rsplit("/", 1)[1]}" WITH (FORCE)')
