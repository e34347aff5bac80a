"""The openai provider: an LLM proposes themes and writes pairs from the data dictionaries.

A prompt never carries more dictionary text than the token budget: the theme prompt holds its
group's dictionaries; the pair prompt holds every dictionary when the schema fits the budget, else
the theme's tables and then their foreign-key neighbours while they fit. Tables the model names that
the manifest does not hold are dropped (a theme left with none is rejected). The router summary is
asked for as JSON and rendered by us; if that call fails, the manifest-based summary stands in.
"""

from __future__ import annotations

import logging
from typing import Any

from dp.llm.client import ChatClient
from dp.settings import Settings
from dp.table_list import TableName, quote_ident
from steps.qa_generation import roles
from steps.qa_generation.heuristic import HeuristicProvider
from steps.qa_generation.model import Theme, ThemeFailure
from steps.qa_generation.prompts import PROMPTS
from steps.qa_generation.provider import DatabaseSummary
from steps.qa_generation.schema import Schema, estimate_tokens

log = logging.getLogger(__name__)

_CUT_MARK = "\n...(cut to fit the prompt budget)\n"


def _items(value: Any, key: str) -> list[Any]:
    """The list under ``key`` (or the bare list); a ``ValueError`` earns the model one re-ask."""
    if isinstance(value, dict) and isinstance(value.get(key), list):
        return value[key]
    if isinstance(value, list):
        return value
    raise ValueError(f'expected a JSON object {{"{key}": [...]}}')


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return []
    return [" ".join(str(v).split()) for v in value if isinstance(v, (str, int, float)) and str(v).strip()]


def _text(value: Any) -> str:
    return " ".join(value.split()) if isinstance(value, str) else ""


