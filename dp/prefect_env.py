"""Prefect's environment for our processes, set before Prefect is first imported.

CLI runs use Prefect in-process with its own home under ``DP_DATA_DIR`` (a temporary local server,
analytics off) unless ``PREFECT_API_URL`` points at a server. Our loggers are attached to Prefect so
step logs appear per task run in the UI. Values the user already set win.
"""

from __future__ import annotations

import os

from dp.logs import OUR_LOGGERS
from dp.settings import Settings, get_settings


def configure_prefect(settings: Settings | None = None) -> None:
    settings = settings or get_settings()
    home = settings.data_dir / "prefect"
    home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_HOME", str(home))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", ",".join(OUR_LOGGERS))
    os.environ.setdefault("PREFECT_RESULTS_PERSIST_BY_DEFAULT", "false")


def start_temporary_server() -> None:
    """Start Prefect's temporary local server now, in this thread, when no ``PREFECT_API_URL`` is set.

    Prefect starts it for the process's first client, and that start is not thread-safe: a CLI run's
    flow and its tracking thread, both first, started two servers, and one died with a traceback on
    the console. Started here, both find it running.
    """
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        return
    with get_client(sync_client=True):
        pass


def flush_prefect_queues() -> None:
    """Send what Prefect's log and event workers in this process still hold, and stop them.

    Before a run's last read of Prefect, so the read sees all of its logs and step states. Before a
    run starts, too: the events worker is one per process whatever the API URL, and one left from a
    run against another server (tests run many in a process) sent this run's step states there, so
    Prefect never showed its steps. Stopped workers are started again, aimed at the current server.
    """
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)
    EventsWorker.drain_all(timeout=10)
