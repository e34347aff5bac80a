"""The files of step 2: metadata.txt runs in a real database, pair files never overwrite each other."""

from __future__ import annotations

import json
from datetime import datetime

from dp.database import connection
from dp.table_list import TableName
from steps.qa_generation.model import QAPair, Theme
from steps.qa_generation.outputs import (
    PAIR_FILE_PATTERN,
    pair_file_name,
    render_decision_prompt,
    render_metadata_markdown,
    render_metadata_sql,
    write_pairs,
)
from steps.qa_generation.provider import DatabaseSummary

THEMES = [
    Theme(
        name="Customer's \"orders\" analysis",
        description="Back\\slash, 'quotes', 中文 and a\nnewline",
        related_tables=[TableName("public", "orders"), TableName("Sales", "Order Items")],
        entities=["customer", "it's"],
        metrics=["sum of amount", "{braces}", 'double "quote"'],
    ),
    Theme(name="营业额分析", description="", related_tables=[TableName("ops", "data_upload_log")]),
]


def test_metadata_sql_executes_and_stores_the_arrays(scratch_db):
    script = render_metadata_sql("db", THEMES, "en")
    with connection(scratch_db) as conn:
        with conn.cursor() as cur:
            cur.execute(script)
            cur.execute(script)  # CREATE TABLE IF NOT EXISTS: running it twice is fine
            cur.execute(
                "SELECT topic_name, description, related_tables, biz_entities, biz_metrics, created_at IS NOT NULL"
                " FROM metadata ORDER BY id LIMIT 2"
            )
            rows = cur.fetchall()
    first, second = rows
    assert first == (
        "Customer's \"orders\" analysis",
        "Back\\slash, 'quotes', 中文 and a\nnewline",
        ["orders", '"Sales"."Order Items"'],
        ["customer", "it's"],
        ["sum of amount", "{braces}", 'double "quote"'],
        True,
    )
    assert second == ("营业额分析", "", ["ops.data_upload_log"], [], [], True)


def test_metadata_markdown_and_router_prompt_are_in_the_task_language():
    markdown = render_metadata_markdown("db", THEMES, "zh")
    assert markdown.startswith("# metadata")
    assert "| related_tables | text[] |" in markdown and "### 2. 营业额分析" in markdown
    summary = DatabaseSummary("Sales of a shop", [("Orders (orders)", ["order_id", "amount"])], ["revenue"])
    text = render_decision_prompt(summary, "en")
    assert text.splitlines()[0] == "=== Database business scope ==="
    assert "- Orders (orders): main fields order_id, amount" in text and "- revenue" in text
    assert render_decision_prompt(summary, "zh").startswith("=== 数据库业务范围 ===\n")


def test_pair_files_of_the_same_second_do_not_overwrite_each_other(tmp_path):
    older = tmp_path / "qs_my_db_20200101_000000_pair.json"
    older.write_text("[]", encoding="utf-8")
    pairs = [QAPair("问题？", "SELECT 1", "主题")]
    first = write_pairs(tmp_path, "my db/../x", pairs)
    second = write_pairs(tmp_path, "my db/../x", pairs)
    assert first != second and first.exists() and second.exists()
    assert older.read_text() == "[]"
    for path in (first, second):
        match = PAIR_FILE_PATTERN.match(path.name)
        assert match and match.group("db") == "my_db_.._x"
        assert json.loads(path.read_text(encoding="utf-8")) == [{"question": "问题？", "sql": "SELECT 1", "theme": "主题"}]
        assert "问题" in path.read_text(encoding="utf-8")  # ensure_ascii=False


def test_pair_file_name_format():
    assert pair_file_name("dp_sample_pagila", datetime(2024, 5, 6, 7, 8, 9)) == "qs_dp_sample_pagila_20240506_070809_pair.json"
