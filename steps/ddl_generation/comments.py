"""Step 1's comment writer: short Chinese or English comments for tables and columns that lack one.

Two providers behind one ``Commenter`` interface: ``HeuristicCommenter`` (offline and deterministic:
the glossary plus the table's facts) and ``OpenAICommenter`` (one chat call per table). Only missing
comments are asked for and returned; an existing comment is never touched. LLM answers are matched to
columns by name, never by position; a column the model leaves out gets the heuristic comment, and
``TableComments`` records that it did.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from dp.llm.client import ChatClient
from dp.llm.glossary import Language, describe_identifier, singular_noun, split_identifier
from dp.llm.replies import strip_think
from dp.settings import Settings, get_settings
from steps.ddl_generation.model import Column, Table

log = logging.getLogger(__name__)

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
# Column names too generic to stand alone: "id" of table customer reads "customer ID".
_GENERIC_COLUMNS = {"id", "name", "code", "title", "description", "desc", "status", "type", "no", "remark"}
_KIND_ZH = {
    "table": "表", "partitioned_table": "分区表", "view": "视图", "materialized_view": "物化视图", "foreign_table": "外部表"
}
_KIND_EN = {kind: kind.replace("_", " ") for kind in _KIND_ZH}
_ENUM_SHOWN = 5
_LIMITS = {("table", "zh"): 50, ("table", "en"): 100, ("column", "zh"): 20, ("column", "en"): 60}
_PREFIX = re.compile(
    r"^(?:表注释|表说明|表描述|字段注释|字段说明|列注释|列说明|注释|说明|备注|"
    r"table comment|column comment|comment|description)\s*[:：]\s*",
    re.IGNORECASE,
)
_QUOTES = {'"': '"', "'": "'", "“": "”", "‘": "’", "「": "」", "『": "』", "`": "`"}
_BOUNDARY = {"zh": "，。；、,;（(", "en": ";,.("}


@dataclass
class TableComments:
    """Comments for what lacked one: the table's (None when it already has one) and columns by name."""

    table_comment: str | None
    columns: dict[str, str]
    fallback_columns: list[str] = field(default_factory=list)  # the LLM left these out: heuristic comments
    fallback_table: bool = False  # the table comment is the heuristic's for the same reason


class Commenter(Protocol):
    def comment_table(self, table: Table, *, business_context: str, language: str) -> TableComments: ...


def choose_language(business_context: str, setting: str) -> str:
    """``zh``/``en`` as configured; ``auto``: Chinese when the business context holds CJK characters."""
    if setting in ("zh", "en"):
        return setting
    if setting != "auto":
        raise ValueError(f"comment language must be auto, zh or en (got {setting!r}); fix DP_COMMENT_LANGUAGE")
    return "zh" if _CJK.search(business_context or "") else "en"


def make_commenter(settings: Settings | None = None) -> Commenter:
    """The commenter of the configured provider (``DP_LLM_PROVIDER``)."""
    settings = settings or get_settings()
    if settings.llm_provider == "openai":
        return OpenAICommenter(ChatClient.from_settings(settings))
    return HeuristicCommenter()


def _language(language: str) -> Language:
    if language not in ("zh", "en"):
        raise ValueError(f"comment language must be zh or en (got {language!r}); use choose_language() first")
    return language  # type: ignore[return-value]


def _missing(comment: str | None) -> bool:
    return not (comment and comment.strip())


def _with_hints(base: str, hints: list[str], language: Language) -> str:
    if not hints:
        return base
    return f"{base}（{'，'.join(hints)}）" if language == "zh" else f"{base} ({'; '.join(hints)})"


class HeuristicCommenter:
    """Comments composed from names (through the glossary) and the table's facts; no network."""

    def comment_table(self, table: Table, *, business_context: str = "", language: str = "en") -> TableComments:
        lang = _language(language)
        table_comment = self.describe_table(table, lang) if _missing(table.comment) else None
        columns = {c.name: self.describe_column(table, c, lang) for c in table.columns if _missing(c.comment)}
        return TableComments(table_comment, columns)

    def describe_table(self, table: Table, language: Language) -> str:
        linked = _linked_tables(table)
        if linked:
            a, b = (describe_identifier(name, language) for name in linked)
            return f"{a}与{b}关联表" if language == "zh" else f"Links {a.lower()} to {b.lower()}"
        phrase = describe_identifier(table.name, language)
        if language == "zh":
            suffix = _KIND_ZH[table.kind]
            return phrase if phrase.endswith(suffix) else phrase + suffix
        return f"{phrase} {_KIND_EN[table.kind]}"

    def describe_column(self, table: Table, column: Column, language: Language) -> str:
        if column.name.lower() in _GENERIC_COLUMNS:
            owner = split_identifier(table.name)
            owner[-1:] = [singular_noun(w) for w in owner[-1:]]
            base = describe_identifier("_".join(owner + [column.name]), language)
        else:
            base = describe_identifier(column.name, language)
        base = _typed(base, column.type, language)
        return _with_hints(base, _hints(table, column, language), language)


