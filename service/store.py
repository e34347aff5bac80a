"""All SQL on the tracking tables (tasks, step runs, logs, outputs, idempotency keys).

Keyword-only functions take a psycopg2 connection first and never commit: the caller owns the
transaction (``with conn: store.create_task(conn, ...)``), so several calls can be made atomic.
Rows are plain dicts of JSON-ready values (timestamps as UTC ISO strings, uuids as str).
Invariants: no readable password is stored; an older step-run state never overwrites a newer one
and a finished run never goes back to running; a Prefect log is stored once; claims never let more
than ``limit`` tasks hold a run slot. Step names are ``STEPS`` and nothing else (K16).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import psycopg2.errors
import psycopg2.extensions
from psycopg2 import sql
from psycopg2.extensions import ISOLATION_LEVEL_REPEATABLE_READ, ISOLATION_LEVEL_SERIALIZABLE
from psycopg2.extras import Json, RealDictCursor, execute_values

from dp.database import mask_url
from dp.task_ids import validate_task_id
from flows.plan import STEPS

Connection = psycopg2.extensions.connection

TASK_STATUSES = ("pending", "in_progress", "partial_completed", "completed", "failed", "cancelled")
STEP_STATUSES = ("pending", "running", "completed", "failed", "skipped", "cancelled")
EXECUTION_STATUSES = ("pending", "running", "completed", "failed", "cancelled")
CREATED_BY = ("api", "manual", "schedule", "system")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_DSN_PASSWORD = re.compile(r"\bpassword\s*=\s*(?!\*\*\*)[^\s']")  # libpq key=value form
# Tasks holding a run slot: running, or queued in Prefect and about to run.
_ACTIVE = "(status = 'in_progress' OR (status = 'pending' AND prefect_flow_run_id IS NOT NULL))"
_RUN_SLOT_LOCK = "data_pipeline_tasks.run_slot"
_TASK_SORTS = (
    "created_at", "started_at", "completed_at", "updated_at", "status", "progress", "id", "db_name", "task_type",
    "created_by",
)
_TASK_FIELDS = {
    "status", "progress", "current_step", "step_status", "error_message", "error_step", "result", "parameters",
    "started_at", "completed_at", "output_directory", "db_name", "business_context", "task_type",
    "prefect_flow_run_id", "last_flow_run_state", "prefect_updated_at", "mirrored_at",
}
_JSON_FIELDS = {"step_status", "result", "parameters"}
_LOG_FIELDS = {
    "log_level", "message", "timestamp", "step_name", "module_name", "function_name", "extra_data", "prefect_log_id",
    "prefect_task_run_id",
}
_OUTPUT_FIELDS = {
    "file_path", "file_type", "file_name", "file_size", "content_hash", "description", "modified_at", "is_primary",
    "is_downloadable", "execution_id",
}


class TaskExistsError(ValueError):
    """A task with this id already exists; generate a new id."""


class TaskNotFoundError(LookupError):
    """No task has this id."""


class TaskActiveError(RuntimeError):
    """The task is running or queued to run; cancel it first."""


class UnmaskedSecretError(ValueError):
    """A value to be stored holds a connection string with a readable password."""


class IdempotencyConflictError(ValueError):
    """An idempotency key was reused for a different request."""


# --- helpers ----------------------------------------------------------------------------------


def _one_of(value: Any, allowed: Sequence[str], what: str) -> Any:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(allowed)} (got {value!r})")
    return value


def _aware(value: datetime | str | None, what: str) -> datetime | str | None:
    """Timestamps must carry a time zone; a string is passed to PostgreSQL as is (``'now'`` works)."""
    if isinstance(value, datetime) and value.tzinfo is None:
        raise ValueError(f"{what} must be timezone-aware (e.g. datetime.now(timezone.utc)), got {value!r}")
    return value


def _refuse_unmasked(value: Any, where: str) -> None:
    """Refuse any connection string in ``value`` whose password is not masked (``mask_url``)."""
    if isinstance(value, dict):
        for key, item in value.items():
            _refuse_unmasked(item, f"{where}.{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _refuse_unmasked(item, f"{where}[{index}]")
    elif isinstance(value, str) and _DSN_PASSWORD.search(value):
        raise UnmaskedSecretError(
            f"{where} holds a key=value connection string with a password; store a URL masked with mask_url"
        )
    elif isinstance(value, str) and "://" in value:
        try:
            password = urlsplit(value).password
        except ValueError:
            return
        if password and password != "***":
            raise UnmaskedSecretError(
                f"{where} holds a connection string with a readable password; store {mask_url(value)!r} "
                "(dp.database.mask_url) instead"
            )


def _json(value: Any, where: str | None) -> Json | None:
    """A jsonb parameter; unless ``where`` is None, refused when it holds an unmasked password."""
    if value is None:
        return None
    if where is not None:
        _refuse_unmasked(value, where)
    return Json(value, dumps=lambda v: json.dumps(v, ensure_ascii=False, default=str))


_PLAIN_TYPES = frozenset({str, int, bool, float, dict, list, type(None)})


def _jsonable(value: Any) -> Any:
    if type(value) in _PLAIN_TYPES:  # most columns: the isinstance checks below cost more than the read
        return value
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _row(row: dict) -> dict:
    out = {key: _jsonable(value) for key, value in row.items()}
    if isinstance(out.get("step_status"), dict):  # jsonb forgets key order; show steps in run order
        out["step_status"] = {step: out["step_status"].get(step) for step in STEPS}
    return out


def _rows(cur) -> list[dict]:
    return [_row(row) for row in cur.fetchall()]


def _first(cur) -> dict | None:
    rows = _rows(cur)
    return rows[0] if rows else None


def _cursor(conn: Connection):
    return conn.cursor(cursor_factory=RealDictCursor)


@contextmanager
def _existing_task(task_id: str) -> Iterator[None]:
    """Turn "the referenced task is missing" into ``TaskNotFoundError`` (the transaction is aborted)."""
    try:
        yield
    except psycopg2.errors.ForeignKeyViolation as exc:
        if (exc.diag.constraint_name or "").endswith("_task_id_fkey"):
            raise TaskNotFoundError(f"task {task_id} does not exist") from exc
        raise


def _check_step_status(step_status: Any) -> None:
    if not isinstance(step_status, dict) or set(step_status) != set(STEPS):
        raise ValueError(f"step_status must map exactly the steps {', '.join(STEPS)} to a status")
    for step, status in step_status.items():
        _one_of(status, STEP_STATUSES, f"step_status[{step!r}]")


def _check_limit(limit: int, offset: int = 0) -> None:
    if not 1 <= limit <= 1000:
        raise ValueError(f"limit must be between 1 and 1000 (got {limit})")
    if offset < 0:
        raise ValueError(f"offset must be 0 or more (got {offset})")


# --- tasks ------------------------------------------------------------------------------------


def create_task(
    conn: Connection,
    *,
    task_id: str,
    task_type: str,
    parameters: dict,
    created_by: str,
    output_directory: str | None,
    db_name: str | None,
    business_context: str | None,
    status: str = "pending",
) -> dict:
    """Insert a new task; a taken id raises ``TaskExistsError`` (never a bare integrity error)."""
    validate_task_id(task_id)
    _one_of(created_by, CREATED_BY, "created_by")
    _one_of(status, TASK_STATUSES, "status")
    if not isinstance(parameters, dict):
        raise ValueError("parameters must be a dict")
    with _cursor(conn) as cur:
        cur.execute(
            """
            INSERT INTO data_pipeline_tasks
                (id, task_type, parameters, created_by, output_directory, db_name, business_context, status)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (id) DO NOTHING
            RETURNING *
            """,
            (task_id, task_type, _json(parameters, "parameters"), created_by, output_directory, db_name,
             business_context, status),
        )
        row = _first(cur)
    if row is None:
        raise TaskExistsError(f"task {task_id} already exists")
    return row


def get_task(conn: Connection, *, task_id: str, for_update: bool = False) -> dict | None:
    """The task row; ``for_update`` locks it until the caller's transaction ends (one writer at a time)."""
    with _cursor(conn) as cur:
        cur.execute("SELECT * FROM data_pipeline_tasks WHERE id = %s" + (" FOR UPDATE" if for_update else ""), (task_id,))
        return _first(cur)


