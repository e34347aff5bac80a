"""Creates the demo database on a PostgreSQL server and fills it: schema.sql, then the generated rows.

A database comment is the state marker: "loading" while it is being built, "loaded complete" plus a
fingerprint of schema.sql and data.py once done, so a second call returns at once and a changed demo
reloads itself. A database whose comment is not ours is never dropped unless ``replace=True``. An
advisory lock keeps two processes from building the same database at once. Needs nothing beyond
core PostgreSQL (any version with DROP DATABASE ... WITH (FORCE), i.e. 13+).
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any

from psycopg2 import sql

from dp.database import connection, mask_url
from dp.demo import data
from dp.sample_databases import with_database

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
SCHEMA_FILE = HERE / "schema.sql"
DEMO_DATABASE = "dp_demo_highway"
_MARKER_PREFIX = "data-pipeline demo database"
_LOADING = f"{_MARKER_PREFIX}, loading"
_DBNAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class DemoDatabaseError(RuntimeError):
    """The demo database cannot be created as asked; the message says what to do instead."""


def _complete_marker() -> str:
    digest = hashlib.sha256(SCHEMA_FILE.read_bytes() + Path(data.__file__).read_bytes()).hexdigest()[:12]
    return f"{_MARKER_PREFIX} {digest}, loaded complete"


def _copy_value(value: Any) -> str:
    if value is None:
        return r"\N"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    text = str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _copy_table(cur, table: data.TableRows) -> None:
    buffer = io.StringIO()
    for row in table.rows:
        buffer.write("\t".join(_copy_value(v) for v in row))
        buffer.write("\n")
    buffer.seek(0)
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.schema, table.name), sql.SQL(", ").join(map(sql.Identifier, table.columns))
    )
    cur.copy_expert(statement.as_string(cur), buffer)
    if "id" in table.columns:
        # Rows came with explicit ids: move the identity sequence past them so later inserts work.
        cur.execute(
            sql.SQL("SELECT setval(pg_get_serial_sequence(%s, 'id'), (SELECT max(id) FROM {}))").format(
                sql.Identifier(table.schema, table.name)
            ),
            (sql.Identifier(table.schema, table.name).as_string(cur),),
        )


def _fill(target_url: str) -> None:
    with connection(target_url) as conn:
        with conn:  # one transaction: schema and rows land together or not at all
            cur = conn.cursor()
            cur.execute(SCHEMA_FILE.read_text(encoding="utf-8"))
            for table in data.generate():
                _copy_table(cur, table)
                log.info("demo table %s.%s: %d rows", table.schema, table.name, len(table.rows))
        conn.autocommit = True
        conn.cursor().execute("ANALYZE")


def _create_statement(cur, dbname: str) -> sql.Composed:
    """CREATE DATABASE, forcing UTF-8 when the server's default template is not (the data is Chinese)."""
    cur.execute("SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = 'template1'")
    row = cur.fetchone()
    if row and row[0] == "UTF8":
        return sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname))
    log.info("server default encoding is %s; creating the demo database as UTF8 with the C locale", row and row[0])
    return sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C'").format(sql.Identifier(dbname))


def load_demo_database(admin_url: str, *, dbname: str = DEMO_DATABASE, replace: bool = False) -> str:
    """Create and fill the demo database on the server of ``admin_url`` unless it is already complete; returns its URL."""
    if not _DBNAME.fullmatch(dbname):
        raise DemoDatabaseError(
            f"demo database name {dbname!r} is not usable; use lower-case letters, digits and _ (at most 63, "
            "not starting with a digit)"
        )
    target_url = with_database(admin_url, dbname)
    marker = _complete_marker()
    with connection(admin_url) as admin:
        admin.autocommit = True
        cur = admin.cursor()
        cur.execute("SELECT pg_advisory_lock(hashtext(%s))", (dbname,))
        try:
            cur.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", (dbname,))
            row = cur.fetchone()
            if row is not None:
                comment = row[0] or ""
                if comment == marker and not replace:
                    log.info("demo database %s already loaded", mask_url(target_url))
                    return target_url
                if not comment.startswith(_MARKER_PREFIX) and not replace:
                    raise DemoDatabaseError(
                        f"database {dbname!r} already exists and is not a data-pipeline demo database; "
                        "choose another name or pass replace=True to drop it"
                    )
                log.info("dropping the old demo database %s", dbname)
                cur.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(dbname)))
            log.info("creating demo database %s", mask_url(target_url))
            cur.execute(_create_statement(cur, dbname))
            comment_sql = sql.SQL("COMMENT ON DATABASE {} IS %s").format(sql.Identifier(dbname))
            cur.execute(comment_sql, (_LOADING,))
            _fill(target_url)
            cur.execute(comment_sql, (marker,))
        finally:
            cur.execute("SELECT pg_advisory_unlock(hashtext(%s))", (dbname,))
    return target_url
