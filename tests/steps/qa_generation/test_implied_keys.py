"""Joins implied by column names: found where no foreign key is declared, never guessed when unsure."""

from __future__ import annotations

import json

from dp.settings import Settings
from steps.ddl_generation.model import Column, Constraint, ForeignKey, Table
from steps.qa_generation.implied_keys import add_implied_foreign_keys
from steps.qa_generation.step import run_qa_generation
from tests.steps.qa_generation.conftest import failing_sql


def _table(name: str, key: str | None, *columns: tuple[str, str], schema: str = "public") -> Table:
    cols = [Column(n, t) for n, t in columns]
    constraints = [Constraint(f"{name}_pkey", "primary_key", [key], f"PRIMARY KEY ({key})")] if key else []
    return Table(schema, name, columns=cols, constraints=constraints)


def test_names_imply_joins_to_a_matching_primary_key():
    customers = _table("customers", "id", ("id", "bigint"), ("name", "text"))
    category = _table("crm_category", "category_id", ("category_id", "integer"))
    orders = _table("orders", "order_id", ("order_id", "integer"), ("customer_id", "integer"),
                    ("CategoryId", "smallint"), ("paid", "integer"), ("total", "numeric"))
    implied = add_implied_foreign_keys([customers, category, orders])
    assert [str(j) for j in implied] == ["orders.customer_id -> customers.id", "orders.CategoryId -> crm_category.category_id"]
    fk = orders.foreign_keys[0]
    assert (fk.columns, fk.ref_schema, fk.ref_table, fk.ref_columns) == (["customer_id"], "public", "customers", ["id"])
    assert fk.definition == "FOREIGN KEY (customer_id) REFERENCES public.customers(id)"
    assert customers.foreign_keys == [] and category.foreign_keys == []


def test_declared_keys_ambiguous_names_and_other_types_imply_nothing():
    orders = _table("orders", "id", ("id", "integer"), ("customer_id", "uuid"), ("store_id", "integer"),
                    ("region_id", "integer"))
    orders.foreign_keys.append(ForeignKey("orders_region_id_fkey", ["region_id"], "public", "zones", ["zone_id"],
                                          "FOREIGN KEY (region_id) REFERENCES zones(zone_id)"))
    tables = [
        orders,
        _table("customer", "id", ("id", "integer")),  # an integer key; orders.customer_id is a uuid
        _table("store", "id", ("id", "integer")),
        _table("sales_store", "id", ("id", "integer")),  # a second "store": store_id is ambiguous
        _table("region", "id", ("id", "integer")),  # region_id has a declared foreign key
        _table("audit", None, ("customer_id", "integer")),  # no key of its own, but it does reference customer
    ]
    assert [str(j) for j in add_implied_foreign_keys(tables)] == ["audit.customer_id -> customer.id"]
    assert [fk.name for fk in orders.foreign_keys] == ["orders_region_id_fkey"]


def test_a_schema_without_foreign_keys_still_gets_join_pairs_that_run(no_foreign_keys_step1):
    outputs = no_foreign_keys_step1
    result = run_qa_generation(output_dir=outputs.output_dir, settings=Settings())
    assert result["implied_joins"] == ["shop_order.member_id -> member.member_id"]
    assert sorted(result["groups"][0]) == ["member", "shop_order"]
    pairs = json.loads((outputs.output_dir / result["pair_file"]).read_text(encoding="utf-8"))
    joins = [p for p in pairs if "JOIN public.member" in p["sql"]]
    assert joins, [p["sql"] for p in pairs]
    assert not failing_sql(outputs.url, [p["sql"] for p in pairs])
    manifest = json.loads((outputs.output_dir / "manifest.json").read_text(encoding="utf-8"))
    assert "implied" not in json.dumps(manifest)  # step 1's files keep what the catalog says