def list_tasks(
    conn: Connection,
    *,
    status: str | Sequence[str] | None = None,
    created_by: str | None = None,
    db_name: str | None = None,
    created_from: datetime | str | None = None,
    created_to: datetime | str | None = None,
    sort: str = "created_at",
    order: str = "desc",
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[dict], int]:
    """One page of tasks and the total matching the filters; ``created_from`` inclusive, ``created_to`` exclusive."""
    _one_of(sort, _TASK_SORTS, "sort")
    _one_of(order, ("asc", "desc"), "order")
    _check_limit(limit, offset)
    where, args = [], []
    if status is not None:
        statuses = [status] if isinstance(status, str) else list(status)
        for one in statuses:
            _one_of(one, TASK_STATUSES, "status")
        where.append("status = ANY(%s)")
        args.append(statuses)
    if created_by is not None:
        where.append("created_by = %s")
        args.append(_one_of(created_by, CREATED_BY, "created_by"))
    if db_name is not None:
        where.append("db_name = %s")
        args.append(db_name)
    if created_from is not None:
        where.append("created_at >= %s")
        args.append(_aware(created_from, "created_from"))
    if created_to is not None:
        where.append("created_at < %s")
        args.append(_aware(created_to, "created_to"))
    condition = sql.SQL(" WHERE " + " AND ".join(where) if where else "")
    direction = sql.SQL("ASC" if order == "asc" else "DESC")
    with _cursor(conn) as cur:
        cur.execute(sql.SQL("SELECT count(*) AS total FROM data_pipeline_tasks{}").format(condition), args)
        total = cur.fetchone()["total"]
        cur.execute(
            sql.SQL("SELECT * FROM data_pipeline_tasks{} ORDER BY {} {} NULLS LAST, id {} LIMIT %s OFFSET %s").format(
                condition, sql.Identifier(sort), direction, direction
            ),
            [*args, limit, offset],
        )
        return _rows(cur), total


