"""Step 1 entry point: from a table list to DDL files, markdown dictionaries and ``manifest.json``.

Introspection reads all tables in a fixed number of catalog queries on one connection. Then each
table is sampled, probed for enums and commented on a thread pool (``table_concurrency`` workers,
each with its own read-only connection); a failure there fails that table alone. Files are written
only once every table is settled, because a table's DDL depends on which other tables made it (the
dependency order and the placement of foreign keys). No table succeeding is a ``StepFailed``.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
import time
from concurrent.futures import as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import psycopg2
import psycopg2.extensions

from dp.database import connect, connection, database_name
from dp.llm.client import LLMError
from dp.settings import Settings, get_settings
from dp.table_list import TableName
from dp.threads import ContextThreadPool
from steps.ddl_generation.comments import Commenter, choose_language, make_commenter
from steps.ddl_generation.ddl_render import render_ddl
from steps.ddl_generation.dictionary_render import render_dictionary
from steps.ddl_generation.enums import detect_enums
from steps.ddl_generation.introspect import Relation, introspect
from steps.ddl_generation.manifest import MANIFEST_NAME, Manifest, ManifestEntry
from steps.ddl_generation.model import ForeignKey
from steps.ddl_generation.ordering import dependency_order, plan_foreign_keys
from steps.ddl_generation.sampling import SampleRows, read_only_session, sample_table
from steps.errors import StepFailed

log = logging.getLogger(__name__)


class TableFailed(Exception):
    """One table cannot be processed; the message is the reason shown to the user."""


@dataclass
class _Prepared:
    enum_columns: int
    comments_generated: int


class _ThreadConnections:
    """One read-only connection per worker thread, all closed at the end."""

    def __init__(self, url: str, settings: Settings):
        self._url, self._settings = url, settings
        self._local = threading.local()
        self._lock = threading.Lock()
        self._opened: list[psycopg2.extensions.connection] = []

    def get(self) -> psycopg2.extensions.connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = connect(self._url)
            read_only_session(conn, self._settings)
            self._local.conn = conn
            with self._lock:
                self._opened.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            for conn in self._opened:
                conn.close()
            self._opened.clear()


def _apply_comments(relation: Relation, commenter: Commenter, business_context: str, language: str) -> int:
    table = relation.table
    if table.comment is not None and all(c.comment is not None for c in table.columns):
        return 0
    try:
        comments = commenter.comment_table(table, business_context=business_context, language=language)
    except LLMError as exc:
        raise TableFailed(f"comments for {relation.name.qualified} could not be generated: {exc}") from None
    generated = 0
    if table.comment is None and comments.table_comment:
        table.comment, table.comment_source = comments.table_comment, "generated"
        generated += 1
    for column in table.columns:
        text = comments.columns.get(column.name)
        if column.comment is None and text:
            column.comment, column.comment_source = text, "generated"
            generated += 1
    return generated


def _prepare(relation: Relation, connections: _ThreadConnections, commenter: Commenter, *,
             business_context: str, language: str, settings: Settings) -> _Prepared:
    """Samples, enums and comments of one table; raises TableFailed with the reason."""
    name = relation.name.qualified
    try:
        conn = connections.get()
        try:
            samples = sample_table(conn, relation, settings)
        except psycopg2.errors.QueryCanceled:
            log.warning("sampling %s timed out after %ss; no sample values", name, settings.sample_statement_timeout)
            samples = SampleRows()
        enum_columns = detect_enums(conn, relation, samples, settings)
    except psycopg2.Error as exc:
        raise TableFailed(f"reading data of {name} failed: {str(exc).strip()}") from None
    generated = _apply_comments(relation, commenter, business_context, language)
    return _Prepared(enum_columns=len(enum_columns), comments_generated=generated)


def _referenced_by(ordered: list[Relation]) -> dict[TableName, list[tuple[TableName, ForeignKey]]]:
    incoming: dict[TableName, list[tuple[TableName, ForeignKey]]] = {r.name: [] for r in ordered}
    for relation in ordered:
        for fk in relation.table.foreign_keys:
            target = TableName(fk.ref_schema, fk.ref_table)
            if target in incoming and target != relation.name:
                incoming[target].append((relation.name, fk))
    return incoming


def _write_files(ordered: list[Relation], output_dir: Path, language: str, workers: int) -> list[ManifestEntry]:
    listed = {r.name for r in ordered}
    fk_plans = plan_foreign_keys(ordered)
    incoming = _referenced_by(ordered)

    def write(relation: Relation) -> ManifestEntry:
        base = relation.name.file_base
        ddl_file, dictionary_file = f"{base}.ddl", f"{base}_detail.md"
        (output_dir / ddl_file).write_text(render_ddl(relation, fk_plans[relation.name], listed=listed), "utf-8")
        markdown = render_dictionary(
            relation.table, language=language, referenced_by=incoming[relation.name],
            partition_of=relation.partition_of,
        )
        (output_dir / dictionary_file).write_text(markdown, "utf-8")
        return ManifestEntry(table=relation.table, ddl_file=ddl_file, dictionary_file=dictionary_file)

    with ContextThreadPool(max_workers=workers) as pool:
        return list(pool.map(write, ordered))


def _remove_stale_files(output_dir: Path, failed: list[TableName]) -> None:
    """A failed table must not leave files of an earlier run that the manifest does not list."""
    for name in failed:
        for path in (output_dir / f"{name.file_base}.ddl", output_dir / f"{name.file_base}_detail.md"):
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """The step builds ~100,000 small objects for 1,000 tables, none in reference cycles; the cyclic
    collector's passes over them cost a quarter of the run (bench/introspection.py). Reference
    counting still frees everything; the collector resumes afterwards."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@_cyclic_gc_paused()
