"""A task directory's files as rows of ``data_pipeline_task_outputs``: type, size, sha256, primary flag.

Every regular file under the task directory is listed (backup folders too, never as primary);
symbolic links are not, so nothing outside the directory is ever offered for download. Hashes are
cached by size and modification time, so scanning a directory again costs a ``stat`` per file. A
file is linked to the step run whose run time covers the file's modification time.
"""

from __future__ import annotations

import hashlib
import os
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterable

from dp.logs import TASK_LOG_NAME
from dp.task_dir import TABLE_LIST_NAME

BACKUP_DIRS = re.compile(r"^(file_bak_|vector_bak$)")
_REPORT = re.compile(r"_(report|summary)(_|$)")
_TYPES = {".ddl": "ddl", ".md": "md", ".json": "json", ".jsonl": "json", ".log": "log", ".txt": "txt",
          ".csv": "csv", ".sql": "sql"}
_LINK_SLACK = timedelta(seconds=1)  # a step's last file may be stamped just after its task run ends
TASK_FILES = {TASK_LOG_NAME, TABLE_LIST_NAME}  # written for the whole task, never by one step run


def file_type(relative_path: str) -> str:
    """ddl, md, report, json, log, txt, csv, sql, or other."""
    name = Path(relative_path).name.lower()
    stem, ext = os.path.splitext(name)
    if _REPORT.search(stem):
        return "report"
    return _TYPES.get(ext, "other")


def is_primary(relative_path: str, kind: str) -> bool:
    """DDL, data dictionaries, reports and the question/SQL pair file, outside backup folders."""
    if any(BACKUP_DIRS.match(part) for part in Path(relative_path).parts[:-1]):
        return False
    return kind in ("ddl", "md", "report") or relative_path.lower().endswith("_pair.json")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _execution_for(modified: datetime, executions: list[dict]) -> str | None:
    """The step run that was running when the file was last written (latest start first)."""
    for execution in sorted(executions, key=lambda e: e.get("started_at") or "", reverse=True):
        started, ended = _parse(execution.get("started_at")), _parse(execution.get("completed_at"))
        if started and started <= modified and (ended is None or modified <= ended + _LINK_SLACK):
            return execution["execution_id"]
    return None


class OutputScanner:
    """Scans task directories; keeps hashes of files seen before while their size and mtime hold."""

    def __init__(self) -> None:
        self._hashes: dict[str, tuple[int, int, str]] = {}

    def scan(self, task_dir: str | Path, executions: Iterable[dict] = ()) -> list[dict] | None:
        """Rows for ``store.upsert_outputs``; None when the directory is not reachable from here."""
        root = Path(task_dir)
        if not root.is_dir():
            return None
        runs = list(executions)
        files = []
        for folder, dirs, names in os.walk(root):
            dirs.sort()
            for name in sorted(names):
                path = Path(folder) / name
                try:
                    info = path.lstat()
                except FileNotFoundError:  # removed while we walked
                    continue
                if not path.is_file() or path.is_symlink():
                    continue
                try:
                    digest = self._hash(path, info)
                except FileNotFoundError:
                    continue
                relative = path.relative_to(root).as_posix()
                kind = file_type(relative)
                modified = datetime.fromtimestamp(info.st_mtime_ns / 1e9, timezone.utc)
                files.append({
                    "file_path": relative,
                    "file_type": kind,
                    "file_size": info.st_size,
                    "content_hash": digest,
                    "modified_at": modified,
                    "is_primary": is_primary(relative, kind),
                    "execution_id": None if name in TASK_FILES else _execution_for(modified, runs),
                })
        return files

    def _hash(self, path: Path, info: os.stat_result) -> str:
        key = str(path)
        cached = self._hashes.get(key)
        if cached and cached[:2] == (info.st_size, info.st_mtime_ns):
            return cached[2]
        digest = _sha256(path)
        self._hashes[key] = (info.st_size, info.st_mtime_ns, digest)
        return digest
