"""Mirror latency: how long after Prefect records a state does the tracking table show it?

Starts a Prefect server (its tables on the local PostgreSQL), the set-up, a worker (polling every
second) and ``data-pipeline mirror`` as a process of its own, then runs ``--runs`` flow runs of the
on-demand deployment one after another (step 1 on one pagila table). A watcher reads the tracking
table every 20 ms; as the baseline, another reads Prefect's API every 20 ms. For each run's
Running and Completed states: mirror delay = first seen in the table - the state's timestamp;
baseline delay = first seen through Prefect's API - the same timestamp. Then ``--crashes`` runs are
killed with SIGKILL while step 1 waits on a locked table: delay from the kill to the failed row.
Targets: mirror median under 1 s; a crashed run mirrored within 5 s while its worker lives.

    .venv/bin/python bench/mirror_latency.py [--runs 20] [--crashes 3] [--poll 0.5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg2  # noqa: E402

from deployments.server import api_url, ensure_prefect_database, server_component, wait_until_healthy  # noqa: E402
from deployments.setup import apply_setup, prefect_api  # noqa: E402
from deployments.stack import worker_component, worker_environment  # noqa: E402
from deployments.supervisor import Component, Supervisor  # noqa: E402
from dp.database import connection  # noqa: E402
from dp.sample_databases import load_sample_database, with_database  # noqa: E402
from service.migrate import migrate  # noqa: E402
from tests.prefect_stack import clean_environment, drop_database, free_port, settings_from  # noqa: E402
from tests.service.test_mirror import flow_run_process  # noqa: E402

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
ON_DEMAND = "schema_workflow/on-demand"


class FirstSeen(threading.Thread):
    """Polls ``read()`` (-> iterable of (task id, state name)) every 20 ms; keeps when each pair first showed."""

    def __init__(self, read) -> None:
        super().__init__(daemon=True)
        self.read, self.seen, self.stop = read, {}, threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.02):
            now = time.time()
            try:
                pairs = list(self.read())
            except Exception:  # a restart of the database or API: keep watching
                continue
            for pair in pairs:
                self.seen.setdefault(pair, now)


def create_database(admin_url: str, name: str) -> str:
    with connection(admin_url) as admin:
        admin.autocommit = True
        admin.cursor().execute(f'CREATE DATABASE "{name}"')
    return with_database(admin_url, name)


def summary(values: list[float]) -> str:
    if not values:
        return "no samples"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"median {statistics.median(ordered):.3f} s, p95 {p95:.3f} s, max {ordered[-1]:.3f} s (n={len(ordered)})"


def wait(what: str, check, timeout: float = 180.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise SystemExit(f"timed out waiting for {what}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--crashes", type=int, default=3)
    parser.add_argument("--poll", type=float, default=0.5, help="DP_MIRROR_POLL_INTERVAL of the mirror")
    parser.add_argument("--admin-url", default=ADMIN_URL)
    args = parser.parse_args()

    suffix = uuid.uuid4().hex[:8]
    names = {"prefect": f"prefect_bench_{suffix}", "tracking": f"dp_bench_{suffix}", "slow": f"dp_bench_slow_{suffix}"}
    pagila = load_sample_database("pagila", args.admin_url)
    tracking_url = create_database(args.admin_url, names["tracking"])
    migrate(tracking_url)
    slow_url = create_database(args.admin_url, names["slow"])
    with connection(slow_url) as setup:
        setup.autocommit = True
        setup.cursor().execute("CREATE TABLE slow (id int PRIMARY KEY, name text); INSERT INTO slow VALUES (1, 'a')")
    work = Path(tempfile.mkdtemp(prefix="dp-bench-mirror-"))
    base = clean_environment(DP_DATA_DIR=str(work / "data"), DP_DATABASE_URL=args.admin_url,
                             DP_PREFECT_PORT=str(free_port()), DP_PREFECT_DATABASE=names["prefect"],
                             PREFECT_WORKER_QUERY_SECONDS="1")
    settings = settings_from(base)
    url = api_url(settings)
    try:
        with Supervisor(stop_timeout=15) as children, prefect_api(url):
            ensure_prefect_database(args.admin_url, names["prefect"])
            server = children.start(server_component(settings, args.admin_url, base, log=work / "prefect-server.log"))
            wait_until_healthy(url, 180, lambda: server.poll() is None)
            applied = apply_setup(settings, url, base)
            env = worker_environment(settings, url, base)
            children.start(worker_component(settings, url, base, log=work / "worker.log"))
            children.start(Component(name="mirror", argv=[sys.executable, "-m", "dp.cli", "mirror"],
                                     env={**env, "DP_DATABASE_URL": tracking_url,
                                          "DP_MIRROR_POLL_INTERVAL": str(args.poll)},
                                     log=work / "mirror.log"))
            run_benchmark(args, applied.deployment_ids[ON_DEMAND], pagila, slow_url, tracking_url, work)
    finally:
        for name in names.values():
            drop_database(args.admin_url, name)
        shutil.rmtree(work, ignore_errors=True)


def run_benchmark(args, deployment_id, pagila: str, slow_url: str, tracking_url: str, work: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    ids: dict[uuid.UUID, str] = {}
    table = psycopg2.connect(tracking_url)
    table.autocommit = True

    def table_states():
        with table.cursor() as cur:
            cur.execute("SELECT id, last_flow_run_state FROM data_pipeline_tasks WHERE last_flow_run_state IS NOT NULL")
            return cur.fetchall()

    with get_client(sync_client=True) as client, get_client(sync_client=True) as watcher_client:
        def api_states():
            runs = watcher_client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=list(ids))))
            return [(ids[r.id], r.state_name) for r in runs] if ids else []

        mirrored, baseline = FirstSeen(table_states), FirstSeen(api_states)
        mirrored.start()
        baseline.start()

        def start(task_id: str, db_url: str, tables: str) -> tuple[uuid.UUID, float]:
            task_dir = work / "tasks" / task_id
            task_dir.mkdir(parents=True)
            (task_dir / "table_list.txt").write_text(tables)
            triggered = time.time()
            run = client.create_flow_run_from_deployment(deployment_id, name=task_id, parameters={
                "task_id": task_id, "connection": db_url, "output_dir": str(task_dir), "business_context": "bench",
                "execution_mode": "single", "single_step": "ddl_generation"})
            ids[run.id] = task_id
            return run.id, triggered

        mirror_delays, api_delays, to_start = [], [], []
        for n in range(args.runs):
            task_id = f"task_bench_{n:02d}"
            run_id, triggered = start(task_id, pagila, "language\n")
            wait(f"{task_id} completed in the table", lambda: (task_id, "Completed") in mirrored.seen)
            states = {s.name: s.timestamp.timestamp() for s in client.read_flow_run_states(run_id)}
            to_start.append(states["Running"] - triggered)
            for name in ("Running", "Completed"):
                if (task_id, name) in mirrored.seen:
                    mirror_delays.append(mirrored.seen[(task_id, name)] - states[name])
                if (task_id, name) in baseline.seen:
                    api_delays.append(baseline.seen[(task_id, name)] - states[name])
            print(f"run {n + 1}/{args.runs}: trigger->Running {to_start[-1]:.2f} s", flush=True)

        crash_delays, crash_state_delays = [], []
        locker = psycopg2.connect(slow_url)
        locker.cursor().execute("LOCK TABLE slow IN ACCESS EXCLUSIVE MODE")  # step 1 waits on it
        for n in range(args.crashes):
            task_id = f"task_bench_crash_{n}"
            run_id, _ = start(task_id, slow_url, "slow\n")
            pid = wait(f"{task_id}'s flow process", lambda: (task_id, "Running") in mirrored.seen and flow_run_process(run_id))
            time.sleep(0.5)
            killed = time.time()
            os.kill(pid, signal.SIGKILL)
            wait(f"{task_id} crashed in the table", lambda: (task_id, "Crashed") in mirrored.seen, timeout=60)
            crashed = next(s.timestamp.timestamp() for s in client.read_flow_run_states(run_id) if s.name == "Crashed")
            crash_delays.append(mirrored.seen[(task_id, "Crashed")] - killed)
            crash_state_delays.append(crashed - killed)
            print(f"crash {n + 1}/{args.crashes}: kill->failed row {crash_delays[-1]:.2f} s", flush=True)
        locker.rollback()
        mirrored.stop.set()
        baseline.stop.set()
    table.close()

    mirror_median, api_median = statistics.median(mirror_delays), statistics.median(api_delays)
    print(f"\nmirror poll interval {args.poll} s; worker polls every 1 s")
    print(f"state change -> mirrored row:          {summary(mirror_delays)}  [target: median < 1 s]")
    print(f"state change -> visible in Prefect API: {summary(api_delays)}  (baseline: polling Prefect every 20 ms)")
    print(f"ratio mirror/baseline (medians):        {mirror_median / api_median:.1f}x")
    print(f"trigger -> flow run Running:           {summary(to_start)}")
    if crash_delays:
        print(f"SIGKILL -> Crashed state in Prefect:    {summary(crash_state_delays)}")
        print(f"SIGKILL -> failed row (mirrored):      {summary(crash_delays)}  [target: < 5 s]")


if __name__ == "__main__":
    main()
