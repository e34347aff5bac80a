"""Cleaning and deduplicating question/SQL pairs, whoever wrote them.

A pair survives cleaning when its question is non-empty and its SQL is exactly one statement (put on
one line, comments and trailing ``;`` removed). Deduplication keeps the first of pairs that share a
normalised SQL or a normalised question, so the output order stays the input order.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Iterable, Mapping

from steps.qa_generation.model import QAPair
from steps.qa_generation.sql_text import SqlTextError, clean_sql, normalise_sql

_TRAILING_PUNCTUATION = re.compile(r"[\s?？。.!！]+$")


def clean_question(text: str) -> str:
    return " ".join(str(text).split())


def clean_pair(question: object, sql: object, theme: str) -> QAPair:
    """The pair in clean form; ``ValueError`` says why it cannot be used."""
    if not isinstance(question, str) or not isinstance(sql, str):
        raise ValueError("question and sql must both be strings")
    question = clean_question(question)
    if not question:
        raise ValueError("the question is empty")
    try:
        cleaned = clean_sql(sql)
    except SqlTextError as exc:
        raise ValueError(str(exc)) from None
    return QAPair(question=question, sql=cleaned, theme=theme)


def question_key(question: str) -> str:
    """Questions equal up to case, width, spacing and final punctuation are the same question."""
    folded = unicodedata.normalize("NFKC", question).casefold()
    return _TRAILING_PUNCTUATION.sub("", " ".join(folded.split()))


def deduplicate(pairs: Iterable[QAPair], sql_keys: Mapping[str, str] | None = None) -> tuple[list[QAPair], int]:
    """The pairs without repeats (same normalised SQL or same question), and how many were dropped.

    ``sql_keys`` maps SQL text to its ``normalise_sql`` form where that is already known: step 2
    normalises each theme's pairs as they arrive, while other themes still wait on the LLM.
    """
    sql_keys = sql_keys or {}
    kept: list[QAPair] = []
    seen_sql: set[str] = set()
    seen_questions: set[str] = set()
    removed = 0
    for pair in pairs:
        sql_key = sql_keys[pair.sql] if pair.sql in sql_keys else normalise_sql(pair.sql)
        q_key = question_key(pair.question)
        if sql_key in seen_sql or q_key in seen_questions:
            removed += 1
            continue
        seen_sql.add(sql_key)
        seen_questions.add(q_key)
        kept.append(pair)
    return kept, removed
