"""Argument errors: one line on stderr, exit code 2, nothing run."""

import pytest

from dp.cli import main


@pytest.fixture
def table_list(tmp_path):
    path = tmp_path / "tables.txt"
    path.write_text("film\nactor\n")
    return path


def _run(capsys, *argv):
    code = main(list(argv))
    err = capsys.readouterr().err.strip()
    return code, err


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "run" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--execution-mode", "single"], "needs a single step"),
        (["--execution-mode", "single", "--single-step", "9"], "use 1-4"),
        (["--task-id", "../etc"], "invalid task id"),
        (["--execution-mode", "sometimes"], "invalid choice"),
    ],
)
def test_bad_options(capsys, table_list, extra, message):
    code, err = _run(capsys, "run", "--db-connection", "postgresql://u:secret@h/db", "--table-list", str(table_list),
                     "--business-context", "x", *extra)
    assert code == 2
    assert message in err
    assert len(err.splitlines()) == 1
    assert "secret" not in err


@pytest.mark.parametrize("extra", [["--from-step", "2"], ["--execution-mode", "single", "--single-step", "sql_validation"]])
def test_a_later_step_needs_an_earlier_run_of_the_task(capsys, table_list, tmp_path, extra):
    argv = ["run", "--db-connection", "postgresql://u:secret@h/db", "--table-list", str(table_list),
            "--business-context", "x", "--output-dir", str(tmp_path), *extra]
    code, err = _run(capsys, *argv)
    assert code == 2 and "works on the files of an earlier run: give that run's --task-id" in err
    code, err = _run(capsys, *argv, "--task-id", "manual_20260101_000000_abcd")
    assert code == 2 and f"no task directory {tmp_path / 'manual_20260101_000000_abcd'}" in err
    assert not (tmp_path / "manual_20260101_000000_abcd").exists()


def test_bad_connection_string(capsys, table_list):
    code, err = _run(capsys, "run", "--db-connection", "mysql://h/db", "--table-list", str(table_list),
                     "--business-context", "x")
    assert code == 2 and "postgresql://" in err


def test_bad_table_list_names_the_line(capsys, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("film\nnot a table\n")
    code, err = _run(capsys, "run", "--db-connection", "postgresql://h/db", "--table-list", str(bad),
                     "--business-context", "x")
    assert code == 2 and err.endswith(f"table list {bad}: line 2: unexpected ' ' in 'not a table'; write table or "
                                      "schema.table, and put names with special characters in double quotes")


def test_table_list_not_in_utf8(capsys, tmp_path):
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("café\n".encode("latin-1"))
    code, err = _run(capsys, "run", "--db-connection", "postgresql://h/db", "--table-list", str(latin),
                     "--business-context", "x")
    assert code == 2 and err.endswith(f"table list {latin} is not UTF-8 text; save it as UTF-8")


def test_missing_table_list_file(capsys, tmp_path):
    code, err = _run(capsys, "run", "--db-connection", "postgresql://h/db", "--table-list", str(tmp_path / "no.txt"),
                     "--business-context", "x")
    assert code == 2 and "not found" in err


def test_missing_required_argument(capsys):
    code, err = _run(capsys, "run", "--db-connection", "postgresql://h/db")
    assert code == 2 and "--table-list" in err
