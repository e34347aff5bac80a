"""The mirror as a running service: ``data-pipeline mirror`` (a process) or a thread of the REST service.

It migrates the service database, then polls Prefect every ``DP_MIRROR_POLL_INTERVAL`` seconds
until stopped, printing one line per task whose status or current step changed. An unreachable
database or Prefect API is reported once and retried every poll, never fatal. ``--rebuild``
re-derives every row from Prefect once and exits.
"""

from __future__ import annotations

import contextvars
import sys
import threading
import time
from datetime import datetime, timedelta
from typing import TextIO

import httpx
import psycopg2

from dp.database import connect, connection, mask_url, service_database_url
from dp.settings import Settings
from service.migrate import migrate
from service.mirror import rebuild
from service.mirror_poll import Mirror
from service.states import UNFINISHED_TASK_STATUSES


APPLICATION = "data-pipeline-mirror"


def describe(row: dict) -> str:
    """One line for a task row: id, status, and the step or error that matters."""
    text = f"{row['id']}: {row['status']}"
    if row["status"] in UNFINISHED_TASK_STATUSES and row.get("current_step"):
        text += f" ({row['current_step']}, {row['progress']}%)"
    if row["status"] == "failed":
        text += f" at {row.get('error_step') or 'start'}: {row.get('error_message') or ''}".rstrip(": ")
    return text


def _say(out: TextIO, text: str) -> None:
    print(f"{datetime.now():%H:%M:%S} mirror: {text}", file=out, flush=True)


def run_mirror(settings: Settings, stop: threading.Event, out: TextIO = sys.stdout, *, once: bool = False) -> int:
    """Mirror until ``stop`` is set (or one cycle with ``once``); 0 when stopped cleanly.

    Prefect is reached through ``PREFECT_API_URL`` (set it, or ``prefect_api``, before calling).
    """
    from prefect.client.orchestration import get_client
    from prefect.settings import get_current_settings

    url = service_database_url(settings)
    migrate(url)
    _say(out, f"tables in {mask_url(url)}, Prefect API {get_current_settings().api.url or '(ephemeral)'}, "
              f"polling every {settings.mirror_poll_interval:g} s")
    conn = None
    failing = None
    with get_client(sync_client=True) as client:
        try:
            while not stop.is_set():
                began = time.monotonic()
                try:
                    if conn is None or conn.closed:
                        conn = connect(url, application_name=APPLICATION)
                        mirror = Mirror(conn, client, log_grace=settings.mirror_log_grace,
                                        catch_up=timedelta(hours=settings.mirror_catch_up_hours))
                    for row in mirror.cycle():
                        _say(out, describe(row))
                    if failing:
                        _say(out, f"{failing} reachable again")
                    failing = None
                except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
                    failing = _report_once(out, failing, "service database", exc)
                    if conn is not None:
                        conn.close()
                except httpx.HTTPError as exc:
                    failing = _report_once(out, failing, "Prefect API", exc)
                if once:
                    break
                stop.wait(max(0.0, settings.mirror_poll_interval - (time.monotonic() - began)))
        finally:
            if conn is not None:
                conn.close()
    _say(out, "stopped")
    return 0


def _report_once(out: TextIO, failing: str | None, what: str, exc: Exception) -> str:
    if failing != what:
        _say(out, f"{what} unreachable ({str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}); "
                  "retrying every poll")
    return what


def run_rebuild(settings: Settings, out: TextIO = sys.stdout) -> int:
    """Re-derive every row from Prefect once; prints each task mirrored."""
    from prefect.client.orchestration import get_client

    url = service_database_url(settings)
    migrate(url)
    with get_client(sync_client=True) as client, connection(url, application_name=APPLICATION) as conn:
        count = rebuild(conn, client, on_task=lambda row: _say(out, describe(row)))
    _say(out, f"rebuilt {count} task(s) from Prefect")
    return 0


class MirrorThread:
    """The mirror in a thread of another process (the REST service): ``start()``, later ``stop()``."""

    def __init__(self, settings: Settings, out: TextIO = sys.stdout) -> None:
        self._stop = threading.Event()
        # the thread sees the creating thread's Prefect settings (a ``temporary_settings`` API URL, too)
        self._thread = threading.Thread(target=contextvars.copy_context().run,
                                        args=(run_mirror, settings, self._stop, out),
                                        name="data-pipeline-mirror", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
