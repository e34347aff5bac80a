"""Safe file access for the API: a task's directory, the files in it, server-side input paths.

Nothing here touches the disk before the path is proven safe: task ids match their pattern, a file
name is relative with no ``.``/``..`` parts, backslashes or NULs, no component of it is a symbolic
link, and the resolved path is inside the task directory (``is_relative_to``). Task directories are
only ever removed when they resolve inside the configured output root and are named after their
task. A server-side input path from a request must resolve (symlinks followed) inside one of the
configured directories, so a link pointing out of them is refused too. File listings are the
mirror's scan (service/outputs.py: types, primary files, hashes cached by size and mtime).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterable

from dp.settings import Settings, task_output_root
from dp.task_ids import validate_task_id
from service.outputs import OutputScanner

SCANNER = OutputScanner()  # one per process: it keeps the hashes of files seen before


class UnsafePath(ValueError):
    """A path that could leave the directory it must stay in; the message says which rule it breaks."""


def output_root(settings: Settings) -> Path:
    return task_output_root(settings).expanduser().resolve()


def task_directory(settings: Settings, task_id: str, parent: Path | None = None) -> Path:
    """``<parent or output root>/<task_id>`` for a valid task id (the directory need not exist)."""
    validate_task_id(task_id)
    return (parent or output_root(settings)) / task_id


def stored_task_directory(settings: Settings, task_id: str, output_directory: str | None) -> Path:
    """The directory a task row names, refused unless it is ``<somewhere in the output root>/<task_id>``."""
    validate_task_id(task_id)
    if not output_directory:
        return task_directory(settings, task_id)
    path = Path(output_directory)
    root = output_root(settings)
    if not path.is_absolute() or path.name != task_id or ".." in path.parts:
        raise UnsafePath(f"task directory {output_directory!r} is not <output root>/.../{task_id}")
    resolved = path.parent.resolve() / path.name
    if not resolved.is_relative_to(root):
        raise UnsafePath(f"task directory {output_directory!r} is outside the output root {root}")
    return resolved


def output_parent(settings: Settings, output_dir: str) -> Path:
    """A request's ``output_dir``: a directory inside the output root (created later)."""
    root = output_root(settings)
    if "\x00" in output_dir:
        raise UnsafePath("output_dir contains a NUL character")
    candidate = Path(output_dir)
    if not candidate.is_absolute():
        candidate = root / candidate
    resolved = candidate.resolve()
    if not resolved.is_relative_to(root):
        raise UnsafePath(f"output_dir must be inside the output root {root} (DP_OUTPUT_DIR)")
    return resolved


def input_file(path_text: str, allowed_dirs: Iterable[Path]) -> Path:
    """A server-side input file named by a request, resolved and confined to ``allowed_dirs``."""
    allowed = [Path(d).expanduser().resolve() for d in allowed_dirs]
    if not allowed:
        raise UnsafePath("reading files on the server is switched off; set DP_ALLOWED_INPUT_DIRS or send the tables")
    if not path_text or "\x00" in path_text:
        raise UnsafePath("the file name is empty or contains a NUL character")
    candidate = Path(path_text)
    if not candidate.is_absolute():
        candidate = allowed[0] / candidate
    resolved = candidate.resolve()  # follows symlinks: a link out of the allowed dirs ends up outside
    if not any(resolved.is_relative_to(d) for d in allowed):
        raise UnsafePath(f"{path_text!r} is outside the allowed input directories (DP_ALLOWED_INPUT_DIRS)")
    try:
        is_file = resolved.is_file()
    except OSError:  # e.g. a name too long
        is_file = False
    if not is_file:
        raise FileNotFoundError(f"{path_text!r} is not a file on the server")
    return resolved


def _relative_parts(name: str) -> tuple[str, ...]:
    if not name or "\x00" in name or "\\" in name or name.startswith("/"):
        raise UnsafePath("file names are relative paths inside the task directory, without backslashes")
    parts = tuple(name.split("/"))
    if any(part in ("", ".", "..") for part in parts):
        raise UnsafePath("file names may not contain empty, '.' or '..' parts")
    return parts


def task_file(task_dir: Path, name: str) -> Path:
    """The regular file ``name`` inside ``task_dir``; ``FileNotFoundError`` when there is none."""
    parts = _relative_parts(name)
    if task_dir.is_symlink():
        raise UnsafePath("the task directory is a symbolic link")
    path = task_dir
    for part in parts:
        path = path / part
        if path.is_symlink():
            raise UnsafePath(f"{name!r} goes through a symbolic link")
    if not path.is_file() or not path.resolve().is_relative_to(task_dir.resolve()):
        raise FileNotFoundError(name)
    return path


def list_files(task_dir: Path) -> list[dict]:
    """Every regular file under ``task_dir`` (symbolic links skipped, never followed), primary first."""
    if task_dir.is_symlink():
        return []
    found = [{
        "name": row["file_path"],
        "type": row["file_type"],
        "size": row["file_size"],
        "sha256": row["content_hash"],
        "modified_at": row["modified_at"].isoformat(),
        "primary": row["is_primary"],
    } for row in SCANNER.scan(task_dir) or []]
    found.sort(key=lambda f: (not f["primary"], f["name"]))
    return found


def remove_task_directory(settings: Settings, task_dir: Path) -> dict:
    """Delete a task directory (never through a link, never outside the output root); what went."""
    root = output_root(settings)
    validate_task_id(task_dir.name)
    if task_dir.is_symlink() or not task_dir.parent.resolve().is_relative_to(root):
        raise UnsafePath(f"refusing to remove {task_dir}: not a directory inside the output root {root}")
    if not task_dir.exists():
        return {"removed": False, "files": 0, "bytes": 0}
    sizes = [(Path(folder) / name).lstat().st_size for folder, _, names in os.walk(task_dir) for name in names]
    shutil.rmtree(task_dir)
    return {"removed": True, "files": len(sizes), "bytes": sum(sizes)}
