"""The ``data-pipeline`` command: run the pipeline by hand, or try it on the built-in demo database.

Argument problems are reported as one line on stderr with exit code 2, before anything runs. Prefect
is configured (dp/prefect_env.py) before the flow is imported, so a CLI run gets its own Prefect home
under DP_DATA_DIR unless PREFECT_API_URL points at a server.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Sequence

from dp.database import ConnectionStringError, mask_url, validate_url
from dp.settings import Settings, SettingsError, get_settings, task_output_root
from dp.table_list import TableListError, read_table_list_file
from dp.task_ids import InvalidTaskId, new_task_id, validate_task_id

EXIT_USAGE = 2


class UsageError(Exception):
    """A bad argument: reported as a single line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not argparse's usage dump
        raise UsageError(f"{message} (see {self.prog} --help)")


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output-dir", type=Path, help="parent of the task directory (default: DP_OUTPUT_DIR or <DP_DATA_DIR>/tasks)")
    p.add_argument("--task-id", help="task id, also the task directory's name (default: manual_YYYYMMDD_HHMMSS_xxxx)")
    p.add_argument("--execution-mode", choices=["complete", "single"], default="complete",
                   help="complete: steps 1-4 in order (default); single: one step, see --single-step")
    p.add_argument("--single-step", help="with --execution-mode single: 1-4 or ddl_generation, qa_generation, "
                   "sql_validation, training_load; steps 2-4 work on an earlier run's files (give its --task-id)")
    p.add_argument("--from-step", help="with complete mode: re-run an existing task (its --task-id) from this step "
                   "onward (1-4 or name)")
    p.add_argument("--skip-validation", action="store_true", help="skip step 3 (sql_validation)")
    p.add_argument("--disable-llm-repair", action="store_true", help="step 3 only reports failing SQL, without repairing it")
    p.add_argument("--no-modify-file", action="store_true", help="step 3 leaves the pair file as it is")
    p.add_argument("--skip-training-load", action="store_true", help="skip step 4 (training_load)")
    p.add_argument("--backup-vector-tables", action="store_true", help="step 4 backs up the vector tables to vector_bak/ first")
    p.add_argument("--truncate-vector-tables", action="store_true", help="step 4 empties the vector tables first (implies backup)")
    p.add_argument("--no-db-tracking", action="store_true",
                   help="do not record the run in the service database's tracking tables (recorded by default, created_by manual)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="data-pipeline",
        description="Build text-to-SQL training data (DDL, data dictionaries, validated question/SQL pairs, "
        "embeddings) from a PostgreSQL database, as a Prefect pipeline.",
        epilog="Settings come from DP_* environment variables; see the README.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser("run", help="run the pipeline on a database and a table list",
                         description="Run the schema_workflow flow in this process and write its outputs to <output-dir>/<task-id>/. "
                                     "The run talks to the Prefect server of PREFECT_API_URL (e.g. http://127.0.0.1:4200/api with "
                                     "`data-pipeline up` running), where it shows in the UI; without one it starts a temporary "
                                     "server of its own (a few seconds), gone when the run ends.")
    run.add_argument("--db-connection", required=True, metavar="URL",
                     help="business database, postgresql://user:password@host:port/dbname (the password is never stored or logged)")
    run.add_argument("--table-list", required=True, type=Path, metavar="FILE",
                     help="file naming the tables: one per line or comma-separated, table or schema.table, # comments")
    run.add_argument("--business-context", required=True, metavar="TEXT",
                     help='what the database is for, e.g. "高速公路服务区管理系统"; sets the language of comments and questions')
    _add_run_options(run)

    demo = sub.add_parser("demo", help="load the built-in highway service-area database and run the pipeline on it",
                          description="Load the demo business database into the embedded PostgreSQL and run all four steps on it.")
    _add_run_options(demo)

    sub.add_parser("up", help="start the local stack: Prefect server on PostgreSQL, deployments, a worker, the REST API",
                   description="Start the Prefect server (on the service PostgreSQL), apply the work pool, deployments "
                   "and zombie-run automation, start a worker and the REST service with its mirror; "
                   "Ctrl-C or SIGTERM stops them all.")
    for name, help_text, description in (
        ("deploy", "apply the work pool, deployments (prefect.yaml) and zombie-run automation to a Prefect server",
         "Apply the work pool, the deployments of prefect.yaml and the zombie-run automation; safe to repeat."),
        ("worker", "start a worker on this machine for the data-pipeline work pool",
         "Start a worker polling the data-pipeline work pool, with heartbeats on and flow runs starting in this checkout."),
    ):
        p = sub.add_parser(name, help=help_text, description=description)
        p.add_argument("--api-url", metavar="URL",
                       help="Prefect API, e.g. http://prefect-host:4200/api (default: PREFECT_API_URL, else DP_PREFECT_HOST:DP_PREFECT_PORT)")

    serve = sub.add_parser("serve", help="serve the REST API (FastAPI on uvicorn), with the mirror in its process",
                           description="Serve the REST API under /api/v0/data_pipeline/ (OpenAPI at /docs) on "
                           "DP_API_HOST:DP_API_PORT; it starts runs on the Prefect server of PREFECT_API_URL, else "
                           "DP_PREFECT_HOST:DP_PREFECT_PORT. The mirror runs in a thread and keeps the tracking tables in step "
                           "with Prefect (DP_API_MIRROR=false leaves that to a separate `data-pipeline mirror`).")
    serve.add_argument("--host", help="address to listen on (default: DP_API_HOST)")
    serve.add_argument("--port", type=int, help="port to listen on (default: DP_API_PORT)")
    mirror = sub.add_parser("mirror", help="keep the tracking tables in step with Prefect's flow runs (alone; `serve` also runs it)",
                            description="Poll Prefect every DP_MIRROR_POLL_INTERVAL seconds and mirror every run of "
                            "schema_workflow (status, steps, logs, output files) into the tracking tables; Ctrl-C or "
                            "SIGTERM stops it.")
    mirror.add_argument("--api-url", metavar="URL",
                        help="Prefect API, e.g. http://prefect-host:4200/api (default: PREFECT_API_URL, else DP_PREFECT_HOST:DP_PREFECT_PORT)")
    mirror_mode = mirror.add_mutually_exclusive_group()
    mirror_mode.add_argument("--rebuild", action="store_true", help="re-derive every row from all of Prefect's flow runs once, then exit")
    mirror_mode.add_argument("--once", action="store_true", help="one poll, then exit")
    return parser


