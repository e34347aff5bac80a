"""A task's flow runs through the Prefect API: its connection secret, starting, cancelling, states.

A task's connection URL (password included) lives only in a Prefect Secret block named after the
task (``dp-task-<id>``); flow parameters carry the reference ``secret:<block>``, so no password is
ever a parameter, a row or a log line. Runs come from the ``schema_workflow/on-demand`` deployment
with an idempotency key per run slot claim, so a retried request never starts a second run.
Cancelling asks Prefect for ``Cancelling`` (a run not yet started is ``Cancelled`` at once); the
mirror then shows ``cancelled``. One synchronous client per process (its httpx client is
thread-safe); the deployment id and the Secret block's type and schema are looked up once.
"""

from __future__ import annotations

import re
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator
from uuid import UUID

import httpx

from service.states import is_final

DEPLOYMENT = "schema_workflow/on-demand"
SECRET_BLOCK_PREFIX = "dp-task-"
_NOT_STARTED = ("SCHEDULED", "PAUSED")


class RunsUnavailable(RuntimeError):
    """Prefect cannot do what was asked (deployment missing, state change refused); says what to do."""


def secret_block_name(task_id: str) -> str:
    """``dp-task-<task id>`` in the characters a block name allows (lower case, digits, dashes)."""
    return SECRET_BLOCK_PREFIX + re.sub(r"[^a-z0-9-]", "-", task_id.lower())


def connection_reference(task_id: str) -> str:
    """The flow parameter that stands for the task's connection."""
    return f"secret:{secret_block_name(task_id)}"