def active_tasks(conn: Connection) -> list[dict]:
    """Tasks holding a run slot (in progress, or pending with a Prefect flow run), oldest first."""
    with _cursor(conn) as cur:
        cur.execute(f"SELECT * FROM data_pipeline_tasks WHERE {_ACTIVE} ORDER BY coalesce(started_at, created_at), id")
        return _rows(cur)


def update_task(conn: Connection, *, task_id: str, **fields: Any) -> dict | None:
    """Set some of the allow-listed columns; returns the updated task, or None when there is none.

    Timestamps may be aware datetimes, ISO strings or ``"now"`` (the transaction's time).
    """
    unknown = set(fields) - _TASK_FIELDS
    if unknown:
        raise ValueError(f"cannot update {', '.join(sorted(unknown))}; updatable: {', '.join(sorted(_TASK_FIELDS))}")
    if not fields:
        return get_task(conn, task_id=task_id)
    if "status" in fields:
        _one_of(fields["status"], TASK_STATUSES, "status")
    for name in ("current_step", "error_step"):
        if fields.get(name) is not None:
            _one_of(fields[name], STEPS, name)
    if "step_status" in fields:
        _check_step_status(fields["step_status"])
    if "progress" in fields and not (isinstance(fields["progress"], int) and 0 <= fields["progress"] <= 100):
        raise ValueError(f"progress must be an integer from 0 to 100 (got {fields['progress']!r})")
    values = []
    for name, value in fields.items():
        if name in _JSON_FIELDS:
            value = _json(value, name)
        elif name.endswith("_at"):
            value = _aware(value, name)
        elif name == "prefect_flow_run_id" and value is not None:
            value = str(uuid.UUID(str(value)))
        values.append(value)
    assignments = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(name)) for name in fields)
    with _cursor(conn) as cur:
        cur.execute(
            sql.SQL("UPDATE data_pipeline_tasks SET {} WHERE id = %s RETURNING *").format(assignments),
            [*values, task_id],
        )
        return _first(cur)


def set_step_status(conn: Connection, *, task_id: str, step: str, status: str) -> dict | None:
    """Set one step's entry in ``step_status``; returns the updated task, or None when there is none."""
    _one_of(step, STEPS, "step")
    _one_of(status, STEP_STATUSES, "status")
    with _cursor(conn) as cur:
        cur.execute(
            """
            UPDATE data_pipeline_tasks SET step_status = jsonb_set(step_status, ARRAY[%s], to_jsonb(%s::text))
             WHERE id = %s RETURNING *
            """,
            (step, status, task_id),
        )
        return _first(cur)


