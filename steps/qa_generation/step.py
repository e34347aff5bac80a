"""Step 2 entry point: themes per table group, pairs per theme, then cleaning, dedup and the files.

Groups and themes are worked on concurrently (``qa_theme_concurrency``); results are put back in
proposal order so the output does not depend on timing. CPU work is done while the LLM is busy: each
theme's SQL is normalised for dedup as its pairs arrive, and the router summary is asked for before
the pairs are deduplicated and written. A group or theme that fails is recorded with its reason and
the others go on; the step fails only when no pair at all came out.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from concurrent.futures import as_completed
from pathlib import Path
from typing import Any

from dp.settings import Settings, get_settings
from dp.table_list import TableName
from dp.threads import ContextThreadPool
from steps.errors import StepFailed
from steps.qa_generation.grouping import group_tables
from steps.qa_generation.model import QAPair, Theme, ThemeFailure
from steps.qa_generation.outputs import write_pairs, write_theme_files
from steps.qa_generation.pairs import clean_pair, deduplicate
from steps.qa_generation.provider import Provider, make_provider
from steps.qa_generation.schema import load_schema
from steps.qa_generation.sql_text import normalise_sql

log = logging.getLogger(__name__)


def split_theme_count(total: int, group_sizes: list[int]) -> list[int]:
    """Themes per group, in proportion to the group's tables, at least one each (largest remainder)."""
    tables = sum(group_sizes)
    shares = [total * size / tables for size in group_sizes]
    counts = [max(1, int(share)) for share in shares]
    by_remainder = sorted(range(len(shares)), key=lambda i: (-(shares[i] - int(shares[i])), i))
    for i in by_remainder[: max(0, total - sum(counts))]:
        counts[i] += 1
    return counts


def _group_title(group: list[TableName], index: int) -> str:
    names = ", ".join(k.display for k in group[:4]) + (", ..." if len(group) > 4 else "")
    return f"group {index + 1} ({names})"


def _unique_names(themes: list[Theme]) -> None:
    seen: dict[str, int] = {}
    for theme in themes:
        seen[theme.name] = seen.get(theme.name, 0) + 1
        if seen[theme.name] > 1:
            theme.name = f"{theme.name} ({seen[theme.name]})"


def _theme_pairs(provider: Provider, theme: Theme, count: int) -> list[QAPair]:
    raw = provider.write_pairs(theme, count)
    pairs, problems = [], []
    for question, sql in raw:
        try:
            pairs.append(clean_pair(question, sql, theme.name))
        except ValueError as exc:
            problems.append(str(exc))
    if not pairs:
        detail = f"; rejected: {'; '.join(sorted(set(problems))[:3])}" if problems else ""
        raise ValueError(f"no usable pair ({len(raw)} returned{detail})")
    return pairs[:count]