def run_ddl_generation(*, db_url: str, tables: list[TableName], output_dir: Path, business_context: str,
                       settings: Settings | None = None) -> dict:
    """Write ``<file_base>.ddl``, ``<file_base>_detail.md`` and ``manifest.json`` for the tables.

    Returns a JSON-serialisable summary; raises StepFailed when no table succeeded.
    """
    settings = settings or get_settings()
    started = time.monotonic()
    output_dir = Path(output_dir)
    language = choose_language(business_context, settings.comment_language)
    try:
        with connection(db_url) as conn:
            read_only_session(conn, settings, autocommit=False)
            with conn:
                found = introspect(conn, tables, lock_timeout=settings.lock_timeout)
    except psycopg2.Error as exc:
        raise StepFailed(f"cannot read the catalog of the business database: {str(exc).strip()}") from None
    failures: dict[TableName, str] = dict(found.failures)
    for name, reason in failures.items():
        log.warning("table %s failed: %s", name.qualified, reason)

    commenter = make_commenter(settings)
    connections = _ThreadConnections(db_url, settings)
    prepared: dict[TableName, _Prepared] = {}
    relations = [found.relations[t] for t in tables if t in found.relations]
    try:
        with ContextThreadPool(max_workers=settings.table_concurrency) as pool:
            futures = {
                pool.submit(_prepare, relation, connections, commenter, business_context=business_context,
                            language=language, settings=settings): relation.name
                for relation in relations
            }
            for done, future in enumerate(as_completed(futures), start=1):
                name = futures[future]
                try:
                    prepared[name] = future.result()
                    log.info("table %d/%d done: %s", done, len(relations), name.display)
                except TableFailed as exc:
                    failures[name] = str(exc)
                    log.warning("table %d/%d failed: %s: %s", done, len(relations), name.display, exc)
    finally:
        connections.close()

    failed = [{"table": t.qualified, "reason": failures[t]} for t in tables if t in failures]
    if not prepared:
        reasons = "; ".join(f"{f['table']}: {f['reason']}" for f in failed) or "the table list is empty"
        raise StepFailed(f"no table could be processed: {reasons}")

    output_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_files(output_dir, [t for t in tables if t in failures])
    ordered = dependency_order([r for r in relations if r.name in prepared])
    entries = _write_files(ordered, output_dir, language, settings.table_concurrency)
    Manifest(
        database=database_name(db_url), business_context=business_context, language=language,
        entries=entries, failed=failed,
    ).write(output_dir)
    files = [name for e in entries for name in (e.ddl_file, e.dictionary_file)] + [MANIFEST_NAME]
    result = {
        "tables_total": len(tables),
        "succeeded": len(entries),
        "failed": failed,
        "enum_columns": sum(p.enum_columns for p in prepared.values()),
        "comments_generated": sum(p.comments_generated for p in prepared.values()),
        "files": files,
        "catalog_queries": found.catalog_queries,
        "duration_s": round(time.monotonic() - started, 3),
        "language": language,
    }
    log.info("ddl_generation: %d/%d tables in %.1fs", result["succeeded"], len(tables), result["duration_s"])
    return result
