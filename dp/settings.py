"""All configuration, read once from environment variables prefixed ``DP_``.

Nothing else in the code base reads ``os.environ`` for our own settings: import ``get_settings()``.
Every field is documented in the README's configuration table; ``tests/test_docs.py`` keeps the two
in step. Prefect's own knobs stay in ``PREFECT_*`` variables.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings import SettingsError as _SourceError


class Settings(BaseSettings):
    """One object holding every ``DP_*`` setting, typed and with its default."""

    model_config = SettingsConfigDict(env_prefix="DP_", extra="ignore")

    # --- where things live -------------------------------------------------------------
    data_dir: Path = Field(
        default=Path.home() / ".data-pipeline",
        description="Home of the embedded PostgreSQL, Prefect's home for CLI runs and default outputs.",
    )
    output_dir: Path | None = Field(
        default=None, description="Parent of the per-task output directories (default <data_dir>/tasks)."
    )
    connections: dict[str, SecretStr] = Field(
        default_factory=dict,
        description='Named business databases as a JSON object, e.g. {"sales": "postgresql://u:p@h/db"}; flows refer to them as named:<name>.',
    )
    database_url: SecretStr | None = Field(
        default=None,
        description="Service database (tracking tables, vector store). Unset: an embedded PostgreSQL under <data_dir>/pg.",
    )

    # --- the flow ----------------------------------------------------------------------
    step_retries: int = Field(default=2, ge=0, description="Retries of a step after a transient failure (lost connection, LLM 429/5xx).")
    step_retry_delay: float = Field(default=10.0, ge=0, description="Seconds before a step is retried.")
    step_timeout: float = Field(default=3600.0, gt=0, description="Seconds a step may run before it is failed.")

    # --- step 1: ddl_generation ----------------------------------------------------------
    sample_rows: int = Field(default=20, ge=0, description="Rows sampled per table (0 disables sampling).")
    sample_text_max: int = Field(default=80, ge=8, description="Sampled text values are cut to this many characters.")
    enum_max_values: int = Field(default=20, ge=1, description="At most this many distinct values make a column an enum.")
    table_concurrency: int = Field(default=4, ge=1, description="Tables processed at once in step 1.")
    comment_language: Literal["auto", "zh", "en"] = Field(
        default="auto", description="Language of generated comments; auto: Chinese when the business context is Chinese."
    )
    # step 1 sampling and enum probes (ddl_generation helper)
    sample_values_max: int = Field(default=5, ge=1, description="Distinct sample values kept per column.")
    sample_tablesample_rows: int = Field(
        default=100_000, ge=1, description="Row estimate above which sampling and enum probes read a TABLESAMPLE SYSTEM."
    )
    sample_statement_timeout: float = Field(
        default=15.0, gt=0, description="Seconds before one catalog, sampling or enum-probe query of step 1 is cancelled."
    )
    lock_timeout: float = Field(
        default=2.0, gt=0, description="Seconds a catalog read of step 1 or a check of step 3 waits for a table another session holds locked (ALTER TABLE, TRUNCATE, VACUUM FULL); step 1 then fails that table alone, step 3 keeps the pair unchecked (skipped). Step 3 waits at most half of DP_VALIDATION_TIMEOUT_MS."
    )

    # --- step 2: qa_generation ------------------------------------------------------------
    qa_theme_count: int = Field(
        default=5, ge=1, description="Business themes proposed per schema (split over the table groups when the schema is large)."
    )
    qa_pairs_per_theme: int = Field(default=10, ge=1, description="Question/SQL pairs written per theme.")
    qa_theme_concurrency: int = Field(default=4, ge=1, description="Themes (and table groups) processed at once in step 2.")
    qa_context_token_budget: int = Field(
        default=16_000,
        ge=200,
        description="Estimated tokens of data dictionaries one LLM prompt may carry; larger schemas are split into foreign-key groups.",
    )

    # --- step 3: sql_validation ----------------------------------------------------------
    validation_timeout_ms: int = Field(
        default=5000, ge=1, description="Milliseconds before one EXPLAIN or execution check of step 3 is cancelled."
    )
    validation_concurrency: int = Field(
        default=4, ge=1, description="Pooled connections, and so queries in flight at once, while step 3 validates."
    )
    validation_execute: bool = Field(
        default=True, description="Also run each query read-only with LIMIT 1; an empty result is a warning."
    )
    repair_max_rounds: int = Field(default=2, ge=0, description="Repair attempts per failing SQL before it counts as invalid.")
    repair_ddl_max_chars: int = Field(
        default=20_000, ge=500, description="Most DDL characters sent with one repair request."
    )

    # --- step 4: training_load (embeddings, vector store) ---------------------------------
    embedding_provider: Literal["local", "openai"] = Field(
        default="local",
        description="local (all-MiniLM-L6-v2 int8 ONNX, 384-d, offline) or openai (any OpenAI-compatible /v1/embeddings endpoint).",
    )
    embedding_base_url: str | None = Field(
        default=None, description="Base URL of the OpenAI-compatible embeddings API, e.g. http://host/v1 (unset: DP_LLM_BASE_URL)."
    )
    embedding_api_key: SecretStr | None = Field(
        default=None, description="API key for the embeddings endpoint (unset: DP_LLM_API_KEY)."
    )
    embedding_model: str = Field(default="text-embedding-3-small", description="Embedding model name (openai provider).")
    embedding_max_tokens: int = Field(
        default=8191,
        ge=16,
        description="Input window of the openai embedding model, in tokens; longer texts are split (the local model's is 256).",
    )
    embedding_batch_size: int = Field(
        default=32, ge=1, description="Texts per embeddings request (openai) or per model run (local)."
    )
    embedding_timeout: float = Field(default=60.0, gt=0, description="Seconds before one embeddings request times out.")
    embedding_max_retries: int = Field(
        default=3, ge=0, description="Retries of an embeddings request on 429, 5xx and timeouts, with exponential backoff."
    )
    vector_store: Literal["auto", "pgvector", "plain"] = Field(
        default="auto",
        description="auto: pgvector (Vanna's langchain-postgres tables) when the service database has the vector extension, else plain (float32 bytea, exact cosine in numpy).",
    )

    # --- LLM ------------------------------------------------------------------------------
    llm_provider: Literal["heuristic", "openai"] = Field(
        default="heuristic", description="heuristic (offline, deterministic) or openai (any OpenAI-compatible endpoint)."
    )
    llm_base_url: str | None = Field(default=None, description="Base URL of the OpenAI-compatible API, e.g. http://host/v1.")
    llm_api_key: SecretStr | None = Field(default=None, description="API key for the LLM endpoint.")
    llm_model: str = Field(default="gpt-4o-mini", description="Chat model name.")
    llm_timeout: float = Field(default=60.0, gt=0, description="Seconds before one LLM call times out.")
    llm_max_retries: int = Field(default=3, ge=0, description="Retries on 429, 5xx and timeouts, with exponential backoff.")
    llm_max_concurrency: int = Field(default=4, ge=1, description="LLM calls in flight at once, per process.")
    # LLM client retries and sampling (dp/llm helper)
    llm_backoff_base: float = Field(
        default=1.0, gt=0, description="Seconds before the first LLM retry; each further retry doubles it (with jitter)."
    )
    llm_backoff_max: float = Field(
        default=30.0, gt=0, description="Longest wait between LLM retries, also the cap on a server's Retry-After."
    )
    llm_temperature: float | None = Field(
        default=None, ge=0, description="Sampling temperature sent with every LLM call; unset: the server's default."
    )

    # --- tracking tables (service/store) ------------------------------------------------------
    max_concurrent_runs: int = Field(
        default=1, ge=1, description="Tasks that may run (or wait in Prefect to run) at once; one more is refused with 409."
    )
    retention_days: int = Field(
        default=30, ge=1, description="Finished (completed/failed/cancelled) tasks are deleted this many days after they ended."
    )

    # --- the mirror of Prefect run states (service/mirror.py, `data-pipeline mirror`) ---------------
    mirror_poll_interval: float = Field(
        default=0.5, gt=0, description="Seconds between two polls of Prefect by the mirror (and by a tracked `data-pipeline run`)."
    )
    mirror_log_grace: float = Field(
        default=10.0, gt=0, description="Seconds after a flow run ends until the mirror reads its logs a last time (Prefect receives logs in batches)."
    )
    mirror_catch_up_hours: float = Field(
        default=24.0, ge=0, description="On start, the mirror also reads flow runs that ended this many hours back (runs it missed while stopped)."
    )

    # --- Prefect stack: server, deployments, workers (deployments/) ----------------------------
    prefect_host: str = Field(
        default="127.0.0.1", description="Address the Prefect server of `data-pipeline up` listens on (loopback by default)."
    )
    prefect_port: int = Field(
        default=4200, ge=1, le=65535, description="Its port: UI at http://<host>:<port>, API at http://<host>:<port>/api."
    )
    prefect_database: str = Field(
        default="prefect", description="Database of Prefect's own tables, on the service database server (created when missing)."
    )
    deployment_concurrency: int = Field(
        default=1, ge=1, description="Flow runs of one deployment at a time; further runs wait in Prefect's queue (ENQUEUE)."
    )
    heartbeat_seconds: int = Field(
        default=30, ge=30, description="Seconds between the heartbeats of a flow run on a worker (PREFECT_FLOWS_HEARTBEAT_FREQUENCY)."
    )
    zombie_after_seconds: int = Field(
        default=90, ge=60, description="A running flow run silent this long (no heartbeat, no state change) is marked Crashed."
    )
    repo_dir: Path | None = Field(
        default=None, description="data-pipeline checkout flow runs start in on a worker machine (unset: the one this code runs from)."
    )
    nightly_dir: Path | None = Field(
        default=None, description="Task directory of the scheduled nightly refresh, holding its table_list.txt (default <output root>/nightly)."
    )
    stack_start_timeout: float = Field(
        default=120.0, gt=0, description="Seconds `data-pipeline up` waits for the Prefect server, and for `prefect deploy`."
    )
    stack_stop_timeout: float = Field(
        default=20.0, gt=0, description="Seconds a part of the stack gets to stop before it is killed."
    )

    # --- REST API (service/api, `data-pipeline serve`) ---------------------------------------
    api_host: str = Field(default="127.0.0.1", description="Address the REST API listens on (loopback by default).")
    api_port: int = Field(default=8000, ge=1, le=65535, description="Port of the REST API; routes under /api/v0/data_pipeline/, docs at /docs.")
    api_key: SecretStr | None = Field(
        default=None, description="When set, every route but /health needs it, as an X-API-Key header or `Authorization: Bearer <key>`."
    )
    api_db_pool_size: int = Field(default=10, ge=1, description="Service-database connections the REST API keeps open at most.")
    api_mirror: bool = Field(
        default=True, description="Whether `data-pipeline serve` runs the mirror in its own process (a thread); false when a separate `data-pipeline mirror` keeps the tables."
    )
    max_download_bytes: int = Field(
        default=100 * 1024 * 1024, ge=1, description="Largest task file the API serves for download; larger ones answer 413."
    )
    max_table_list_bytes: int = Field(
        default=2 * 1024 * 1024, ge=1, description="Largest table list the API accepts (upload, JSON list or table_list_file); larger ones answer 413."
    )
    allowed_input_dirs: list[Path] = Field(
        default_factory=list,
        description='Server-side directories a task\'s table_list_file may be read from, as a JSON list, e.g. ["/srv/lists"] (empty: none).',
    )
    api_cancel_wait: float = Field(
        default=30.0, gt=0, description="Seconds DELETE of a running task waits for its cancelled flow run to stop before answering 409."
    )
    api_events_poll: float = Field(
        default=1.0, gt=0, description="Seconds between the checks of a task's events stream (GET /tasks/{id}/events) for news."
    )
    api_events_keepalive: float = Field(
        default=15.0, gt=0, description="Seconds without news after which an events stream sends a keep-alive comment, so proxies keep it open."
    )
    api_start_wait: float = Field(
        default=0.15, ge=0, description="Seconds POST /tasks waits for Prefect to take the new run before answering 201 anyway (the run then starts in the background)."
    )


class SettingsError(ValueError):
    """``DP_*`` variables that do not parse: the message names each and what it must be, never its value
    (``DP_CONNECTIONS`` and ``DP_DATABASE_URL`` hold passwords)."""


def _variable(field: object) -> str:
    return f"DP_{str(field).upper()}"


def load_settings() -> Settings:
    """``Settings()`` from the environment, or a SettingsError instead of pydantic's report (which
    quotes the values it could not read)."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = [f"{_variable(e['loc'][0])}: {e['msg']}" for e in exc.errors(include_input=False, include_url=False)]
    except _SourceError as exc:  # a JSON setting (DP_CONNECTIONS) that is not JSON
        field = re.search(r'field "([^"]+)"', str(exc))
        problems = [f"{_variable(field[1]) if field else 'a DP_ variable'}: not valid JSON"]
    raise SettingsError(f"bad setting{'s' if len(problems) > 1 else ''}: {'; '.join(problems)} "
                        "(the README's Configuration table says what each takes)")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests call ``get_settings.cache_clear()`` after changing the environment."""
    return load_settings()


def task_output_root(settings: Settings | None = None) -> Path:
    """Directory under which each task gets its own output directory."""
    settings = settings or get_settings()
    return settings.output_dir or settings.data_dir / "tasks"


def settings_table() -> str:
    """The README's configuration table, generated so the docs always match the code."""
    lines = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for name, info in Settings.model_fields.items():
        default = info.default_factory() if info.default_factory else info.default
        if isinstance(default, Path) and str(default).startswith(str(Path.home())):
            default = "~" + str(default)[len(str(Path.home())):]
        shown = "(unset)" if default in (None, {}) else f"`{default}`"
        lines.append(f"| `DP_{name.upper()}` | {shown} | {info.description} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(settings_table(), end="")
