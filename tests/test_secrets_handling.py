"""Passwords never leave through URLs shown to people, logs, or flow parameters."""

import logging

import psycopg2
import pytest

from dp.connections import ConnectionReferenceError, reference_for_url, resolve_connection
from dp.database import ConnectionStringError, connect, database_name, mask_url, validate_url
from dp.logs import RedactingFilter, redact
from dp.settings import get_settings


def test_mask_url():
    assert mask_url("postgresql://alice:s3cr%40t@db.example:5433/sales?sslmode=require") == (
        "postgresql://alice:***@db.example:5433/sales?sslmode=require"
    )
    assert mask_url("postgresql://alice@db/sales") == "postgresql://alice@db/sales"


def test_validate_url_explains_the_fix():
    with pytest.raises(ConnectionStringError, match="add /dbname"):
        validate_url("postgresql://u:p@host")
    with pytest.raises(ConnectionStringError, match="bad port"):
        validate_url("postgresql://u:p@host:99999x/db")
    assert database_name("postgresql://u:p@h/sales?x=1") == "sales"


def test_connect_error_hides_password():
    with pytest.raises(psycopg2.OperationalError) as err:
        connect("postgresql://nobody:hunter2@127.0.0.1:1/db")
    assert "hunter2" not in str(err.value) and "***" in str(err.value)


def test_redaction_in_log_records(caplog):
    logger = logging.getLogger("dp.test_redaction")
    logger.addFilter(RedactingFilter())
    with caplog.at_level(logging.INFO, logger="dp.test_redaction"):
        logger.info("connecting to %s", "postgresql://bob:topsecret@h/db")
    assert "topsecret" not in caplog.text and "bob:***@h" in caplog.text
    assert redact("see postgres://x:y@z/w and more") == "see postgres://x:***@z/w and more"


def test_process_reference_keeps_password_out_of_parameters():
    url = "postgresql://bob:topsecret@127.0.0.1/db"
    ref = reference_for_url(url)
    assert "topsecret" not in ref and ref.startswith("process:")
    assert resolve_connection(ref) == url
    assert reference_for_url("postgresql://bob@h/db") == "postgresql://bob@h/db"


def test_named_connections_from_settings(monkeypatch):
    monkeypatch.setenv("DP_CONNECTIONS", '{"sales": "postgresql://u:pw@h/sales"}')
    get_settings.cache_clear()
    assert resolve_connection("named:sales") == "postgresql://u:pw@h/sales"
    with pytest.raises(ConnectionReferenceError, match="DP_CONNECTIONS"):
        resolve_connection("named:nope")


def test_url_with_password_is_refused_as_a_parameter():
    with pytest.raises(ConnectionReferenceError, match="named:<name>"):
        resolve_connection("postgresql://u:pw@h/db")


@pytest.mark.parametrize("variables, named", [
    ({"DP_CONNECTIONS": '["postgresql://u:Leaky-pw-1@h/db"]'}, ["DP_CONNECTIONS: Input should be a valid dictionary"]),
    ({"DP_CONNECTIONS": '{"x": "postgresql://u:Leaky-pw-1@h/db"'}, ["DP_CONNECTIONS: not valid JSON"]),
    ({"DP_VALIDATION_CONCURRENCY": "four", "DP_DATABASE_URL": "Leaky-pw-1", "DP_API_PORT": "-1"},
     ["DP_VALIDATION_CONCURRENCY: Input should be a valid integer", "DP_API_PORT: "]),
])
def test_a_bad_setting_is_named_without_its_value(monkeypatch, capsys, tmp_path, variables, named):
    from dp.cli import main

    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    table_list = tmp_path / "tables.txt"
    table_list.write_text("film\n")
    code = main(["run", "--db-connection", "postgresql://h/db", "--table-list", str(table_list),
                 "--business-context", "x"])
    captured = capsys.readouterr()
    assert code == 2 and not captured.out
    assert captured.err.startswith("data-pipeline: error: bad setting") and len(captured.err.splitlines()) == 1
    assert all(text in captured.err for text in named), captured.err
    assert "Leaky-pw-1" not in captured.err
    get_settings.cache_clear()
