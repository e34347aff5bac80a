"""A task's output directory: what lives there and how a re-run keeps old outputs out of the way.

Re-running step 1 moves every earlier output into ``file_bak_<timestamp>/`` first, so no later step
can read a file from an older run (the original system trained stale ``.ddl_1`` files). The table
list, the log and earlier backup folders stay where they are.
"""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

TABLE_LIST_NAME = "table_list.txt"
KEPT_ON_RERUN = {TABLE_LIST_NAME, "data_pipeline.log"}


def backup_previous_outputs(output_dir: Path) -> Path | None:
    """Move earlier outputs into a new ``file_bak_<ts>/``; returns it, or None when there was nothing."""
    output_dir = Path(output_dir)
    movable = [
        p
        for p in output_dir.iterdir()
        if p.name not in KEPT_ON_RERUN and not p.name.startswith("file_bak_") and p.name != "vector_bak"
    ] if output_dir.exists() else []
    if not movable:
        return None
    stamp = datetime.now().strftime("%Y%m%d_%H%M%S")
    backup = output_dir / f"file_bak_{stamp}"
    suffix = 1
    while backup.exists():
        backup = output_dir / f"file_bak_{stamp}_{suffix}"
        suffix += 1
    backup.mkdir()
    for path in movable:
        shutil.move(str(path), backup / path.name)
    return backup