def delete_task(conn: Connection, *, task_id: str) -> bool:
    """Delete a task with its step runs, logs, outputs and keys; False when there is none.

    A task holding a run slot is not deleted (``TaskActiveError``): cancel it first.
    """
    with _cursor(conn) as cur:
        cur.execute(f"DELETE FROM data_pipeline_tasks WHERE id = %s AND NOT {_ACTIVE} RETURNING id", (task_id,))
        if cur.fetchone():
            return True
        cur.execute("SELECT status FROM data_pipeline_tasks WHERE id = %s", (task_id,))
        row = cur.fetchone()
    if row is None:
        return False
    raise TaskActiveError(f"task {task_id} is {row['status']} with a run; cancel it before deleting it")


def claim_run_slot(conn: Connection, *, task_id: str, limit: int) -> bool:
    """Mark the task in_progress if fewer than ``limit`` other tasks hold a run slot; False otherwise.

    Claims are serialised by a transaction-scoped advisory lock, so concurrent claims never exceed
    the limit; the lock is held until the caller commits, so commit right away. Also False when the
    task is already in_progress (a task never runs twice at once). Claim once per run, before the
    flow run is created. The claim starts a new run: started_at is now, the previous completion
    time and error are cleared.
    """
    if conn.autocommit:
        raise ValueError("claim_run_slot needs a transaction (a connection with autocommit off)")
    if conn.isolation_level in (ISOLATION_LEVEL_REPEATABLE_READ, ISOLATION_LEVEL_SERIALIZABLE):
        raise ValueError("claim_run_slot needs READ COMMITTED isolation, so the count sees claims committed meanwhile")
    if limit < 0:
        raise ValueError(f"limit must be 0 or more (got {limit})")
    with _cursor(conn) as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (_RUN_SLOT_LOCK,))
        cur.execute("SELECT status FROM data_pipeline_tasks WHERE id = %s FOR UPDATE", (task_id,))
        row = cur.fetchone()
        if row is None:
            raise TaskNotFoundError(f"task {task_id} does not exist")
        if row["status"] == "in_progress":
            return False
        cur.execute(f"SELECT count(*) AS held FROM data_pipeline_tasks WHERE {_ACTIVE} AND id <> %s", (task_id,))
        if cur.fetchone()["held"] >= limit:
            return False
        cur.execute(
            """
            UPDATE data_pipeline_tasks
               SET status = 'in_progress', started_at = now(), completed_at = NULL, error_message = NULL,
                   error_step = NULL
             WHERE id = %s
            """,
            (task_id,),
        )
        return True


def claims_without_flow_run(conn: Connection, *, older_than_seconds: float) -> list[str]:
    """In-progress tasks that got a run slot but no flow run for this long (their starter died)."""
    with conn.cursor() as cur:
        cur.execute(
            """
            SELECT id FROM data_pipeline_tasks
             WHERE status = 'in_progress' AND prefect_flow_run_id IS NULL
               AND started_at < now() - make_interval(secs => %s)
             ORDER BY started_at
            """,
            (older_than_seconds,),
        )
        return [row[0] for row in cur.fetchall()]


def task_ids_to_mirror(conn: Connection) -> list[str]:
    """Ids of unfinished (pending or in_progress) tasks that have a Prefect flow run, oldest first."""
    with conn.cursor() as cur:
        cur.execute(
            """
            SELECT id FROM data_pipeline_tasks
             WHERE prefect_flow_run_id IS NOT NULL AND status IN ('pending', 'in_progress')
             ORDER BY created_at, id
            """
        )
        return [row[0] for row in cur.fetchall()]


def cleanup_old_tasks(conn: Connection, *, days: int) -> list[dict]:
    """Delete completed/failed/cancelled tasks finished more than ``days`` days ago.

    Returns ``{task_id, output_directory}`` of each deleted task, so the caller can remove the files.
    """
    if days < 0:
        raise ValueError(f"days must be 0 or more (got {days})")
    with _cursor(conn) as cur:
        cur.execute("SELECT * FROM delete_old_data_pipeline_tasks(%s)", (days,))
        return _rows(cur)


# --- idempotency keys -------------------------------------------------------------------------


