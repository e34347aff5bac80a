"""Checking pairs: guard, database, and up to N repair rounds, each pair on its own.

A pair's SQL is judged by the guard, then (only if the guard lets it through) by the database. A
failure goes to the repairer with the error; every candidate it returns is judged the same way, so a
repaired query is as safe as an original one. SQL the guard refuses as a write or side effect is not
repaired: such a pair is invalid as training data. Nothing a single pair does stops the other pairs;
a pair that cannot be checked for an unexpected reason is skipped (kept), never judged invalid. Only
losing the database or the LLM service (a transient ``LLMError``) ends the run.

``check_all`` works in two phases, because the guard is CPU under the GIL: the calling thread first
guards every pair's SQL, then the workers take the database checks and repairs. Guarding in the
workers, between their round trips, took 40-85% more CPU (GIL hand-offs on every round trip, parse
trees kept alive across them, so promoted to the collector's old generations) and up to a quarter
more time (bench/validation.py). No parse tree outlives its guard call (~9 KiB each): a repair that
needs one parses the statement again. Workers log progress
themselves (the main thread wakes once, not per pair), and the cyclic collector leaves alone the
objects that existed before the run (see ``_older_objects_frozen``).
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import psycopg2
from sqlglot import exp

from dp.llm.client import LLMError
from dp.threads import ContextThreadPool
from steps.sql_validation.guard import GuardRejected, guard_sql
from steps.sql_validation.pair_file import pair_of
from steps.sql_validation.repair import RepairRequest, Repairer
from steps.sql_validation.validator import DbCheck, QueryValidator

log = logging.getLogger(__name__)


@dataclass
class Verdict:
    """What the guard, then the database (``db``, None until checked or when refused) said about one SQL."""

    sql: str
    statement: str | None = None  # the one statement the guard let through, as the database gets it
    rejected: GuardRejected | None = None
    db: DbCheck | None = None

    @classmethod
    def of_guard(cls, sql: str) -> "Verdict":
        try:
            return cls(sql, statement=guard_sql(sql).sql)
        except GuardRejected as exc:
            return cls(sql, rejected=exc)

    def tree(self) -> exp.Expression | None:
        """The statement's sqlglot tree, parsed again: only a repair needs it, and trees are not kept."""
        return guard_sql(self.statement).tree if self.statement is not None else None

    @property
    def ok(self) -> bool:
        return self.db is not None and self.db.ok

    @property
    def locked(self) -> bool:
        return self.db is not None and self.db.locked

    @property
    def error(self) -> str | None:
        if self.rejected is not None:
            return f"rejected before reaching the database: {self.rejected}"
        return self.db.error if self.db else None


@dataclass
class PairResult:
    index: int  # position in the raw JSON array of the pair file
    status: str  # valid | repaired | invalid | skipped
    question: Any = None
    original_sql: Any = None
    final_sql: str | None = None
    error: str | None = None
    guard_error: str | None = None
    repairs: list[dict[str, str | None]] = field(default_factory=list)  # each round: {"sql", "error"}
    warnings: list[str] = field(default_factory=list)
    time_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "question": self.question,
            "original_sql": self.original_sql,
            "final_sql": self.final_sql,
            "status": self.status,
            "error": self.error,
            "guard_error": self.guard_error,
            "repair_rounds": len(self.repairs),
            "repairs": self.repairs,
            "warnings": self.warnings,
            "time_ms": round(self.time_ms, 2),
        }