def _task_dir(args: argparse.Namespace, task_id: str) -> Path:
    return (args.output_dir or task_output_root(get_settings())).expanduser().resolve() / task_id


def _check_run_args(args: argparse.Namespace) -> None:
    from flows.plan import STEPS, PlanError, make_plan

    try:
        if args.task_id:
            validate_task_id(args.task_id)
        plan = make_plan(args.execution_mode, args.single_step, args.from_step, args.skip_validation,
                         args.skip_training_load)
        if getattr(args, "db_connection", None):
            validate_url(args.db_connection)
    except (InvalidTaskId, PlanError, ConnectionStringError) as exc:
        raise UsageError(str(exc)) from None
    if plan.run and plan.run[0] != STEPS[0]:  # a later step reads the files of an earlier run of the task
        option = f"--from-step {args.from_step}" if args.from_step else f"--single-step {args.single_step}"
        if not args.task_id:
            raise UsageError(f"{option} works on the files of an earlier run: give that run's --task-id")
        task_dir = _task_dir(args, args.task_id)
        if not task_dir.is_dir():
            raise UsageError(f"{option}: no task directory {task_dir}; give the --task-id "
                             "(and --output-dir) of an earlier run, or run from step 1")


def _read_table_list(path: Path) -> str:
    try:
        return read_table_list_file(path)[0]
    except TableListError as exc:
        raise UsageError(str(exc)) from None


def _print_summary(result: dict[str, Any], task_dir: Path) -> None:
    print(f"\nTask {result['task_id']} finished. Outputs in {task_dir}")
    for step, r in result["steps"].items():
        if r.get("status") == "skipped":
            print(f"  {step:15} skipped")
            continue
        figures = {
            "ddl_generation": f"{r.get('succeeded')}/{r.get('tables_total')} tables, {len(r.get('failed', []))} failed",
            "qa_generation": f"{r.get('pairs')} pairs in {r.get('themes_succeeded')}/{r.get('themes_total')} themes",
            "sql_validation": f"{r.get('valid')}/{r.get('total')} valid, {r.get('repair', {}).get('successful', 0)} repaired, {r.get('deleted', 0)} removed",
            "training_load": f"{r.get('items', {}).get('total')} items, recall@5 sql {r.get('recall_at_k', {}).get('sql', {}).get('5')}",
        }[step]
        print(f"  {step:15} {figures} ({r.get('duration_s')} s)")
    print(f"  log: {task_dir / 'data_pipeline.log'}")


