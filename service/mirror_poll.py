"""The mirror's poll loop: which flow runs to read each poll, and which of them to sync.

Each ``Mirror.cycle()`` makes one cheap call (``read_run_heads``) for the flow runs of tracked
unfinished tasks, every unfinished run and the runs that ended since the last cycle (minus a
look-back for clock skew between machines), then one call each for the full flow runs, task runs
and new logs of the runs that changed. What it has seen lives in memory only: a restarted mirror catches up from Prefect.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import psycopg2
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterEndTime,
    FlowRunFilterId,
    FlowRunFilterState,
    FlowRunFilterStateType,
    Operator,
)
from prefect.client.schemas.objects import FlowRun, StateType

from service import store
from service.mirror import steps_lag, sync_flow_run
from service.outputs import OutputScanner
from service.prefect_reads import (
    RunHead,
    RunSnapshot,
    read_flow_run_or_none,
    read_flow_runs,
    read_run_heads,
    snapshots,
    state_type_of,
    task_id_of,
    utc,
)
from service.states import UNFINISHED_STATE_TYPES, is_final

log = logging.getLogger(__name__)

FUTURE = timedelta(seconds=30)  # a run scheduled to start later than this is not mirrored until it comes close


@dataclass
class _Seen:
    state_id: UUID | None
    task_runs: frozenset = frozenset()
    log_cursor: datetime | None = None
    settled: bool = False  # final, and read again after the log grace period


class Mirror:
    """Keeps the tables in step with Prefect, one ``cycle()`` per poll.

    Each cycle reads the heads (identity and state) of the flow runs of tracked unfinished tasks,
    every unfinished run and the runs that ended since the last cycle (minus a look-back for clock
    skew), then the full runs, task runs and new logs of those that changed, in one call each. Runs that finished are read once
    more ``log_grace`` seconds after their end, for logs Prefect received late. The first cycle also
    looks ``catch_up`` back, for runs that finished while no mirror ran.
    """

    def __init__(self, conn: store.Connection, client: SyncPrefectClient, *, log_grace: float = 10.0,
                 catch_up: timedelta = timedelta(hours=24)) -> None:
        self.conn, self.client = conn, client
        self.log_grace = timedelta(seconds=log_grace)
        self.lookback = max(timedelta(seconds=60), 2 * self.log_grace)  # clock skew between machines
        self.catch_up = catch_up
        self.scanner = OutputScanner()
        self._since: datetime | None = None
        self._seen: dict[UUID, _Seen] = {}
        self._created: dict[UUID, datetime | None] = {}
        self._reported: dict[str, tuple[str, str | None]] = {}  # task id -> (status, current step) last returned
        self._invalid: set[UUID] = set()  # runs without a usable task id, reported once

    def cycle(self) -> list[dict]:
        """One poll; returns the task rows whose status or current step changed."""
        started = datetime.now(timezone.utc)
        with self.conn:
            tracked = {UUID(t["prefect_flow_run_id"]): t for t in store.active_tasks(self.conn)
                       if t["prefect_flow_run_id"]}
        since = self._since or started - self.catch_up
        criteria: dict[str, Any] = {
            "state": FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType(s) for s in UNFINISHED_STATE_TYPES])),
            "end_time": FlowRunFilterEndTime(after_=since),
        }
        if tracked:
            criteria["id"] = FlowRunFilterId(any_=list(tracked))
        heads = [head for head in read_run_heads(self.client, FlowRunFilter(operator=Operator.or_, **criteria))
                 if self._valid(head)]
        self._created.update((head.id, head.created) for head in heads)
        changes = self._mark_vanished(tracked, {head.id for head in heads})
        due = [head.id for head in heads if self._due(head, started) and not self._settled_before(head)]
        runs = read_flow_runs(self.client, FlowRunFilter(id=FlowRunFilterId(any_=due))) if due else []
        # oldest first, as ``rebuild``: a task's row is created from its first run, later runs take over
        for snap in sorted(self._snapshots(runs), key=lambda snap: utc(snap.flow_run.created)):
            changes += self._sync(snap, started)
        self._forget({head.id for head in heads})
        self._since = started - self.lookback
        return changes

    def _valid(self, run: RunHead) -> bool:
        if task_id_of(run) is not None:
            return True
        if run.id not in self._invalid:
            self._invalid.add(run.id)
            log.warning("flow run %s has no valid task_id parameter; not mirrored", run.id)
        return False

    def _due(self, run: RunHead, now: datetime) -> bool:
        if state_type_of(run) == "SCHEDULED" and run.expected_start_time and utc(run.expected_start_time) > now + FUTURE:
            return False  # a schedule's run for later (a deployment schedule makes them ahead): not requested yet
        seen = self._seen.get(run.id)
        if seen is None or seen.state_id != run.state_id:
            return True
        if not is_final(state_type_of(run)):
            return state_type_of(run) in ("RUNNING", "CANCELLING", "PAUSED")
        return not seen.settled and now - utc(run.end_time or now) >= self.log_grace

    def _settled_before(self, run: RunHead) -> bool:
        """A finished run this mirror has not seen, fully mirrored earlier (by it before a restart, or
        by a tracked CLI run): current in its task row, same state, synced after the log grace."""
        if run.id in self._seen or not is_final(state_type_of(run)) or run.end_time is None:
            return False
        task_id = task_id_of(run)
        with self.conn:
            row = store.get_task(self.conn, task_id=task_id) if task_id else None
        settled = (
            row is not None and row["prefect_flow_run_id"] == str(run.id) and row["mirrored_at"] is not None
            and row["last_flow_run_state"] == run.state_name
            and datetime.fromisoformat(row["mirrored_at"]) >= utc(run.end_time) + self.log_grace
        )
        if settled:
            self._seen[run.id] = _Seen(state_id=run.state_id, settled=True)
            self._reported[row["id"]] = (row["status"], row["current_step"])
        return settled

    def _snapshots(self, due: list[FlowRun]) -> list[RunSnapshot]:
        """Snapshots with the logs each run still needs: all for runs new to this mirror, else recent."""
        fresh = [run for run in due if self._seen.get(run.id) is None or self._seen[run.id].log_cursor is None]
        fresh_ids = {run.id for run in fresh}
        known = [run for run in due if run.id not in fresh_ids]
        cursor = min((self._seen[run.id].log_cursor for run in known), default=None)
        return snapshots(self.client, fresh) + snapshots(self.client, known, cursor)

    def _sync(self, snap: RunSnapshot, now: datetime) -> list[dict]:
        run = snap.flow_run
        seen = self._seen.get(run.id)
        task_runs = frozenset((t.id, t.state_id) for t in snap.task_runs)
        rescan = seen is None or seen.state_id != run.state_id or seen.task_runs != task_runs
        lagging = steps_lag(snap)  # decided once: a read the sync leaves to later must be read again
        try:
            with self.conn:
                row = sync_flow_run(self.conn, snap, scanner=self.scanner if rescan else None,
                                    created_of=self._created_of, exists=self._exists, settle=lagging)
        except (psycopg2.OperationalError, psycopg2.InterfaceError):
            raise  # the connection is gone: the caller reconnects
        except Exception:  # one bad run never stops the others
            log.exception("mirroring flow run %s failed; retrying next cycle", run.id)
            return []
        final = is_final(state_type_of(run))
        self._seen[run.id] = _Seen(
            state_id=None if lagging else run.state_id,  # None: read it again next poll
            task_runs=task_runs,
            log_cursor=now - self.log_grace,
            settled=final and (seen is not None and seen.state_id == run.state_id
                               or now - utc(run.end_time or now) >= self.log_grace),
        )
        if row is None or row["prefect_flow_run_id"] != str(run.id):
            return []
        shown = (row["status"], row["current_step"])
        if self._reported.get(row["id"]) == shown:
            return []
        self._reported[row["id"]] = shown
        return [row]

    def _created_of(self, run_id: UUID) -> datetime | None:
        if run_id not in self._created:
            run = read_flow_run_or_none(self.client, run_id)
            self._created[run_id] = run.created if run else None
        return self._created[run_id]

    def _exists(self, run_id: UUID) -> bool:
        return read_flow_run_or_none(self.client, run_id) is not None

    def _mark_vanished(self, tracked: dict[UUID, dict], found: set[UUID]) -> list[dict]:
        """Tracked tasks whose flow run Prefect no longer has (deleted) end as failed."""
        changes = []
        for run_id, task in tracked.items():
            if run_id in found or self._exists(run_id):  # found, or another flow's run: leave it
                continue
            with self.conn:
                store.close_running_executions(self.conn, task_id=task["id"], status="failed")
                row = store.update_task(
                    self.conn, task_id=task["id"], status="failed", completed_at="now", mirrored_at="now",
                    error_message=f"flow run {run_id} no longer exists in Prefect (deleted)",
                    last_flow_run_state="Deleted",
                )
            if row is not None:
                self._reported[row["id"]] = (row["status"], row["current_step"])
                changes.append(row)
        return changes

    def _forget(self, listed: set[UUID]) -> None:
        for run_id in [r for r in self._seen if r not in listed]:
            del self._seen[run_id]
            self._created.pop(run_id, None)