class PairChecker:
    """Checks pairs against one database; thread-safe, so ``check_all`` runs pairs side by side."""

    def __init__(self, validator: QueryValidator, repairer: Repairer | None, *, max_rounds: int):
        self.validator = validator
        self.repairer = repairer
        self.max_rounds = max_rounds

    def judge(self, sql: str) -> Verdict:
        """The guard's verdict and, when it lets the SQL through, the database's."""
        return self._to_database(Verdict.of_guard(sql))

    def _to_database(self, verdict: Verdict) -> Verdict:
        if verdict.statement is not None:
            verdict.db = self.validator.check(verdict.statement)
        return verdict

    def check_pair(self, index: int, question: str, sql: str) -> PairResult:
        return self._check(index, question, _Guarded.of(sql))

    def _check(self, index: int, question: str, guarded: "_Guarded") -> PairResult:
        started = time.perf_counter() - guarded.seconds
        verdict = self._to_database(guarded.verdict)
        result = PairResult(index, "invalid", question, verdict.sql)
        repairable = verdict.rejected is None or verdict.rejected.kind == "syntax"
        while (not verdict.ok and not verdict.locked and repairable and self.repairer
               and len(result.repairs) < self.max_rounds):
            request = RepairRequest(question, verdict.sql, verdict.error, verdict.db, verdict.tree())
            try:
                candidate = self.repairer.repair(request)
            except LLMError as exc:
                if exc.transient:
                    raise  # the service is down, not this pair wrong: the run stops and may be retried
                result.repairs.append({"sql": None, "error": f"repair failed: {exc}"})
                break
            if candidate is None or candidate.strip() == verdict.sql.strip():
                break
            verdict = self.judge(candidate)
            result.repairs.append({"sql": candidate, "error": verdict.error})
        if verdict.locked:  # not the query's fault: the pair stays as it is, reported unchecked
            result.status = "skipped"
            result.error = (f"could not be checked, kept as is: a table it reads is locked by another session "
                            f"({verdict.error}); validate again once the lock is released")
        elif verdict.ok:
            result.status = "repaired" if result.repairs else "valid"
            result.final_sql = verdict.statement if result.repairs else verdict.sql
            result.warnings = list(verdict.db.warnings)
        else:
            result.error = verdict.error
            result.guard_error = str(verdict.rejected) if verdict.rejected else None
        result.time_ms = (time.perf_counter() - started) * 1000
        return result

    def check_all(self, entries: list[Any], *, workers: int) -> list[PairResult]:
        """One result per entry of the raw array, in its order; entries that are not pairs are skipped."""
        results: list[PairResult | None] = [None] * len(entries)
        todo = []
        for index, entry in enumerate(entries):
            pair = pair_of(entry)
            if pair is None:
                results[index] = PairResult(index, "skipped", error="not an object with string question and sql")
            else:
                todo.append((index, *pair))
        progress = Progress(len(todo))
        with _older_objects_frozen():
            guarded = []
            for index, question, sql in todo:  # phase 1, here: see the module docstring
                try:
                    guarded.append((index, question, _Guarded.of(sql)))
                except Exception as exc:  # one pair must never sink the others, whatever went wrong with it
                    results[index] = _skipped(index, question, sql, exc)
                    progress.tick()
            with ContextThreadPool(workers, thread_name_prefix="sql-validation") as pool:
                futures = [pool.submit(self._check_safely, progress, *item) for item in guarded]
                try:
                    finished, pending = wait(futures, return_when=FIRST_EXCEPTION)
                    if pending:  # a pair raised: the database or the LLM service is gone
                        raise next(f.exception() for f in futures if f in finished and f.exception() is not None)
                except BaseException:
                    pool.shutdown(cancel_futures=True)  # the run is over: do not check the pairs still queued
                    raise
        for (index, _, _), future in zip(guarded, futures):
            results[index] = future.result()
        return results

    def _check_safely(self, progress: "Progress", index: int, question: str, guarded: "_Guarded") -> PairResult:
        try:
            result = self._check(index, question, guarded)
        except (psycopg2.Error, LLMError):
            raise  # the database or the LLM service is gone (query errors never get here): the run stops
        except Exception as exc:  # one pair must never sink the others, whatever went wrong with it
            result = _skipped(index, question, guarded.verdict.sql, exc)
        progress.tick()
        return result


@dataclass(frozen=True)
class _Guarded:
    """The guard's verdict on a pair's SQL, before the database check, and the seconds it took."""

    verdict: Verdict
    seconds: float

    @classmethod
    def of(cls, sql: str) -> "_Guarded":
        started = time.perf_counter()
        verdict = Verdict.of_guard(sql)
        return cls(verdict, time.perf_counter() - started)


def _skipped(index: int, question: str, sql: str, exc: Exception) -> PairResult:
    """The result of a pair that could not be checked (called while handling ``exc``)."""
    log.exception("pair %d could not be checked", index)
    return PairResult(index, "skipped", question, sql, error=f"could not be checked, kept as is: {exc}")


class Progress:
    """Logs "pair n/N checked" about every tenth of the run, from the worker that finished the pair.

    A tenth is logged only when ``interval`` seconds passed since the last line, so a run that ends
    in a moment logs its last line only; the last pair is always logged.
    """

    def __init__(self, total: int, *, interval: float = 1.0, clock: Callable[[], float] = time.monotonic):
        self.total, self.interval, self.clock = total, interval, clock
        self.step = max(1, total // 10)
        self.done = 0
        self._last = clock()
        self._lock = threading.Lock()

    def tick(self) -> None:
        with self._lock:
            self.done += 1
            done, now = self.done, self.clock()
            due = done == self.total or (done % self.step == 0 and now - self._last >= self.interval)
            if due:
                self._last = now
        if due:
            log.info("pair %d/%d checked", done, self.total)


@contextmanager
def _older_objects_frozen() -> Iterator[None]:
    """Keep the cyclic collector's full passes to the objects made during the run.

    sqlglot trees are reference cycles (parent <-> child), so only the collector frees a pair's tree,
    and each of its full passes also walks everything the process held before (imports, caches): up
    to a tenth of a run in bench/validation.py. ``gc.freeze`` parks those older objects until the run
    ends (nothing is lost: they are collected as usual afterwards); left alone when someone else has
    frozen objects already.
    """
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