def _linked_tables(table: Table) -> tuple[str, str] | None:
    """The two tables a pure link table (its key made of two foreign keys) joins, else None."""
    refs = list(dict.fromkeys(fk.ref_table for fk in table.foreign_keys))
    key = set(table.primary_key)
    fk_columns = {c for fk in table.foreign_keys for c in fk.columns}
    if len(refs) != 2 or not key or not key <= fk_columns or len(table.columns) > len(fk_columns) + 2:
        return None
    first, second = refs
    return first, second


def _typed(base: str, type_name: str, language: Language) -> str:
    """Make booleans read as a question and timestamps as a time, when the name alone does not."""
    kind = type_name.lower()
    if kind == "boolean":
        if language == "zh":
            return base if base.startswith("是否") else "是否" + base
        return base if base.lower().startswith("whether") else "Whether " + base[:1].lower() + base[1:]
    if kind.startswith(("timestamp", "date", "time ")) or kind == "time":
        word_zh, word_en = ("日期", "date") if kind == "date" else ("时间", "time")
        if language == "zh" and not base.endswith(("时间", "日期", "时间戳", "年月", "年份", "月份", "生日")):
            return base + word_zh
        if language == "en" and not re.search(r"\b(time|date|timestamp|day|month|year|birthday)\b", base.lower()):
            return f"{base} {word_en}"
    return base


def _hints(table: Table, column: Column, language: Language) -> list[str]:
    zh = language == "zh"
    hints: list[str] = []
    key = table.primary_key
    if column.name in key:
        if len(key) == 1:
            hints.append("主键" if zh else "primary key")
        else:
            hints.append("联合主键之一" if zh else "part of the primary key")
    for fk in table.foreign_keys:
        if column.name in fk.columns:
            if zh:
                ref = describe_identifier(fk.ref_table, "zh")
                hints.append(f"关联{ref}" if ref.endswith("表") else f"关联{ref}表")
            else:
                hints.append(f"references {fk.ref_table}")
    if column.enum_values:
        shown = [v[:20] for v in column.enum_values[:_ENUM_SHOWN]]
        more = len(column.enum_values) > _ENUM_SHOWN
        if zh:
            hints.append("取值：" + "、".join(shown) + ("等" if more else ""))
        else:
            hints.append("one of " + ", ".join(shown) + (", ..." if more else ""))
    return hints


class OpenAICommenter:
    """One chat call per table through ``ChatClient``; answers matched by column name."""

    def __init__(self, client: ChatClient, fallback: HeuristicCommenter | None = None):
        self.client = client
        self.fallback = fallback or HeuristicCommenter()

    def comment_table(self, table: Table, *, business_context: str, language: str) -> TableComments:
        lang = _language(language)
        needs_table = _missing(table.comment)
        wanted = [c.name for c in table.columns if _missing(c.comment)]
        if not needs_table and not wanted:
            return TableComments(None, {})
        answer = self.client.chat_json(
            system=_system_prompt(lang),
            user=_user_prompt(table, business_context, needs_table, wanted),
            validate=functools.partial(_answer_shape, columns_wanted=bool(wanted)),
        )
        result = TableComments(None, {})
        if needs_table:
            result.table_comment = _clean(answer["table_comment"] or "", lang, "table")
            if not result.table_comment:
                result.table_comment = self.fallback.describe_table(table, lang)
                result.fallback_table = True
        given = _match_names(answer["columns"], wanted, table.name)
        for name in wanted:
            text = _clean(given.get(name, ""), lang, "column", name)
            if not text:
                text = self.fallback.describe_column(table, table.column(name), lang)  # type: ignore[arg-type]
                result.fallback_columns.append(name)
            result.columns[name] = text
        if result.fallback_columns or result.fallback_table:
            log.warning(
                "table %s: the LLM left out %s; used heuristic comments",
                table.name,
                ", ".join((["the table comment"] if result.fallback_table else []) + result.fallback_columns),
            )
        return result


def _system_prompt(language: Language) -> str:
    if language == "zh":
        lang, table_max, column_max, unit = "Simplified Chinese (简体中文)", 50, 20, "Chinese characters"
    else:
        lang, table_max, column_max, unit = "English", 100, 60, "characters"
    return (
        "You write database comments for the data dictionary of a text-to-SQL system. You get one table's "
        f"facts as JSON. Write comments in {lang}: one for the table if table_comment_needed is true, and one "
        "for every column named in columns_to_comment. Say what the data means in business terms, using the "
        "business context, samples, enum values and foreign keys; do not repeat the data type; do not invent "
        f"facts. The table comment has at most {table_max} {unit}, each column comment at most {column_max} "
        f"{unit}. Reply with only a JSON object: "
        '{"table_comment": "..." or null, "columns": {"<column name>": "<comment>", ...}} '
        "using the column names exactly as given."
    )


