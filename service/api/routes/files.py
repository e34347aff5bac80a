"""A task's files: the list (type, size, sha256, modified, primary) and downloads.

A download serves only a regular file inside the task directory (service/api/files.py) up to
DP_MAX_DOWNLOAD_BYTES (413 above). The file is opened without following a final symbolic link
and its size is taken from the open file, so what is checked is what is sent.
"""

from __future__ import annotations

import os
import stat
from typing import Iterator
from urllib.parse import quote

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from service.api import lifecycle
from service.api.deps import ReadConnDep, SettingsDep, TaskId
from service.api.envelope import documented, ok
from service.api.errors import bad_request, not_found, too_large
from service.api.files import UnsafePath, list_files, stored_task_directory, task_file
from service.api.schemas import FileList

router = APIRouter(prefix="/tasks", tags=["files"])

_CHUNK = 256 * 1024
_MEDIA_TYPES = {".json": "application/json", ".md": "text/markdown; charset=utf-8", ".csv": "text/csv; charset=utf-8"}


@router.get("/{task_id}/files", responses=documented(FileList), summary="The files in the task's directory")
def task_files(task_id: TaskId, conn: ReadConnDep, settings: SettingsDep):
    task = lifecycle.read_task(conn, task_id)
    task_dir = stored_task_directory(settings, task_id, task["output_directory"])
    files = list_files(task_dir)
    return ok({"task_id": task_id, "directory_exists": task_dir.is_dir(), "files": files, "total_files": len(files),
               "total_size": sum(f["size"] for f in files)})


def _chunks(handle) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(_CHUNK):
            yield chunk


def _download(task_id: str, filename: str, conn, settings) -> StreamingResponse:
    try:
        task = lifecycle.read_task(conn, task_id)
        path = task_file(stored_task_directory(settings, task_id, task["output_directory"]), filename)
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except UnsafePath as exc:
        raise bad_request(str(exc), invalid={"filename": str(exc)}) from None
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise not_found(f"file {filename!r} of task {task_id}") from None
    except OSError as exc:  # e.g. ELOOP: the file turned into a link after the check
        raise bad_request(f"{filename!r} cannot be served: {exc.strerror}", invalid={"filename": "not servable"}) from None
    handle = os.fdopen(fd, "rb")
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        handle.close()
        raise not_found(f"file {filename!r} of task {task_id}")
    if info.st_size > settings.max_download_bytes:
        handle.close()
        raise too_large(f"{filename!r} is {info.st_size} bytes, more than DP_MAX_DOWNLOAD_BYTES "
                        f"({settings.max_download_bytes})", settings.max_download_bytes)
    name = path.name
    return StreamingResponse(
        _chunks(handle), media_type=_MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream"),
        headers={"Content-Length": str(info.st_size),
                 "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"})


_DOWNLOAD_DOC = {200: {"content": {"application/octet-stream": {}}, "description": "the file"},
                 **{k: v for k, v in documented(FileList, errors=(400, 401, 404, 413, 503)).items() if k != 200}}


@router.get("/{task_id}/files/download/{filename:path}", responses=_DOWNLOAD_DOC, summary="Download one file")
def download_file(task_id: TaskId, filename: str, conn: ReadConnDep, settings: SettingsDep):
    return _download(task_id, filename, conn, settings)


@router.get("/{task_id}/files/{filename:path}", responses=_DOWNLOAD_DOC, summary="Download one file (short form)")
def download_file_short(task_id: TaskId, filename: str, conn: ReadConnDep, settings: SettingsDep):
    return _download(task_id, filename, conn, settings)
