"""The mirror's rules on plain values: Prefect states to statuses, step names, progress, masking, file kinds."""

import hashlib
import os

import pytest

from flows.plan import STEPS, make_plan
from service import states
from service.outputs import OutputScanner, file_type, is_primary


@pytest.mark.parametrize("state_type, everything_done, expected", [
    ("SCHEDULED", False, "pending"), ("PENDING", False, "pending"), ("RUNNING", False, "in_progress"),
    ("COMPLETED", True, "completed"), ("COMPLETED", False, "partial_completed"), ("FAILED", False, "failed"),
    ("CRASHED", False, "failed"), ("CANCELLED", False, "cancelled"), ("CANCELLING", False, "cancelled"),
])
def test_task_status(state_type, everything_done, expected):
    assert states.task_status(state_type, everything_done) == expected


@pytest.mark.parametrize("state_type, previous, expected", [
    ("SCHEDULED", "in_progress", "in_progress"), ("PENDING", "in_progress", "in_progress"),
    ("SCHEDULED", "completed", "pending"), ("PENDING", "pending", "pending"), ("SCHEDULED", None, "pending"),
    ("FAILED", "in_progress", "failed"), ("CANCELLING", "in_progress", "cancelled"),
])
def test_task_status_never_goes_back_from_in_progress_to_pending(state_type, previous, expected):
    assert states.task_status(state_type, False, previous) == expected


@pytest.mark.parametrize("state_type, expected", [
    ("SCHEDULED", "pending"), ("PENDING", "pending"), ("RUNNING", "running"), ("PAUSED", "running"),
    ("CANCELLING", "running"), ("COMPLETED", "completed"), ("FAILED", "failed"), ("CRASHED", "crashed"),
    ("CANCELLED", "cancelled"), ("SOMETHING_NEW", "pending"),
])
def test_execution_status(state_type, expected):
    assert states.execution_status(state_type, started=False) == expected


def test_execution_status_between_retries_is_running():
    assert states.execution_status("SCHEDULED", started=False) == "pending"
    assert states.execution_status("SCHEDULED", started=True) == "running"  # AwaitingRetry
    assert states.execution_status("CRASHED", started=True) == "crashed"


def test_step_of_task_run_names():
    assert states.step_of("qa_generation-1a2") == "qa_generation"
    assert states.step_of("training_load") == "training_load"
    assert states.step_of("ddl_generation_extra-1") is None and states.step_of("other-1") is None


def test_created_by_rule():
    assert states.created_by_for("manual_20250101_000000_abcd", auto_scheduled=False) == "manual"
    assert states.created_by_for("nightly", auto_scheduled=True) == "schedule"
    assert states.created_by_for("task_20250101_000000_abcd", auto_scheduled=False) == "api"


def test_parameters_are_masked_in_every_form():
    masked = states.mask_value({"connection": "postgresql://u:pw@h:5432/db", "nested": ["host=h password=pw user=u"],
                                "business_context": "see postgres://a:b@c/d", "flag": True})
    assert masked == {"connection": "postgresql://u:***@h:5432/db", "nested": ["host=h password=*** user=u"],
                      "business_context": "see postgres://a:***@c/d", "flag": True}


def test_db_name_comes_from_the_reference_only():
    assert states.db_name_for("postgresql://h/sales") == "sales"
    assert states.db_name_for("named:nightly") == "named:nightly"
    assert states.db_name_for(None) is None


def test_step_statuses_and_progress_of_a_resumed_run():
    plan = make_plan("complete", from_step="sql_validation", skip_training_load=True)
    this_run = {"sql_validation": "running"}
    earlier = {"ddl_generation": "completed", "qa_generation": "completed", "sql_validation": "failed"}
    assert states.step_statuses(plan, this_run, earlier, "RUNNING") == {
        "ddl_generation": "completed", "qa_generation": "completed", "sql_validation": "running",
        "training_load": "skipped"}
    assert states.progress(plan, this_run) == 0
    assert states.progress(plan, {"sql_validation": "completed"}) == 100
    single = make_plan("single", single_step="qa_generation")
    assert states.step_statuses(single, {}, {}, "CANCELLED") == {
        "ddl_generation": "skipped", "qa_generation": "cancelled", "sql_validation": "skipped",
        "training_load": "skipped"}


def test_a_plan_that_cannot_run_plans_nothing():
    assert states.run_plan({"execution_mode": "single"}).run == ()
    assert states.run_plan({}).run == STEPS


@pytest.mark.parametrize("path, kind, primary", [
    ("film.ddl", "ddl", True), ("film_detail.md", "md", True), ("qs_pagila_20250101_pair.json", "json", True),
    ("sql_validation_20250101_report.json", "report", True), ("sql_validation_20250101_summary.log", "report", True),
    ("manifest.json", "json", False), ("data_pipeline.log", "log", False), ("metadata.txt", "txt", False),
    ("file_bak_20250101_000000/film.ddl", "ddl", False), ("export.csv", "csv", False), ("x.bin", "other", False),
])
def test_file_kinds_and_primary_files(path, kind, primary):
    assert file_type(path) == kind
    assert is_primary(path, kind) is primary


def test_scan_lists_files_with_hashes_and_skips_links(tmp_path):
    (tmp_path / "film.ddl").write_text("CREATE TABLE film ();")
    (tmp_path / "file_bak_1").mkdir()
    (tmp_path / "file_bak_1" / "old.md").write_text("# old")
    os.symlink("/etc/hostname", tmp_path / "escape.txt")
    scanner = OutputScanner()
    files = {f["file_path"]: f for f in scanner.scan(tmp_path)}
    assert set(files) == {"film.ddl", "file_bak_1/old.md"}
    assert files["film.ddl"]["content_hash"] == hashlib.sha256(b"CREATE TABLE film ();").hexdigest()
    assert files["film.ddl"]["is_primary"] and not files["file_bak_1/old.md"]["is_primary"]
    (tmp_path / "film.ddl").write_text("CREATE TABLE film (id int);")
    again = {f["file_path"]: f for f in scanner.scan(tmp_path)}
    assert again["film.ddl"]["content_hash"] == hashlib.sha256(b"CREATE TABLE film (id int);").hexdigest()
    assert scanner.scan(tmp_path / "missing") is None
