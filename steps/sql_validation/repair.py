"""Asking for a fixed query: what a repair gets to see, and the LLM that answers.

A repair sees the question, the failing SQL, the error and the DDL of the tables the SQL names
(found by sqlglot, or by matching tokens against step 1's tables when the SQL does not parse; all
DDL under a size cap when it names none). Whatever a repairer answers is only a candidate: the
caller guards and validates it exactly like the original.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from sqlglot import exp
from sqlglot.tokens import TokenType

from dp.llm.client import ChatClient
from dp.table_list import TableName
from steps.sql_validation.guard import GuardRejected, table_names, tokenize_sql
from steps.sql_validation.schema_context import SchemaContext
from steps.sql_validation.validator import DbCheck

_SYSTEM = (
    "You repair PostgreSQL queries of a text-to-SQL training set. You get a question, the query written "
    "for it, the error PostgreSQL (or a safety check) reported, and the DDL of the tables involved. Reply "
    'with a JSON object {"sql": "<the corrected query>"}: exactly one read-only SELECT statement (WITH and '
    "UNION are fine) that answers the question, uses only tables and columns from the DDL and quotes "
    "identifiers as the DDL does. Never write, lock or change anything. No comments, no explanation."
)


@dataclass(frozen=True)
class RepairRequest:
    question: str
    sql: str
    error: str
    check: DbCheck | None = None  # the database's verdict; None when the guard refused the SQL
    tree: exp.Expression | None = None  # sqlglot tree when the SQL passed the guard


class Repairer(Protocol):
    def repair(self, request: RepairRequest) -> str | None:
        """A candidate query, or None to give up."""


def referenced_tables(request: RepairRequest, context: SchemaContext) -> list[TableName]:
    """The known tables the failing SQL names."""
    if request.tree is not None:
        return context.resolve(table_names(request.tree))
    try:
        tokens = tokenize_sql(request.sql)
    except GuardRejected:
        return []
    names = [
        (None, token.text if token.token_type == TokenType.IDENTIFIER else token.text.lower())
        for token in tokens
        if token.token_type in (TokenType.VAR, TokenType.IDENTIFIER)
    ]
    return context.resolve(names)


class LLMRepairer:
    """Repairs through a chat model; raises ``LLMError`` when the model cannot be reached or answers junk."""

    def __init__(self, client: ChatClient, context: SchemaContext, *, ddl_max_chars: int):
        self.client = client
        self.context = context
        self.ddl_max_chars = ddl_max_chars

    def repair(self, request: RepairRequest) -> str | None:
        ddl = self.context.ddl_for(referenced_tables(request, self.context), self.ddl_max_chars)
        user = (
            f"Question:\n{request.question}\n\nQuery:\n{request.sql}\n\nError:\n{request.error}\n\n"
            f"DDL:\n{ddl or '(not available)'}"
        )
        return self.client.chat_json(system=_SYSTEM, user=user, validate=_sql_of)


def _sql_of(reply: Any) -> str:
    if not isinstance(reply, dict) or not isinstance(reply.get("sql"), str) or not reply["sql"].strip():
        raise ValueError('the reply must be a JSON object {"sql": "<one SELECT statement>"}')
    return reply["sql"]
