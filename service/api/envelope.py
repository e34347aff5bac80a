"""The response envelope the existing front end reads: ``{"code", "success", "message", "data"}``.

``code`` always equals the HTTP status (the original sent 200 in the body of its 201/202 answers);
``success`` is true for 2xx. ``data`` is an object: the payload on success, on failure what went
wrong and what to fix (``error_type``, and ``missing_params`` / ``invalid_params`` for bad input).
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from fastapi.responses import JSONResponse
from pydantic import BaseModel

T = TypeVar("T")


class Envelope(BaseModel, Generic[T]):
    """How every answer looks (the OpenAPI schema of each route names its ``data``)."""

    code: int
    success: bool
    message: str
    data: T


def envelope(status: int, message: str, data: dict[str, Any] | None = None) -> JSONResponse:
    return JSONResponse(
        {"code": status, "success": 200 <= status < 300, "message": message, "data": data or {}}, status_code=status
    )


def ok(data: dict[str, Any], message: str = "ok", status: int = 200) -> JSONResponse:
    return envelope(status, message, data)


_ERRORS = {
    400: "bad input: `missing_params` / `invalid_params` say what to fix",
    401: "missing or wrong API key (DP_API_KEY)",
    404: "no such task or file",
    409: "the task is in the wrong state, or every run slot is taken",
    413: "larger than the configured limit",
    503: "the service database or the Prefect API cannot be reached",
}


def documented(model: type, status: int = 200, errors: tuple[int, ...] = (400, 401, 404, 503)) -> dict:
    """The ``responses`` of a route for OpenAPI: its envelope on success and the error envelopes."""
    from service.api.schemas import ErrorData

    responses: dict[int | str, dict] = {status: {"model": Envelope[model], "description": "success"}}
    for code in errors:
        responses[code] = {"model": Envelope[ErrorData], "description": _ERRORS[code]}
    return responses
