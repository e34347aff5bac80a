"""The files step 2 writes: the pair file, the theme metadata (SQL and markdown), the router prompt.

The pair file ``qs_<db>_<YYYYMMDD_HHMMSS>_pair.json`` is created exclusively, so two runs never
overwrite each other: a run that finds its second taken waits for the next one. Older pair files
stay; readers pick the newest by the timestamp in the name. ``metadata.txt`` is valid PostgreSQL
(tested by executing it), with every text value a quoted literal and arrays as ``ARRAY[...]``.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from pathlib import Path

from dp.markdown import cell
from steps.qa_generation.model import QAPair, Theme
from steps.qa_generation.provider import DatabaseSummary
from steps.qa_generation.sql_text import sql_literal

METADATA_SQL = "metadata.txt"
METADATA_MARKDOWN = "metadata_detail.md"
DECISION_PROMPT = "db_query_decision_prompt.txt"
PAIR_FILE_PATTERN = re.compile(r"^qs_(?P<db>.+)_(?P<stamp>\d{8}_\d{6})_pair\.json$")
_UNSAFE = re.compile(r"[^\w.-]+")
_PAIR_FILE_ATTEMPTS = 5

METADATA_DDL = """CREATE TABLE IF NOT EXISTS metadata (
    id serial PRIMARY KEY,
    topic_name varchar(100) NOT NULL,
    description text,
    related_tables text[],
    biz_entities text[],
    biz_metrics text[],
    created_at timestamp default now()
);"""

_WORDS = {
    "zh": {
        "header": "-- 业务主题元数据：每个主题一行（数据库 {db}）",
        "title": "# metadata（业务主题元数据表）",
        "intro": "记录数据库 {db} 的业务主题：每个主题的名称、描述、相关表、业务实体和业务指标，由问答生成步骤写入。",
        "fields": "## 字段",
        "table_head": "| 字段 | 类型 | 说明 |",
        "columns": [
            ("id", "serial", "主键"),
            ("topic_name", "varchar(100)", "主题名称"),
            ("description", "text", "主题描述"),
            ("related_tables", "text[]", "相关表"),
            ("biz_entities", "text[]", "业务实体"),
            ("biz_metrics", "text[]", "业务指标"),
            ("created_at", "timestamp", "创建时间，默认 now()"),
        ],
        "themes": "## 主题（{n} 个）",
        "description": "描述",
        "tables": "相关表",
        "entities": "业务实体",
        "metrics": "业务指标",
        "scope": "=== 数据库业务范围 ===",
        "entity_head": "=== 核心业务实体 ===",
        "metric_head": "=== 关键业务指标 ===",
        "fields_of": "主要字段",
        "sep": "、",
        "colon": "：",
    },
    "en": {
        "header": "-- Business theme metadata: one row per theme (database {db})",
        "title": "# metadata (business theme metadata)",
        "intro": "The business themes of database {db}: each theme's name, description, related tables, business entities and metrics, written by the question generation step.",
        "fields": "## Columns",
        "table_head": "| Column | Type | Description |",
        "columns": [
            ("id", "serial", "Primary key"),
            ("topic_name", "varchar(100)", "Theme name"),
            ("description", "text", "Theme description"),
            ("related_tables", "text[]", "Related tables"),
            ("biz_entities", "text[]", "Business entities"),
            ("biz_metrics", "text[]", "Business metrics"),
            ("created_at", "timestamp", "Creation time, default now()"),
        ],
        "themes": "## Themes ({n})",
        "description": "Description",
        "tables": "Related tables",
        "entities": "Business entities",
        "metrics": "Business metrics",
        "scope": "=== Database business scope ===",
        "entity_head": "=== Core business entities ===",
        "metric_head": "=== Key business metrics ===",
        "fields_of": "main fields",
        "sep": ", ",
        "colon": ": ",
    },
}


def pair_file_name(database: str, moment: datetime) -> str:
    safe = _UNSAFE.sub("_", database).strip("_.") or "db"
    return f"qs_{safe}_{moment:%Y%m%d_%H%M%S}_pair.json"


def write_pairs(output_dir: Path, database: str, pairs: list[QAPair]) -> Path:
    """Write the pair file under a name no other run holds; returns its path."""
    body = json.dumps([p.to_dict() for p in pairs], ensure_ascii=False, indent=2)
    for _ in range(_PAIR_FILE_ATTEMPTS):
        path = Path(output_dir) / pair_file_name(database, datetime.now())
        try:
            with path.open("x", encoding="utf-8") as handle:
                handle.write(body)
            return path
        except FileExistsError:
            time.sleep(1.0 - (time.time() % 1.0) + 0.01)
    raise FileExistsError(f"could not find a free pair file name in {output_dir} after {_PAIR_FILE_ATTEMPTS} seconds")


def _array(values: list[str]) -> str:
    if not values:
        return "'{}'::text[]"
    return "ARRAY[" + ", ".join(sql_literal(v) for v in values) + "]"


def render_metadata_sql(database: str, themes: list[Theme], language: str) -> str:
    words = _WORDS[language]
    lines = [words["header"].format(db=database.replace("\n", " ")), METADATA_DDL, ""]
    for theme in themes:
        values = ", ".join([
            sql_literal(theme.name[:100]),
            sql_literal(theme.description),
            _array([t.display for t in theme.related_tables]),
            _array(theme.entities),
            _array(theme.metrics),
        ])
        lines.append(
            "INSERT INTO metadata (topic_name, description, related_tables, biz_entities, biz_metrics)"
            f" VALUES ({values});"
        )
    return "\n".join(lines) + "\n"


def render_metadata_markdown(database: str, themes: list[Theme], language: str) -> str:
    words = _WORDS[language]
    sep = words["sep"]
    lines = [words["title"], "", words["intro"].format(db=database), "", words["fields"], ""]
    lines += [words["table_head"], "|---|---|---|"]
    lines += [f"| {name} | {kind} | {text} |" for name, kind, text in words["columns"]]
    lines += ["", words["themes"].format(n=len(themes)), ""]
    for number, theme in enumerate(themes, start=1):
        lines += [
            f"### {number}. {cell(theme.name)}",
            "",
            f"- {words['description']}{words['colon']}{cell(theme.description)}",
            f"- {words['tables']}{words['colon']}{sep.join(t.display for t in theme.related_tables)}",
            f"- {words['entities']}{words['colon']}{cell(sep.join(theme.entities))}",
            f"- {words['metrics']}{words['colon']}{cell(sep.join(theme.metrics))}",
            "",
        ]
    return "\n".join(lines)


def render_decision_prompt(summary: DatabaseSummary, language: str) -> str:
    words = _WORDS[language]
    lines = [words["scope"], summary.scope.strip(), "", words["entity_head"]]
    for entity, fields in summary.entities:
        detail = f"{words['colon']}{words['fields_of']} {words['sep'].join(fields)}" if fields else ""
        lines.append(f"- {entity}{detail}")
    lines += ["", words["metric_head"]]
    lines += [f"- {metric}" for metric in summary.metrics]
    return "\n".join(lines) + "\n"


def write_theme_files(
    output_dir: Path, database: str, themes: list[Theme], summary: DatabaseSummary, language: str
) -> list[Path]:
    """Write metadata.txt, metadata_detail.md and db_query_decision_prompt.txt; returns their paths."""
    output_dir = Path(output_dir)
    contents = {
        METADATA_SQL: render_metadata_sql(database, themes, language),
        METADATA_MARKDOWN: render_metadata_markdown(database, themes, language),
        DECISION_PROMPT: render_decision_prompt(summary, language),
    }
    paths = []
    for name, text in contents.items():
        path = output_dir / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths
