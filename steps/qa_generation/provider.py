"""The interface both providers implement, and the choice between them.

A provider proposes themes for one table group, writes raw pairs for one theme and summarises the
database for the router prompt. Raw pairs are whatever the writer produced; the step cleans them.
Any exception from ``propose_themes`` or ``write_pairs`` fails that group or theme only, and a
proposed theme the provider rejects (no real table) comes back as a ``ThemeFailure``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from dp.settings import Settings
from dp.table_list import TableName
from steps.errors import StepFailed
from steps.qa_generation.model import Theme, ThemeFailure
from steps.qa_generation.schema import Schema


@dataclass
class DatabaseSummary:
    """What the router prompt says about the database: scope, core entities with fields, metrics."""

    scope: str
    entities: list[tuple[str, list[str]]] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)


class Provider(Protocol):
    def propose_themes(self, group: list[TableName], count: int, index: int) -> tuple[list[Theme], list[ThemeFailure]]:
        """Up to ``count`` themes for the tables of group ``index``, and the proposals it had to reject."""

    def write_pairs(self, theme: Theme, count: int) -> list[tuple[object, object]]:
        """About ``count`` raw (question, sql) pairs for the theme."""

    def summarise(self, themes: list[Theme]) -> DatabaseSummary:
        """The router summary; never fails (an LLM provider falls back to the manifest)."""


def make_provider(schema: Schema, settings: Settings, groups: list[list[TableName]]) -> Provider:
    """The provider ``settings.llm_provider`` names, ready to work on ``schema``."""
    if settings.llm_provider == "heuristic":
        from steps.qa_generation.heuristic import HeuristicProvider

        return HeuristicProvider(schema)
    from dp.llm.client import ChatClient
    from steps.qa_generation.llm_provider import LLMProvider

    try:
        client = ChatClient.from_settings(settings)
    except ValueError as exc:  # the client says what is missing (the base URL)
        raise StepFailed(f"cannot use the openai provider: {exc}") from exc
    return LLMProvider(schema, client, settings, groups)
