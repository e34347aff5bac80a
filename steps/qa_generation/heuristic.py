"""The offline provider: themes from foreign-key neighbourhoods, pairs from templates, no LLM.

Themes are centred on hub tables, chosen greedily so each new theme covers the most tables no
earlier theme covered (bigger tables first on ties); a theme holds its centre and up to four of its
neighbours, the uncovered ones first. Pairs mix the template
kinds round-robin (count, distribution, ranking, trend, join, filter, ...) about the centre first,
then about its neighbours, skipping what a theme proposed before it already asks (the step would
drop those as duplicates and leave the theme short). Tables known to be empty, and materialized views that may never have
been refreshed, are left out (empty tables only while others have rows). Same manifest, same output.
"""

from __future__ import annotations

import threading

from dp.table_list import TableName
from steps.qa_generation import roles
from steps.qa_generation.heuristic_sql import Candidate, Edge, QuestionWriter, fill
from steps.qa_generation.model import Theme, ThemeFailure
from steps.qa_generation.provider import DatabaseSummary
from steps.qa_generation.schema import Schema, table_key

MAX_THEME_TABLES = 5
MAX_SUMMARY_ENTITIES = 12
MAX_ENTITY_FIELDS = 8
MAX_METRICS = 15

_WORDS = {
    "zh": {
        "theme": "{t}分析",
        "description": "围绕{t}及其关联的{others}，分析数量、分布、趋势与排名。",
        "description_alone": "围绕{t}，分析数量、分布、趋势与排名。",
        "count_metric": "{t}数量",
        "sum_metric": "{m}总和",
        "scope": "数据库 {db} 共有 {n} 张表或视图，主要业务主题：{themes}。",
        "join": "、",
    },
    "en": {
        "theme": "{t} analysis",
        "description": "{t} with the related {others}: counts, distributions, trends and rankings.",
        "description_alone": "{t}: counts, distributions, trends and rankings.",
        "count_metric": "number of {t}",
        "sum_metric": "total {m}",
        "scope": "Database {db} has {n} tables or views; its main business themes: {themes}.",
        "join": ", ",
    },
}


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def _round_robin(kinds: list[list[Candidate]]) -> list[Candidate]:
    out: list[Candidate] = []
    depth = max((len(k) for k in kinds), default=0)
    for i in range(depth):
        out.extend(kind[i] for kind in kinds if i < len(kind))
    return out


