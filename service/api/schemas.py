"""Request bodies and response payloads of the REST API (the ``data`` inside the envelope).

Requests forbid unknown fields, so a misspelt option is a 400 naming it instead of being ignored.
Types are checked here; what needs more than a type (a step name, a connection string, a table
list) is checked by the code that owns that rule (flows.plan, dp.database, dp.table_list), so the
API and the CLI refuse the same things with the same words. Responses never hold a password.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _plain_text(value: str) -> str:
    """Text PostgreSQL and the file system can hold: no NUL, no lone surrogate."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (no lone surrogates)") from None
    return value


Text = Annotated[str, AfterValidator(_plain_text)]
Step = Literal["ddl_generation", "qa_generation", "sql_validation", "training_load"]
StepRef = int | Text  # 1-4 or a step name, checked by flows.plan.step_name


class RunOptions(BaseModel):
    """Switches of one run, as ``data-pipeline run`` has them."""

    model_config = ConfigDict(extra="forbid")

    skip_validation: bool = Field(False, description="skip step 3 (sql_validation)")
    disable_llm_repair: bool = Field(False, description="step 3 only reports failing SQL, without repairing it")
    no_modify_file: bool = Field(False, description="step 3 leaves the pair file as it is")
    skip_training_load: bool = Field(False, description="skip step 4 (training_load)")
    backup_vector_tables: bool = Field(False, description="step 4 backs up the vector tables to vector_bak/ first")
    truncate_vector_tables: bool = Field(False, description="step 4 empties the vector tables first (implies backup)")


class TaskParameters(RunOptions):
    db_connection: Text = Field(
        ..., max_length=2000, description="postgresql://user:password@host:port/dbname; the password is kept only in a "
        "Prefect Secret block and shown masked")
    business_context: Text = Field(..., min_length=1, max_length=2000, description="what the database is for")
    tables: list[Text] | Text | None = Field(
        None, description='table names (["film", "public.actor"]) or one text in the table-list format')
    table_list_file: Text | None = Field(
        None, max_length=4096, description="a table list on the server, inside DP_ALLOWED_INPUT_DIRS")
    execution_mode: Text = Field("complete", description="complete (steps 1-4) or single (one step)")
    single_step: StepRef | None = Field(None, description="with execution_mode single: 1-4 or a step name")
    output_dir: Text | None = Field(
        None, max_length=4096, description="parent of the task directory, inside the output root (default: the root)")
    db_name: Text | None = Field(None, max_length=100, description="label to filter by (default: the database name)")


class TaskCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task_type: Literal["complete_workflow", "data_workflow"] = "complete_workflow"
    parameters: TaskParameters


class TaskExecute(RunOptions):
    execution_mode: Text = Field("complete", description="complete (steps 1-4 or from_step on) or single (one step)")
    single_step: StepRef | None = Field(None, description="with execution_mode single: 1-4 or a step name")
    from_step: StepRef | None = Field(None, description="with execution_mode complete: re-run from this step on")


class TableListBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tables: list[Text] | Text = Field(..., description='table names, or one text in the table-list format ("a, b")')


# --- responses -------------------------------------------------------------------------------


class TaskCreated(BaseModel):
    task_id: str
    status: str
    created_at: str
    output_directory: str
    flow_run_id: str | None = None
    table_count: int | None = None
    next_step: str | None = None
    idempotent_replay: bool = False


class StepDetail(BaseModel):
    step: Step
    status: str
    started_at: str | None = None
    completed_at: str | None = None
    duration: float | None = None
    error_message: str | None = None
    execution_id: str | None = None
    runs: int = 0


class TaskSummary(BaseModel):
    task_id: str
    task_type: str
    status: str
    progress: int
    current_step: str | None = None
    step_status: dict[str, str]
    created_at: str
    started_at: str | None = None
    completed_at: str | None = None
    updated_at: str | None = None
    created_by: str
    db_name: str | None = None
    business_context: str | None = None
    output_directory: str | None = None
    flow_run_id: str | None = None
    duration: float | None = None


class TaskDetail(TaskSummary):
    parameters: dict
    result: dict | None = None
    error_message: str | None = None
    error_step: str | None = None
    step_details: list[StepDetail]


class Pagination(BaseModel):
    page: int
    page_size: int
    total: int
    total_pages: int
    has_next: bool
    has_prev: bool


class TaskPage(BaseModel):
    tasks: list[TaskSummary]
    total: int
    pagination: Pagination


class ActiveTasks(BaseModel):
    tasks: list[TaskSummary]
    total: int
    limit: int


class RunStarted(BaseModel):
    task_id: str
    status: str
    flow_run_id: str
    steps: list[str]
    skipped_steps: list[str]


class CancelResult(BaseModel):
    task_id: str
    status: str
    flow_run_state: str | None = None


class DeleteResult(BaseModel):
    task_id: str
    files_only: bool
    directory_removed: bool
    files_removed: int
    bytes_removed: int
    records_deleted: bool
    secret_removed: bool
    flow_runs_removed: int
    was_cancelled: bool


class LogLine(BaseModel):
    id: int
    timestamp: str
    level: str
    step: str | None = None
    logger: str | None = None
    message: str
    execution_id: str | None = None


class LogPage(BaseModel):
    logs: list[LogLine]
    next_after: int | None = Field(None, description="pass as `after` for the next page; null: no more lines now")


class FileInfo(BaseModel):
    name: str
    type: str
    size: int
    sha256: str
    modified_at: str
    primary: bool


class FileList(BaseModel):
    task_id: str
    directory_exists: bool
    files: list[FileInfo]
    total_files: int
    total_size: int


class TableListInfo(BaseModel):
    task_id: str
    has_file: bool
    file_name: str
    file_size: int | None = None
    modified_at: str | None = None
    table_count: int | None = None
    tables: list[str] | None = None
    problems: list[str] | None = None


class Health(BaseModel):
    database: str
    prefect: str
    prefect_api_url: str | None = None


class ErrorData(BaseModel):
    error_type: str
    missing_params: list[str] | None = None
    invalid_params: dict[str, str] | None = None
