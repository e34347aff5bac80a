"""Every write attempt in a pair file is refused, never reaches the database, and changes nothing."""

from __future__ import annotations

import json

from steps.sql_validation.pair_check import PairChecker
from steps.sql_validation.step import run_sql_validation
from steps.sql_validation.validator import QueryValidator
from tests.steps.sql_validation.conftest import fingerprint, write_pairs
from tests.steps.sql_validation.queries import WRITE_ATTEMPTS


class RecordingValidator(QueryValidator):
    """The real validator, remembering every statement it was asked to check."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen: list[str] = []

    def check(self, sql):
        self.seen.append(sql)
        return super().check(sql)


def test_write_attempts_are_invalid_and_the_database_is_unchanged(pagila_task, pagila_url):
    before = fingerprint(pagila_url)
    write_pairs(pagila_task, [{"question": f"write {i}", "sql": sql} for i, sql in enumerate(WRITE_ATTEMPTS)])
    result = run_sql_validation(db_url=pagila_url, output_dir=pagila_task)
    assert fingerprint(pagila_url) == before
    assert result["total"] == len(WRITE_ATTEMPTS)
    assert result["invalid"] == len(WRITE_ATTEMPTS)
    assert result["repair"]["attempted"] == 0  # a write is not repaired into something else
    report = json.loads(open(result["report_file"]).read())
    for pair in report["pairs"]:
        assert pair["status"] == "invalid"
        assert pair["guard_error"], pair["original_sql"]
        assert pair["error"].startswith("rejected before reaching the database")


def test_nothing_the_guard_refuses_is_sent_to_the_database(pagila_url):
    with RecordingValidator(pagila_url, timeout_ms=2000, concurrency=2) as validator:
        checker = PairChecker(validator, None, max_rounds=2)
        results = checker.check_all([{"question": "q", "sql": sql} for sql in WRITE_ATTEMPTS], workers=2)
        assert {r.status for r in results} == {"invalid"}
        assert validator.seen == []
        checker.check_all([{"question": "q", "sql": "SELECT 1;"}], workers=1)
        assert validator.seen == ["SELECT 1"]


def test_write_attempts_never_reach_the_llm(pagila_task, pagila_url, use_fake_llm):
    write_pairs(pagila_task, [{"question": "q", "sql": sql} for sql in WRITE_ATTEMPTS[:5]])
    result = run_sql_validation(db_url=pagila_url, output_dir=pagila_task)
    assert result["invalid"] == 5
    assert use_fake_llm.requests == []

