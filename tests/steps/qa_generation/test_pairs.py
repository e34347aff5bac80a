"""Cleaning and deduplicating pairs: one statement, one line, literals untouched, first one kept."""

from __future__ import annotations

import pytest

from steps.qa_generation.model import QAPair
from steps.qa_generation.pairs import clean_pair, deduplicate
from steps.qa_generation.sql_text import SqlTextError, clean_sql, normalise_sql, sql_literal


def test_clean_sql_puts_one_statement_on_one_line():
    text = """```sql
    SELECT a,   -- the amount; not a second statement
           b /* block ; comment */
    FROM   "My Table"
    WHERE  c = 'x;  y'  ;
    ```"""
    assert clean_sql(text) == """SELECT a, b FROM "My Table" WHERE c = 'x;  y'"""


def test_clean_sql_keeps_literals_and_dollar_quotes_byte_for_byte():
    assert clean_sql("select 'a  ''b''\n c', $$x ;\n y$$, E'it\\'s ; x'") == (
        "select 'a  ''b''\n c', $$x ;\n y$$, E'it\\'s ; x'"
    )
    assert clean_sql('select "odd ""name""  ;" from t;;') == 'select "odd ""name""  ;" from t'


@pytest.mark.parametrize(
    "text, problem",
    [
        ("select 1; select 2", "2 statements"),
        ("delete from t; select 1;", "2 statements"),
        ("  ;  -- nothing\n", "empty"),
        ("select 'unterminated", "unterminated"),
    ],
)
def test_clean_sql_rejects_what_is_not_one_statement(text, problem):
    with pytest.raises(SqlTextError, match=problem):
        clean_sql(text)


def test_clean_pair_reports_why_a_pair_is_unusable():
    pair = clean_pair("  How many\n films? ", "SELECT count(*)\nFROM film;", "Films")
    assert pair == QAPair("How many films?", "SELECT count(*) FROM film", "Films")
    with pytest.raises(ValueError, match="question is empty"):
        clean_pair("  ", "select 1", "t")
    with pytest.raises(ValueError, match="statements"):
        clean_pair("q", "select 1; select 2", "t")
    with pytest.raises(ValueError, match="strings"):
        clean_pair("q", None, "t")


def test_deduplicate_by_normalised_sql_and_by_question():
    pairs = [
        QAPair("How many films?", "SELECT count(*) FROM film", "A"),
        QAPair("Number of films", "select COUNT(*)   from FILM", "B"),  # same SQL up to case/spacing
        QAPair("how many films ？", "SELECT count(film_id) FROM film", "B"),  # same question
        QAPair("Films rated G", "SELECT count(*) FROM film WHERE rating = 'G'", "B"),
        QAPair("Films with rating g", "SELECT count(*) FROM film WHERE rating = 'g'", "B"),  # literal case matters
    ]
    kept, removed = deduplicate(pairs)
    assert [p.question for p in kept] == ["How many films?", "Films rated G", "Films with rating g"]
    assert removed == 2


def test_normalise_sql_falls_back_to_whitespace_and_case_when_sqlglot_cannot_parse():
    odd = "SELECT  a FROM t WHERE x @@@ ((("
    assert normalise_sql(odd) == normalise_sql("select a from T where X @@@ (((")
    assert normalise_sql('SELECT "Name" FROM t') != normalise_sql("SELECT name FROM t")


def test_sql_literal_escapes_quotes_and_backslashes():
    assert sql_literal("it's") == "'it''s'"
    assert sql_literal("a\\b'c") == "E'a\\\\b''c'"
