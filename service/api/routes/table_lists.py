"""A task's table list: set it (JSON list or uploaded file) and look at it.

The upload is size-checked before it is read whole (Content-Length, then the bytes themselves),
decoded as UTF-8 and parsed like any table list; only a list that parses is written.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from dp.settings import Settings
from dp.table_list import TableListError, parse_table_list
from dp.task_dir import TABLE_LIST_NAME
from service.api import lifecycle
from service.api.deps import ConnDep, ReadConnDep, SettingsDep, TaskId
from service.api.envelope import documented, ok
from service.api.errors import bad_request, too_large, validation_problems
from service.api.files import stored_task_directory
from service.api.requests import TableList, check_size, decode_table_list, parse_tables
from service.api.schemas import TableListBody, TableListInfo

router = APIRouter(prefix="/tasks", tags=["table lists"])

_MULTIPART_OVERHEAD = 64 * 1024
_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": TableListBody.model_json_schema()},
            "multipart/form-data": {
                "schema": {"type": "object", "required": ["file"],
                           "properties": {"file": {"type": "string", "format": "binary",
                                                   "description": "a UTF-8 table list file"}}},
            },
        },
    }
}


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it grows past ``limit``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(f"the request body is larger than {limit} bytes", limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(f"the request body is larger than {limit} bytes", limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def _from_json(request: Request, settings: Settings) -> TableList:
    raw = await _read_body(request, settings.max_table_list_bytes + _MULTIPART_OVERHEAD)
    try:
        body = TableListBody.model_validate(json.loads(raw))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise bad_request("the body is not JSON; send {\"tables\": [...]} or a multipart file",
                          invalid={"body": "not valid JSON"}) from None
    except ValidationError as exc:
        missing, invalid = validation_problems(exc.errors())
        raise bad_request("send {\"tables\": [\"table\", \"schema.table\", ...]}", missing=missing,
                          invalid=invalid) from None
    return parse_tables(body.tables, settings)


async def _from_upload(request: Request, settings: Settings) -> TableList:
    declared = request.headers.get("content-length")
    if declared is None or not declared.isdigit():
        raise bad_request("send the upload with a Content-Length header", invalid={"content-length": "required"})
    check_size(max(int(declared) - _MULTIPART_OVERHEAD, 0), settings, "the upload")
    form = await request.form(max_files=1, max_fields=5)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise bad_request("the form has no file field named 'file'", missing=["file"])
    data = await upload.read(settings.max_table_list_bytes + 1)
    return decode_table_list(data, settings)


@router.post("/{task_id}/table-list", responses=documented(TableListInfo, errors=(400, 401, 404, 409, 413, 503)),
             openapi_extra=_UPLOAD_BODY, summary="Set the task's table list (JSON list or multipart file)")
async def set_table_list(task_id: TaskId, request: Request, conn: ConnDep, settings: SettingsDep):
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if content_type == "multipart/form-data":
            table_list = await _from_upload(request, settings)
        elif content_type in ("application/json", ""):
            table_list = await _from_json(request, settings)
        else:
            raise bad_request(f"unsupported content type {content_type!r}; send application/json or multipart/form-data",
                              invalid={"content-type": "application/json or multipart/form-data"})
    except TableListError as exc:
        raise bad_request("the table list has problems: " + "; ".join(exc.problems[:20]),
                          invalid={"tables": "; ".join(exc.problems[:20])}) from None
    data = await run_in_threadpool(lifecycle.replace_table_list, conn, settings, task_id, table_list)
    return ok({**data, "has_file": True}, f"table list saved: {data['table_count']} tables")


@router.get("/{task_id}/table-list-info", responses=documented(TableListInfo),
            summary="The task's table list: whether it is there, its size and tables")
def table_list_info(task_id: TaskId, conn: ReadConnDep, settings: SettingsDep):
    task = lifecycle.read_task(conn, task_id)
    path = stored_task_directory(settings, task_id, task["output_directory"]) / TABLE_LIST_NAME
    info = {"task_id": task_id, "has_file": False, "file_name": TABLE_LIST_NAME}
    if path.is_symlink() or not path.is_file():
        return ok(info, "the task has no table list yet")
    stat = path.stat()
    info.update(has_file=True, file_size=stat.st_size,
                modified_at=datetime.fromtimestamp(stat.st_mtime, timezone.utc).isoformat())
    try:
        tables = parse_table_list(path.read_text(encoding="utf-8"))
        info.update(table_count=len(tables), tables=[t.display for t in tables])
    except (TableListError, UnicodeDecodeError) as exc:
        info["problems"] = exc.problems if isinstance(exc, TableListError) else ["not UTF-8 text"]
    return ok(info)
