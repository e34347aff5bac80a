"""The Prefect flow ``schema_workflow``: steps 1-4 as Prefect tasks, in order or one at a time.

The flow holds no business logic: it resolves the connection reference inside the run (a password
is never a parameter), decides which steps run (flows/plan.py), moves old outputs away before step 1,
and calls each step's plain-Python entry function inside a task with retries for transient failures
and a timeout. Each step's result is written to ``<step>_result.json`` and published as artifacts.
A step's failure fails the flow with the step named.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Callable

import psycopg2
from prefect import flow, task

from dp.connections import resolve_connection
from dp.logs import task_log_file
from dp.settings import get_settings
from dp.table_list import read_table_list_file
from dp.task_dir import TABLE_LIST_NAME, backup_previous_outputs
from flows.artifacts import publish_step_artifacts
from flows.plan import STEPS, make_plan
from steps.ddl_generation.step import run_ddl_generation
from steps.errors import StepFailed
from steps.qa_generation.step import run_qa_generation
from steps.sql_validation.step import run_sql_validation
from steps.training_load.step import run_training_load

log = logging.getLogger(__name__)


def is_transient(exc: BaseException | None) -> bool:
    """Failures worth a retry: lost database connections and LLM/embedding 429/5xx/timeouts."""
    while exc is not None:
        if isinstance(exc, psycopg2.OperationalError) or getattr(exc, "transient", False):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _retry_when_transient(task, task_run, state) -> bool:
    try:
        state.result()
    except Exception as exc:  # the failed run's exception, re-raised by Prefect
        return is_transient(exc)
    return False


def _run_step(task_id: str, step: str, output_dir: Path, call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    log.info("step %s started", step)
    started = time.monotonic()
    try:
        result = call()
    except Exception as exc:
        log.error("step %s failed: %s", step, exc)
        raise StepFailed(f"step {step} failed: {exc}") from exc
    result.setdefault("duration_s", round(time.monotonic() - started, 3))
    (output_dir / f"{step}_result.json").write_text(
        json.dumps(result, ensure_ascii=False, indent=2, default=str), encoding="utf-8"
    )
    publish_step_artifacts(task_id, step, result)
    log.info("step %s completed in %.1f s", step, result["duration_s"])
    return result


@task(name="ddl_generation", retry_condition_fn=_retry_when_transient)
def ddl_generation(task_id: str, connection: str, output_dir: str, business_context: str) -> dict:
    """Step 1: DDL files and data dictionaries for the task's table list."""
    out = Path(output_dir)
    return _run_step(task_id, "ddl_generation", out, lambda: run_ddl_generation(
        db_url=resolve_connection(connection), tables=read_table_list_file(out / TABLE_LIST_NAME)[1], output_dir=out,
        business_context=business_context))


@task(name="qa_generation", retry_condition_fn=_retry_when_transient)
def qa_generation(task_id: str, output_dir: str, business_context: str) -> dict:
    """Step 2: themes and question/SQL pairs from the step-1 dictionaries."""
    out = Path(output_dir)
    return _run_step(task_id, "qa_generation", out, lambda: run_qa_generation(
        output_dir=out, business_context=business_context or None))


@task(name="sql_validation", retry_condition_fn=_retry_when_transient)
def sql_validation(task_id: str, connection: str, output_dir: str, repair: bool, modify_file: bool) -> dict:
    """Step 3: every pair's SQL guarded, checked read-only against the database, repaired or removed."""
    out = Path(output_dir)
    return _run_step(task_id, "sql_validation", out, lambda: run_sql_validation(
        db_url=resolve_connection(connection), output_dir=out, repair=repair, modify_file=modify_file))


@task(name="training_load", retry_condition_fn=_retry_when_transient)
def training_load(task_id: str, output_dir: str, backup: bool, truncate: bool) -> dict:
    """Step 4: embed DDL, dictionaries and pairs into the vector store and check retrieval."""
    out = Path(output_dir)
    return _run_step(task_id, "training_load", out, lambda: run_training_load(
        output_dir=out, task_id=task_id, backup=backup, truncate=truncate))


@flow(name="schema_workflow", flow_run_name="{task_id}")
def schema_workflow(
    task_id: str,
    connection: str,
    output_dir: str,
    business_context: str = "",
    execution_mode: str = "complete",
    single_step: str | None = None,
    from_step: str | None = None,
    skip_validation: bool = False,
    disable_llm_repair: bool = False,
    no_modify_file: bool = False,
    skip_training_load: bool = False,
    backup_vector_tables: bool = False,
    truncate_vector_tables: bool = False,
) -> dict:
    """Run steps 1-4 (complete) or one step (single) for one task directory.

    ``connection`` is a reference (named:<name>, secret:<block>, or a URL without password), never a
    URL with a password. ``from_step`` re-runs a complete task from that step onward.
    """
    plan = make_plan(execution_mode, single_step, from_step, skip_validation, skip_training_load)
    settings = get_settings()
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    retry = dict(retries=settings.step_retries, retry_delay_seconds=settings.step_retry_delay,
                 timeout_seconds=settings.step_timeout)
    calls = {
        "ddl_generation": lambda: ddl_generation.with_options(**retry)(task_id, connection, output_dir, business_context),
        "qa_generation": lambda: qa_generation.with_options(**retry)(task_id, output_dir, business_context),
        "sql_validation": lambda: sql_validation.with_options(**retry)(
            task_id, connection, output_dir, not disable_llm_repair, not no_modify_file),
        "training_load": lambda: training_load.with_options(**retry)(
            task_id, output_dir, backup_vector_tables, truncate_vector_tables),
    }
    results: dict[str, Any] = {}  # in step order, skipped steps included
    with task_log_file(out):
        log.info("task %s: running %s", task_id, ", ".join(plan.run))
        if "ddl_generation" in plan.run:
            moved = backup_previous_outputs(out)
            if moved:
                log.info("earlier outputs moved to %s", moved.name)
        for step in STEPS:
            if step in plan.run:
                results[step] = calls[step]()
            elif step in plan.skipped:
                results[step] = {"status": "skipped"}
        log.info("task %s: all requested steps completed", task_id)
    return {"task_id": task_id, "output_dir": str(out), "steps": results}
