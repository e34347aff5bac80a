"""Reading Prefect for the mirror: flow runs of ``schema_workflow``, their task runs and logs, page by page.

Every read follows all of Prefect's pages (at most ``PAGE`` rows each) and takes many flow runs at
once, so a poll costs one call per kind of object, not one per run. Timestamps leave here as
plain UTC datetimes. ``read_run_heads`` is the poll's cheap read: each run's identity and state as
plain JSON, without validating Prefect's models, so the cost of a backlog of waiting runs stays small.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Sequence
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    LogFilter,
    LogFilterFlowRunId,
    LogFilterTimestamp,
    TaskRunFilter,
    TaskRunFilterFlowRunId,
)
from prefect.client.schemas.objects import FlowRun, Log, StateType, TaskRun
from prefect.client.schemas.sorting import FlowRunSort, LogSort, TaskRunSort
from prefect.exceptions import ObjectNotFound

from dp.task_ids import InvalidTaskId, validate_task_id

FLOW_NAME = "schema_workflow"
PAGE = 200  # Prefect's largest page (PREFECT_API_DEFAULT_LIMIT)
_FLOWS = FlowFilter(name=FlowFilterName(any_=[FLOW_NAME]))


@dataclass
class RunSnapshot:
    """One flow run as Prefect shows it now: the run, its task runs, and logs not yet copied."""

    flow_run: FlowRun
    task_runs: list[TaskRun] = field(default_factory=list)
    logs: list[Log] = field(default_factory=list)


@dataclass(frozen=True)
class RunHead:
    """What a poll needs of a flow run to tell whether it changed; the fields keep ``FlowRun``'s names."""

    id: UUID
    name: str
    parameters: dict[str, Any]
    state_id: UUID | None
    state_type: StateType | None
    state_name: str | None
    created: datetime | None
    expected_start_time: datetime | None
    end_time: datetime | None

    @classmethod
    def from_json(cls, run: dict[str, Any]) -> "RunHead":
        state = run.get("state") or {}
        return cls(
            id=UUID(run["id"]), name=run.get("name") or "", parameters=run.get("parameters") or {},
            state_id=UUID(run["state_id"]) if run.get("state_id") else None,
            state_type=StateType(run["state_type"]) if run.get("state_type") else None,
            state_name=state.get("name") or run.get("state_name"),
            created=_timestamp(run.get("created")), expected_start_time=_timestamp(run.get("expected_start_time")),
            end_time=_timestamp(run.get("end_time")),
        )


def _timestamp(text: str | None) -> datetime | None:
    """Prefect's JSON timestamp (``...Z``, which Python 3.10's ``fromisoformat`` does not read) in UTC."""
    if text is None:
        return None
    return datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text).astimezone(timezone.utc)


def utc(value: datetime | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.isoformat()).astimezone(timezone.utc)


def state_type_of(run: FlowRun | TaskRun | RunHead) -> str:
    return run.state_type.value if run.state_type else "PENDING"


def task_id_of(flow_run: FlowRun | RunHead) -> str | None:
    """The task a flow run works for (its ``task_id`` parameter), or None when it is not a valid id."""
    task_id = (flow_run.parameters or {}).get("task_id") or flow_run.name
    try:
        return validate_task_id(task_id)
    except InvalidTaskId:
        return None


def _all_pages(fetch: Callable[[int], list]) -> list:
    rows, offset = [], 0
    while True:
        page = fetch(offset)
        rows.extend(page)
        if len(page) < PAGE:
            return rows
        offset += PAGE


def read_flow_runs(client: SyncPrefectClient, flow_run_filter: FlowRunFilter | None = None) -> list[FlowRun]:
    """Every flow run of ``schema_workflow`` matching the filter (all pages)."""
    return _all_pages(lambda offset: client.read_flow_runs(
        flow_filter=_FLOWS, flow_run_filter=flow_run_filter, sort=FlowRunSort.ID_DESC, limit=PAGE, offset=offset))


def read_run_heads(client: SyncPrefectClient, flow_run_filter: FlowRunFilter) -> list[RunHead]:
    """``read_flow_runs`` as heads: the same call, its answer read as JSON (validating ``FlowRun``
    models took most of a poll's time once a few hundred runs waited for a worker)."""
    body = {"flows": _FLOWS.model_dump(mode="json"), "flow_runs": flow_run_filter.model_dump(mode="json", exclude_unset=True),
            "sort": FlowRunSort.ID_DESC.value, "limit": PAGE}

    def fetch(offset: int) -> list[RunHead]:
        response = client.request("POST", "/flow_runs/filter", json={**body, "offset": offset})  # raises on 4xx/5xx
        return [RunHead.from_json(run) for run in response.json()]

    return _all_pages(fetch)


def read_flow_run_or_none(client: SyncPrefectClient, flow_run_id: UUID) -> FlowRun | None:
    """The flow run as Prefect has it now, or None when it was deleted."""
    try:
        return client.read_flow_run(flow_run_id)
    except ObjectNotFound:
        return None


def read_task_runs(client: SyncPrefectClient, flow_run_ids: Sequence[UUID]) -> dict[UUID, list[TaskRun]]:
    """The task runs of these flow runs, grouped by flow run (all pages)."""
    grouped: dict[UUID, list[TaskRun]] = {run_id: [] for run_id in flow_run_ids}
    if not flow_run_ids:
        return grouped
    runs = _all_pages(lambda offset: client.read_task_runs(
        task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=list(flow_run_ids))),
        sort=TaskRunSort.ID_DESC, limit=PAGE, offset=offset))
    for task_run in runs:
        grouped.setdefault(task_run.flow_run_id, []).append(task_run)
    return grouped


def read_logs(client: SyncPrefectClient, flow_run_ids: Sequence[UUID],
              since: datetime | None = None) -> dict[UUID, list[Log]]:
    """The logs of these flow runs stamped at or after ``since`` (all), grouped by flow run.

    Prefect sorts logs by timestamp only, so pages follow the timestamp (inclusive) rather than an
    offset: logs sharing a timestamp across a page boundary are read twice, never skipped.
    """
    grouped: dict[UUID, list[Log]] = {run_id: [] for run_id in flow_run_ids}
    if not flow_run_ids:
        return grouped
    seen: dict[UUID, Log] = {}
    cursor, offset = since, 0
    while True:
        log_filter = LogFilter(flow_run_id=LogFilterFlowRunId(any_=list(flow_run_ids)),
                               timestamp=LogFilterTimestamp(after_=cursor) if cursor else None)
        page = client.read_logs(log_filter, limit=PAGE, offset=offset, sort=LogSort.TIMESTAMP_ASC)
        seen.update((entry.id, entry) for entry in page)
        if len(page) < PAGE:
            break
        last = page[-1].timestamp
        cursor, offset = (cursor, offset + PAGE) if cursor == last else (last, 0)
    for entry in sorted(seen.values(), key=lambda e: (e.timestamp, str(e.id))):
        grouped.setdefault(entry.flow_run_id, []).append(entry)
    return grouped


def snapshots(client: SyncPrefectClient, flow_runs: Sequence[FlowRun],
              log_since: datetime | None = None) -> list[RunSnapshot]:
    """Snapshots of these flow runs: two reads (task runs, logs) for all of them together."""
    ids = [run.id for run in flow_runs]
    task_runs = read_task_runs(client, ids)
    logs = read_logs(client, ids, log_since)
    return [RunSnapshot(run, task_runs.get(run.id, []), logs.get(run.id, [])) for run in flow_runs]
