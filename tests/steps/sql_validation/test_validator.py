"""The database check against real pagila: classification, timeouts, a pool that stays healthy."""

from __future__ import annotations

import time

import pytest

from dp.database import connection
from steps.sql_validation.guard import guard_sql
from steps.sql_validation.validator import QueryValidator
from tests.steps.sql_validation.conftest import fingerprint
from tests.steps.sql_validation.queries import BAD, EMPTY, GOOD


@pytest.fixture(scope="module")
def validator(pagila_url):
    with QueryValidator(pagila_url, timeout_ms=2000, concurrency=2) as v:
        yield v


@pytest.mark.parametrize("sql", GOOD)
def test_known_good_queries_are_accepted_and_return_rows(validator, sql):
    result = validator.check(guard_sql(sql).sql)
    assert result.ok, result.error
    assert result.warnings == []


@pytest.mark.parametrize("sql, sqlstate", BAD)
def test_known_bad_queries_are_rejected_with_the_reason(validator, sql, sqlstate):
    result = validator.check(guard_sql(sql).sql)
    assert not result.ok
    assert result.sqlstate == sqlstate
    assert result.message in result.error


def test_an_empty_result_is_a_warning_not_a_failure(validator):
    result = validator.check(EMPTY)
    assert result.ok
    assert result.warnings and "no rows" in result.warnings[0]


def test_without_the_execution_check_an_empty_result_goes_unnoticed(pagila_url):
    with QueryValidator(pagila_url, timeout_ms=2000, concurrency=1, execute=False) as v:
        assert v.check(EMPTY).warnings == []


def test_error_points_into_the_query_not_into_the_wrapper(validator):
    result = validator.check("SELECT title, rentl_rate FROM film")
    assert "near 'rentl_rate FROM film'" in result.error
    assert "HINT: Perhaps you meant" in result.error


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT pg_sleep(5)",  # the guard would refuse it; the database must stop it anyway
        "SELECT count(*) FROM rental a, rental b, rental c",  # a slow cross join nothing static can spot
    ],
)
def test_the_statement_timeout_holds_in_the_database(pagila_url, sql):
    with QueryValidator(pagila_url, timeout_ms=200, concurrency=1) as v:
        started = time.monotonic()
        result = v.check(sql)
        elapsed = time.monotonic() - started
        assert result.sqlstate == "57014" and "200 ms" in result.error
        assert elapsed < 4  # far below the 5 s sleep / the minutes of the cross join
        assert v.check("SELECT 1").ok  # the same pooled connection works afterwards


def test_failures_do_not_poison_pooled_connections(validator):
    for _ in range(3):
        assert not validator.check("SELECT 1/0").ok
        assert not validator.check("SELECT * FROM films").ok
        assert validator.check("SELECT count(*) FROM film").ok


def test_a_broken_connection_is_discarded_and_the_check_repeated(pagila_url):
    with QueryValidator(pagila_url, timeout_ms=2000, concurrency=1) as v:
        pooled = v._pool._pool[0]
        with connection(pagila_url) as admin:
            admin.autocommit = True
            admin.cursor().execute("SELECT pg_terminate_backend(%s)", (pooled.get_backend_pid(),))
        time.sleep(0.1)
        assert v.check("SELECT count(*) FROM film").ok
        assert pooled.closed
        assert v.check("SELECT 1").ok


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1; DELETE FROM film_actor",
        "SELECT 1; COMMIT; DELETE FROM film_actor",  # even past a smuggled COMMIT the session stays read-only
        "SELECT 1; COMMIT; CREATE TABLE dp_smuggled (x int)",
    ],
)
def test_smuggled_statements_cannot_write_even_without_the_guard(pagila_url, sql):
    before = fingerprint(pagila_url)
    with QueryValidator(pagila_url, timeout_ms=2000, concurrency=1) as v:
        result = v.check(sql)
        assert not result.ok
        assert result.sqlstate == "25006"  # read_only_sql_transaction
        assert v.check("SELECT 1").ok
    assert fingerprint(pagila_url) == before