def _user_prompt(table: Table, business_context: str, needs_table: bool, wanted: list[str]) -> str:
    references = {
        column: f"{fk.ref_schema}.{fk.ref_table}.{ref_column}"
        for fk in table.foreign_keys
        for column, ref_column in zip(fk.columns, fk.ref_columns)
    }
    columns = []
    for column in table.columns:
        entry: dict[str, Any] = {"name": column.name, "type": column.type}
        if column.comment:
            entry["comment"] = column.comment
        if column.name in table.primary_key:
            entry["primary_key"] = True
        if column.name in references:
            entry["references"] = references[column.name]
        if column.enum_values:
            entry["enum_values"] = [v[:40] for v in column.enum_values[:20]]
        elif column.samples:
            entry["samples"] = [s[:40] for s in column.samples[:3]]
        columns.append(entry)
    facts = {
        "business_context": business_context,
        "table": table.name,
        "schema": table.schema,
        "kind": table.kind,
        "table_comment": table.comment,
        "table_comment_needed": needs_table,
        "columns": columns,
        "columns_to_comment": wanted,
    }
    return "Table facts:\n" + json.dumps(facts, ensure_ascii=False, indent=1)


def _answer_shape(value: Any, *, columns_wanted: bool) -> dict[str, Any]:
    """Normalise the model's answer to {"table_comment": str|None, "columns": {name: str}}; ValueError if off."""
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object with table_comment and columns, got {type(value).__name__}")
    if columns_wanted and "columns" not in value:
        raise ValueError('the object has no "columns" key mapping column names to comments')
    table_comment = value.get("table_comment")
    if table_comment is not None and not isinstance(table_comment, str):
        raise ValueError("table_comment must be a string or null")
    columns = value.get("columns", {})
    if isinstance(columns, list):  # [{"name": ..., "comment": ...}] is also matched by name
        if not all(isinstance(c, dict) and isinstance(c.get("name"), str) for c in columns):
            raise ValueError("columns must map column names to comments")
        columns = {c["name"]: c.get("comment") for c in columns}
    if not isinstance(columns, dict):
        raise ValueError("columns must be an object mapping column names to comments")
    for name, comment in columns.items():
        if comment is not None and not isinstance(comment, (str, int, float)):
            raise ValueError(f"the comment of column {name!r} must be a string")
    return {"table_comment": table_comment, "columns": {k: "" if v is None else str(v) for k, v in columns.items()}}


def _match_names(given: dict[str, str], wanted: list[str], table_name: str) -> dict[str, str]:
    """Answers keyed by the table's own column names; exact match first, then a unique case-insensitive one."""
    by_folded: dict[str, list[str]] = {}
    for name in wanted:
        by_folded.setdefault(name.lower(), []).append(name)
    matched: dict[str, str] = {}
    unknown = []
    for key, comment in given.items():
        if key in wanted:
            matched[key] = comment
        elif len(by_folded.get(key.lower(), [])) == 1 and by_folded[key.lower()][0] not in given:
            matched[by_folded[key.lower()][0]] = comment
        else:
            unknown.append(key)
    if unknown:
        log.info("table %s: ignored LLM comments for names not asked for: %s", table_name, ", ".join(unknown[:10]))
    return matched


def _clean(text: str, language: Language, what: str, column_name: str | None = None) -> str:
    """One comment as it goes into a file: no reasoning, labels, quotes or line breaks, and short."""
    text = " ".join(strip_think(text).split())
    for _ in range(3):
        before = text
        text = _PREFIX.sub("", text)
        if column_name:
            text = re.sub(rf"^{re.escape(column_name)}\s*[:：\-—]\s*", "", text, flags=re.IGNORECASE)
        text = text.rstrip("。．.").strip()
        if len(text) >= 2 and _QUOTES.get(text[0]) == text[-1]:
            text = text[1:-1].strip()
        if text == before:
            break
    return _cut(text, _LIMITS[(what, language)], language)


def _cut(text: str, limit: int, language: Language) -> str:
    """Cut an overlong comment at the last clause boundary (or, in English, word) that fits."""
    if len(text) <= limit:
        return text
    head = text[:limit]
    cut = max(head.rfind(mark) for mark in _BOUNDARY[language])
    if cut < limit // 3 and language == "en":
        cut = head.rfind(" ")
    if cut < limit // 3:
        cut = limit
    return head[:cut].rstrip(" ，,;；、(（")
