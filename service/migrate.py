"""Brings the service database schema up to date from the versioned files in ``service/migrations``.

Each pending file runs in its own transaction together with its row in
``data_pipeline_schema_migrations`` (version, name, sha256), under a transaction-scoped advisory
lock, so processes starting at once apply every file exactly once and the rest wait, then find
nothing to do. An applied file whose text changed is an error: schema changes are new files.
Run ``python -m service.migrate`` to migrate the configured service database by hand.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources

import psycopg2.extensions

from dp.database import connection, mask_url, service_database_url

log = logging.getLogger(__name__)

_LOCK_KEY = "data_pipeline_schema_migrations"
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS data_pipeline_schema_migrations (
    version    varchar(4) PRIMARY KEY,
    name       text NOT NULL,
    checksum   varchar(64) NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(RuntimeError):
    """The migration files and the database disagree; the message says what to fix."""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


def available_migrations() -> list[Migration]:
    """The migration files shipped with the package, in version order."""
    found: dict[str, Migration] = {}
    for entry in resources.files("service.migrations").iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_NAME.match(entry.name)
        if not match:
            raise MigrationError(f"migration file {entry.name!r} must be named NNNN_lowercase_words.sql")
        version = match.group(1)
        if version in found:
            raise MigrationError(f"two migration files share version {version}: {found[version].name}, {entry.name}")
        found[version] = Migration(version, entry.name[: -len(".sql")], entry.read_text(encoding="utf-8"))
    return [found[version] for version in sorted(found)]


def migrate(conn_or_url: psycopg2.extensions.connection | str) -> list[str]:
    """Apply every pending migration; returns the names applied by this call (empty when up to date).

    A connection passed in must be idle (no open transaction); it is left in its original autocommit
    mode and open. A URL is connected to and closed again.
    """
    if isinstance(conn_or_url, str):
        with connection(conn_or_url, application_name="data-pipeline-migrate") as conn:
            return _migrate(conn)
    return _migrate(conn_or_url)


def _migrate(conn: psycopg2.extensions.connection) -> list[str]:
    if conn.get_transaction_status() != psycopg2.extensions.TRANSACTION_STATUS_IDLE:
        raise MigrationError("migrate() needs a connection with no open transaction; commit or roll back first")
    migrations = available_migrations()
    was_autocommit = conn.autocommit
    conn.autocommit = False
    applied: list[str] = []
    try:
        while (name := _apply_next(conn, migrations)) is not None:
            applied.append(name)
    finally:
        conn.autocommit = was_autocommit
    return applied


def _apply_next(conn: psycopg2.extensions.connection, migrations: list[Migration]) -> str | None:
    """In one transaction: lock, check recorded checksums, apply the first pending file (if any)."""
    with conn, conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (_LOCK_KEY,))
        cur.execute(_BOOKKEEPING)
        cur.execute("SELECT version, name, checksum FROM data_pipeline_schema_migrations")
        recorded = {version: (name, checksum) for version, name, checksum in cur.fetchall()}
        for migration in migrations:
            if migration.version in recorded:
                name, checksum = recorded[migration.version]
                if checksum != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.name} differs from the copy applied as {name}; "
                        "restore the file and put the change in a new migration"
                    )
                continue
            log.info("applying migration %s", migration.name)
            cur.execute(migration.sql)
            cur.execute(
                "INSERT INTO data_pipeline_schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                (migration.version, migration.name, migration.checksum),
            )
            return migration.name
        unknown = sorted(set(recorded) - {m.version for m in migrations})
        if unknown:
            log.warning("database has migrations this code does not know (%s): is it newer?", ", ".join(unknown))
        return None


def main() -> None:
    """Migrate the configured service database and say what was applied."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    url = service_database_url()
    applied = migrate(url)
    print(f"{mask_url(url)}: " + (f"applied {', '.join(applied)}" if applied else "up to date"))


if __name__ == "__main__":
    main()
