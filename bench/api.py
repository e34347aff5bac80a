"""REST API speed: ``GET /tasks/{id}`` throughput against a bare FastAPI route, and ``POST /tasks`` latency.

Starts a Prefect server (its tables on the local PostgreSQL) with the set-up applied and no worker
(runs stay scheduled), a tracking database, ``data-pipeline serve`` and, in the same run, a bare
FastAPI app (this file, ``--baseline``) whose one sync route reads the same task row with psycopg2
from a pool and returns it as JSON. Both are uvicorn on loopback ports. First ``--posts`` sequential
``POST /tasks`` with a one-table list, each timed up to its 201 (row, directory, table list, Secret
block, flow run; the answer waits DP_API_START_WAIT for Prefect at most). Then 32 clients (threads
with keep-alive connections) send ``--requests`` GETs of one task (4 step runs recorded) to each
server, alternately, ``--rounds`` times; each server's best round counts. Targets: GET at least 50%
of the bare route's throughput; POST p99 under 250 ms.

    .venv/bin/python bench/api.py [--requests 4000] [--rounds 3] [--posts 300]
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from deployments.server import api_url, ensure_prefect_database, server_component, wait_until_healthy  # noqa: E402
from deployments.setup import apply_setup, prefect_api  # noqa: E402
from deployments.supervisor import Component, Supervisor  # noqa: E402
from dp.database import connection  # noqa: E402
from dp.sample_databases import with_database  # noqa: E402
from dp.settings import Settings  # noqa: E402
from flows.plan import STEPS  # noqa: E402
from service import store  # noqa: E402
from service.api.routes import PREFIX  # noqa: E402
from service.migrate import migrate  # noqa: E402
from tests.prefect_stack import clean_environment, drop_database, free_port, settings_from  # noqa: E402

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
CLIENTS = 32
POST_BODY = {"parameters": {"db_connection": "postgresql://bench:Bench-pw@127.0.0.1:5432/bench",
                            "business_context": "bench", "tables": ["film"]}}


def baseline_app(dsn: str):
    """The bare route: a connection from a queue, one query, the row as JSON; nothing else."""
    import queue

    import psycopg2
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse
    from psycopg2.extras import RealDictCursor

    app = FastAPI()
    idle: queue.Queue = queue.Queue()
    for _ in range(10):
        idle.put(psycopg2.connect(dsn))

    @app.get(PREFIX + "/tasks/{task_id}")
    def read_task(task_id: str):
        conn = idle.get()
        try:
            with conn, conn.cursor(cursor_factory=RealDictCursor) as cur:
                # the baseline is by definition a raw query; the product reads through service/store.py
                cur.execute("SELECT * FROM data_pipeline_tasks WHERE id = %s", (task_id,))
                row = cur.fetchone()
        finally:
            idle.put(conn)
        return JSONResponse(json.loads(json.dumps(row, default=str)))

    return app


def create_database(admin_url: str, name: str) -> str:
    with connection(admin_url) as admin:
        admin.autocommit = True
        admin.cursor().execute(f'CREATE DATABASE "{name}"')
    return with_database(admin_url, name)


def wait_for(url: str, process, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited:\n{log.read_text(errors='replace')[-2000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", int(url.rsplit(":", 1)[1]), timeout=2)
            conn.request("GET", PREFIX + "/tasks/none")
            conn.getresponse().read()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"server did not answer:\n{log.read_text(errors='replace')[-2000:]}")


def hammer(port: int, path: str, total: int) -> float:
    """``total`` GETs from CLIENTS threads with keep-alive connections; requests per second."""
    per_client = total // CLIENTS
    failures: list[str] = []
    start = threading.Barrier(CLIENTS + 1)

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        start.wait()
        for _ in range(per_client):
            conn.request("GET", path)
            reply = conn.getresponse()
            reply.read()
            if reply.status != 200:
                failures.append(str(reply.status))
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    if failures:
        raise SystemExit(f"{len(failures)} GETs failed, e.g. HTTP {failures[0]}")
    return per_client * CLIENTS / elapsed


def post_latencies(port: int, count: int) -> tuple[list[float], int]:
    """Latencies of ``count`` sequential creations, and how many answers already held the flow run id."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body = json.dumps(POST_BODY)
    latencies, with_run = [], 0
    for _ in range(count):
        began = time.perf_counter()
        conn.request("POST", PREFIX + "/tasks", body=body, headers={"Content-Type": "application/json"})
        reply = conn.getresponse()
        text = reply.read()
        latencies.append(time.perf_counter() - began)
        if reply.status != 201:
            raise SystemExit(f"POST /tasks answered {reply.status}: {text[:300]!r}")
        with_run += json.loads(text)["data"]["flow_run_id"] is not None
    conn.close()
    return latencies, with_run


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def add_step_runs(tracking_url: str, task_id: str) -> None:
    """Four recorded step runs, so the detail route reads what a finished task has."""
    t0 = datetime.now(timezone.utc) - timedelta(minutes=5)
    with connection(tracking_url) as conn, conn:
        for index, step in enumerate(STEPS):
            store.upsert_execution(conn, task_id=task_id, step=step, prefect_task_run_id=uuid.uuid4(),
                                   status="completed", state_timestamp=t0 + timedelta(seconds=index + 1),
                                   started_at=t0 + timedelta(seconds=index), completed_at=t0 + timedelta(seconds=index + 1),
                                   execution_result={"duration_s": 1.0})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000, help="GETs per round and server")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--posts", type=int, default=300)
    parser.add_argument("--admin-url", default=ADMIN_URL)
    parser.add_argument("--baseline", nargs=2, metavar=("PORT", "DSN"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline:
        import uvicorn

        uvicorn.run(baseline_app(args.baseline[1]), host="127.0.0.1", port=int(args.baseline[0]))
        return

    suffix = uuid.uuid4().hex[:8]
    prefect_db, tracking_db = f"prefect_bench_{suffix}", f"dp_bench_api_{suffix}"
    tracking_url = create_database(args.admin_url, tracking_db)
    migrate(tracking_url)
    work = Path(tempfile.mkdtemp(prefix="dp-bench-api-"))
    base = clean_environment(DP_DATA_DIR=str(work / "data"), DP_DATABASE_URL=args.admin_url,
                             DP_PREFECT_PORT=str(free_port()), DP_PREFECT_DATABASE=prefect_db)
    settings = settings_from(base)
    url = api_url(settings)
    ours_port, bare_port = free_port(), free_port()
    try:
        with Supervisor(stop_timeout=15) as children, prefect_api(url):
            ensure_prefect_database(args.admin_url, prefect_db)
            server = children.start(server_component(settings, args.admin_url, base, log=work / "prefect-server.log"))
            wait_until_healthy(url, 180, lambda: server.poll() is None)
            apply_setup(settings, url, base)
            env = {**base, "PREFECT_API_URL": url, "DP_DATABASE_URL": tracking_url, "DP_OUTPUT_DIR": str(work / "tasks"),
                   "DP_MAX_CONCURRENT_RUNS": "1000000", "DP_API_PORT": str(ours_port)}
            ours = children.start(Component(name="api", argv=[sys.executable, "-m", "dp.cli", "serve"], env=env,
                                            log=work / "api.log"))
            bare = children.start(Component(name="bare", argv=[sys.executable, __file__, "--baseline", str(bare_port),
                                                               tracking_url], env=env, log=work / "bare.log"))
            wait_for(f"http://127.0.0.1:{ours_port}", ours, work / "api.log")
            wait_for(f"http://127.0.0.1:{bare_port}", bare, work / "bare.log")

            post_latencies(ours_port, 20)  # warms caches up
            latencies, with_run = post_latencies(ours_port, args.posts)
            with connection(tracking_url) as conn, conn:
                task_id = store.list_tasks(conn, limit=1)[0][0]["id"]
            add_step_runs(tracking_url, task_id)
            path = f"{PREFIX}/tasks/{task_id}"
            for port in (bare_port, ours_port):
                hammer(port, path, CLIENTS * 20)  # warm-up
            rates: dict[str, list[float]] = {"bare": [], "api": []}
            for _ in range(args.rounds):
                rates["bare"].append(hammer(bare_port, path, args.requests))
                rates["api"].append(hammer(ours_port, path, args.requests))
    finally:
        drop_database(args.admin_url, prefect_db)
        drop_database(args.admin_url, tracking_db)

    bare_rate, api_rate = max(rates["bare"]), max(rates["api"])
    print(f"GET /tasks/{{id}} with {CLIENTS} clients, {args.requests} requests x {args.rounds} rounds (best round):")
    print(f"  bare FastAPI route, one psycopg2 query : {bare_rate:8.0f} req/s  (rounds: "
          + ", ".join(f"{r:.0f}" for r in rates["bare"]) + ")")
    print(f"  data-pipeline API (envelope, step runs): {api_rate:8.0f} req/s  (rounds: "
          + ", ".join(f"{r:.0f}" for r in rates["api"]) + ")")
    print(f"  ratio {api_rate / bare_rate:.0%} (target at least 50%)")
    print(f"POST /tasks up to the 201, {len(latencies)} sequential requests (task, directory, table list, "
          "Secret block, flow run):")
    print(f"  p50 {1000 * statistics.median(latencies):.1f} ms, p99 {1000 * percentile(latencies, 0.99):.1f} ms, "
          f"max {1000 * max(latencies):.1f} ms (target p99 under 250 ms)")
    print(f"  {with_run} of {len(latencies)} answers already held the flow run id; the others answered after "
          f"DP_API_START_WAIT ({Settings.model_fields['api_start_wait'].default} s) with the run still being created "
          "in the background")


if __name__ == "__main__":
    main()
