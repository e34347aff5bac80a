"""Backing up the vector tables to CSV and restoring them, with ``COPY ... TO STDOUT / FROM STDIN``.

A backup set is one CSV per table of the layout in use, ``<table>_<YYYYMMDD_HHMMSS>[_N].csv`` with a
header row, written as ``.csv.tmp`` and renamed when complete, so a half-written file is never taken
for a backup; each set adds a line to ``vector_backup_log.txt``. A restore replaces both tables'
contents with one set in a single transaction: it either completes or changes nothing.
"""

from __future__ import annotations

import csv
import logging
import re
import time
from contextlib import closing
from datetime import datetime
from pathlib import Path

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from dp.database import mask_url, service_database_url
from dp.settings import Settings, get_settings
from steps.errors import StepFailed
from steps.training_load.store import LAYOUTS, PGVECTOR, Layout, connect_vector_store, create_tables, enable_pgvector

log = logging.getLogger(__name__)

BACKUP_DIR = "vector_bak"
LOG_FILE = "vector_backup_log.txt"
_SET_FILE = re.compile(r"^(?P<table>[a-z_]+)_(?P<stamp>\d{8}_\d{6}(?:_\d+)?)\.csv$")


def backup_tables(cur: psycopg2.extensions.cursor, layout: Layout, backup_dir: Path) -> dict:
    """Write both tables of ``layout`` to a new backup set in ``backup_dir``; returns what was written."""
    backup_dir = Path(backup_dir)
    backup_dir.mkdir(parents=True, exist_ok=True)
    stamp = _free_stamp(backup_dir, layout)
    tables = {}
    for table in layout.tables:
        final = backup_dir / f"{table}_{stamp}.csv"
        temporary = final.with_name(final.name + ".tmp")
        with temporary.open("w", encoding="utf-8", newline="") as handle:
            cur.copy_expert(
                sql.SQL("COPY {} TO STDOUT WITH (FORMAT csv, HEADER)").format(sql.Identifier(table)).as_string(cur),
                handle,
            )
        temporary.rename(final)
        tables[table] = {"rows": cur.rowcount, "file": final.name, "bytes": final.stat().st_size}
    summary = ", ".join(f"{t} {info['rows']} rows" for t, info in tables.items())
    with (backup_dir / LOG_FILE).open("a", encoding="utf-8") as log_file:
        log_file.write(f"{datetime.now().isoformat(timespec='seconds')} backup {stamp}: {summary}\n")
    log.info("backed up the vector tables to %s (%s)", backup_dir, summary)
    return {"directory": str(backup_dir), "timestamp": stamp, "tables": tables}


def _free_stamp(backup_dir: Path, layout: Layout) -> str:
    base = datetime.now().strftime("%Y%m%d_%H%M%S")
    stamp, number = base, 1
    while any((backup_dir / f"{table}_{stamp}.csv").exists() for table in layout.tables):
        number += 1
        stamp = f"{base}_{number}"
    return stamp


def backup_sets(backup_dir: Path) -> dict[str, dict[str, Path]]:
    """``timestamp -> {table: file}`` of the complete-looking backup files in ``backup_dir``."""
    known = {table for layout in LAYOUTS for table in layout.tables}
    sets: dict[str, dict[str, Path]] = {}
    for path in Path(backup_dir).glob("*.csv"):
        match = _SET_FILE.match(path.name)
        if match and match.group("table") in known:
            sets.setdefault(match.group("stamp"), {})[match.group("table")] = path
    return sets


def _stamp_key(stamp: str) -> tuple[str, int]:
    """Order of ``YYYYMMDD_HHMMSS`` stamps, ``_N`` suffixes (same second) after the plain one."""
    return stamp[:15], int(stamp[16:] or 1)


def restore_vector_backup(
    backup_dir: Path,
    *,
    timestamp: str | None = None,
    service_url: str | None = None,
    settings: Settings | None = None,
) -> dict:
    """Replace the vector tables' contents with a backup set (the newest unless ``timestamp`` names one)."""
    started = time.monotonic()
    settings = settings or get_settings()
    sets = backup_sets(backup_dir)
    if not sets:
        raise StepFailed(f"no vector backup found in {backup_dir}; back up first (backup=True)")
    stamp = timestamp or max(sets, key=_stamp_key)
    if stamp not in sets:
        raise StepFailed(f"no vector backup {stamp!r} in {backup_dir}; found {', '.join(sorted(sets))}")
    files = sets[stamp]
    layout = next((l for l in LAYOUTS if set(l.tables) <= set(files)), None)
    if layout is None:
        raise StepFailed(f"backup {stamp} in {backup_dir} is incomplete: it has only {', '.join(sorted(files))}")
    url = service_url or service_database_url(settings)
    with closing(connect_vector_store(url)) as conn:
        if layout is PGVECTOR and (problem := enable_pgvector(conn)):
            raise StepFailed(f"backup {stamp} holds pgvector tables but {mask_url(url)} has no vector extension ({problem})")
        tables = {}
        try:
            with conn, conn.cursor() as cur:
                create_tables(cur, layout)
                cur.execute(
                    sql.SQL("TRUNCATE {}, {}").format(*(sql.Identifier(t) for t in layout.tables))
                )
                for table in layout.tables:  # collections first: embeddings reference them
                    tables[table] = {"rows": _copy_in(cur, table, files[table]), "file": files[table].name}
        except psycopg2.Error as exc:
            raise StepFailed(f"restoring backup {stamp} failed, nothing changed: {str(exc).strip()}") from None
    log.info("restored vector backup %s from %s", stamp, backup_dir)
    return {"timestamp": stamp, "store": layout.kind, "tables": tables, "duration_s": round(time.monotonic() - started, 3)}


def _copy_in(cur: psycopg2.extensions.cursor, table: str, path: Path) -> int:
    with path.open(encoding="utf-8", newline="") as handle:
        header = next(csv.reader(handle), None)
        if not header:
            raise StepFailed(f"{path} is empty; it is not a backup file")
        handle.seek(0)
        statement = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv, HEADER)").format(
            sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(column) for column in header)
        )
        cur.copy_expert(statement.as_string(cur), handle)
    return cur.rowcount