class PrefectRuns:
    """The Prefect calls the API and the retention flow make, on one long-lived client."""

    def __init__(self, client) -> None:
        self.client = client
        self._lock = threading.Lock()
        self._deployment_id: UUID | None = None
        self._secret_block: tuple[UUID, UUID] | None = None

    @classmethod
    @contextmanager
    def connect(cls) -> Iterator["PrefectRuns"]:
        """A client on ``PREFECT_API_URL`` for the duration of the block."""
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            yield cls(client)

    @property
    def api_url(self) -> str:
        return str(self.client.api_url)

    # --- connection secrets ------------------------------------------------------------------

    def _secret_ids(self) -> tuple[UUID, UUID]:
        """Block type and schema of Prefect's Secret block, read once through our own client."""
        from prefect.blocks.system import Secret
        from prefect.exceptions import ObjectNotFound

        with self._lock:
            if self._secret_block is None:
                try:
                    block_type = self.client.read_block_type_by_slug(Secret.get_block_type_slug())
                    schema = self.client.read_block_schema_by_checksum(
                        Secret._calculate_schema_checksum(), version=Secret.get_block_schema_version())
                except ObjectNotFound:
                    raise RunsUnavailable(f"the Prefect server at {self.api_url} has no Secret block type; "
                                          "run `prefect block register -m prefect.blocks.system`") from None
                self._secret_block = (block_type.id, schema.id)
        return self._secret_block

    def save_connection(self, task_id: str, url: str) -> str:
        """Store ``url`` in the task's Secret block (replacing a leftover one); returns the reference."""
        from prefect.blocks.system import Secret
        from prefect.client.schemas.actions import BlockDocumentCreate
        from prefect.exceptions import ObjectAlreadyExists

        block_type_id, schema_id = self._secret_ids()
        # what Block.save sends, without its per-call registration round trips
        document = Secret(value=url)._to_block_document(
            name=secret_block_name(task_id), block_schema_id=schema_id, block_type_id=block_type_id,
            include_secrets=True)
        create = BlockDocumentCreate(**document.model_dump(
            include={"name", "block_schema_id", "block_type_id", "data", "is_anonymous"}))
        try:
            self.client.create_block_document(create)
        except ObjectAlreadyExists:
            self.forget_connection(task_id)
            self.client.create_block_document(create)
        return connection_reference(task_id)

    def _secret_document(self, task_id: str):
        from prefect.exceptions import ObjectNotFound

        try:
            return self.client.read_block_document_by_name(
                secret_block_name(task_id), block_type_slug="secret", include_secrets=False)
        except ObjectNotFound:
            return None

    def has_connection(self, task_id: str) -> bool:
        return self._secret_document(task_id) is not None

    def forget_connection(self, task_id: str) -> bool:
        """Delete the task's Secret block; False when there was none."""
        from prefect.exceptions import ObjectNotFound

        document = self._secret_document(task_id)
        if document is None:
            return False
        try:
            self.client.delete_block_document(document.id)
        except ObjectNotFound:
            return False
        return True

    # --- flow runs -----------------------------------------------------------------------------

    def _deployment(self) -> UUID:
        from prefect.exceptions import ObjectNotFound

        if self._deployment_id is None:
            try:
                self._deployment_id = self.client.read_deployment_by_name(DEPLOYMENT).id
            except ObjectNotFound:
                raise RunsUnavailable(
                    f"deployment {DEPLOYMENT} is not on the Prefect server at {self.api_url}; "
                    "run `data-pipeline deploy` (or `data-pipeline up`)") from None
        return self._deployment_id

    def start(self, task_id: str, parameters: dict[str, Any], idempotency_key: str) -> str:
        """Create the flow run of one task run; returns its id. The same key returns the same run."""
        run = self.client.create_flow_run_from_deployment(
            self._deployment(), parameters={"task_id": task_id, **parameters}, name=task_id,
            idempotency_key=idempotency_key, tags=["data-pipeline-api"])
        return str(run.id)

    def state(self, flow_run_id: str) -> tuple[str, str] | None:
        """``(state type, state name)`` of a flow run, e.g. ``("RUNNING", "Running")``; None when unknown."""
        from service.prefect_reads import read_flow_run_or_none

        run = read_flow_run_or_none(self.client, UUID(flow_run_id))
        if run is None or run.state is None:
            return None
        return run.state.type.value, run.state.name

    def cancel(self, flow_run_id: str) -> tuple[str, str] | None:
        """Ask the run to stop: Cancelled if it has not started, else Cancelling. Returns the state after."""
        from prefect.client.schemas.responses import SetStateStatus
        from prefect.states import Cancelled, Cancelling

        current = self.state(flow_run_id)
        if current is None or is_final(current[0]) or current[0] == "CANCELLING":
            return current
        target = Cancelled(message="cancelled through the REST API") if current[0] in _NOT_STARTED else Cancelling(
            message="cancelled through the REST API")
        result = self.client.set_flow_run_state(UUID(flow_run_id), target)
        if result.status == SetStateStatus.ABORT:
            raise RunsUnavailable(f"Prefect refused to cancel flow run {flow_run_id}: {result.details}")
        return self.state(flow_run_id)

    def wait_until_final(self, flow_run_id: str, timeout: float, poll: float = 0.5) -> bool:
        """True once the run is completed/failed/cancelled/crashed (or gone), False after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            current = self.state(flow_run_id)
            if current is None or is_final(current[0]):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll)

    def forget_runs(self, task_id: str) -> int:
        """Delete the task's flow runs (and so their logs) from Prefect; how many went.

        A deleted task must not come back: the mirror re-creates the row of any flow run it finds.
        The flow names its run after the task when it starts; a run whose flow never started keeps
        the name it was created with (a schedule's run, one from the Prefect UI), so runs not started
        yet or ended without running (cancelled, crashed or failed, maybe before their flow began)
        are matched on their ``task_id`` parameter too.
        """
        from prefect.client.schemas.filters import (
            FlowRunFilter,
            FlowRunFilterName,
            FlowRunFilterStartTime,
            FlowRunFilterState,
            FlowRunFilterStateType,
            Operator,
        )
        from prefect.client.schemas.objects import StateType
        from prefect.exceptions import ObjectNotFound

        from service.prefect_reads import read_run_heads, task_id_of

        deleted = 0
        maybe_of_the_task = FlowRunFilter(
            operator=Operator.or_, name=FlowRunFilterName(any_=[task_id]), start_time=FlowRunFilterStartTime(is_null_=True),
            state=FlowRunFilterState(type=FlowRunFilterStateType(
                any_=[StateType.CANCELLED, StateType.CRASHED, StateType.FAILED])))
        for run in read_run_heads(self.client, maybe_of_the_task):  # heads: every ended-without-running run is read
            if task_id_of(run) != task_id:
                continue
            try:
                self.client.delete_flow_run(run.id)
                deleted += 1
            except ObjectNotFound:
                pass
        return deleted

    def health(self) -> str | None:
        """None when the Prefect API answers its health check, else what went wrong."""
        try:
            reply = httpx.get(self.api_url.rstrip("/") + "/health", timeout=3)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
        return None if reply.status_code == 200 else f"HTTP {reply.status_code}"