class HeuristicProvider:
    def __init__(self, schema: Schema):
        self.schema = schema
        self.writer = QuestionWriter(schema.language)
        self.words = _WORDS[schema.language]
        self._proposed: dict[int, list[Theme]] = {}  # by group index: the order themes count in
        self._chosen: dict[tuple[int, int], list[Candidate]] = {}  # (id of theme, count) -> its pairs
        self._lock = threading.Lock()

    # -- themes -------------------------------------------------------------------------
    def propose_themes(self, group: list[TableName], count: int, index: int) -> tuple[list[Theme], list[ThemeFailure]]:
        group = [k for k in group if roles.queryable(self.schema.table(k))]
        with_rows = [k for k in group if not roles.known_empty(self.schema.table(k))]
        group = with_rows or group  # a schema without data still gets its questions
        inside = set(group)
        near = {k: [n for n in self.schema.neighbours(k) if n in inside] for k in group}
        rank = {k: i for i, k in enumerate(sorted(group, key=lambda k: (-len(near[k]), group.index(k))))}
        covered: set[TableName] = set()
        themes: list[Theme] = []
        centres = list(rank)
        while len(themes) < count and centres:
            centre = max(centres, key=lambda k: self._centre_score(k, near[k], covered, rank))
            centres.remove(centre)
            members = [centre] + sorted(near[centre], key=lambda k: (self._is_view(k), k in covered, group.index(k)))
            members = [centre] + self.schema.sort(members[1:MAX_THEME_TABLES])
            covered.update(members)
            themes.append(self._theme(members))
        with self._lock:
            self._proposed[index] = themes
        return themes, []

    def _is_view(self, key: TableName) -> bool:
        return self.schema.table(key).kind in ("view", "materialized_view")

    def _centre_score(self, key: TableName, near: list[TableName], covered: set[TableName], rank: dict) -> tuple:
        """Most uncovered base tables first, then the bigger table (facts before lookups).

        A view's definition links it to many tables, so views count for little and become a centre
        only after every table; once all is covered, further themes re-centre on the next tables.
        """
        new = ({key} | set(near)) - covered
        tables = [k for k in new if not self._is_view(k)]
        rows = self.schema.table(key).row_estimate or 0
        return (not self._is_view(key), len(tables), rows, len(new), -rank[key])

    def _theme(self, members: list[TableName]) -> Theme:
        tables = [self.schema.table(k) for k in members]
        centre = self.writer.noun(tables[0])
        entities = [roles.table_label(t, self.schema.language) for t in tables]
        others = self.words["join"].join(entities[1:])
        description = (
            self.words["description"].format(t=centre, others=others)
            if others
            else self.words["description_alone"].format(t=centre)
        )
        metrics = [self.words["count_metric"].format(t=centre)] + [
            fill(self.words["sum_metric"], m=self.writer.label(m)) for m in roles.additive_measures(tables[0])[:3]
        ]
        name = self.words["theme"].format(t=roles.table_label(tables[0], self.schema.language))
        return Theme(_capitalised(name), _capitalised(description), members, entities, metrics)

    # -- pairs --------------------------------------------------------------------------
    def _edges(self, key: TableName, allowed: set[TableName]) -> tuple[list[Edge], list[Edge]]:
        """Foreign keys out of ``key`` and into it, limited to tables of the theme."""
        table = self.schema.table(key)
        out_targets = [table_key(parent) for _, parent in self.schema.references(key)]
        outgoing = [
            Edge(table, fk, parent, out_targets.count(table_key(parent)) > 1, self.schema.link_partner(table, fk))
            for fk, parent in self.schema.references(key)
            if table_key(parent) in allowed
        ]
        incoming = []
        for child, fk in self.schema.referenced_by(key):
            if table_key(child) in allowed:
                siblings = [f for f in child.foreign_keys if (f.ref_schema, f.ref_table) == (key.schema, key.name)]
                incoming.append(Edge(child, fk, table, len(siblings) > 1, self.schema.link_partner(child, fk)))
        return outgoing, incoming

    def _own_kinds(self, key: TableName) -> list[list[Candidate]]:
        w, table = self.writer, self.schema.table(key)
        return [
            w.count(table), w.group_by_enum(table), w.trend_count(table), w.filter_count(table),
            w.latest(table), w.stats(table), w.trend_sum(table), w.filter_list(table), w.distinct_enum(table),
        ]

    def write_pairs(self, theme: Theme, count: int) -> list[tuple[object, object]]:
        with self._lock:  # the same pairs whichever theme's call comes first
            return self._pairs(theme, count)

    def _pairs(self, theme: Theme, count: int) -> list[Candidate]:
        key = (id(theme), count)
        if key not in self._chosen:
            ordered = [t for index in sorted(self._proposed) for t in self._proposed[index]]
            earlier = ordered[: next((i for i, t in enumerate(ordered) if t is theme), 0)]
            taken = {text for other in earlier for pair in self._pairs(other, count) for text in pair}
            self._chosen[key] = self._choose(theme, count, taken)
        return self._chosen[key]

    def _choose(self, theme: Theme, count: int, taken: set[str]) -> list[Candidate]:
        centre, allowed = theme.related_tables[0], set(theme.related_tables)
        outgoing, incoming = self._edges(centre, allowed)
        w = self.writer
        own = self._own_kinds(centre)
        joined = [
            [c for e in outgoing for c in w.top_measure(e, "sum")],
            [c for e in incoming for c in w.join_count(e)],
            [c for e in outgoing for c in w.join_count(e)],
            [c for e in incoming for c in w.top_measure(e, "sum")],
            [c for e in outgoing for c in w.distinct_ref(e)],
            [c for e in outgoing + incoming for c in w.top_measure(e, "avg")],
        ]
        # Interleave so the first pairs of a theme already span counts, rankings, trends and joins.
        kinds = [own[0], own[1], joined[0], own[2], joined[1], own[3], joined[2], own[4], joined[3], own[5]]
        kinds += own[6:] + joined[4:]
        candidates = _round_robin(kinds)
        candidates += _round_robin([k for other in theme.related_tables[1:] for k in self._own_kinds(other)])
        chosen: list[Candidate] = []
        seen = set(taken)
        for question, sql in candidates:
            if question not in seen and sql not in seen:
                seen.update((question, sql))
                chosen.append((question, sql))
            if len(chosen) == count:
                break
        return chosen

    # -- router summary -----------------------------------------------------------------
    def summarise(self, themes: list[Theme]) -> DatabaseSummary:
        schema, language = self.schema, self.schema.language
        hubs = sorted(schema.keys, key=lambda k: (-len(schema.neighbours(k)), schema.keys.index(k)))
        entities = []
        for key in schema.sort(hubs[:MAX_SUMMARY_ENTITIES]):
            table = schema.table(key)
            label = roles.table_label(table, language)
            title = label if label == key.display else f"{label} ({key.display})"
            entities.append((title, _main_fields(table, language)))
        metrics: list[str] = []
        for theme in themes:
            metrics += [m for m in theme.metrics if m not in metrics]
        scope = self.words["scope"].format(
            db=schema.database, n=len(schema.keys), themes=self.words["join"].join(t.name for t in themes)
        )
        if schema.business_context.strip():
            scope = f"{schema.business_context.strip()}\n{scope}"
        return DatabaseSummary(scope, entities, metrics[:MAX_METRICS])


def _main_fields(table, language: str) -> list[str]:
    picked = [table.column(c) for c in table.primary_key] + roles.name_columns(table)
    picked += roles.enum_columns(table) + roles.event_times(table)[:1] + roles.measures(table)
    fields: list[str] = []
    for column in picked:
        if column is None:
            continue
        label = roles.column_label(column, language)
        text = column.name if label in (column.name, roles.humanise(column.name)) else f"{column.name} ({label})"
        if text not in fields:
            fields.append(text)
    return fields[:MAX_ENTITY_FIELDS]
