"""Step 3 entry point: validate (and repair) the task's question/SQL pairs against the business database.

Order of work: find the pair file, reach the database (``SELECT 1``), check every pair side by side,
then, only when the run finished, back up and rewrite the pair file and write the reports. A run
that fails part-way (database lost, LLM service down) leaves the pair file as it was; the raised
``StepFailed`` keeps the cause, so the flow can tell a transient failure worth a retry.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import psycopg2

from dp.database import database_name
from dp.llm.client import ChatClient, LLMError
from dp.settings import Settings, get_settings
from steps.errors import StepFailed
from steps.sql_validation.heuristic import HeuristicRepairer
from steps.sql_validation.pair_check import PairChecker
from steps.sql_validation.pair_file import (
    dump_json,
    newest_pair_file,
    read_entries,
    rewritten,
    write_backup,
    write_text_atomic,
)
from steps.sql_validation.repair import LLMRepairer, Repairer
from steps.sql_validation.report import totals, write_reports
from steps.sql_validation.schema_context import SchemaContext
from steps.sql_validation.validator import QueryValidator

log = logging.getLogger(__name__)


def run_sql_validation(
    *,
    db_url: str,
    output_dir: Path,
    pair_file: Path | None = None,
    repair: bool = True,
    modify_file: bool = True,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Validate the pair file (default: the newest in ``output_dir``); returns totals and file paths."""
    settings = settings or get_settings()
    started = time.perf_counter()
    output_dir = Path(output_dir)
    path = _pair_file(output_dir, pair_file)
    try:
        entries = read_entries(path)
    except ValueError as exc:
        raise StepFailed(str(exc)) from None
    log.info("validating %d entries of %s against %s", len(entries), path.name, database_name(db_url))

    repairer = _repairer(settings, output_dir) if repair else None
    workers = settings.validation_concurrency
    if isinstance(repairer, LLMRepairer):
        # Threads waiting on the LLM hold no connection: with this many, a full set of LLM calls can be
        # in flight while the database checks go on (the pool and the LLM client bound each side).
        workers += settings.llm_max_concurrency
    try:
        with _closing(repairer), QueryValidator(
            db_url,
            timeout_ms=settings.validation_timeout_ms,
            lock_timeout_ms=int(settings.lock_timeout * 1000),
            concurrency=settings.validation_concurrency,
            execute=settings.validation_execute,
        ) as validator:
            validator.ping()
            checker = PairChecker(validator, repairer, max_rounds=settings.repair_max_rounds)
            results = checker.check_all(entries, workers=workers)
    except psycopg2.Error as exc:
        raise StepFailed(f"the database is unreachable, nothing was changed: {exc}".strip()) from exc
    except LLMError as exc:  # only transient ones get here: a retry of the step may succeed
        raise StepFailed(f"the LLM service failed, nothing was changed: {exc}") from exc

    backup, modified, deleted = None, 0, 0
    if modify_file:
        final_sql = {r.index: r.final_sql for r in results if r.status in ("valid", "repaired", "invalid")}
        kept, modified, deleted = rewritten(entries, final_sql)
        if modified or deleted:
            backup = write_backup(path)
            write_text_atomic(path, dump_json(kept))
            log.info("%s: %d SQL replaced, %d removed; original kept as %s", path.name, modified, deleted, backup.name)

    counts = totals(results, modified=modified, deleted=deleted)
    duration = round(time.perf_counter() - started, 3)
    run = {
        "pair_file": str(path),
        "backup_file": str(backup) if backup else None,
        "database": database_name(db_url),
        "options": {
            "repair": repair,
            "modify_file": modify_file,
            "provider": settings.llm_provider,
            "execute_check": settings.validation_execute,
            "timeout_ms": settings.validation_timeout_ms,
            "max_rounds": settings.repair_max_rounds,
        },
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "duration_s": duration,
    }
    report, summary = write_reports(output_dir, results=results, counts=counts, run=run)
    log.info(
        "validation done: %d/%d valid (%d repaired), %d invalid, %d skipped",
        counts["valid"], counts["total"], counts["repair"]["successful"], counts["invalid"], counts["skipped"],
    )  # fmt: skip
    return {
        **counts,
        "pair_file": str(path),
        "backup_file": run["backup_file"],
        "report_file": str(report),
        "summary_file": str(summary),
        "duration_s": duration,
    }


def _pair_file(output_dir: Path, given: Path | None) -> Path:
    if given is not None:
        path = Path(given)
        if not path.is_file():
            raise StepFailed(f"pair file {path} not found; run step 2 (qa_generation) first or give an existing file")
        return path
    path = newest_pair_file(output_dir)
    if path is None:
        raise StepFailed(f"no qs_*_pair.json in {output_dir}; run step 2 (qa_generation) first")
    return path


@contextmanager
def _closing(repairer: Repairer | None) -> Iterator[None]:
    try:
        yield
    finally:
        if isinstance(repairer, LLMRepairer):
            repairer.client.close()


def _repairer(settings: Settings, output_dir: Path) -> Repairer:
    context = SchemaContext.load(output_dir)
    if settings.llm_provider == "heuristic":
        return HeuristicRepairer(context)
    try:
        client = ChatClient.from_settings(settings)
    except ValueError as exc:
        raise StepFailed(str(exc)) from None
    return LLMRepairer(client, context, ddl_max_chars=settings.repair_ddl_max_chars)
