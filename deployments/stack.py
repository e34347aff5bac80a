"""``data-pipeline up``: the local stack, started in order and stopped cleanly.

Order: the service PostgreSQL (embedded unless ``DP_DATABASE_URL``), the Prefect server on it, the
set-up (work pool, deployments, zombie-run automation), a worker on the pool, then
``data-pipeline serve`` (the REST service with the mirror in its process), awaited until it answers.
Ctrl-C or SIGTERM stops everything in reverse order and exits 0; a part that dies on its own is
reported and takes the stack down with exit code 1. Workers on other machines run
``data-pipeline worker`` with the same worker environment.
"""

from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping, TextIO

import psycopg2

from dp.database import mask_url, service_database_url
from dp.logs import redact
from dp.settings import Settings, get_settings
from deployments.prefect_file import repo_dir
from deployments.server import (
    api_url,
    check_port_free,
    ensure_prefect_database,
    environment_without_database,
    server_component,
    ui_url,
    wait_until_healthy,
)
from deployments.setup import WORK_POOL, apply_setup
from deployments.supervisor import Component, StackError, Supervisor


def resolve_api_url(explicit: str | None, settings: Settings) -> str:
    """The Prefect API to talk to: ``explicit``, else ``PREFECT_API_URL``, else this machine's stack."""
    from prefect.settings import get_current_settings

    return explicit or get_current_settings().api.url or api_url(settings)


def worker_environment(settings: Settings, url: str, base_env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment of a worker, inherited by its flow runs: our API, heartbeats, where the code is.

    Worker-side cancellation is on: Prefect 3.9 leaves it off, and then a run cancelled while
    Pending (its process starting) stays Cancelling forever and holds the deployment's slot.
    """
    env = environment_without_database(base_env)
    env.update(
        PREFECT_API_URL=url,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY=str(settings.heartbeat_seconds),
        PREFECT_WORKER_ENABLE_CANCELLATION="true",
        PREFECT_HOME=str(settings.data_dir / "prefect"),
        DP_REPO_DIR=str(repo_dir(settings)),  # prefect.yaml's pull step: {{ $DP_REPO_DIR }}
    )
    return env


def worker_component(settings: Settings, url: str, base_env: Mapping[str, str] | None = None,
                     log: Path | None = None) -> Component:
    argv = [sys.executable, "-m", "prefect", "worker", "start", "--pool", WORK_POOL, "--type", "process",
            "--install-policy", "never", "--no-create-pool-if-not-found"]
    return Component(name="worker", argv=argv, env=worker_environment(settings, url, base_env), log=log)


def service_component(settings: Settings, env: Mapping[str, str]) -> Component:
    """``data-pipeline serve``: the REST API with the mirror in its process."""
    url = f"http://{settings.api_host}:{settings.api_port}"
    return Component(name="API and mirror", argv=[sys.executable, "-m", "dp.cli", "serve"], env=env, url=url)


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set on the first SIGINT or SIGTERM; the previous handlers come back on exit.

    A handler runs in the main thread between two bytecodes: perhaps while that thread holds the
    event's own lock (inside ``stopping.wait()``), or while it runs the handler of an earlier signal
    (a second Ctrl-C, ``timeout`` forwarding a signal). Setting the event right there can deadlock,
    so the first signal sets it from a new thread and later ones do nothing.
    """
    stopping = threading.Event()
    received: list[int] = []

    def handler(signum: int, _frame: object) -> None:
        if not received:
            received.append(signum)
            threading.Thread(target=stopping.set, name="stop-on-signal", daemon=True).start()

    handlers = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stopping
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def _start(settings: Settings, children: Supervisor, stopping: threading.Event, out: TextIO) -> None:
    url = api_url(settings)
    check_port_free(settings.prefect_host, settings.prefect_port)
    service_url = service_database_url(settings)
    prefect_db = ensure_prefect_database(service_url, settings.prefect_database)
    server_log = settings.data_dir / "logs" / "prefect-server.log"
    server = children.start(server_component(settings, service_url, log=server_log))
    wait_until_healthy(url, settings.stack_start_timeout, lambda: not stopping.is_set() and server.poll() is None)
    if stopping.is_set():
        return
    if server.poll() is not None:
        tail = "\n".join(server_log.read_text(errors="replace").splitlines()[-15:])
        raise StackError(f"the Prefect server exited with code {server.returncode} while starting; "
                         f"end of {server_log}:\n{redact(tail)}")
    applied = apply_setup(settings, url)
    if stopping.is_set():
        return
    service = service_component(settings, worker_environment(settings, url))
    parts = [worker_component(settings, url), service]
    started = {part.name: children.start(part) for part in parts}
    # "running" below means the API answers
    wait_until_healthy(service.url, settings.stack_start_timeout, what="the REST service", healthy=lambda _: True,
                       still_starting=lambda: not stopping.is_set() and started[service.name].poll() is None)
    if stopping.is_set():
        return
    print(f"Prefect database: {mask_url(prefect_db)}", file=out)
    print(f"Prefect UI:       {ui_url(settings)}", file=out)
    print(f"Prefect API:      {url}  (export PREFECT_API_URL={url} to use it from another shell)", file=out)
    print(f"Work pool:        {WORK_POOL} with {', '.join(sorted(applied.deployment_ids))}", file=out)
    for part in parts:
        print(f"{part.name + ':':17} {part.url or 'running'}", file=out)
    print("Stack running; Ctrl-C stops it.", file=out, flush=True)


def _supervise(children: Supervisor, stopping: threading.Event, command: str, out: TextIO) -> int:
    dead = children.watch(stopping)
    if dead is None:
        print("Stopping ...", file=out, flush=True)
        return 0
    component, code = dead
    print(f"data-pipeline {command}: {component.name} exited unexpectedly (exit code {code}); stopping",
          file=sys.stderr, flush=True)
    return 1


def run_stack(settings: Settings | None = None, out: TextIO = sys.stdout) -> int:
    """Run the stack until Ctrl-C/SIGTERM (exit code 0) or until a part fails (1)."""
    settings = settings or get_settings()
    with stop_on_signals() as stopping, Supervisor(settings.stack_stop_timeout) as children:
        try:
            _start(settings, children, stopping, out)
        except (StackError, psycopg2.Error) as exc:  # psycopg2's messages come with the password masked
            print(f"data-pipeline up: {exc}", file=sys.stderr, flush=True)
            return 0 if stopping.is_set() else 1
        return _supervise(children, stopping, "up", out)


def run_worker(settings: Settings, url: str, out: TextIO = sys.stdout) -> int:
    """One worker on this machine for the pool of the Prefect server at ``url``, until Ctrl-C/SIGTERM."""
    with stop_on_signals() as stopping, Supervisor(settings.stack_stop_timeout) as children:
        children.start(worker_component(settings, url))
        print(f"Worker polling work pool {WORK_POOL!r} of {url}; Ctrl-C stops it.", file=out, flush=True)
        return _supervise(children, stopping, "worker", out)
