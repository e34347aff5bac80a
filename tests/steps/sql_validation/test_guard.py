"""The guard alone: what passes, what is refused and why (no database involved)."""

from __future__ import annotations

import pytest

from steps.sql_validation.guard import GuardRejected, guard_sql
from tests.steps.sql_validation.queries import GOOD, WRITE_ATTEMPTS


@pytest.mark.parametrize("sql", GOOD)
def test_real_queries_pass(sql):
    assert guard_sql(sql).sql


@pytest.mark.parametrize("sql", WRITE_ATTEMPTS)
def test_every_write_attempt_is_refused(sql):
    with pytest.raises(GuardRejected) as refused:
        guard_sql(sql)
    assert refused.value.kind == "forbidden"


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1 /* /* nested */ */ ; DELETE FROM film",  # nested comments end where PostgreSQL ends them
        "SELECT 'it\\'; DELETE FROM film; --'",  # a backslash does not escape a quote in a standard string
        "SELECT 1 --\r; DELETE FROM film",  # a carriage return ends a line comment
        "select 1;;delete from film",
    ],
)
def test_a_second_statement_is_found_however_it_hides(sql):
    with pytest.raises(GuardRejected, match="2 statements"):
        guard_sql(sql)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 'a;b'; -- fine",
        "SELECT E'it\\'; DELETE FROM film; --'",  # one escaped string literal
        "SELECT $x$; DELETE FROM film; $x$",  # one dollar-quoted string
        'SELECT 1 AS "a;b"',
        "SELECT 1 /* ; DELETE FROM film */",
    ],
)
def test_semicolons_inside_literals_and_comments_are_one_statement(sql):
    guard_sql(sql)


@pytest.mark.parametrize(
    "sql", ['SELECT "pg_sleep"(1)', "SELECT PG_SLEEP(1)", "SELECT * FROM pg_sleep(1)", "SELECT dblink_exec('x', 'y')"]
)
def test_side_effect_functions_are_refused_however_written(sql):
    with pytest.raises(GuardRejected, match="side effects"):
        guard_sql(sql)


def test_names_that_only_look_like_functions_pass():
    guard_sql("SELECT 'pg_sleep(1)' AS nextval")


@pytest.mark.parametrize("sql", ["SELEC * FRM film", "SELECT * FROM", "SELECT (1", "VALUES (1)", "", "  ;  -- x"])
def test_garbage_is_a_syntax_refusal_with_the_reason(sql):
    with pytest.raises(GuardRejected) as refused:
        guard_sql(sql)
    assert refused.value.kind == "syntax"
    assert str(refused.value)


def test_parser_message_says_where():
    with pytest.raises(GuardRejected, match=r"syntax error at line 1, column \d+"):
        guard_sql("SELECT * FROM film WHERE")


def test_the_statement_sent_on_has_no_trailing_semicolon_or_comments():
    guarded = guard_sql("-- lead\nSELECT title FROM film; -- trailing\n;")
    assert guarded.sql == "SELECT title FROM film"


def test_set_operations_and_parenthesised_queries_pass():
    for sql in ["SELECT 1 UNION ALL SELECT 2", "(SELECT 1) EXCEPT (SELECT 2)", "(SELECT 1)", "WITH a AS (SELECT 1) SELECT 1"]:
        guard_sql(sql)


def test_table_names_are_folded_and_skip_ctes():
    guarded = guard_sql('WITH t AS (SELECT 1) SELECT * FROM t, Film, "Actor", public.rental r')
    assert guarded.table_names() == [(None, "film"), (None, "Actor"), ("public", "rental")]
