"""Child processes of a stack: started in order, watched, stopped in reverse order.

Each child runs in a session (process group) of its own, so a Ctrl-C in the terminal reaches only
us and we stop the children in order, and stopping a child also stops what it started (a worker's
flow runs, a server's workers): SIGTERM to the group, a grace period, then SIGKILL. On Linux a
child also gets SIGTERM if we die without cleaning up. A child that exits while the stack runs is
reported by name with its exit code.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
# looked up here, not in the forked child, where loading a library could deadlock
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None


class StackError(RuntimeError):
    """The stack cannot start or keep running; the message says which part and what to do."""


@dataclass(frozen=True)
class Component:
    name: str  # shown to people: "prefect server", "worker", ...
    argv: Sequence[str]
    env: Mapping[str, str] = field(repr=False)  # may hold a database URL: never printed
    log: Path | None = None  # None: share our stdout and stderr
    url: str | None = None  # where it listens, printed once the stack is up


def _die_with_parent() -> None:
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Supervisor:
    """Owns the children it started; ``stop()`` (or leaving the ``with`` block) ends them all."""

    def __init__(self, stop_timeout: float = 20.0) -> None:
        self.stop_timeout = stop_timeout
        self.running: list[tuple[Component, subprocess.Popen]] = []

    def __enter__(self) -> "Supervisor":
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self, component: Component) -> subprocess.Popen:
        output = None
        if component.log is not None:
            component.log.parent.mkdir(parents=True, exist_ok=True)
            output = open(component.log, "ab")
        try:
            process = subprocess.Popen(
                list(component.argv), env=dict(component.env), stdin=subprocess.DEVNULL,
                stdout=output, stderr=subprocess.STDOUT if output else None,
                start_new_session=True, preexec_fn=_die_with_parent,
            )
        except OSError as exc:
            raise StackError(f"cannot start {component.name}: {exc}") from None
        finally:
            if output is not None:
                output.close()  # the child holds its own descriptor
        log.info("started %s (pid %d)", component.name, process.pid)
        self.running.append((component, process))
        return process

    def exited(self) -> tuple[Component, int] | None:
        """The first child that is no longer running, with its exit code (negative: killed by a signal)."""
        for component, process in self.running:
            code = process.poll()
            if code is not None:
                return component, code
        return None

    def watch(self, stopping: threading.Event, poll_seconds: float = 0.5) -> tuple[Component, int] | None:
        """Block until ``stopping`` is set (returns None) or a child exits (returns it and its code)."""
        while not stopping.wait(poll_seconds):
            dead = self.exited()
            if dead is not None:
                return dead
        return None

    def stop(self) -> None:
        """Stop every child, last started first: SIGTERM to its group, then SIGKILL after the timeout."""
        while self.running:
            component, process = self.running.pop()
            self._signal_group(process, signal.SIGTERM)
            try:
                process.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0f s; killing it", component.name, self.stop_timeout)
            # whatever the leader did, nothing of its group may outlive the stack
            self._signal_group(process, signal.SIGKILL)
            process.wait()
            self._wait_group_gone(process.pid)

    @staticmethod
    def _signal_group(process: subprocess.Popen, sig: int) -> None:
        try:
            os.killpg(process.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _wait_group_gone(self, pgid: int) -> None:
        deadline = time.monotonic() + self.stop_timeout
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except (ProcessLookupError, PermissionError):
                return
            time.sleep(0.05)
