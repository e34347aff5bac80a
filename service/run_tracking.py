"""Tracking of a ``data-pipeline run`` in the tables, with no service running.

Before the flow starts, the task row is created (created_by manual) unless it exists (a re-run of
a task). The flow's ``on_running`` hook (``RunTracker.on_running``) tells the tracker its flow-run
id, which becomes the task's current run. While the flow runs in this process, a thread syncs the
task from Prefect every poll interval through the mirror's own code (``service.mirror.sync_task``);
after it ends, Prefect's log and event queues are flushed and the task is synced a last time, once
Prefect shows the steps ended (task-run states come from events, a moment after the flow's own state)
or after ``SETTLE_SECONDS`` as it stands: a run tracked with no mirror running never stays in
progress. Tracking never decides the run's fate: tables that cannot be reached are reported and the
run goes on untracked.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator
from uuid import UUID

import httpx
import psycopg2

from dp.database import connection, service_database_url
from dp.prefect_env import flush_prefect_queues
from dp.settings import Settings
from service import store
from service.migrate import migrate
from service.mirror import new_task_fields, sync_task
from service.outputs import OutputScanner
from service.states import UNFINISHED_TASK_STATUSES

log = logging.getLogger(__name__)

APPLICATION = "data-pipeline-run"
SETTLE_SECONDS = 10.0  # how long the last sync waits for Prefect to show the steps ended


class TrackingUnavailable(RuntimeError):
    """The tracking tables cannot be reached; the message says where and why."""


class RunTracker:
    """Keeps one task in step with its in-process flow run; pass ``on_running`` to the flow as a hook."""

    def __init__(self, settings: Settings, task_id: str) -> None:
        self.settings, self.task_id = settings, task_id
        self.flow_run_id: UUID | None = None
        self._recorded: UUID | None = None
        self._scanner = OutputScanner()

    def on_running(self, flow, flow_run, state) -> None:
        self.flow_run_id = flow_run.id

    def sync(self, conn: psycopg2.extensions.connection, client, *, settle: bool = True) -> dict | None:
        """Record the flow run once known, then mirror the task (commits); ``settle`` as in ``sync_task``."""
        with conn:
            if self.flow_run_id is not None and self._recorded != self.flow_run_id:
                store.update_task(conn, task_id=self.task_id, prefect_flow_run_id=self.flow_run_id)
                self._recorded = self.flow_run_id
            return sync_task(conn, client, self.task_id, self._scanner, settle=settle)

    def sync_until(self, stop: threading.Event) -> None:
        from prefect.client.orchestration import get_client

        warned = False
        try:
            with get_client(sync_client=True) as client, _connection(self.settings) as conn:
                while not stop.wait(self.settings.mirror_poll_interval):
                    try:
                        self.sync(conn, client)
                    except (psycopg2.Error, httpx.HTTPError) as exc:
                        if not warned:
                            log.warning("tracking task %s: %s (retrying)", self.task_id, exc)
                            warned = True
        except Exception as exc:  # the run goes on; its last sync still records the outcome
            log.warning("tracking task %s during the run stopped: %s", self.task_id, exc)


def _connection(settings: Settings):
    return connection(service_database_url(settings), application_name=APPLICATION)


@contextmanager
def tracked_run(settings: Settings, parameters: dict[str, Any], db_name: str | None) -> Iterator[RunTracker]:
    """Track the flow run started inside the block with the yielded tracker's ``on_running`` hook.

    ``parameters`` are the flow's (the connection a reference). Raises ``TrackingUnavailable``
    before the block when the tables cannot be reached.
    """
    task_id = parameters["task_id"]
    try:
        url = service_database_url(settings)
        migrate(url)
        with _connection(settings) as conn, conn:
            if store.get_task(conn, task_id=task_id) is None:
                store.create_task(conn, **{**new_task_fields(parameters, task_id, "manual"), "db_name": db_name})
    except Exception as exc:  # whatever keeps the tables away, the run itself goes on
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise TrackingUnavailable(f"service database unavailable: {reason}") from None
    tracker = RunTracker(settings, task_id)
    stop = threading.Event()
    # the thread sees this thread's Prefect settings (a ``temporary_settings`` API URL, too)
    syncer = threading.Thread(target=contextvars.copy_context().run, args=(tracker.sync_until, stop),
                              name="dp-run-tracking", daemon=True)
    syncer.start()
    try:
        yield tracker
    finally:
        stop.set()
        syncer.join()
        flush_prefect_queues()
        _last_sync(tracker)


def _last_sync(tracker: RunTracker) -> None:
    """Sync until the row shows the run's end, at most ``SETTLE_SECONDS``, then once as Prefect has it."""
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + SETTLE_SECONDS
    try:
        with get_client(sync_client=True) as client, _connection(tracker.settings) as conn:
            row = tracker.sync(conn, client)
            while row is not None and row["status"] in UNFINISHED_TASK_STATUSES:
                if time.monotonic() >= deadline:
                    row = tracker.sync(conn, client, settle=False)
                    break
                time.sleep(tracker.settings.mirror_poll_interval)
                row = tracker.sync(conn, client)
        log.info("task %s recorded as %s", tracker.task_id, row and row["status"])
    except (psycopg2.Error, httpx.HTTPError) as exc:
        log.warning("tracking task %s: last sync failed: %s", tracker.task_id, exc)