def _reason(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


@dataclass
class _Failures:
    """What went wrong so far: one entry per failed group or theme, and the exceptions behind them."""

    entries: list[ThemeFailure] = field(default_factory=list)
    errors: list[Exception] = field(default_factory=list)

    def add(self, what: str, exc: Exception) -> None:
        self.entries.append(ThemeFailure(what, _reason(exc)))
        self.errors.append(exc)

    def step_failed(self) -> StepFailed:
        reasons = "; ".join(f"{f.theme}: {f.reason}" for f in self.entries[:5]) or "no theme was proposed"
        return StepFailed(f"no question/SQL pair was generated ({reasons})")

    def transient(self) -> Exception | None:
        """A transient LLM failure (429, 5xx, timeout) behind them: chained to it, the flow retries."""
        return next((e for e in self.errors if getattr(e, "transient", False)), None)


def _propose(pool: ContextThreadPool, provider: Provider, groups: list[list[TableName]], total: int,
             failures: _Failures) -> list[Theme]:
    quotas = split_theme_count(total, [len(g) for g in groups])
    futures = [pool.submit(provider.propose_themes, g, quotas[i], i) for i, g in enumerate(groups)]
    themes: list[Theme] = []
    for index, future in enumerate(futures):
        title = _group_title(groups[index], index)
        try:
            proposed, rejected = future.result()
        except Exception as exc:  # one group's failure must not sink the others
            log.warning("themes for %s failed: %s", title, _reason(exc))
            failures.add(title, exc)
            continue
        failures.entries.extend(rejected)
        if not proposed and not rejected:
            failures.entries.append(ThemeFailure(title, "no theme was proposed"))
        themes.extend(proposed)
    _unique_names(themes)
    return themes


def _write(pool: ContextThreadPool, provider: Provider, themes: list[Theme], count: int, failures: _Failures,
           sql_keys: dict[str, str]) -> dict[int, list[QAPair]]:
    """Pairs of each theme that produced any, by the theme's index; their SQL's dedup keys go to ``sql_keys``."""
    futures = {pool.submit(_theme_pairs, provider, theme, count): i for i, theme in enumerate(themes)}
    by_theme: dict[int, list[QAPair]] = {}
    for done, future in enumerate(as_completed(futures), start=1):
        theme = themes[futures[future]]
        try:
            pairs = by_theme[futures[future]] = future.result()
            log.info("theme %d/%d done: %s (%d pair%s)", done, len(themes), theme.name, len(pairs),
                     "" if len(pairs) == 1 else "s")
        except Exception as exc:  # recorded, and the other themes go on
            log.warning("theme %d/%d failed: %s: %s", done, len(themes), theme.name, _reason(exc))
            failures.add(theme.name, exc)
            continue
        for pair in pairs:  # here, not after the last theme: the other themes' LLM calls are still out
            if pair.sql not in sql_keys:
                sql_keys[pair.sql] = normalise_sql(pair.sql)
    return by_theme


def run_qa_generation(
    *, output_dir: Path, business_context: str | None = None, settings: Settings | None = None
) -> dict[str, Any]:
    """Generate themes and question/SQL pairs from step 1's outputs in ``output_dir``.

    ``business_context`` defaults to the one step 1 recorded. Returns counts, the failed themes with
    their reasons, the pair file's path (what step 3 takes) and every file written (``files``: names
    relative to ``output_dir``, as step 1 reports them).
    """
    started = time.monotonic()
    settings = settings or get_settings()
    output_dir = Path(output_dir)
    schema = load_schema(output_dir, business_context)
    if schema.implied_joins:
        log.info("joins implied by column names (no foreign key declared): %s", ", ".join(map(str, schema.implied_joins)))
    groups = group_tables(schema, settings.qa_context_token_budget)
    provider = make_provider(schema, settings, groups)
    log.info(
        "qa generation for %s: %d tables in %d group(s), %s provider",
        schema.database, len(schema.keys), len(groups), settings.llm_provider,
    )
    failures = _Failures()
    sql_keys: dict[str, str] = {}
    with ContextThreadPool(max_workers=settings.qa_theme_concurrency, thread_name_prefix="qa-theme") as pool:
        themes = _propose(pool, provider, groups, settings.qa_theme_count, failures)
        by_theme = _write(pool, provider, themes, settings.qa_pairs_per_theme, failures, sql_keys)
        if not by_theme:  # no pair at all (dedup always keeps the first of repeats, so never empties a list)
            raise failures.step_failed() from failures.transient()
        succeeded = [t for i, t in enumerate(themes) if i in by_theme]
        summary = pool.submit(provider.summarise, succeeded)  # never fails; written while we dedup and write
        kept, removed = deduplicate((p for i in sorted(by_theme) for p in by_theme[i]), sql_keys)
        pair_path = write_pairs(output_dir, schema.database, kept)
        theme_paths = write_theme_files(output_dir, schema.database, succeeded, summary.result(), schema.language)
    duration = round(time.monotonic() - started, 3)
    total = len(succeeded) + len(failures.entries)  # a group whose themes could not be proposed counts as one
    log.info(
        "qa generation done: %d pairs (%d duplicates removed) from %d/%d themes in %.1fs",
        len(kept), removed, len(succeeded), total, duration,
    )
    return {
        "themes_total": total,
        "themes_succeeded": len(succeeded),
        "themes_failed": [f.to_dict() for f in failures.entries],
        "pairs": len(kept),
        "duplicates_removed": removed,
        "pair_file": str(pair_path),
        "files": [pair_path.name] + [p.name for p in theme_paths],
        "groups": [[k.display for k in g] for g in groups],
        "implied_joins": [str(j) for j in schema.implied_joins],
        "duration_s": duration,
    }
