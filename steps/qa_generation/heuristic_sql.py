"""Question/SQL templates over the real schema, for the offline heuristic provider.

Every query reads only columns the manifest lists, aliases every table (``t`` for the table asked
about, ``r`` for the one it references), quotes every identifier through ``quote_ident``, aggregates
only measures (numeric, never opaque types), compares enum values as literals only where that
type-checks, and skips soft-deleted rows. Each method returns candidates for one kind of question,
most useful first; the provider mixes the kinds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dp.table_list import TableName, quote_ident
from steps.ddl_generation.model import Column, ForeignKey, Table
from steps.qa_generation import roles
from steps.qa_generation.sql_text import sql_literal

Candidate = tuple[str, str]  # (question, sql)

TEXTS = {
    "zh": {
        "count": "{t}的总数是多少？",
        "group_enum": "每个{c}的{t}数量是多少？",
        "group_flag": "按{c}统计，{t}各有多少？",
        "filter_count": "{c}为{v}的{t}有多少？",
        "filter_list": "列出{c}为{v}的{t}。",
        "quoted": "“{v}”",
        "distinct_enum": "{t}中有多少种不同的{c}？",
        "trend_count": "按{d}统计，每月的{t}数量是多少？",
        "trend_sum": "按{d}统计，每月{t}的{m}总和是多少？",
        "latest": "按{d}排序，最近的10条{t}记录是哪些？",
        "stats": "{t}的{m}的最小值、最大值和平均值分别是多少？",
        "top_sum": "{t}的{m}总和最高的10个{r}是哪些？",
        "top_avg": "{t}的平均{m}最高的10个{r}是哪些？",
        "join_count": "{t}数量最多的10个{r}是哪些？",
        "distinct_ref": "有多少个不同的{r}有{t}记录？",
        "via": "{r}（按{c}）",
    },
    "en": {
        "count": "How many {t} are there?",
        "group_enum": "How many {t} are there for each {c}?",
        "group_flag": "How many {t} are {c}, and how many are not?",
        "filter_count": "How many {t} have {c} {v}?",
        "filter_list": "List the {t} whose {c} is {v}.",
        "quoted": "'{v}'",
        "distinct_enum": "How many different {c} values do {t} have?",
        "trend_count": "How many {t} are there per month of {d}?",
        "trend_sum": "What is the total {m} of {t} per month of {d}?",
        "latest": "What are the 10 most recent {t} by {d}?",
        "stats": "What are the minimum, maximum and average {m} of {t}?",
        "top_sum": "Which 10 {r} have the highest total {m} of {t}?",
        "top_avg": "Which 10 {r} have the highest average {m} of {t}?",
        "join_count": "Which 10 {r} have the most {t}?",
        "distinct_ref": "How many distinct {r} have {t}?",
        "via": "{r} (by {c})",
    },
}


_TOTAL_TOTAL = re.compile(r"\btotal total\b", re.I)


def fill(template: str, **words: str) -> str:
    """``template`` with its words; a measure named "total" is said once ("the highest total of invoices")."""
    return _TOTAL_TOTAL.sub(lambda m: m.group(0)[:5], template.format(**words))


def _alias(name: str, fallback: str) -> str:
    """An output column name, quoted where needed; a generic one when the name would be too long."""
    return quote_ident(name if len(name.encode()) <= 63 else fallback)


def _col(alias: str, column: Column | str) -> str:
    return f"{alias}.{quote_ident(column if isinstance(column, str) else column.name)}"


def _source(table: Table, alias: str) -> str:
    return f"{TableName(table.schema, table.name).qualified} AS {alias}"


def _where(*conditions: str | None) -> str:
    present = [c for c in conditions if c]
    return f" WHERE {' AND '.join(present)}" if present else ""


def _from(table: Table, *conditions: str | None) -> str:
    """``FROM table AS t WHERE ...`` with the soft-delete filter of ``t`` added."""
    return f"FROM {_source(table, 't')}{_where(*conditions, roles.soft_delete_condition(table, 't'))}"


@dataclass(frozen=True)
class Edge:
    """A foreign key seen as a join: ``child`` rows reference one ``parent`` row each."""

    child: Table
    fk: ForeignKey
    parent: Table
    ambiguous: bool  # the child has several foreign keys to this parent
    partner: Table | None = None  # a link table's other side: its rows per parent count these (Schema.link_partner)

    def on(self) -> str:
        return " AND ".join(
            f"{_col('t', c)} = {_col('r', p)}" for c, p in zip(self.fk.columns, self.fk.ref_columns)
        )


class QuestionWriter:
    """Writes candidate pairs in one language; deterministic for the same tables."""

    def __init__(self, language: str):
        self.language = language
        self.texts = TEXTS[language]

    # -- words ------------------------------------------------------------------------
    def noun(self, table: Table) -> str:
        label = roles.table_label(table, self.language)
        return roles.plural(label) if self.language == "en" else label

    def label(self, column: Column) -> str:
        return roles.column_label(column, self.language)

    def _parent_noun(self, edge: Edge) -> str:
        noun = self.noun(edge.parent)
        if edge.ambiguous:
            column = edge.child.column(edge.fk.columns[0])
            noun = self.texts["via"].format(r=noun, c=self.label(column) if column else edge.fk.columns[0])
        return noun

    def _counted_noun(self, edge: Edge) -> str:
        """What rows of the child count per parent: films, not "film actors", through a link table."""
        return self.noun(edge.partner or edge.child)

    # -- shared pieces ------------------------------------------------------------------
    def _row_label(self, table: Table, alias: str, fallback: list[str]) -> tuple[str, str]:
        named = roles.name_expression(table, alias)
        if named:
            expr, out = named
            return expr, _alias(out, "name")
        column = (table.primary_key or fallback)[0]
        return _col(alias, column), _alias(column, "key")

    def _group_keys(self, table: Table, alias: str, label_expr: str) -> str:
        keys = [_col(alias, c) for c in table.primary_key]
        return ", ".join(keys + ([label_expr] if label_expr not in keys else []))

    def _display(self, table: Table, *extra: Column) -> list[str]:
        wanted = [table.column(c) for c in table.primary_key] + roles.name_columns(table) + list(extra)
        chosen: list[Column] = []
        for column in wanted:
            if column is not None and roles.is_plain(column) and column not in chosen:
                chosen.append(column)
        if not chosen:
            chosen = [c for c in table.columns if roles.is_plain(c)][:5]
        return [_col("t", c) for c in chosen[:6]]

    def _match(self, column: Column, value: str) -> str:
        number = roles.number_literal(column, value)
        if number is not None:  # rental_duration = 3, not rental_duration::text = '3'
            return f"{_col('t', column)} = {number}"
        target = _col("t", column) if roles.compares_as_literal(column) else f"{_col('t', column)}::text"
        return f"{target} = {sql_literal(value)}"

    def _value(self, column: Column, value: str) -> str:
        """The value as the question says it: a number bare, anything else quoted."""
        number = roles.number_literal(column, value)
        return number if number is not None else self.texts["quoted"].format(v=value)

    # -- one table ----------------------------------------------------------------------
    def count(self, table: Table) -> list[Candidate]:
        sql = f"SELECT count(*) AS record_count {_from(table)}"
        return [(self.texts["count"].format(t=self.noun(table)), sql)]

    def group_by_enum(self, table: Table) -> list[Candidate]:
        out = []
        for column in roles.enum_columns(table):
            col = _col("t", column)
            sql = (
                f"SELECT {col} AS {_alias(column.name, 'value')}, count(*) AS record_count {_from(table)}"
                f" GROUP BY {col} ORDER BY record_count DESC"
            )
            flag = roles.flag_word(column)  # a yes/no column: "How many customers are active, and how many are not?"
            if flag:
                text = self.texts["group_flag"].format(c=flag if self.language == "en" else self.label(column), t=self.noun(table))
            else:
                text = self.texts["group_enum"].format(c=self.label(column), t=self.noun(table))
            out.append((text, sql))
        return out

    def filter_count(self, table: Table) -> list[Candidate]:
        out = []
        for column in roles.enum_columns(table):
            value = column.enum_values[0]
            sql = f"SELECT count(*) AS record_count {_from(table, self._match(column, value))}"
            out.append((self.texts["filter_count"].format(c=self.label(column), v=self._value(column, value), t=self.noun(table)), sql))
        return out

    def filter_list(self, table: Table) -> list[Candidate]:
        out = []
        for column in roles.enum_columns(table):
            value = column.enum_values[min(1, len(column.enum_values) - 1)]
            shown = self._display(table, column)
            sql = f"SELECT {', '.join(shown)} {_from(table, self._match(column, value))} ORDER BY {shown[0]} LIMIT 20"
            out.append((self.texts["filter_list"].format(c=self.label(column), v=self._value(column, value), t=self.noun(table)), sql))
        return out

    def distinct_enum(self, table: Table) -> list[Candidate]:
        out = []
        for column in roles.enum_columns(table):
            sql = f"SELECT count(DISTINCT {_col('t', column)}) AS distinct_count {_from(table)}"
            out.append((self.texts["distinct_enum"].format(t=self.noun(table), c=self.label(column)), sql))
        return out

    def trend_count(self, table: Table) -> list[Candidate]:
        out = []
        for column in roles.event_times(table)[:2]:
            col = _col("t", column)
            month = f"date_trunc('month', {col})"
            sql = (
                f"SELECT {month} AS month, count(*) AS record_count {_from(table, col + ' IS NOT NULL')}"
                f" GROUP BY {month} ORDER BY month"
            )
            out.append((self.texts["trend_count"].format(d=self.label(column), t=self.noun(table)), sql))
        return out

    def trend_sum(self, table: Table) -> list[Candidate]:
        out = []
        times = roles.event_times(table)
        for measure in roles.additive_measures(table)[:2] if times else []:
            col = _col("t", times[0])
            month = f"date_trunc('month', {col})"
            sql = (
                f"SELECT {month} AS month, sum({_col('t', measure)}) AS {_alias('total_' + measure.name, 'total')}"
                f" {_from(table, col + ' IS NOT NULL')} GROUP BY {month} ORDER BY month"
            )
            text = fill(self.texts["trend_sum"], d=self.label(times[0]), t=self.noun(table), m=self.label(measure))
            out.append((text, sql))
        return out

    def latest(self, table: Table) -> list[Candidate]:
        times = roles.event_times(table)
        if not times:
            return []
        shown = self._display(table, times[0])
        sql = f"SELECT {', '.join(shown)} {_from(table)} ORDER BY {_col('t', times[0])} DESC NULLS LAST LIMIT 10"
        return [(self.texts["latest"].format(d=self.label(times[0]), t=self.noun(table)), sql)]

    def stats(self, table: Table) -> list[Candidate]:
        out = []
        for measure in roles.measures(table)[:3]:
            col = _col("t", measure)
            sql = (
                f"SELECT min({col}) AS {_alias('min_' + measure.name, 'min_value')},"
                f" max({col}) AS {_alias('max_' + measure.name, 'max_value')},"
                f" round(avg({col})::numeric, 2) AS {_alias('avg_' + measure.name, 'avg_value')} {_from(table)}"
            )
            out.append((self.texts["stats"].format(t=self.noun(table), m=self.label(measure)), sql))
        return out

    # -- along a foreign key ------------------------------------------------------------
    def _joined(self, edge: Edge, select: str, order: str) -> str:
        label, _ = self._row_label(edge.parent, "r", edge.fk.ref_columns)
        where = _where(roles.soft_delete_condition(edge.child, "t"), roles.soft_delete_condition(edge.parent, "r"))
        return (
            f"SELECT {select} FROM {_source(edge.child, 't')} JOIN {_source(edge.parent, 'r')} ON {edge.on()}{where}"
            f" GROUP BY {self._group_keys(edge.parent, 'r', label)} ORDER BY {order} DESC NULLS LAST LIMIT 10"
        )

    def join_count(self, edge: Edge) -> list[Candidate]:
        label, out = self._row_label(edge.parent, "r", edge.fk.ref_columns)
        sql = self._joined(edge, f"{label} AS {out}, count(*) AS record_count", "record_count")
        return [(self.texts["join_count"].format(t=self._counted_noun(edge), r=self._parent_noun(edge)), sql)]

    def top_measure(self, edge: Edge, function: str) -> list[Candidate]:
        out = []
        label, name = self._row_label(edge.parent, "r", edge.fk.ref_columns)
        summable = roles.additive_measures(edge.child) if function == "sum" else roles.measures(edge.child)
        for measure in summable[:2]:
            col = _col("t", measure)
            if function == "sum":
                value, alias = f"sum({col})", _alias("total_" + measure.name, "total")
            else:
                value, alias = f"round(avg({col})::numeric, 2)", _alias("avg_" + measure.name, "average")
            sql = self._joined(edge, f"{label} AS {name}, {value} AS {alias}", alias)
            key = "top_sum" if function == "sum" else "top_avg"
            text = fill(self.texts[key], t=self.noun(edge.child), m=self.label(measure), r=self._parent_noun(edge))
            out.append((text, sql))
        return out

    def distinct_ref(self, edge: Edge) -> list[Candidate]:
        if len(edge.fk.columns) != 1:
            return []
        sql = f"SELECT count(DISTINCT {_col('t', edge.fk.columns[0])}) AS distinct_count {_from(edge.child)}"
        return [(self.texts["distinct_ref"].format(r=self._parent_noun(edge), t=self._counted_noun(edge)), sql)]
