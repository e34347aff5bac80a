"""The Prefect flow ``retention``: delete finished tasks older than DP_RETENTION_DAYS, files and secrets too.

Scheduled daily by the ``retention/nightly`` deployment (prefect.yaml; ``retention/on-demand`` runs it
by hand). It holds no logic of its own: it calls the code ``DELETE /tasks/{id}`` uses
(service/api/cleanup.py), so an expired task leaves no row, directory or Secret block behind.
"""

from __future__ import annotations

import logging

from prefect import flow

from dp.database import connection, service_database_url
from dp.settings import get_settings
from service.api.cleanup import sweep_expired_tasks
from service.api.runs import PrefectRuns
from service.migrate import migrate

log = logging.getLogger(__name__)


@flow(name="retention")
def retention(days: int | None = None) -> dict:
    """Remove completed, failed and cancelled tasks that ended more than ``days`` (default DP_RETENTION_DAYS) ago."""
    settings = get_settings()
    days = settings.retention_days if days is None else days
    url = service_database_url(settings)
    migrate(url)
    with connection(url, application_name="data-pipeline-retention") as conn, PrefectRuns.connect() as runs:
        removed = sweep_expired_tasks(conn, runs, settings, days)
    log.info("retention: %d task(s) older than %d days removed", len(removed), days)
    return {"days": days, "removed": removed}
