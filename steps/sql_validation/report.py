"""Step 3's reports: ``sql_validation_<ts>_report.json`` (every pair) and ``_summary.log`` (for people).

Counts: ``total`` pairs checked (skipped entries not included), ``valid`` of them in the end
(repaired ones included), ``invalid``, ``success_rate`` = valid / total; ``repair`` counts pairs that
went to a repairer and how many came back valid; ``modified`` / ``deleted`` say what was done to the
pair file. Both reports are written atomically under names no earlier run used.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from steps.sql_validation.pair_check import PairResult
from steps.sql_validation.pair_file import dump_json, write_text_atomic


def totals(results: list[PairResult], *, modified: int, deleted: int) -> dict[str, Any]:
    checked = [r for r in results if r.status != "skipped"]
    valid = sum(r.status in ("valid", "repaired") for r in checked)
    attempted = sum(bool(r.repairs) for r in checked)
    repaired = sum(r.status == "repaired" for r in checked)
    return {
        "total": len(checked),
        "valid": valid,
        "invalid": len(checked) - valid,
        "skipped": len(results) - len(checked),
        "success_rate": round(valid / len(checked), 4) if checked else 0.0,
        "warnings": sum(bool(r.warnings) for r in checked),
        "repair": {"attempted": attempted, "successful": repaired, "failed": attempted - repaired},
        "modified": modified,
        "deleted": deleted,
        "average_time_ms": round(sum(r.time_ms for r in checked) / len(checked), 2) if checked else 0.0,
    }


def write_reports(
    output_dir: Path, *, results: list[PairResult], counts: dict[str, Any], run: dict[str, Any]
) -> tuple[Path, Path]:
    """Write both reports; ``run`` holds the run's facts (pair file, backup, duration, options)."""
    report, summary = _free_names(Path(output_dir))
    document = {**run, "totals": counts, "pairs": [r.to_dict() for r in results]}
    write_text_atomic(report, dump_json(document, expand=2))  # one pair per line
    write_text_atomic(summary, render_summary(results, counts, run))
    return report, summary


def render_summary(results: list[PairResult], counts: dict[str, Any], run: dict[str, Any]) -> str:
    rate = f"{counts['success_rate']:.1%}"
    repair = counts["repair"]
    lines = [
        f"SQL validation of {run['pair_file']}",
        f"finished {run['finished_at']} in {run['duration_s']:.1f} s",
        "",
        f"pairs checked:  {counts['total']} ({counts['skipped']} entries skipped)",
        f"valid:          {counts['valid']} ({rate}), {repair['successful']} of them repaired",
        f"invalid:        {counts['invalid']}",
        f"warnings:       {counts['warnings']} valid pair(s) return no rows",
        f"repairs:        {repair['attempted']} attempted, {repair['successful']} successful, "
        f"{repair['failed']} failed",
        f"average time:   {counts['average_time_ms']:.1f} ms per pair",
    ]
    if run.get("backup_file"):
        lines.append(
            f"pair file:      {counts['modified']} SQL replaced, {counts['deleted']} pairs removed; "
            f"original kept as {run['backup_file']}"
        )
    else:
        lines.append("pair file:      unchanged")
    for title, status in (("Invalid", "invalid"), ("Repaired", "repaired"), ("Skipped", "skipped")):
        chosen = [r for r in results if r.status == status]
        if chosen:
            lines += ["", f"{title} ({len(chosen)}):"]
            lines += [_line(r) for r in chosen]
    warned = [r for r in results if r.warnings]
    if warned:
        lines += ["", f"Warnings ({len(warned)}):"]
        lines += [f"  #{r.index} {_short(r.question)}: {'; '.join(r.warnings)}" for r in warned]
    return "\n".join(lines) + "\n"


def _line(result: PairResult) -> str:
    head = f"  #{result.index} {_short(result.question)}"
    if result.status == "repaired":
        return f"{head}\n      was: {_short(result.original_sql, 200)}\n      now: {_short(result.final_sql, 200)}"
    return f"{head}\n      {result.error}"


def _short(value: Any, limit: int = 80) -> str:
    text = " ".join(str(value).split()) if value is not None else "(none)"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _free_names(output_dir: Path) -> tuple[Path, Path]:
    stamp = datetime.now().strftime("%Y%m%d_%H%M%S")
    number = 0
    while True:
        suffix = stamp + (f"_{number}" if number else "")
        report = output_dir / f"sql_validation_{suffix}_report.json"
        summary = output_dir / f"sql_validation_{suffix}_summary.log"
        if not report.exists() and not summary.exists():
            return report, summary
        number += 1