def _run_flow(args: argparse.Namespace, db_url: str, table_list_text: str, business_context: str) -> int:
    from dp.connections import reference_for_url
    from dp.logs import console_progress
    from dp.prefect_env import configure_prefect, flush_prefect_queues, start_temporary_server

    settings = get_settings()
    task_id = args.task_id or new_task_id("manual")
    task_dir = _task_dir(args, task_id)
    task_dir.mkdir(parents=True, exist_ok=True)
    if args.from_step is None or not (task_dir / "table_list.txt").exists():
        (task_dir / "table_list.txt").write_text(table_list_text, encoding="utf-8")
    print(f"Task {task_id}: {mask_url(db_url)} -> {task_dir}")
    configure_prefect(settings)
    start_temporary_server()
    flush_prefect_queues()  # no worker left aimed at another server (see its docstring)
    from flows.schema_workflow import schema_workflow

    parameters = dict(
        task_id=task_id, connection=reference_for_url(db_url), output_dir=str(task_dir),
        business_context=business_context, execution_mode=args.execution_mode,
        single_step=args.single_step, from_step=args.from_step, skip_validation=args.skip_validation,
        disable_llm_repair=args.disable_llm_repair, no_modify_file=args.no_modify_file,
        skip_training_load=args.skip_training_load, backup_vector_tables=args.backup_vector_tables,
        truncate_vector_tables=args.truncate_vector_tables,
    )
    with ExitStack() as stack:
        stack.enter_context(console_progress())
        hooks = [] if args.no_db_tracking else _start_tracking(stack, settings, parameters, db_url)
        flow = schema_workflow.with_options(on_running=hooks) if hooks else schema_workflow
        try:
            result = flow(**parameters)
        except Exception as exc:
            print(f"\nTask {task_id} failed: {exc}\n  outputs and log: {task_dir}", file=sys.stderr)
            return 1
        _print_summary(result, task_dir)
        return 0


def _start_tracking(stack: ExitStack, settings: Settings, parameters: dict[str, Any], db_url: str) -> list:
    """Record the run in the tracking tables (service/run_tracking.py); returns the flow hooks that tell
    the tracker its flow run. The run goes on untracked (no hooks) when the tables are out of reach."""
    from dp.database import database_name
    from service.run_tracking import TrackingUnavailable, tracked_run

    try:
        tracker = stack.enter_context(tracked_run(settings, parameters, database_name(db_url)))
    except TrackingUnavailable as exc:
        print(f"Task {parameters['task_id']} is not tracked ({exc}); --no-db-tracking skips tracking", file=sys.stderr)
        return []
    return [tracker.on_running]


def _cmd_run(args: argparse.Namespace) -> int:
    _check_run_args(args)
    return _run_flow(args, args.db_connection, _read_table_list(args.table_list), args.business_context)


def _cmd_demo(args: argparse.Namespace) -> int:
    _check_run_args(args)
    from dp.database import service_database_url
    from dp.demo import DEMO_BUSINESS_CONTEXT, demo_table_list, load_demo_database

    print("Loading the demo database (highway service areas) into the embedded PostgreSQL ...")
    db_url = load_demo_database(service_database_url())
    return _run_flow(args, db_url, demo_table_list(), DEMO_BUSINESS_CONTEXT)


def _api_url_arg(args: argparse.Namespace) -> str:
    if args.api_url and not args.api_url.startswith(("http://", "https://")):
        raise UsageError(f"--api-url must be an http(s) URL such as http://host:4200/api (got {args.api_url!r})")
    from deployments.stack import resolve_api_url

    return resolve_api_url(args.api_url, get_settings())


def _cmd_up(args: argparse.Namespace) -> int:
    from deployments.stack import run_stack

    return run_stack(get_settings())


def _cmd_deploy(args: argparse.Namespace) -> int:
    from deployments.setup import apply_setup
    from deployments.supervisor import StackError

    url = _api_url_arg(args)
    try:
        applied = apply_setup(get_settings(), url)
    except StackError as exc:
        print(f"data-pipeline deploy: {exc}", file=sys.stderr)
        return 1
    print(f"Applied to {url}: work pool, deployments {', '.join(sorted(applied.deployment_ids))}, zombie-run automation")
    return 0


def _cmd_worker(args: argparse.Namespace) -> int:
    from deployments.stack import run_worker

    return run_worker(get_settings(), _api_url_arg(args))


def _cmd_serve(args: argparse.Namespace) -> int:
    if args.port is not None and not 1 <= args.port <= 65535:
        raise UsageError(f"--port must be 1-65535 (got {args.port})")
    from service.api.main import serve

    overrides = {k: v for k, v in (("api_host", args.host), ("api_port", args.port)) if v is not None}
    return serve(get_settings().model_copy(update=overrides))


def _cmd_mirror(args: argparse.Namespace) -> int:
    import threading

    from deployments.setup import prefect_api
    from deployments.stack import stop_on_signals
    from service.mirror_service import run_mirror, run_rebuild

    settings = get_settings()
    with prefect_api(_api_url_arg(args)):
        if args.rebuild:
            return run_rebuild(settings)
        if args.once:
            return run_mirror(settings, threading.Event(), once=True)
        with stop_on_signals() as stopping:
            return run_mirror(settings, stopping)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        return {"run": _cmd_run, "demo": _cmd_demo, "up": _cmd_up, "deploy": _cmd_deploy, "worker": _cmd_worker,
                "serve": _cmd_serve, "mirror": _cmd_mirror}[args.command](args)
    except (UsageError, SettingsError) as exc:
        print(f"data-pipeline: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
