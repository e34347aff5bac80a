"""Logging for runs: the task's own ``data_pipeline.log``, console progress, and password redaction.

Our loggers are ``dp``, ``steps`` and ``flows`` (``logging.getLogger(__name__)`` everywhere). During a
flow run they also reach Prefect through ``PREFECT_LOGGING_EXTRA_LOGGERS`` (see dp/prefect_env.py).
A handler is attached once per log file, never once per call, so lines are never duplicated; every
handler we attach redacts anything that looks like a password in a connection string.
"""

from __future__ import annotations

import logging
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

OUR_LOGGERS = ("dp", "steps", "flows")
TASK_LOG_NAME = "data_pipeline.log"
FILE_FORMAT = "%(asctime)s [%(levelname)s] [%(name)s] %(message)s"

_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/?#@\s]*:)([^@/\s]+)(@)", re.IGNORECASE)


def redact(text: str) -> str:
    """Replace the password of every URL in ``text`` with ``***``."""
    return _URL_PASSWORD.sub(r"\1***\3", text)


class RedactingFilter(logging.Filter):
    """Rewrites a record's message so no connection-string password leaves the process."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def enable_our_loggers(level: int = logging.INFO) -> None:
    for name in OUR_LOGGERS:
        logging.getLogger(name).setLevel(level)


@contextmanager
def task_log_file(output_dir: Path) -> Iterator[Path]:
    """Append our loggers' records to ``<output_dir>/data_pipeline.log`` while the block runs."""
    path = Path(output_dir) / TASK_LOG_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    loggers = [logging.getLogger(name) for name in OUR_LOGGERS]
    existing = [
        h for h in loggers[0].handlers if isinstance(h, logging.FileHandler) and Path(h.baseFilename) == path.resolve()
    ]
    if existing:  # nested use for the same task: the outer block already writes this file
        yield path
        return
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(FILE_FORMAT))
    handler.addFilter(RedactingFilter())
    enable_our_loggers()
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield path
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
        handler.close()


@contextmanager
def console_progress(stream=None) -> Iterator[logging.Handler]:
    """Short progress lines of our loggers on the console (the CLI's), each printed once, while the block runs.

    Meanwhile our loggers do not propagate: during a flow run Prefect's console handler sits on the
    root logger and would print every line a second time. Prefect's API handler, attached to our
    loggers themselves (``PREFECT_LOGGING_EXTRA_LOGGERS``), and the task's log file still get them.
    """
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S"))
    handler.addFilter(RedactingFilter())
    enable_our_loggers()
    loggers = [logging.getLogger(name) for name in OUR_LOGGERS]
    propagated = [logger.propagate for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.propagate = False
    try:
        yield handler
    finally:
        for logger, propagate in zip(loggers, propagated):
            logger.removeHandler(handler)
            logger.propagate = propagate
