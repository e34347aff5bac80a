"""Repairs: the offline rules, and an LLM behind the fake OpenAI server on loopback."""

from __future__ import annotations

import json
import re

import pytest

from dp.database import connection
from steps.errors import StepFailed
from steps.sql_validation.pair_check import PairChecker
from steps.sql_validation.step import run_sql_validation
from steps.sql_validation.validator import QueryValidator
from tests.fakes.openai_server import last_user_message
from tests.steps.sql_validation.conftest import fingerprint, write_pairs, write_step1_outputs


def run(task, url, entries, **options):
    write_pairs(task, entries)
    result = run_sql_validation(db_url=url, output_dir=task, **options)
    report = json.loads(open(result["report_file"]).read())
    return result, report["pairs"]


def query_in(body) -> str:
    """The failing query a repair prompt carries."""
    return re.search(r"Query:\n(.*?)\n\nError:", last_user_message(body), re.DOTALL).group(1)


# --- heuristic (the default provider) ------------------------------------------------------


@pytest.mark.parametrize(
    "sql, fixed",
    [
        ("SELECT titel FROM film", "SELECT title FROM film"),
        ("SELECT f.titel, f.lenght FROM film f", "SELECT f.title, f.length FROM film f"),  # two rounds
        ("SELECT c.first_nme FROM customer c JOIN address a USING (address_id)",
         "SELECT c.first_name FROM customer c JOIN address a USING (address_id)"),
        ("SELECT title FROM flim WHERE rating = 'G'", "SELECT title FROM film WHERE rating = 'G'"),
    ],
)  # fmt: skip
def test_heuristic_fixes_one_close_match(pagila_task, pagila_url, sql, fixed):
    result, pairs = run(pagila_task, pagila_url, [{"question": "q", "sql": sql}])
    assert pairs[0]["status"] == "repaired", pairs[0]
    assert pairs[0]["final_sql"] == fixed
    entries = json.loads(open(result["pair_file"]).read())
    assert entries[0]["sql"] == fixed


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT c.email FROM customer c JOIN rental r ON r.customer_id = c.id",  # no close match for "id"
        "SELECT address3 FROM address",  # two close matches: address and address2
        "SELECT title + 1 FROM film",  # a type error: no rule for it
    ],
)
def test_heuristic_gives_up_without_exactly_one_answer(pagila_task, pagila_url, sql):
    _, pairs = run(pagila_task, pagila_url, [{"question": "q", "sql": sql}])
    assert pairs[0]["status"] == "invalid"
    assert pairs[0]["repair_rounds"] == 0


def test_heuristic_quotes_mixed_case_identifiers(scratch_db, task_dir):
    with connection(scratch_db) as conn:
        conn.autocommit = True
        conn.cursor().execute(
            'CREATE TABLE "Customer" ("CustomerId" int, "FirstName" text);'
            "INSERT INTO \"Customer\" VALUES (1, 'Ann')"
        )
    write_step1_outputs(task_dir, scratch_db, ["Customer"])
    _, pairs = run(task_dir, scratch_db, [{"question": "q", "sql": "SELECT FirstName FROM Customer WHERE CustomerId = 1"}])
    assert pairs[0]["status"] == "repaired", pairs[0]
    assert pairs[0]["final_sql"] == 'SELECT "FirstName" FROM "Customer" WHERE "CustomerId" = 1'


def test_without_step1_outputs_the_heuristic_still_uses_the_hint(task_dir, pagila_url):
    _, pairs = run(task_dir, pagila_url, [{"question": "q", "sql": "SELECT titel FROM film"}])
    assert pairs[0]["final_sql"] == "SELECT title FROM film"


def test_repair_off_leaves_failures_invalid(pagila_task, pagila_url):
    result, pairs = run(pagila_task, pagila_url, [{"question": "q", "sql": "SELECT titel FROM film"}], repair=False)
    assert pairs[0]["status"] == "invalid" and pairs[0]["repair_rounds"] == 0
    assert result["repair"] == {"attempted": 0, "successful": 0, "failed": 0}


# --- LLM through the fake OpenAI server ------------------------------------------------------


def first_repair_prompt(task, url, fake, question, sql, answer) -> tuple[dict, str]:
    fake.chat_handler = lambda body: {"sql": answer}
    _, pairs = run(task, url, [{"question": question, "sql": sql}])
    return pairs[0], last_user_message(fake.chat_requests[0])


def test_llm_repair_sees_question_error_and_ddl_of_the_named_tables(pagila_task, pagila_url, use_fake_llm):
    pair, prompt = first_repair_prompt(
        pagila_task, pagila_url, use_fake_llm, "How many PG films?",
        "SELECT count(*) FROM film WHERE ratng = 'PG'", "SELECT count(*) FROM film WHERE rating = 'PG'",
    )  # fmt: skip
    assert pair["status"] == "repaired"
    assert "How many PG films?" in prompt and 'column "ratng" does not exist' in prompt
    assert 'CREATE TABLE "film"' in prompt and 'CREATE TABLE "staff"' not in prompt


def test_llm_repair_of_unparseable_sql_gets_the_tables_it_names(pagila_task, pagila_url, use_fake_llm):
    pair, prompt = first_repair_prompt(
        pagila_task, pagila_url, use_fake_llm, "titles", "SELEC title FRM film", "SELECT title FROM film"
    )
    assert pair["status"] == "repaired"
    assert "rejected before reaching the database" in prompt
    assert 'CREATE TABLE "film"' in prompt and 'CREATE TABLE "actor"' not in prompt


