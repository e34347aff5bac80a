"""Applies what flow runs need on a Prefect server: work pool, deployments, zombie-run automation.

Idempotent: applying again to the same server keeps the same pool, deployments (same ids, updated
in place from prefect.yaml) and one automation, so ``data-pipeline up`` applies on every start. The
deployments come from prefect.yaml only, through ``prefect deploy --all`` in a subprocess; the
server is then read back, because ``prefect deploy`` skips a file it cannot validate and still
exits 0. The automation marks a running flow run Crashed when its heartbeats stop (the machine died):
runs on a worker send one every ``DP_HEARTBEAT_SECONDS``.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import Mapping
from uuid import UUID

from dp.settings import Settings
from deployments.prefect_file import (
    PREFECT_FILE,
    DeploymentSpec,
    deployment_specs,
    load_prefect_file,
    nightly_dir,
    render_prefect_file,
    repo_dir,
)
from deployments.server import environment_without_database
from deployments.supervisor import StackError

log = logging.getLogger(__name__)

WORK_POOL = "data-pipeline"
ZOMBIE_AUTOMATION = "data-pipeline: crash flow runs without heartbeats"


@dataclass(frozen=True)
class AppliedSetup:
    work_pool_id: UUID
    deployment_ids: dict[str, UUID]  # "<flow name>/<deployment name>" -> id
    automation_id: UUID


def prefect_api(url: str):
    """Point in-process Prefect clients at ``url`` while the block runs."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    return temporary_settings(updates={PREFECT_API_URL: url})


def zombie_automation(settings: Settings):
    """Prefect's "detect zombie flows" automation: no flow-run event ``within`` a heartbeat -> Crashed."""
    from prefect.automations import AutomationCore, ChangeFlowRunState, EventTrigger, Posture, ResourceSpecification
    from prefect.client.schemas.objects import StateType

    if settings.zombie_after_seconds <= settings.heartbeat_seconds:
        raise StackError(
            f"DP_ZOMBIE_AFTER_SECONDS ({settings.zombie_after_seconds}) must be longer than DP_HEARTBEAT_SECONDS "
            f"({settings.heartbeat_seconds}), or every healthy run would be marked crashed"
        )
    return AutomationCore(
        name=ZOMBIE_AUTOMATION,
        description=f"A running flow run that sends no heartbeat or state change for {settings.zombie_after_seconds} s "
        "lost its process or machine: mark it Crashed. Kept by data-pipeline's set-up (deployments/setup.py).",
        trigger=EventTrigger(
            # after each heartbeat of a flow run, expect any event of that same run within the window
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.*"},
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=settings.zombie_after_seconds),
        ),
        actions=[ChangeFlowRunState(state=StateType.CRASHED,
                                    message="Flow run marked as crashed: its heartbeats stopped.")],
    )


def _comparable(automation) -> dict:
    return automation.model_dump(mode="json", include={"description", "enabled", "trigger", "actions"},
                                 exclude={"trigger": {"id"}})


async def _ensure_work_pool(client) -> UUID:
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    try:
        pool = await client.read_work_pool(WORK_POOL)
    except ObjectNotFound:
        pool = await client.create_work_pool(WorkPoolCreate(
            name=WORK_POOL, type=ProcessWorker.type, description="data-pipeline flow runs, run as processes by workers",
            base_job_template=ProcessWorker.get_default_base_job_template(),
        ))
        log.info("created work pool %s", WORK_POOL)
    if pool.type != ProcessWorker.type:
        raise StackError(
            f"work pool {WORK_POOL!r} exists with type {pool.type!r}; delete it (prefect work-pool delete "
            f"{WORK_POOL}) so the set-up can create it as a process pool"
        )
    return pool.id


async def _ensure_automation(client, settings: Settings) -> UUID:
    wanted = zombie_automation(settings)
    existing = await client.read_automations_by_name(ZOMBIE_AUTOMATION)
    if not existing:
        log.info("created automation %r", ZOMBIE_AUTOMATION)
        return await client.create_automation(wanted)
    keep, *duplicates = sorted(existing, key=lambda a: str(a.id))
    for duplicate in duplicates:  # two set-ups racing on an empty server
        await client.delete_automation(duplicate.id)
    if _comparable(keep) != _comparable(wanted):
        await client.update_automation(keep.id, wanted)
        log.info("updated automation %r", ZOMBIE_AUTOMATION)
    return keep.id


async def _read_deployments(client, specs: list[DeploymentSpec]) -> dict[str, UUID]:
    from prefect.exceptions import ObjectNotFound

    found = {}
    for spec in specs:
        try:
            found[spec.full_name] = (await client.read_deployment_by_name(spec.full_name)).id
        except ObjectNotFound:
            raise StackError(
                f"deployment {spec.full_name} is not on the server after `prefect deploy`; check prefect.yaml "
                "(prefect deploy skips a file it cannot validate)"
            ) from None
    return found


def deploy_environment(settings: Settings, url: str, base_env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment of ``prefect deploy``: our API, and the ``{{ $VAR }}`` values filled in at deploy time."""
    env = environment_without_database(base_env)
    env.update(PREFECT_API_URL=url, DP_NIGHTLY_DIR=str(nightly_dir(settings)),
               PREFECT_HOME=str(settings.data_dir / "prefect"), PREFECT_CLI_PROMPT="false")
    return env


def apply_deployments(settings: Settings, url: str, base_env: Mapping[str, str] | None = None) -> None:
    """``prefect deploy --all`` on prefect.yaml with the settings filled in (see deployments/prefect_file.py)."""
    rendered = render_prefect_file(settings, settings.data_dir / "prefect" / "prefect.deploy.yaml")
    command = [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all", "--prefect-file", str(rendered)]
    try:
        done = subprocess.run(command, cwd=repo_dir(settings), env=deploy_environment(settings, url, base_env),
                              capture_output=True, text=True, timeout=settings.stack_start_timeout,
                              start_new_session=True)  # a Ctrl-C stops the stack in order, not this midway
    except subprocess.TimeoutExpired:
        raise StackError(f"prefect deploy took longer than {settings.stack_start_timeout:.0f} s (DP_STACK_START_TIMEOUT)") from None
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise StackError(f"prefect deploy failed (exit code {done.returncode}):\n{tail}")


async def _apply(settings: Settings, url: str, base_env: Mapping[str, str] | None) -> AppliedSetup:
    from prefect.client.orchestration import get_client

    specs = deployment_specs(load_prefect_file(PREFECT_FILE))
    async with get_client() as client:
        pool_id = await _ensure_work_pool(client)
        apply_deployments(settings, url, base_env)
        deployment_ids = await _read_deployments(client, specs)
        automation_id = await _ensure_automation(client, settings)
    return AppliedSetup(work_pool_id=pool_id, deployment_ids=deployment_ids, automation_id=automation_id)


def apply_setup(settings: Settings, url: str, base_env: Mapping[str, str] | None = None) -> AppliedSetup:
    """Work pool, deployments and automation on the Prefect server at ``url`` (its ``/api`` URL)."""
    import httpx

    with prefect_api(url):
        try:
            return asyncio.run(_apply(settings, url, base_env))
        except httpx.HTTPError as exc:
            raise StackError(f"cannot apply the set-up through the Prefect API at {url}: {exc}") from None
