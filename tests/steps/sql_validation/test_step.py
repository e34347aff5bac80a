"""``run_sql_validation`` end to end: classification, reports, and failing as a whole only when it must."""

from __future__ import annotations

import json

import pytest

from dp.sample_databases import with_database
from steps.errors import StepFailed
from steps.sql_validation.step import run_sql_validation
from tests.steps.sql_validation.conftest import write_pairs
from tests.steps.sql_validation.queries import BAD, EMPTY, GOOD


def test_known_good_and_bad_sets_are_classified(pagila_task, pagila_url):
    entries = [{"question": f"good {i}", "sql": sql} for i, sql in enumerate(GOOD)]
    entries += [{"question": f"bad {i}", "sql": sql} for i, (sql, _) in enumerate(BAD)]
    entries.append({"question": "empty", "sql": EMPTY})
    write_pairs(pagila_task, entries)
    result = run_sql_validation(db_url=pagila_url, output_dir=pagila_task, repair=False)
    report = json.loads(open(result["report_file"]).read())
    statuses = [p["status"] for p in report["pairs"]]
    assert statuses == ["valid"] * len(GOOD) + ["invalid"] * len(BAD) + ["valid"]
    assert report["pairs"][-1]["warnings"] and not report["pairs"][-1]["error"]
    assert all(p["error"] and p["guard_error"] is None for p in report["pairs"] if p["status"] == "invalid")
    expected = len(GOOD) + 1
    assert result["total"] == len(entries) and result["valid"] == expected and result["invalid"] == len(BAD)
    assert result["success_rate"] == round(expected / len(entries), 4)
    assert result["warnings"] == 1
    assert result["deleted"] == len(BAD) and result["modified"] == 0


def test_reports_hold_every_pair_and_a_readable_summary(pagila_task, pagila_url):
    write_pairs(pagila_task, [{"question": "a", "sql": "SELECT titel FROM film"}, {"question": "b", "sql": "DROP TABLE film"}, 7])
    result = run_sql_validation(db_url=pagila_url, output_dir=pagila_task)
    for key in ("report_file", "summary_file"):
        assert result[key].startswith(str(pagila_task / "sql_validation_"))
    report = json.loads(open(result["report_file"]).read())
    pair = report["pairs"][0]
    assert set(pair) >= {"index", "question", "original_sql", "final_sql", "status", "error", "guard_error",
                         "repair_rounds", "warnings", "time_ms"}  # fmt: skip
    assert report["totals"]["repair"] == {"attempted": 1, "successful": 1, "failed": 0}
    assert set(report["totals"]) >= {"total", "valid", "invalid", "success_rate", "modified", "deleted", "average_time_ms"}
    summary = open(result["summary_file"]).read()
    assert "valid:          1 (50.0%), 1 of them repaired" in summary
    assert "now: SELECT title FROM film" in summary
    assert "#1 b" in summary and "DROP" in summary
    assert result["duration_s"] >= 0


def test_two_runs_in_the_same_second_keep_both_reports(pagila_task, pagila_url):
    write_pairs(pagila_task, [{"question": "a", "sql": "SELECT 1"}])
    first = run_sql_validation(db_url=pagila_url, output_dir=pagila_task)
    second = run_sql_validation(db_url=pagila_url, output_dir=pagila_task)
    assert first["report_file"] != second["report_file"]


def test_no_pair_file_says_to_run_step_2(task_dir, pagila_url):
    with pytest.raises(StepFailed, match="run step 2"):
        run_sql_validation(db_url=pagila_url, output_dir=task_dir)
    with pytest.raises(StepFailed, match="run step 2"):
        run_sql_validation(db_url=pagila_url, output_dir=task_dir, pair_file=task_dir / "missing.json")


def test_a_pair_file_that_is_not_an_array_fails_clearly(task_dir, pagila_url):
    (task_dir / "qs_x_20260101_000000_pair.json").write_text('{"question": "a"}')
    with pytest.raises(StepFailed, match="not an array"):
        run_sql_validation(db_url=pagila_url, output_dir=task_dir)


def test_an_unreachable_database_fails_without_showing_the_password(task_dir):
    path = write_pairs(task_dir, [{"question": "a", "sql": "SELECT 1"}])
    with pytest.raises(StepFailed) as failed:
        run_sql_validation(db_url="postgresql://postgres:s3cret-pw@127.0.0.1:1/pagila", output_dir=task_dir)
    assert "s3cret-pw" not in str(failed.value) and "***" in str(failed.value)
    assert json.loads(path.read_text()) == [{"question": "a", "sql": "SELECT 1"}]


def test_the_password_never_reaches_the_reports(pagila_task, pagila_url):
    url = pagila_url.replace("postgresql://postgres@", "postgresql://postgres:s3cret-pw@")  # trust auth ignores it
    write_pairs(pagila_task, [{"question": "a", "sql": "SELECT * FROM nowhere"}, {"question": "b", "sql": "SELECT 1"}])
    result = run_sql_validation(db_url=url, output_dir=pagila_task)
    assert result["valid"] == 1
    for path in pagila_task.iterdir():
        assert "s3cret-pw" not in path.read_text(errors="replace"), path
    assert "s3cret-pw" not in json.dumps(result)


def test_a_missing_database_fails_the_step(task_dir, business_server_url):
    write_pairs(task_dir, [{"question": "a", "sql": "SELECT 1"}])
    with pytest.raises(StepFailed, match="unreachable"):
        run_sql_validation(db_url=with_database(business_server_url, "dp_no_such_db"), output_dir=task_dir)


def test_a_pair_over_a_locked_table_is_kept_unchecked(task_dir, scratch_db):
    from dp.database import connection
    from dp.settings import Settings

    with connection(scratch_db) as conn:
        conn.autocommit = True
        conn.cursor().execute("CREATE TABLE busy (id int); CREATE TABLE calm (id int); INSERT INTO calm VALUES (1)")
    entries = [{"question": "busy?", "sql": "SELECT id FROM busy"}, {"question": "calm?", "sql": "SELECT id FROM calm"},
               {"question": "where?", "sql": "SELECT id FROM no_such_table_at_all"}]
    path = write_pairs(task_dir, entries)
    with connection(scratch_db) as holder:  # as ALTER TABLE or TRUNCATE would, for longer than the lock timeout
        holder.cursor().execute("LOCK TABLE busy IN ACCESS EXCLUSIVE MODE")
        result = run_sql_validation(db_url=scratch_db, output_dir=task_dir, repair=True,
                                    settings=Settings(lock_timeout=0.2, validation_timeout_ms=3000))
        holder.rollback()
    report = json.loads(open(result["report_file"]).read())
    busy = report["pairs"][0]
    assert busy["status"] == "skipped" and busy["repair_rounds"] == 0
    assert "locked by another session" in busy["error"] and "lock timeout" in busy["error"]
    assert [p["status"] for p in report["pairs"][1:]] == ["valid", "invalid"]
    assert result["skipped"] == 1 and result["deleted"] == 1
    assert json.loads(path.read_text()) == entries[:2]  # the locked pair kept, the broken one removed
