"""Fixtures for step 3: a step-1 style manifest of pagila, pair files, a fingerprint of the database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dp.database import connection
from dp.settings import get_settings
from steps.ddl_generation.manifest import Manifest, ManifestEntry
from steps.ddl_generation.model import Column, Table

PAGILA_TABLES = ["actor", "address", "category", "city", "country", "customer", "film", "film_actor",
                 "film_category", "inventory", "language", "payment", "rental", "staff", "store"]  # fmt: skip


def read_columns(url: str, tables: list[str], schema: str = "public") -> dict[str, list[tuple[str, str]]]:
    with connection(url) as conn:
        cur = conn.cursor()
        cur.execute(
            "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = ANY(%s) AND a.attnum > 0 AND NOT a.attisdropped "
            "ORDER BY c.relname, a.attnum",
            (schema, tables),
        )
        columns: dict[str, list[tuple[str, str]]] = {t: [] for t in tables}
        for table, name, type_ in cur.fetchall():
            columns[table].append((name, type_))
    return columns


def write_step1_outputs(output_dir: Path, url: str, tables: list[str]) -> Manifest:
    """What step 1 leaves for later steps: one ``.ddl`` per table and ``manifest.json``."""
    manifest = Manifest(database="test", business_context="", language="en")
    for table, columns in read_columns(url, tables).items():
        quoted = '"' + table.replace('"', '""') + '"'
        body = ",\n".join(f'  "{name}" {type_}' for name, type_ in columns)
        ddl_file = f"{table}.ddl"
        (output_dir / ddl_file).write_text(f"CREATE TABLE {quoted} (\n{body}\n);\n", encoding="utf-8")
        facts = Table("public", table, columns=[Column(name, type_) for name, type_ in columns])
        manifest.entries.append(ManifestEntry(facts, ddl_file, f"{table}.md"))
    manifest.write(output_dir)
    return manifest


def write_pairs(output_dir: Path, entries: list, stamp: str = "20260101_120000", db: str = "pagila") -> Path:
    path = output_dir / f"qs_{db}_{stamp}_pair.json"
    path.write_text(json.dumps(entries, ensure_ascii=False, indent=2), encoding="utf-8")
    return path


def fingerprint(url: str) -> dict:
    """Row counts, a checksum of film, a sequence position and the table list: any write changes it."""
    with connection(url) as conn:
        cur = conn.cursor()
        cur.execute(
            "SELECT (SELECT count(*) FROM film), (SELECT count(*) FROM actor), (SELECT count(*) FROM rental),"
            " (SELECT md5(string_agg(f::text, ',' ORDER BY film_id)) FROM film f),"
            " (SELECT last_value FROM film_film_id_seq), (SELECT is_called FROM film_film_id_seq),"
            " (SELECT array_agg(relname::text ORDER BY relname) FROM pg_class c JOIN pg_namespace n"
            "    ON n.oid = c.relnamespace WHERE n.nspname = 'public')"
        )
        return dict(zip(["film", "actor", "rental", "film_md5", "seq", "seq_called", "relations"], cur.fetchone()))


@pytest.fixture
def task_dir(tmp_path: Path) -> Path:
    path = tmp_path / "task"
    path.mkdir()
    return path


@pytest.fixture
def pagila_task(task_dir: Path, pagila_url: str) -> Path:
    """A task directory holding step 1's outputs for pagila."""
    write_step1_outputs(task_dir, pagila_url, PAGILA_TABLES)
    return task_dir


@pytest.fixture
def use_fake_llm(fake_openai, monkeypatch):
    """Point the settings at the fake OpenAI server (fast retries); yields the server."""
    monkeypatch.setenv("DP_LLM_PROVIDER", "openai")
    monkeypatch.setenv("DP_LLM_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("DP_LLM_BACKOFF_BASE", "0.01")
    get_settings.cache_clear()
    yield fake_openai
    get_settings.cache_clear()
