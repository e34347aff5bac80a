"""Steps 2 and 3 against a fake LLM with a fixed latency: how close is the wall time to the ideal?

Step 1 runs first with the offline provider (setup, not timed). Then step 2 (themes and pairs) and
step 3 (validation; a share of the generated SQL is broken on purpose, so every broken pair costs a
repair call) run with ``DP_LLM_PROVIDER=openai`` against the fake OpenAI server on loopback, whose
every answer takes ``--latency`` seconds. The ideal wall time of a step is
``calls x latency / llm_max_concurrency``; the target is a measured time within 1.25x of it.
Step 2 has three dependent phases (themes, then pairs, then one summary call), so its floor is a
little above that ideal; the script prints that floor too.

    .venv/bin/python bench/llm_concurrency.py [--latency 0.2] [--themes 40] [--pairs-per-theme 5]
"""

from __future__ import annotations

import argparse
import itertools
import logging
import math
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dp.sample_databases import load_sample_database  # noqa: E402
from dp.settings import Settings  # noqa: E402
from dp.table_list import parse_table_list  # noqa: E402
from steps.ddl_generation.step import run_ddl_generation  # noqa: E402
from steps.qa_generation.step import run_qa_generation  # noqa: E402
from steps.sql_validation.step import run_sql_validation  # noqa: E402
from tests.fakes.openai_server import last_user_message, start_fake_openai  # noqa: E402

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
TABLES = "actor, address, category, city, country, customer, film, film_actor, film_category, inventory, language, payment, rental, staff, store"
BROKEN_EVERY = 3  # one pair in three has a misspelled column that step 3 must repair
SUMMARY = {"business_scope": "A DVD rental business.", "entities": [{"name": "Film (film)", "fields": ["title"]}],
           "metrics": ["rentals"]}  # fmt: skip


class ScriptedLLM:
    """Answers the prompts of steps 2 and 3 in the shapes they ask for; thread-safe."""

    def __init__(self) -> None:
        self._themes = itertools.count(1)
        self._lock = threading.Lock()

    def __call__(self, body: dict) -> dict:
        prompt = last_user_message(body)
        if (match := re.search(r"propose (\d+) business themes", prompt)) is not None:
            with self._lock:
                numbers = [next(self._themes) for _ in range(int(match.group(1)))]
            return {"themes": [{"name": f"Theme {n}", "description": f"Theme number {n}",
                                "related_tables": ["film", "rental"], "entities": ["film"], "metrics": ["count"]}
                               for n in numbers]}  # fmt: skip
        if "router prompt" in prompt:
            return SUMMARY
        if (match := re.search(r"Query:\n(.*?)\n\nError:", prompt, re.DOTALL)) is not None:
            return {"sql": match.group(1).replace("lenght", "length")}
        theme = int(re.search(r"^Theme: Theme (\d+)$", prompt, re.M).group(1))
        count = int(re.search(r"Write (\d+) question/SQL pairs", prompt).group(1))
        pairs = []
        for i in range(count):
            limit = theme * 1000 + i
            column = "lenght" if i % BROKEN_EVERY == 0 else "length"
            pairs.append({"question": f"How many films are shorter than {limit} minutes?",
                          "sql": f"SELECT count(*) FROM film WHERE {column} < {limit}"})  # fmt: skip
        return {"pairs": pairs}


def timed(call):
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--themes", type=int, default=40)
    parser.add_argument("--pairs-per-theme", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=4, help="llm_max_concurrency (and step 2's theme threads)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    url = load_sample_database("pagila", ADMIN_URL)
    fake = start_fake_openai(latency=args.latency, chat_handler=ScriptedLLM())
    settings = Settings(
        llm_provider="openai",
        llm_base_url=fake.base_url,
        llm_max_retries=0,
        llm_max_concurrency=args.concurrency,
        qa_theme_concurrency=args.concurrency,
        qa_theme_count=args.themes,
        qa_pairs_per_theme=args.pairs_per_theme,
    )
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            run_ddl_generation(db_url=url, tables=parse_table_list(TABLES), output_dir=out, business_context="DVD rental",
                               settings=settings.model_copy(update={"llm_provider": "heuristic"}))  # fmt: skip
            fake.reset(latency=args.latency, chat_handler=ScriptedLLM())
            step2_s, step2 = timed(lambda: run_qa_generation(output_dir=out, settings=settings))
            step2_calls, step2_peak = len(fake.chat_requests), fake.max_in_flight
            fake.reset(latency=args.latency, chat_handler=fake.chat_handler)
            step3_s, step3 = timed(lambda: run_sql_validation(db_url=url, output_dir=out, settings=settings))
            step3_calls, step3_peak = len(fake.chat_requests), fake.max_in_flight
    finally:
        fake.stop()

    c, lat = args.concurrency, args.latency
    ideal2, ideal3 = step2_calls * lat / c, step3_calls * lat / c
    groups = step2_calls - args.themes - 1
    floor2 = (math.ceil(groups / c) + math.ceil(args.themes / c) + 1) * lat
    print(f"fake LLM latency {lat * 1000:.0f} ms, llm_max_concurrency {c}")
    print(f"step 2: {step2_calls} calls ({groups} theme proposals, {args.themes} pair batches, 1 summary), "
          f"peak {step2_peak} in flight, {step2['pairs']} pairs: {step2_s:.2f} s; ideal {ideal2:.2f} s "
          f"-> {step2_s / ideal2:.2f}x (phase floor {floor2:.2f} s)")  # fmt: skip
    print(f"step 3: {step3_calls} repair calls, peak {step3_peak} in flight, {step3['total']} pairs "
          f"({step3['repair']['successful']} repaired, {step3['invalid']} invalid): {step3_s:.2f} s; "
          f"ideal {ideal3:.2f} s -> {step3_s / ideal3:.2f}x")  # fmt: skip
    total, ideal = step2_s + step3_s, ideal2 + ideal3
    verdict = "meets" if total <= 1.25 * ideal else "misses"
    print(f"steps 2+3: {total:.2f} s against ideal {ideal:.2f} s -> {total / ideal:.2f}x ({verdict} the 1.25x target)")


if __name__ == "__main__":
    main()