class LLMProvider:
    def __init__(self, schema: Schema, client: ChatClient, settings: Settings, groups: list[list[TableName]]):
        self.schema = schema
        self.client = client
        self.budget = settings.qa_context_token_budget
        self.whole_schema_fits = len(groups) == 1
        self.prompts = PROMPTS[schema.language]

    # -- context ------------------------------------------------------------------------
    def dictionaries(self, keys: list[TableName]) -> tuple[str, list[TableName]]:
        """Dictionaries of ``keys`` in order while they fit the budget, and the tables included."""
        parts: list[str] = []
        used, included = 0, []
        for key in keys:
            text = self.schema.dictionaries.get(key, "")
            cost = estimate_tokens(text)
            if used + cost > self.budget:
                if included:
                    continue
                text = text[: self.budget] + _CUT_MARK  # alone over budget: cut (a character is at most a token)
                log.warning("the dictionary of %s is cut to fit the token budget %d", key.display, self.budget)
            parts.append(text.strip())
            used += estimate_tokens(text)
            included.append(key)
        dropped = [k.display for k in keys if k not in included]
        if dropped:
            log.info("token budget %d: left out the dictionaries of %s", self.budget, ", ".join(dropped))
        joins = [j for j in self.schema.implied_joins if j.child in included and j.parent in included]
        if joins:  # the dictionaries show declared foreign keys only
            parts.append(self.prompts["implied_joins"] + "\n" + "\n".join(
                f"- {j.child.display}.{quote_ident(j.column)} = {j.parent.display}.{quote_ident(j.key)}" for j in joins))
        return "\n\n".join(parts), included

    def pair_context(self, theme: Theme) -> list[TableName]:
        """Tables whose dictionaries a theme's pair prompt carries, most relevant first."""
        if self.whole_schema_fits:
            return theme.related_tables + [k for k in self.schema.keys if k not in theme.related_tables]
        keys = list(theme.related_tables)
        for key in theme.related_tables:
            keys += [n for n in self.schema.neighbours(key) if n not in keys]
        return keys

    def _quoting(self, keys: list[TableName]) -> str:
        names: list[str] = []
        for key in keys:
            if quote_ident(key.name) != key.name or quote_ident(key.schema) != key.schema:
                names.append(key.qualified)
            names += [quote_ident(c.name) for c in self.schema.table(key).columns if quote_ident(c.name) != c.name]
        unique = list(dict.fromkeys(names))
        return self.prompts["quoting"].format(names=", ".join(unique)) if unique else ""

    def _ask(self, user: str, key: str) -> list[Any]:
        return self.client.chat_json(system=self.prompts["system"], user=user, validate=lambda v: _items(v, key))

    @property
    def _context(self) -> str:
        return self.schema.business_context.strip() or self.prompts["none"]

    # -- themes -------------------------------------------------------------------------
    def propose_themes(self, group: list[TableName], count: int, index: int) -> tuple[list[Theme], list[ThemeFailure]]:
        text, _ = self.dictionaries(group)
        user = self.prompts["themes"].format(
            context=self._context, database=self.schema.database, dictionaries=text, count=count
        )
        themes, rejected = [], []
        for item in self._ask(user, "themes")[:count]:
            if not isinstance(item, dict) or not _text(item.get("name")):
                rejected.append(ThemeFailure(f"group {index + 1}", f"a proposed theme has no name: {str(item)[:80]}"))
                continue
            name = _text(item["name"])
            named = _texts(item.get("related_tables"))
            tables = list(dict.fromkeys(k for k in map(self.schema.resolve, named) if k is not None))
            unknown = [n for n in named if self.schema.resolve(n) is None]
            if unknown:
                log.warning("theme %s: dropped unknown tables %s", name, ", ".join(unknown))
            if not tables:
                reason = f"names no table of the schema (named: {', '.join(named) or 'none'})"
                rejected.append(ThemeFailure(name, reason))
                continue
            themes.append(Theme(
                name=name,
                description=_text(item.get("description")),
                related_tables=tables,
                entities=_texts(item.get("entities")),
                metrics=_texts(item.get("metrics")),
            ))
        return themes, rejected

    # -- pairs --------------------------------------------------------------------------
    def write_pairs(self, theme: Theme, count: int) -> list[tuple[object, object]]:
        text, included = self.dictionaries(self.pair_context(theme))
        sep = self.prompts["sep"]
        user = self.prompts["pairs"].format(
            context=self._context,
            database=self.schema.database,
            theme=theme.name,
            description=theme.description or self.prompts["none"],
            tables=sep.join(k.display for k in theme.related_tables),
            entities=sep.join(theme.entities) or self.prompts["none"],
            metrics=sep.join(theme.metrics) or self.prompts["none"],
            dictionaries=text,
            count=count,
            quoting=self._quoting(included),
        )
        return [
            (item.get("question"), item.get("sql")) if isinstance(item, dict) else (None, None)
            for item in self._ask(user, "pairs")
        ]

    # -- router summary -----------------------------------------------------------------
    def _table_overview(self) -> str:
        lines, used = [], 0
        for table in self.schema.tables:
            label = roles.table_label(table, self.schema.language)
            columns = ", ".join(c.name for c in table.columns)
            line = f"- {TableName(table.schema, table.name).display} ({label}): {columns}"
            used += estimate_tokens(line)
            if used > self.budget:
                lines.append("- ...")
                break
            lines.append(line)
        return "\n".join(lines)

    def summarise(self, themes: list[Theme]) -> DatabaseSummary:
        user = self.prompts["summary"].format(
            context=self._context,
            database=self.schema.database,
            tables=self._table_overview(),
            themes="\n".join(f"- {t.name}: {t.description}" for t in themes) or self.prompts["none"],
        )
        try:
            reply = self.client.chat_json(system=self.prompts["system"], user=user, validate=_summary_shape)
        except Exception as exc:  # the summary is a convenience: never fail the step for it
            log.warning("the LLM summary of the database failed (%s); using the one built from the manifest", exc)
            return HeuristicProvider(self.schema).summarise(themes)
        entities = [
            (_text(e.get("name")), _texts(e.get("fields")))
            for e in reply.get("entities", []) if isinstance(e, dict) and _text(e.get("name"))
        ]
        return DatabaseSummary(_text(reply["business_scope"]), entities, _texts(reply.get("metrics")))


def _summary_shape(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or not _text(value.get("business_scope")):
        raise ValueError('expected a JSON object with "business_scope", "entities" and "metrics"')
    if not isinstance(value.get("entities", []), list):
        raise ValueError('"entities" must be a list of {"name", "fields"} objects')
    return value