def get_or_store_idempotency_key(conn: Connection, *, key: str, request_hash: str, task_id: str) -> str | None:
    """None when ``key`` is new (now stored for ``task_id``); else the task id stored with it first.

    The same key with a different ``request_hash`` raises ``IdempotencyConflictError``. A concurrent
    first use of the same key waits for the other transaction and then sees its task. The task
    itself may be inserted after the key in the same transaction (the reference is checked at commit).
    """
    if not key or len(key) > 255:
        raise ValueError("idempotency key must be 1-255 characters")
    with _cursor(conn) as cur:
        for _ in range(2):  # a second round only if the stored key vanished with its task meanwhile
            cur.execute(
                """
                INSERT INTO data_pipeline_idempotency_keys (key, request_hash, task_id) VALUES (%s, %s, %s)
                ON CONFLICT (key) DO NOTHING RETURNING key
                """,
                (key, request_hash, task_id),
            )
            if cur.fetchone():
                return None
            cur.execute("SELECT request_hash, task_id FROM data_pipeline_idempotency_keys WHERE key = %s", (key,))
            row = cur.fetchone()
            if row is None:
                continue
            if row["request_hash"] != request_hash:
                raise IdempotencyConflictError(
                    f"idempotency key {key!r} was used for a different request (task {row['task_id']}); use a new key"
                )
            return row["task_id"]
    raise IdempotencyConflictError(f"idempotency key {key!r} keeps changing; retry the request")


# --- step runs (executions) -------------------------------------------------------------------


def upsert_execution(
    conn: Connection,
    *,
    task_id: str,
    step: str,
    prefect_task_run_id: str | uuid.UUID,
    status: str,
    state_timestamp: datetime | str,
    state_name: str | None = None,
    prefect_flow_run_id: str | uuid.UUID | None = None,
    started_at: datetime | str | None = None,
    completed_at: datetime | str | None = None,
    execution_result: dict | None = None,
    error_message: str | None = None,
) -> dict:
    """Record the state of one step run, keyed by its Prefect task run; returns the stored row.

    The update is skipped when ``state_timestamp`` is older than the stored one, or when the stored
    run is finished and the new status is not (a late "running" never undoes "completed").
    ``status`` "crashed" is stored as "failed" (``state_name`` keeps Prefect's word). Logs that
    arrived before this run's row are linked to it here.
    """
    _one_of(step, STEPS, "step")
    _one_of(status, (*EXECUTION_STATUSES, "crashed"), "status")
    if state_timestamp is None:
        raise ValueError("state_timestamp is required: the time of the Prefect state being recorded")
    if status == "crashed":
        status = "failed"
        error_message = error_message or "crashed: the process running this step stopped unexpectedly"
    run_id = uuid.UUID(str(prefect_task_run_id))
    execution_id = f"{task_id}_{step}_{run_id.hex[-8:]}"  # the random end of a uuid4/uuid7
    with _cursor(conn) as cur, _existing_task(task_id):
        cur.execute(
            """
            INSERT INTO data_pipeline_task_executions AS e
                (task_id, execution_id, execution_step, status, state_name, state_timestamp, started_at,
                 completed_at, execution_result, error_message, prefect_task_run_id, prefect_flow_run_id)
            VALUES (%(task_id)s, %(execution_id)s, %(step)s, %(status)s, %(state_name)s, %(state_timestamp)s,
                    %(started_at)s, %(completed_at)s, %(execution_result)s, %(error_message)s,
                    %(run_id)s, %(flow_run_id)s)
            ON CONFLICT (prefect_task_run_id) DO UPDATE SET
                status = EXCLUDED.status,
                state_name = EXCLUDED.state_name,
                state_timestamp = EXCLUDED.state_timestamp,
                started_at = coalesce(EXCLUDED.started_at, e.started_at),
                completed_at = EXCLUDED.completed_at,
                execution_result = coalesce(EXCLUDED.execution_result, e.execution_result),
                error_message = EXCLUDED.error_message,
                prefect_flow_run_id = coalesce(EXCLUDED.prefect_flow_run_id, e.prefect_flow_run_id)
            WHERE EXCLUDED.state_timestamp >= e.state_timestamp
              AND NOT (e.status IN ('completed', 'failed', 'cancelled')
                       AND EXCLUDED.status NOT IN ('completed', 'failed', 'cancelled'))
            """,
            {
                "task_id": task_id,
                "execution_id": execution_id,
                "step": step,
                "status": status,
                "state_name": state_name,
                "state_timestamp": _aware(state_timestamp, "state_timestamp"),
                "started_at": _aware(started_at, "started_at"),
                "completed_at": _aware(completed_at, "completed_at"),
                "execution_result": _json(execution_result, "execution_result"),
                "error_message": error_message,
                "run_id": str(run_id),
                "flow_run_id": str(prefect_flow_run_id) if prefect_flow_run_id else None,
            },
        )
        cur.execute(
            """
            UPDATE data_pipeline_task_logs l
               SET execution_id = e.execution_id, step_name = coalesce(l.step_name, e.execution_step)
              FROM data_pipeline_task_executions e
             WHERE e.prefect_task_run_id = %(run_id)s AND l.prefect_task_run_id = e.prefect_task_run_id
               AND l.task_id = e.task_id AND l.execution_id IS NULL
            """,
            {"run_id": str(run_id)},
        )
        cur.execute("SELECT * FROM data_pipeline_task_executions WHERE prefect_task_run_id = %s", (str(run_id),))
        return _first(cur)


