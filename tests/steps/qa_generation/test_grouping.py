"""Token-budget grouping: a large schema is cut along foreign keys, every table in one group."""

from __future__ import annotations

from dp.table_list import TableName
from steps.qa_generation.grouping import group_tables
from steps.qa_generation.schema import estimate_tokens, load_schema
from steps.qa_generation.step import split_theme_count


def test_schema_within_budget_is_one_group(pagila_step1):
    schema = load_schema(pagila_step1.output_dir)
    assert group_tables(schema, 1_000_000) == [schema.keys]


def test_small_budget_gives_several_groups_covering_every_table_once(pagila_step1):
    schema = load_schema(pagila_step1.output_dir)
    budget = 2_500
    assert sum(schema.tokens(k) for k in schema.keys) > 3 * budget
    groups = group_tables(schema, budget)
    assert len(groups) >= 3
    flat = [k for g in groups for k in g]
    assert sorted(flat) == sorted(schema.keys) and len(flat) == len(set(flat))
    for group in groups:
        assert len(group) == 1 or sum(schema.tokens(k) for k in group) <= budget
    # foreign-key neighbourhoods stay together where the budget allows: film with its link tables
    film = next(g for g in groups if TableName("public", "film") in g)
    linked = {TableName("public", "film_actor"), TableName("public", "film_category"), TableName("public", "inventory")}
    assert set(film) & linked


def test_grouping_is_deterministic(northwind_step1):
    schema = load_schema(northwind_step1.output_dir)
    assert group_tables(schema, 1_500) == group_tables(load_schema(northwind_step1.output_dir), 1_500)


def test_a_table_larger_than_the_budget_gets_its_own_group(chinook_step1):
    schema = load_schema(chinook_step1.output_dir)
    groups = group_tables(schema, 200)
    assert sorted(k for g in groups for k in g) == sorted(schema.keys)
    big = [k for k in schema.keys if schema.tokens(k) > 200]
    assert big and all([k] in groups for k in big)


def test_token_estimate_counts_cjk_characters_one_each():
    assert estimate_tokens("abcdef") == 2
    assert estimate_tokens("服务区abc") == 4


def test_theme_count_is_split_over_groups_by_size():
    assert split_theme_count(5, [10]) == [5]
    assert split_theme_count(5, [6, 3, 1]) == [3, 1, 1]
    assert sum(split_theme_count(5, [4, 4, 4, 4])) == 5
    assert split_theme_count(2, [1, 1, 1]) == [1, 1, 1]  # every group gets a theme