def test_a_wrong_repair_gets_a_second_round(pagila_task, pagila_url, use_fake_llm):
    answers = {
        "SELECT titel FROM film": "SELECT tittle FROM film",  # still broken
        "SELECT tittle FROM film": "SELECT title FROM film",
    }
    use_fake_llm.chat_handler = lambda body: {"sql": answers[query_in(body)]}
    _, pairs = run(pagila_task, pagila_url, [{"question": "titles", "sql": "SELECT titel FROM film"}])
    assert pairs[0]["status"] == "repaired"
    assert pairs[0]["repair_rounds"] == 2
    assert pairs[0]["repairs"][0]["error"].startswith('column "tittle" does not exist')
    assert pairs[0]["final_sql"] == "SELECT title FROM film"


def test_a_repair_that_stays_broken_is_invalid_after_the_last_round(pagila_task, pagila_url, use_fake_llm, monkeypatch):
    monkeypatch.setenv("DP_REPAIR_MAX_ROUNDS", "3")
    use_fake_llm.chat_handler = lambda body: {"sql": query_in(body) + " WHERE nope = 1"}
    result, pairs = run(pagila_task, pagila_url, [{"question": "titles", "sql": "SELECT titel FROM film"}])
    assert pairs[0]["status"] == "invalid"
    assert pairs[0]["repair_rounds"] == 3
    assert len(use_fake_llm.chat_requests) == 3
    assert result["repair"] == {"attempted": 1, "successful": 0, "failed": 1}
    assert json.loads(open(result["pair_file"]).read()) == []


def test_an_llm_answering_with_a_write_is_stopped_by_the_guard(pagila_task, pagila_url, use_fake_llm):
    before = fingerprint(pagila_url)
    use_fake_llm.chat_handler = lambda body: {"sql": "DELETE FROM film_actor"}
    _, pairs = run(pagila_task, pagila_url, [{"question": "titles", "sql": "SELECT titel FROM film"}])
    assert pairs[0]["status"] == "invalid"
    assert pairs[0]["guard_error"] == "not a query: the statement is DELETE; only a SELECT is allowed"
    assert all(r["error"].startswith("rejected before reaching the database") for r in pairs[0]["repairs"])
    second_prompt = last_user_message(use_fake_llm.chat_requests[1])
    assert "DELETE FROM film_actor" in second_prompt and "only a SELECT is allowed" in second_prompt
    assert fingerprint(pagila_url) == before


def test_an_llm_outage_stops_the_run_and_changes_nothing(pagila_task, pagila_url, use_fake_llm, monkeypatch):
    monkeypatch.setenv("DP_LLM_MAX_RETRIES", "0")
    use_fake_llm.fail_next(50, 503)
    entries = [{"question": "a", "sql": "SELECT titel FROM film"}, {"question": "b", "sql": "SELECT title FROM film"}]
    path = write_pairs(pagila_task, entries)
    with pytest.raises(StepFailed, match="HTTP 503") as failed:
        run_sql_validation(db_url=pagila_url, output_dir=pagila_task)
    assert failed.value.__cause__.transient
    assert json.loads(path.read_text()) == entries
    assert not list(pagila_task.glob("*.backup*")) and not list(pagila_task.glob("sql_validation_*"))


def test_a_refused_llm_call_fails_the_pair_not_the_run(pagila_task, pagila_url, use_fake_llm):
    use_fake_llm.fail_next(50, 400)
    _, pairs = run(
        pagila_task, pagila_url,
        [{"question": "a", "sql": "SELECT titel FROM film"}, {"question": "b", "sql": "SELECT title FROM film"}],
    )  # fmt: skip
    assert [p["status"] for p in pairs] == ["invalid", "valid"]
    assert pairs[0]["error"].startswith('column "titel" does not exist')
    assert "repair failed" in pairs[0]["repairs"][0]["error"] and "HTTP 400" in pairs[0]["repairs"][0]["error"]


def test_an_llm_reply_without_sql_is_a_failed_repair(pagila_task, pagila_url, use_fake_llm):
    use_fake_llm.chat_handler = lambda body: {"answer": "sorry"}
    _, pairs = run(pagila_task, pagila_url, [{"question": "a", "sql": "SELECT titel FROM film"}])
    assert pairs[0]["status"] == "invalid"
    assert pairs[0]["repairs"] == [{"sql": None, "error": pairs[0]["repairs"][0]["error"]}]
    assert "repair failed" in pairs[0]["repairs"][0]["error"]


class ExplodingRepairer:
    """A repairer with a bug: every call raises."""

    def repair(self, request):
        raise RuntimeError("bug in a repairer")


def test_a_pair_that_hits_a_bug_is_kept_and_the_others_go_on(pagila_url):
    entries = [{"question": "a", "sql": "SELECT titel FROM film"}, {"question": "b", "sql": "SELECT title FROM film"}]
    with QueryValidator(pagila_url, timeout_ms=2000, concurrency=2) as validator:
        results = PairChecker(validator, ExplodingRepairer(), max_rounds=2).check_all(entries, workers=2)
    assert [r.status for r in results] == ["skipped", "valid"]
    assert "bug in a repairer" in results[0].error