def list_executions(conn: Connection, *, task_id: str) -> list[dict]:
    """The task's step runs in the order they started."""
    with _cursor(conn) as cur:
        cur.execute(
            """
            SELECT * FROM data_pipeline_task_executions WHERE task_id = %s
             ORDER BY coalesce(started_at, state_timestamp), id
            """,
            (task_id,),
        )
        return _rows(cur)


def get_task_with_executions(conn: Connection, *, task_id: str) -> tuple[dict | None, list[dict]]:
    """``get_task`` and ``list_executions`` in one round trip (the REST API's task detail, its hot path)."""
    with _cursor(conn) as cur:
        cur.execute(
            """
            SELECT t.*, (SELECT coalesce(json_agg(e ORDER BY coalesce(e.started_at, e.state_timestamp), e.id), '[]')
                           FROM data_pipeline_task_executions e WHERE e.task_id = t.id) AS executions
              FROM data_pipeline_tasks t WHERE t.id = %s
            """,
            (task_id,),
        )
        row = cur.fetchone()
    if row is None:
        return None, []
    executions = row.pop("executions")
    for execution in executions:  # JSON gives timestamps in the session's zone: as the other readers, UTC
        for key in ("state_timestamp", "started_at", "completed_at"):
            if execution[key] is not None:
                execution[key] = _jsonable(datetime.fromisoformat(execution[key]))
    return _row(row), executions


def close_running_executions(conn: Connection, *, task_id: str, status: str, error_message: str | None = None) -> int:
    """After a crash or cancel: end the task's pending/running step runs and running steps with ``status``.

    Returns how many step runs were closed. Their state timestamps are kept, so a finished state that
    Prefect reports later (it really completed) still wins over this inference.
    """
    _one_of(status, ("failed", "cancelled", "crashed"), "status")
    if status == "crashed":
        status = "failed"
    with _cursor(conn) as cur:
        cur.execute(
            """
            UPDATE data_pipeline_task_executions
               SET status = %(status)s, completed_at = coalesce(completed_at, now()),
                   error_message = coalesce(%(error)s, error_message)
             WHERE task_id = %(task_id)s AND status IN ('pending', 'running')
            """,
            {"status": status, "error": error_message, "task_id": task_id},
        )
        closed = cur.rowcount
        cur.execute(
            """
            UPDATE data_pipeline_tasks
               SET step_status = (SELECT jsonb_object_agg(key, CASE WHEN value = '"running"'
                                                                    THEN to_jsonb(%(status)s::text) ELSE value END)
                                    FROM jsonb_each(step_status))
             WHERE id = %(task_id)s AND step_status @? '$.* ? (@ == "running")'
            """,
            {"status": status, "task_id": task_id},
        )
    return closed


# --- logs -------------------------------------------------------------------------------------


