"""Fixtures for step 1 tests: running the step on the sample databases once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from dp.database import connection
from dp.settings import Settings
from steps.ddl_generation.step import run_ddl_generation
from tests.steps.ddl_generation.catalog_snapshot import listed_relations

# pagila's views call this aggregate; it is a function, not a table, so step 1 does not recreate it.
PAGILA_FUNCTIONS = """
CREATE FUNCTION public._group_concat(text, text) RETURNS text LANGUAGE sql IMMUTABLE
AS $$ SELECT CASE WHEN $2 IS NULL THEN $1 WHEN $1 IS NULL THEN $2 ELSE $1 || ', ' || $2 END $$;
CREATE AGGREGATE public.group_concat(text) (SFUNC = public._group_concat, STYPE = text);
"""


def execute(url: str, script: str) -> None:
    with connection(url) as conn:
        conn.autocommit = True
        conn.cursor().execute(script)


class StepRun:
    """One finished run of the step: its result, output directory and the tables it was given."""

    def __init__(self, url: str, tables, output_dir: Path, result: dict):
        self.url, self.tables, self.output_dir, self.result = url, tables, output_dir, result


def run_step(url: str, tables, output_dir: Path, *, business_context: str = "", **settings) -> StepRun:
    result = run_ddl_generation(
        db_url=url, tables=list(tables), output_dir=output_dir, business_context=business_context,
        settings=Settings(**settings),
    )
    return StepRun(url, list(tables), output_dir, result)


def _sample_run(url: str, tmp_path_factory, name: str) -> StepRun:
    tables = listed_relations(url, "rpvm", partitions=True)
    return run_step(url, tables, tmp_path_factory.mktemp(f"ddl_{name}"), business_context=f"{name} sample database")


@pytest.fixture(scope="session")
def pagila_run(pagila_url, tmp_path_factory) -> StepRun:
    return _sample_run(pagila_url, tmp_path_factory, "pagila")


@pytest.fixture(scope="session")
def chinook_run(chinook_url, tmp_path_factory) -> StepRun:
    return _sample_run(chinook_url, tmp_path_factory, "chinook")


@pytest.fixture(scope="session")
def northwind_run(northwind_url, tmp_path_factory) -> StepRun:
    return _sample_run(northwind_url, tmp_path_factory, "northwind")
