import re

import pytest
import sqlglot

from dp.embeddings.local import local_embedder
from steps.training_load.chunking import split_ddl, split_markdown


@pytest.fixture(scope="module")
def embedder():
    return local_embedder(32)


def wide_table_ddl(columns: int = 100) -> str:
    lines = [f"    measure_{i:03d} numeric(12,2) DEFAULT 0 NOT NULL, -- Measured value number {i} of the sensor" for i in range(columns)]
    return (
        "-- public.sensor_readings: one row per reading\n"
        "CREATE TABLE public.sensor_readings (\n"
        + "\n".join(lines)
        + "\n    CONSTRAINT sensor_readings_pkey PRIMARY KEY (measure_000)\n);\n"
        "CREATE INDEX sensor_idx ON public.sensor_readings USING btree (measure_001);\n"
        "COMMENT ON TABLE public.sensor_readings IS 'one row per reading; with a ; inside';\n"
    )


def test_a_100_column_table_becomes_several_create_tables_within_the_window(embedder):
    ddl = wide_table_ddl()
    assert embedder.count_tokens(ddl) > 3 * embedder.max_tokens
    parts = split_ddl(ddl, embedder, table=None, name="sensor_readings.ddl")

    assert len(parts) > 3
    assert all(embedder.count_tokens(p.text) <= embedder.max_tokens for p in parts)
    assert {p.table for p in parts} == {"public.sensor_readings"}
    assert all(p.text.startswith(f"-- public.sensor_readings (part {i}/{len(parts)})\n") for i, p in enumerate(parts, 1))
    text = "\n".join(p.text for p in parts)
    for i in range(100):  # every column exactly once, comment included
        assert len(re.findall(rf"measure_{i:03d} numeric\(12,2\) DEFAULT 0 NOT NULL,? -- Measured value number {i} of", text)) == 1
    assert "with a ; inside" in text
    creates = [p.text for p in parts if "CREATE TABLE" in p.text]
    assert len(creates) > 1
    for part in creates:  # each column group is itself a valid CREATE TABLE
        statement = part[part.index("CREATE TABLE") : part.index(");") + 2]
        assert isinstance(sqlglot.parse_one(statement, read="postgres"), sqlglot.exp.Create)


def test_ddl_that_fits_stays_one_item_unchanged(embedder):
    ddl = "CREATE TABLE public.t (\n    a integer, -- first\n    b text -- second\n);\n"
    assert [(p.text, p.table) for p in split_ddl(ddl, embedder, table=None, name="t.ddl")] == [(ddl.strip(), "public.t")]


def test_a_file_with_several_tables_is_cut_per_table(embedder):
    ddl = 'CREATE TABLE a (x int);\nCREATE INDEX i ON a (x);\nCREATE TABLE "Sales"."Big Orders" (y int);\n'
    ddl += wide_table_ddl(30).replace("public.sensor_readings", "public.wide")
    parts = split_ddl(ddl, embedder, table=None, name="many.ddl")
    assert parts[0].text == "CREATE TABLE a (x int);\nCREATE INDEX i ON a (x);" and parts[0].table == "public.a"
    assert parts[1].table == "Sales.Big Orders"
    assert {p.table for p in parts[2:]} == {"public.wide"} and len(parts) > 3


def test_unreadable_sql_is_still_split_without_loss(embedder):
    ddl = "CREATE TABLE broken (note text DEFAULT 'never closed\n" + "word " * 600
    parts = split_ddl(ddl, embedder, table="public.broken", name="broken.ddl")
    assert len(parts) >= 3 and {p.table for p in parts} == {"public.broken"}
    assert all(embedder.count_tokens(p.text) <= embedder.max_tokens for p in parts)
    assert "".join(re.sub(r"^-- .*\n", "", p.text) for p in parts).split() == ddl.split()


def test_a_long_markdown_table_is_cut_by_rows_with_its_header_repeated(embedder):
    header = "| Column | Type | Comment |\n|---|---|---|"
    rows = [f"| column_{i} | integer | The value of measurement {i} taken by the device |" for i in range(120)]
    text = f"# public.sensor: Sensor data\n\nIntro paragraph.\n\n## Columns\n\n{header}\n" + "\n".join(rows) + "\n\n## Notes\n\nShort.\n"
    parts = split_markdown(text, embedder, name="sensor_detail.md")

    assert len(parts) > 3
    assert all(embedder.count_tokens(p) <= embedder.max_tokens for p in parts)
    assert all(p.startswith(f"# public.sensor: Sensor data (part {i}/{len(parts)})") for i, p in enumerate(parts, 1))
    with_rows = [p for p in parts if "| column_" in p]
    assert all("## Columns" in p and header in p for p in with_rows)
    joined = "\n".join(parts)
    assert all(joined.count(row + "\n") + joined.endswith(row) == 1 for row in rows)
    assert "Intro paragraph." in joined and "Short." in joined


def test_markdown_that_fits_stays_whole_and_chinese_text_is_split_by_characters(embedder):
    assert split_markdown("# t\n\nsmall\n", embedder, name="t_detail.md") == ["# t\n\nsmall"]
    long_chinese = "# 表\n\n" + "租赁记录每一行是一次电影租赁" * 60
    parts = split_markdown(long_chinese, embedder, name="zh_detail.md")
    assert len(parts) > 1 and all(embedder.count_tokens(p) <= embedder.max_tokens for p in parts)
    assert "".join(p.split("\n", 1)[1] for p in parts).count("租赁记录") == 60
