"""Step 3's progress lines: about every tenth of a long run, not a line per pair of a short one."""

from __future__ import annotations

import logging

from steps.sql_validation.pair_check import Progress


def _lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "steps.sql_validation.pair_check"]


def test_a_slow_run_logs_every_tenth_and_the_last_pair(caplog):
    now = [0.0]
    progress = Progress(100, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="steps.sql_validation.pair_check"):
        for _ in range(100):
            now[0] += 0.5  # a pair every half second: each tenth takes 5 s
            progress.tick()
    assert _lines(caplog) == [f"pair {n}/100 checked" for n in range(10, 101, 10)]


def test_a_quick_run_logs_only_its_last_pair(caplog):
    progress = Progress(41, clock=lambda: 0.0)
    with caplog.at_level(logging.INFO, logger="steps.sql_validation.pair_check"):
        for _ in range(41):
            progress.tick()
    assert _lines(caplog) == ["pair 41/41 checked"]