def _log_level(level: Any) -> str:
    if isinstance(level, int):  # logging's numbers: 10 DEBUG ... 50 CRITICAL, others to the level below
        level = LOG_LEVELS[min(max(level // 10 - 1, 0), len(LOG_LEVELS) - 1)]
    level = str(level).upper()
    return {"WARN": "WARNING", "FATAL": "CRITICAL"}.get(level, level)


def insert_logs(conn: Connection, *, task_id: str, logs: Iterable[dict]) -> int:
    """Append log lines of a task; returns how many were new.

    Each dict has ``message`` and ``log_level`` (a name, or a number as in ``logging``) and optionally
    ``timestamp``, ``step_name``, ``module_name`` (the logger), ``function_name``, ``extra_data``,
    ``prefect_log_id`` and ``prefect_task_run_id``. A ``prefect_log_id`` seen before is skipped. The
    step run and step come from ``prefect_task_run_id`` when its run is recorded (else later, by
    ``upsert_execution``).
    """
    rows = []
    for index, entry in enumerate(logs):
        unknown = set(entry) - _LOG_FIELDS
        if unknown:
            raise ValueError(f"log {index} has unknown keys {sorted(unknown)}; allowed: {sorted(_LOG_FIELDS)}")
        if entry.get("message") is None:
            raise ValueError(f"log {index} has no message")
        level = _one_of(_log_level(entry.get("log_level")), LOG_LEVELS, f"log {index} log_level")
        if entry.get("step_name") is not None:
            _one_of(entry["step_name"], STEPS, f"log {index} step_name")
        run_id = entry.get("prefect_task_run_id")
        rows.append(
            {
                "task_id": task_id,
                "log_level": level,
                "message": str(entry["message"]),
                "timestamp": _aware(entry.get("timestamp"), f"log {index} timestamp"),
                "step_name": entry.get("step_name"),
                "module_name": entry.get("module_name"),
                "function_name": entry.get("function_name"),
                "extra_data": _json(entry.get("extra_data") or {}, None),
                "prefect_log_id": str(entry["prefect_log_id"]) if entry.get("prefect_log_id") else None,
                "run_id": str(run_id) if run_id else None,
            }
        )
    if not rows:
        return 0
    with _cursor(conn) as cur, _existing_task(task_id):
        inserted = execute_values(
            cur,
            """
            INSERT INTO data_pipeline_task_logs AS l
                (task_id, log_level, message, "timestamp", step_name, module_name, function_name, extra_data,
                 prefect_log_id, prefect_task_run_id, execution_id)
            SELECT v.task_id, v.log_level, v.message, coalesce(v.ts, now()), coalesce(v.step_name, e.execution_step),
                   v.module_name, v.function_name, v.extra_data, v.prefect_log_id, v.run_id, e.execution_id
              FROM (VALUES %s) AS v (ord, task_id, log_level, message, ts, step_name, module_name, function_name,
                                     extra_data, prefect_log_id, run_id)
              LEFT JOIN data_pipeline_task_executions e ON e.prefect_task_run_id = v.run_id AND e.task_id = v.task_id
             ORDER BY v.ord
            ON CONFLICT (prefect_log_id) DO NOTHING
            RETURNING l.id
            """,
            [{"ord": index, **row} for index, row in enumerate(rows)],
            template=(
                "(%(ord)s, %(task_id)s, %(log_level)s, %(message)s, %(timestamp)s::timestamptz, %(step_name)s,"
                " %(module_name)s, %(function_name)s, %(extra_data)s::jsonb, %(prefect_log_id)s::uuid,"
                " %(run_id)s::uuid)"
            ),
            fetch=True,
        )
    return len(inserted)


def list_logs(
    conn: Connection,
    *,
    task_id: str,
    level: str | None = None,
    step: str | None = None,
    after: int | None = None,
    limit: int = 100,
    order: str = "asc",
) -> list[dict]:
    """A page of a task's logs, paged by ``id``: pass the last id seen as ``after`` for the next page.

    ``level`` is a minimum (``WARNING`` gives warnings, errors and critical lines); ``after`` means
    "further along in ``order``" (smaller ids when descending).
    """
    _one_of(order, ("asc", "desc"), "order")
    _check_limit(limit)
    where, args = ["task_id = %s"], [task_id]
    if level is not None:
        level = _one_of(_log_level(level), LOG_LEVELS, "level")
        where.append("log_level = ANY(%s)")
        args.append(list(LOG_LEVELS[LOG_LEVELS.index(level):]))
    if step is not None:
        where.append("step_name = %s")
        args.append(_one_of(step, STEPS, "step"))
    if after is not None:
        where.append("id > %s" if order == "asc" else "id < %s")
        args.append(after)
    with _cursor(conn) as cur:
        cur.execute(
            f"SELECT * FROM data_pipeline_task_logs WHERE {' AND '.join(where)} ORDER BY id {order.upper()} LIMIT %s",
            [*args, limit],
        )
        return _rows(cur)


# --- output files -----------------------------------------------------------------------------


def _relative_path(path: Any) -> str:
    text = str(path)
    parts = PurePosixPath(text).parts
    if not text or text.startswith("/") or "\\" in text or any(part in (".", "..") for part in text.split("/")):
        raise ValueError(f"output file_path must be relative to the task directory without . or .. (got {text!r})")
    return "/".join(parts)


def upsert_outputs(conn: Connection, *, task_id: str, files: Iterable[dict]) -> dict:
    """Make the task's output rows match a directory scan: upsert each file, remove rows of files gone.

    Each dict has ``file_path`` (relative to the task directory) and ``file_type``, and optionally
    ``file_name`` (default: the path's last part), ``file_size``, ``content_hash`` (sha256 hex),
    ``modified_at``, ``description``, ``is_primary``, ``is_downloadable``, ``execution_id``.
    Returns ``{"upserted": n, "removed": m}``.
    """
    rows, seen = [], set()
    for entry in files:
        unknown = set(entry) - _OUTPUT_FIELDS
        if unknown:
            raise ValueError(f"output file has unknown keys {sorted(unknown)}; allowed: {sorted(_OUTPUT_FIELDS)}")
        if not entry.get("file_type"):
            raise ValueError(f"output file {entry.get('file_path')!r} has no file_type")
        path = _relative_path(entry.get("file_path", ""))
        if path in seen:
            raise ValueError(f"output file {path!r} is listed twice")
        seen.add(path)
        digest = entry.get("content_hash")
        if digest is not None and not _SHA256.match(digest):
            raise ValueError(f"content_hash of {path!r} must be 64 lowercase hex digits (sha256)")
        rows.append(
            {
                "task_id": task_id,
                "file_path": path,
                "file_type": entry["file_type"],
                "file_name": entry.get("file_name") or PurePosixPath(path).name,
                "file_size": entry.get("file_size", 0),
                "content_hash": digest,
                "description": entry.get("description"),
                "modified_at": _aware(entry.get("modified_at"), f"modified_at of {path!r}"),
                "is_primary": bool(entry.get("is_primary", False)),
                "is_downloadable": bool(entry.get("is_downloadable", True)),
                "execution_id": entry.get("execution_id"),
            }
        )
    with _cursor(conn) as cur, _existing_task(task_id):
        if rows:
            execute_values(
                cur,
                """
                INSERT INTO data_pipeline_task_outputs AS o
                    (task_id, file_path, file_type, file_name, file_size, content_hash, description, modified_at,
                     is_primary, is_downloadable, execution_id)
                SELECT v.task_id, v.file_path, v.file_type, v.file_name, v.file_size, v.content_hash, v.description,
                       coalesce(v.modified_at, now()), v.is_primary, v.is_downloadable, v.execution_id
                  FROM (VALUES %s) AS v (task_id, file_path, file_type, file_name, file_size, content_hash,
                                         description, modified_at, is_primary, is_downloadable, execution_id)
                ON CONFLICT (task_id, file_path) DO UPDATE SET
                    file_type = EXCLUDED.file_type, file_name = EXCLUDED.file_name, file_size = EXCLUDED.file_size,
                    content_hash = EXCLUDED.content_hash, description = EXCLUDED.description,
                    modified_at = EXCLUDED.modified_at, is_primary = EXCLUDED.is_primary,
                    is_downloadable = EXCLUDED.is_downloadable, execution_id = EXCLUDED.execution_id
                """,
                rows,
                template=(
                    "(%(task_id)s, %(file_path)s, %(file_type)s, %(file_name)s, %(file_size)s::bigint,"
                    " %(content_hash)s, %(description)s, %(modified_at)s::timestamptz, %(is_primary)s,"
                    " %(is_downloadable)s, %(execution_id)s)"
                ),
            )
        cur.execute(
            "DELETE FROM data_pipeline_task_outputs WHERE task_id = %s AND NOT (file_path = ANY(%s))",
            (task_id, sorted(seen)),
        )
        removed = cur.rowcount
    return {"upserted": len(rows), "removed": removed}


def list_outputs(conn: Connection, *, task_id: str) -> list[dict]:
    """The task's output files, primary ones first, then by path."""
    with _cursor(conn) as cur:
        cur.execute(
            "SELECT * FROM data_pipeline_task_outputs WHERE task_id = %s ORDER BY is_primary DESC, file_path",
            (task_id,),
        )
        return _rows(cur)


def get_output(conn: Connection, *, task_id: str, file_path: str) -> dict | None:
    """One registered output file; a download should serve only files found here."""
    with _cursor(conn) as cur:
        cur.execute(
            "SELECT * FROM data_pipeline_task_outputs WHERE task_id = %s AND file_path = %s", (task_id, file_path)
        )
        return _first(cur)
