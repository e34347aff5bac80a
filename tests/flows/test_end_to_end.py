"""``data-pipeline run`` / ``demo`` end to end: all four steps on real databases, through the Prefect flow."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dp.cli import main

PASSWORD = "e2e-Secret-pw"


def _with_password(url: str) -> str:
    # The local server trusts every login, so a password is accepted and must never leak.
    return url.replace("postgres@", f"postgres:{PASSWORD}@", 1) if "@127.0.0.1" in url else url


def _assert_complete_task(task_dir: Path) -> dict:
    results = {step: json.loads((task_dir / f"{step}_result.json").read_text()) for step in
               ("ddl_generation", "qa_generation", "sql_validation", "training_load")}
    manifest = json.loads((task_dir / "manifest.json").read_text())
    for entry in manifest["tables"]:
        assert (task_dir / entry["ddl_file"]).stat().st_size > 0
        assert (task_dir / entry["dictionary_file"]).stat().st_size > 0
    pair_files = sorted(task_dir.glob("qs_*_pair.json"))
    assert len(pair_files) == 1
    pairs = json.loads(pair_files[0].read_text())
    assert pairs and all(p["question"] and p["sql"] for p in pairs)
    assert results["sql_validation"]["valid"] == len(pairs)
    assert results["training_load"]["items"]["total"] >= len(pairs) + len(manifest["tables"])
    log = (task_dir / "data_pipeline.log").read_text()
    for step in results:
        assert f"step {step} completed" in log
    for path in task_dir.rglob("*"):
        if path.is_file():
            assert PASSWORD not in path.read_text(errors="replace"), f"password leaked into {path.name}"
    return results


def test_run_all_four_steps_on_pagila(pagila_url, use_service_database, tmp_path, capsys):
    table_list = tmp_path / "tables.txt"
    # A partitioned table, a view, an enum column and foreign keys: pagila's hard parts, kept small.
    table_list.write_text("film, actor, film_actor, language\npayment, customer, actor_info\n")
    code = main(["run", "--db-connection", _with_password(pagila_url), "--table-list", str(table_list),
                 "--business-context", "DVD rental store", "--output-dir", str(tmp_path / "out"),
                 "--task-id", "manual_e2e_pagila"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert PASSWORD not in out.out + out.err
    task_dir = tmp_path / "out" / "manual_e2e_pagila"
    results = _assert_complete_task(task_dir)
    assert results["ddl_generation"]["succeeded"] == 7
    assert "Task manual_e2e_pagila finished" in out.out


def test_demo_command_runs_end_to_end(use_service_database, tmp_path, capsys):
    code = main(["demo", "--output-dir", str(tmp_path / "out"), "--task-id", "manual_e2e_demo"])
    out = capsys.readouterr()
    assert code == 0, out.err
    task_dir = tmp_path / "out" / "manual_e2e_demo"
    _assert_complete_task(task_dir)
    assert "服务区" in (task_dir / "service_area_detail.md").read_text()
    assert "ops__data_upload_log.ddl" in {p.name for p in task_dir.iterdir()}
    assert f"Outputs in {task_dir}" in out.out


def test_single_step_rerun_replaces_step_one_outputs(pagila_url, use_service_database, tmp_path, capsys):
    table_list = tmp_path / "tables.txt"
    table_list.write_text("film\nlanguage\n")
    args = ["run", "--db-connection", pagila_url, "--table-list", str(table_list), "--business-context", "DVD rental",
            "--output-dir", str(tmp_path), "--task-id", "manual_single"]
    assert main(args + ["--execution-mode", "single", "--single-step", "1"]) == 0
    assert main(args + ["--execution-mode", "single", "--single-step", "ddl_generation"]) == 0
    capsys.readouterr()
    task_dir = tmp_path / "manual_single"
    backups = list(task_dir.glob("file_bak_*"))
    assert len(backups) == 1 and (backups[0] / "film.ddl").exists()
    assert (task_dir / "film.ddl").exists() and not list(task_dir.glob("*.ddl_*"))
    assert not list(task_dir.glob("qs_*_pair.json"))


def test_failed_step_fails_the_run_and_names_it(pagila_url, use_service_database, tmp_path, capsys):
    table_list = tmp_path / "tables.txt"
    table_list.write_text("no_such_table\n")
    code = main(["run", "--db-connection", pagila_url, "--table-list", str(table_list), "--business-context", "x",
                 "--output-dir", str(tmp_path), "--task-id", "manual_fail"])
    assert code == 1
    err = capsys.readouterr().err
    assert "ddl_generation" in err and "no_such_table" in err


def test_a_run_without_a_prefect_server_starts_one_temporary_server(pagila_url, use_service_database, tmp_path):
    """The flow and the run's tracking thread both need Prefect: its temporary server starts once,
    and each progress line reaches the console once."""
    table_list = tmp_path / "tables.txt"
    table_list.write_text("language\n")
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
    env.update(DP_DATA_DIR=str(tmp_path / "dp-data"), DP_DATABASE_URL=use_service_database)
    run = subprocess.run(
        [sys.executable, "-m", "dp.cli", "run", "--db-connection", pagila_url, "--table-list", str(table_list),
         "--business-context", "DVD rental store", "--output-dir", str(tmp_path / "out"),
         "--execution-mode", "single", "--single-step", "1"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert run.stderr.count("Stopping temporary server") == 1, run.stderr
    assert "Traceback" not in run.stderr
    assert sum("ddl_generation: 1/1 tables" in line for line in run.stderr.splitlines()) == 1, run.stderr


def test_the_summary_lists_steps_in_order_with_the_skipped_ones_in_place(pagila_url, use_service_database, tmp_path,
                                                                         capsys):
    table_list = tmp_path / "tables.txt"
    table_list.write_text("language\n")
    code = main(["run", "--db-connection", pagila_url, "--table-list", str(table_list), "--business-context", "DVD rental",
                 "--output-dir", str(tmp_path), "--task-id", "manual_skips", "--skip-validation", "--skip-training-load"])
    out = capsys.readouterr().out
    assert code == 0
    summary = out[out.index("Task manual_skips finished"):].splitlines()[1:5]
    assert [line.split()[0] for line in summary] == ["ddl_generation", "qa_generation", "sql_validation", "training_load"]
    assert [line.split()[1] == "skipped" for line in summary] == [False, False, True, True]


def test_a_task_without_a_table_list_fails_step_one_saying_where_to_write_it(pagila_url, tmp_path):
    """As the nightly deployment does before its table list is in place."""
    from flows.schema_workflow import schema_workflow
    from steps.errors import StepFailed

    with pytest.raises(StepFailed) as raised:
        schema_workflow(task_id="manual_no_list", connection=pagila_url, output_dir=str(tmp_path),
                        business_context="x")
    assert str(raised.value) == (f"step ddl_generation failed: table list {tmp_path / 'table_list.txt'} not found; "
                                 "write the tables to read into it, one per line")
