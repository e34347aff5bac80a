"""All configuration, read once from environment variables prefixed ``DP_``.

Nothing else in the code base reads ``os.environ`` for our own settings: import ``get_settings()``.
Every field is documented in the README's configuration table; ``tests/test_docs.py`` keeps the two
in step. Prefect's own knobs stay in ``PREFECT_*`` variables.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    database_url: SecretStr | None = Field(
        default=None,
        description="Service database (tracking tables, vector store). Unset: an embedded PostgreSQL under <data_dir>/pg.",
    )

    # --- step 1: ddl_generation ----------------------------------------------------------
    sample_rows: int = Field(default=20, ge=0, description="Rows sampled per table (0 disables sampling).")
    sample_text_max: int = Field(default=80, ge=8, description="Sampled text values are cut to this many characters.")
    enum_max_values: int = Field(default=20, ge=1, description="At most this many distinct values make a column an enum.")
    table_concurrency: int = Field(default=4, ge=1, description="Tables processed at once in step 1.")
    comment_language: Literal["auto", "zh", "en"] = Field(
        default="auto", description="Language of generated comments; auto: Chinese when the business context is Chinese."
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


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests call ``get_settings.cache_clear()`` after changing the environment."""
    return Settings()


def task_output_root(settings: Settings | None = None) -> Path:
    """Directory under which each task gets its own output directory."""
    settings = settings or get_settings()
    return settings.output_dir or settings.data_dir / "tasks"
