"""The pair file: which one is current, how it is rewritten, and its backups."""

from __future__ import annotations

import json
import os

from steps.sql_validation.pair_file import dump_json, newest_pair_file
from steps.sql_validation.step import run_sql_validation
from tests.steps.sql_validation.conftest import write_pairs


def entries_of(path) -> list:
    return json.loads(open(path, encoding="utf-8").read())


def test_newest_pair_file_goes_by_the_name_not_the_mtime(task_dir):
    newer = write_pairs(task_dir, [], stamp="20260105_090000")
    older = write_pairs(task_dir, [], stamp="20260104_235959")
    os.utime(newer, (1_000_000, 1_000_000))  # the newer file looks old on disk
    (task_dir / f"{newer.name}.backup").write_text("[]")
    (task_dir / "qs_pagila_20990101_000000_pair.json.backup.1").write_text("[]")
    (task_dir / "qs_pagila_latest_pair.json").write_text("[]")
    assert newest_pair_file(task_dir) == newer
    assert older.exists()


def test_newest_pair_file_is_none_without_pair_files(task_dir):
    assert newest_pair_file(task_dir) is None


def test_rewrite_matches_entries_by_position_and_keeps_malformed_ones(pagila_task, pagila_url):
    same_question = "How many films?"
    entries = [
        {"question": same_question, "sql": "SELECT count(*) FROM film", "theme": "counts"},
        "not a pair at all",
        {"question": same_question, "sql": "SELECT count(*) FROM nowhere", "theme": "counts"},  # unrepairable
        {"question": "no sql here"},
        {"question": "titles", "sql": "SELECT titel FROM film", "theme": "lists", "extra": [1, 2]},  # repairable
        {"question": "sql is a number", "sql": 42},
        {"question": same_question, "sql": "SELECT count(*) FROM film", "theme": "counts"},  # a duplicate stays
        {"question": "bad", "sql": "SELECT count(*) FROM film WHERE rating = 'X'"},
    ]
    path = write_pairs(pagila_task, entries)
    result = run_sql_validation(db_url=pagila_url, output_dir=pagila_task)
    assert (result["modified"], result["deleted"], result["skipped"]) == (1, 2, 3)
    assert entries_of(path) == [
        entries[0],
        "not a pair at all",
        {"question": "no sql here"},
        {"question": "titles", "sql": "SELECT title FROM film", "theme": "lists", "extra": [1, 2]},
        {"question": "sql is a number", "sql": 42},
        entries[6],
    ]
    assert entries_of(result["backup_file"]) == entries
    report = json.loads(open(result["report_file"]).read())
    assert [p["status"] for p in report["pairs"]] == [
        "valid", "skipped", "invalid", "skipped", "repaired", "skipped", "valid", "invalid",
    ]  # fmt: skip
    assert [p["index"] for p in report["pairs"]] == list(range(len(entries)))


def test_backups_are_never_overwritten(pagila_task, pagila_url):
    first = [{"question": "a", "sql": "SELECT titel FROM film"}]
    path = write_pairs(pagila_task, first)
    result = run_sql_validation(db_url=pagila_url, output_dir=pagila_task)
    assert result["backup_file"] == f"{path}.backup"

    again = run_sql_validation(db_url=pagila_url, output_dir=pagila_task)  # nothing to change: no new backup
    assert again["backup_file"] is None and again["modified"] == again["deleted"] == 0

    second = [{"question": "b", "sql": "SELECT * FROM nothing_here"}]
    path.write_text(json.dumps(second))
    result = run_sql_validation(db_url=pagila_url, output_dir=pagila_task)
    assert result["backup_file"] == f"{path}.backup.1"
    assert entries_of(f"{path}.backup") == first
    assert entries_of(f"{path}.backup.1") == second
    assert entries_of(path) == []


def test_modify_off_leaves_the_file_alone(pagila_task, pagila_url):
    entries = [{"question": "a", "sql": "SELECT titel FROM film"}, {"question": "b", "sql": "SELECT x FROM y"}]
    path = write_pairs(pagila_task, entries)
    original = path.read_bytes()
    result = run_sql_validation(db_url=pagila_url, output_dir=pagila_task, modify_file=False)
    assert path.read_bytes() == original
    assert result["backup_file"] is None
    assert (result["valid"], result["invalid"], result["modified"], result["deleted"]) == (1, 1, 0, 0)
    assert not list(pagila_task.glob("*.backup*"))


def test_the_newest_file_is_validated_and_an_explicit_one_wins(pagila_task, pagila_url):
    old = write_pairs(pagila_task, [{"question": "old", "sql": "SELECT x FROM y"}], stamp="20260101_000000")
    new = write_pairs(pagila_task, [{"question": "new", "sql": "SELECT 1"}], stamp="20260102_000000")
    assert run_sql_validation(db_url=pagila_url, output_dir=pagila_task)["pair_file"] == str(new)
    assert entries_of(old) == [{"question": "old", "sql": "SELECT x FROM y"}]
    result = run_sql_validation(db_url=pagila_url, output_dir=pagila_task, pair_file=old)
    assert result["pair_file"] == str(old) and result["deleted"] == 1


def test_dump_json_is_indent_2_when_fully_expanded_and_one_item_per_line_below():
    samples = [
        [{"question": "有多少服务区？", "sql": "SELECT count(*) FROM bss_service_area"}],
        {"a": [1, {"b": []}, {}], "c": None, "d": {"e": [1.5, True, "x\n\"y\""]}},
        [], {}, "text", [[1, [2]]],
    ]
    for data in samples:
        assert dump_json(data) == json.dumps(data, ensure_ascii=False, indent=2) + "\n"
    report = {"totals": {"valid": 1}, "pairs": [{"index": 0, "warnings": ["no rows"]}, {"index": 1, "warnings": []}]}
    text = dump_json(report, expand=2)
    assert json.loads(text) == report
    assert text.splitlines()[5:7] == ['    {"index": 0, "warnings": ["no rows"]},', '    {"index": 1, "warnings": []}']
