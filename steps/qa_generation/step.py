"""Step 2 entry point: themes per table group, pairs per theme, then cleaning, dedup and the files.

Groups and themes are worked on concurrently (``qa_theme_concurrency``); results are put back in
proposal order so the output does not depend on timing. A group or theme that fails is recorded with
its reason and the others go on; the step fails only when no pair at all came out.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from dp.settings import Settings, get_settings
from dp.table_list import TableName
from steps.errors import StepFailed
from steps.qa_generation.grouping import group_tables
from steps.qa_generation.model import QAPair, Theme, ThemeFailure
from steps.qa_generation.outputs import write_pairs, write_theme_files
from steps.qa_generation.pairs import clean_pair, deduplicate
from steps.qa_generation.provider import Provider, make_provider
from steps.qa_generation.schema import load_schema

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


def run_qa_generation(
    *, output_dir: Path, business_context: str | None = None, settings: Settings | None = None
) -> dict[str, Any]:
    """Generate themes and question/SQL pairs from step 1's outputs in ``output_dir``.

    ``business_context`` defaults to the one step 1 recorded. Returns counts, the failed themes with
    their reasons, the pair file name and every file written (names relative to ``output_dir``).
    """
    started = time.monotonic()
    settings = settings or get_settings()
    output_dir = Path(output_dir)
    schema = load_schema(output_dir, business_context)
    groups = group_tables(schema, settings.qa_context_token_budget)
    provider = make_provider(schema, settings, groups)
    quotas = split_theme_count(settings.qa_theme_count, [len(g) for g in groups])
    log.info(
        "qa generation for %s: %d tables in %d group(s), %s provider",
        schema.database, len(schema.keys), len(groups), settings.llm_provider,
    )
    failures: list[ThemeFailure] = []
    themes: list[Theme] = []
    with ThreadPoolExecutor(max_workers=settings.qa_theme_concurrency, thread_name_prefix="qa-theme") as pool:
        proposals = [pool.submit(provider.propose_themes, g, quotas[i], i) for i, g in enumerate(groups)]
        for index, future in enumerate(proposals):
            try:
                proposed, rejected = future.result()
            except Exception as exc:  # one group's failure must not sink the others
                log.warning("themes for %s failed: %s", _group_title(groups[index], index), _reason(exc))
                failures.append(ThemeFailure(_group_title(groups[index], index), _reason(exc)))
                continue
            failures.extend(rejected)
            if not proposed and not rejected:
                failures.append(ThemeFailure(_group_title(groups[index], index), "no theme was proposed"))
            themes.extend(proposed)
        _unique_names(themes)

        futures = {pool.submit(_theme_pairs, provider, t, settings.qa_pairs_per_theme): i for i, t in enumerate(themes)}
        by_theme: dict[int, list[QAPair]] = {}
        for done, future in enumerate(as_completed(futures), start=1):
            theme = themes[futures[future]]
            try:
                by_theme[futures[future]] = future.result()
                log.info("theme %d/%d done: %s (%d pairs)", done, len(themes), theme.name, len(by_theme[futures[future]]))
            except Exception as exc:  # recorded, and the other themes go on
                log.warning("theme %d/%d failed: %s: %s", done, len(themes), theme.name, _reason(exc))
                failures.append(ThemeFailure(theme.name, _reason(exc)))

    succeeded = [t for i, t in enumerate(themes) if i in by_theme]
    pairs, removed = deduplicate(p for i in sorted(by_theme) for p in by_theme[i])
    if not pairs:
        reasons = "; ".join(f"{f.theme}: {f.reason}" for f in failures[:5]) or "no theme was proposed"
        raise StepFailed(f"no question/SQL pair was generated ({reasons})")

    pair_path = write_pairs(output_dir, schema.database, pairs)
    theme_paths = write_theme_files(output_dir, schema.database, succeeded, provider.summarise(succeeded), schema.language)
    duration = round(time.monotonic() - started, 3)
    total = len(succeeded) + len(failures)  # a group whose themes could not be proposed counts as one
    log.info(
        "qa generation done: %d pairs (%d duplicates removed) from %d/%d themes in %.1fs",
        len(pairs), removed, len(succeeded), total, duration,
    )
    return {
        "themes_total": total,
        "themes_succeeded": len(succeeded),
        "themes_failed": [f.to_dict() for f in failures],
        "pairs": len(pairs),
        "duplicates_removed": removed,
        "pair_file": pair_path.name,
        "files": [pair_path.name] + [p.name for p in theme_paths],
        "groups": [[k.display for k in g] for g in groups],
        "duration_s": duration,
    }
