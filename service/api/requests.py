"""Checks what a request asks for before anything is created: every problem at once, then 400.

The rules are the ones the CLI applies (flows.plan.make_plan, dp.database.validate_url,
dp.table_list.parse_table_list), reported per parameter as ``missing_params`` / ``invalid_params``.
A table list is read here too (inline, uploaded, or a server file confined to
DP_ALLOWED_INPUT_DIRS), so what gets written to the task directory has already parsed; a list
larger than DP_MAX_TABLE_LIST_BYTES is a 413.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dp.database import ConnectionStringError, database_name, mask_url, validate_url
from dp.settings import Settings
from dp.table_list import TableListError, TableName, parse_table_list, render_table_list
from flows.plan import STEPS, Plan, PlanError, make_plan
from service.api.errors import bad_request, too_large
from service.api.files import UnsafePath, input_file, output_parent
from service.api.schemas import RunOptions, TaskExecute, TaskParameters


@dataclass(frozen=True)
class TableList:
    text: str  # what goes to table_list.txt
    tables: list[TableName]


@dataclass(frozen=True)
class NewTask:
    url: str  # with its password: goes to the Secret block only
    parameters: dict  # as stored and shown: password masked
    db_name: str
    business_context: str
    output_parent: Path | None
    table_list: TableList | None
    plan: Plan


def check_size(size: int, settings: Settings, what: str = "the table list") -> None:
    """413 for a table list over DP_MAX_TABLE_LIST_BYTES."""
    if size > settings.max_table_list_bytes:
        raise too_large(f"{what} is larger than {settings.max_table_list_bytes} bytes (DP_MAX_TABLE_LIST_BYTES)",
                        settings.max_table_list_bytes)


def parse_tables(tables: list[str] | str, settings: Settings) -> TableList:
    """An inline table list (names, or one text in the list format); raises TableListError."""
    text = "\n".join(tables) if isinstance(tables, list) else tables
    check_size(len(text.encode("utf-8")), settings)
    if isinstance(tables, list):
        parsed = parse_table_list(tables)
        return TableList(render_table_list(parsed), parsed)
    return TableList(tables, parse_table_list(tables))


def decode_table_list(data: bytes, settings: Settings) -> TableList:
    """An uploaded or server-side table list file; raises TableListError (also for non-UTF-8 text)."""
    check_size(len(data), settings)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise TableListError(["the file is not UTF-8 text; save it as UTF-8"]) from None
    return TableList(text, parse_table_list(text))


def _server_table_list(path_text: str, settings: Settings) -> TableList:
    path = input_file(path_text, settings.allowed_input_dirs)
    check_size(path.stat().st_size, settings, path_text)
    return decode_table_list(path.read_bytes(), settings)


def check_plan(options: RunOptions, execution_mode: str, single_step, from_step=None) -> Plan:
    """The steps a run would execute; PlanError says which option contradicts which."""
    return make_plan(execution_mode, single_step, from_step, options.skip_validation, options.skip_training_load)


OPTION_NAMES = tuple(RunOptions.model_fields)


def run_options(options: RunOptions) -> dict:
    return options.model_dump(include=set(OPTION_NAMES))


def check_new_task(p: TaskParameters, settings: Settings) -> NewTask:
    missing: list[str] = []
    invalid: dict[str, str] = {}
    try:
        validate_url(p.db_connection)
    except ConnectionStringError as exc:
        invalid["parameters.db_connection"] = str(exc)
    if not p.business_context.strip():
        missing.append("parameters.business_context")
    try:
        plan = check_plan(p, p.execution_mode, p.single_step)
    except PlanError as exc:
        invalid[f"parameters.{exc.option}"] = str(exc)
    else:
        if plan.run and plan.run[0] != STEPS[0]:
            invalid["parameters.single_step"] = (
                f"{plan.run[0]} works on the outputs of earlier steps, which a new task does not have: create the "
                "task to run complete (or step 1), then POST /tasks/{task_id}/execute with this step")
    table_list = None
    if p.tables is not None and p.table_list_file is not None:
        invalid["parameters.tables"] = "give tables or table_list_file, not both"
    elif p.tables is not None or p.table_list_file is not None:
        name = "parameters.tables" if p.tables is not None else "parameters.table_list_file"
        try:
            table_list = parse_tables(p.tables, settings) if p.tables is not None else _server_table_list(
                p.table_list_file, settings)
        except TableListError as exc:
            invalid[name] = "; ".join(exc.problems[:20]) + (" ..." if len(exc.problems) > 20 else "")
        except (UnsafePath, FileNotFoundError, PermissionError) as exc:
            invalid[name] = str(exc) if isinstance(exc, UnsafePath) else f"{p.table_list_file!r} is not a readable file on the server"
    parent = None
    if p.output_dir is not None:
        try:
            parent = output_parent(settings, p.output_dir)
        except UnsafePath as exc:
            invalid["parameters.output_dir"] = str(exc)
    if missing or invalid:
        raise bad_request("the task cannot be created: " + "; ".join(
            [f"{name} is required" for name in missing] + [f"{k}: {v}" for k, v in invalid.items()]),
            missing=missing, invalid=invalid)
    stored = {
        "db_connection": mask_url(p.db_connection),
        "business_context": p.business_context,
        "execution_mode": p.execution_mode,
        "single_step": p.single_step,
        **run_options(p),
        "table_source": None if table_list is None else ("tables" if p.tables is not None else "table_list_file"),
        "table_list_file": p.table_list_file,
        "output_dir": p.output_dir,
    }
    return NewTask(url=p.db_connection, parameters=stored, db_name=p.db_name or database_name(p.db_connection),
                   business_context=p.business_context, output_parent=parent, table_list=table_list, plan=plan)


def check_execute(body: TaskExecute) -> Plan:
    try:
        return check_plan(body, body.execution_mode, body.single_step, body.from_step)
    except PlanError as exc:
        raise bad_request(str(exc), invalid={exc.option: str(exc)}) from None
