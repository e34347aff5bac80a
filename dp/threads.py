"""A thread pool whose work runs in the context of the thread that handed it over.

Context variables do not cross into a plain ``ThreadPoolExecutor``'s threads. Prefect finds the
flow and task run of a log record in them, so what a step logs from its worker threads (step 3's
progress, a table that failed, an LLM retry) reached neither the Prefect UI nor the tracking tables,
and Prefect warned about each record on the console.
"""

from __future__ import annotations

import contextvars
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, TypeVar

T = TypeVar("T")


class ContextThreadPool(ThreadPoolExecutor):
    """``ThreadPoolExecutor`` running each call in a copy of the submitting thread's context."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)
