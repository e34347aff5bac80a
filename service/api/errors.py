"""Every failure becomes an envelope with the right status and what to fix; never a traceback.

Routes raise ``ApiError`` (400 bad input, 401, 404, 409 wrong state, 413 too large, 503 a backend
down); FastAPI's own validation errors become 400 with ``missing_params`` / ``invalid_params``
(the original answered 500 there, K6); known errors of the store, the database and Prefect are
mapped here once. Anything else is a 500 envelope saying only that it happened, with the details
(passwords redacted) in the server log.
"""

from __future__ import annotations

import logging
import re
import traceback
from typing import Any, Iterable

import httpx
import psycopg2
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from dp.logs import redact
from service import store
from service.api.envelope import envelope
from service.api.files import UnsafePath
from service.api.pool import PoolTimeout
from service.api.runs import RunsUnavailable

log = logging.getLogger(__name__)

_LOCATIONS = ("body", "query", "path", "header", "cookie")
_TYPE_TAG = re.compile(r"^(int|str|float|bool|bytes|none|literal\[.*\]|\w+\[.*\]|function-\w+\[.*\])$")


class ApiError(Exception):
    """An answer other than success: status, a message for people, and ``data`` for programs."""

    def __init__(self, status: int, message: str, error_type: str, **data: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.data = {"error_type": error_type, **{k: v for k, v in data.items() if v is not None}}


def bad_request(message: str, *, missing: list[str] | None = None, invalid: dict[str, str] | None = None) -> ApiError:
    return ApiError(400, message, "invalid_request", missing_params=missing or None, invalid_params=invalid or None)


def not_found(what: str) -> ApiError:
    return ApiError(404, f"{what} not found", "not_found")


def conflict(message: str, **data: Any) -> ApiError:
    return ApiError(409, message, "conflict", **data)


def too_large(message: str, limit: int) -> ApiError:
    return ApiError(413, message, "too_large", limit_bytes=limit)


def unavailable(message: str, **data: Any) -> ApiError:
    return ApiError(503, message, "unavailable", can_retry=True, **data)


def _param_name(loc: Iterable[Any]) -> str:
    """``("body", "parameters", "single_step", "int")`` -> ``parameters.single_step`` (no union member tags)."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in _LOCATIONS and len(parts) > 1:
        parts = parts[1:]
    for index, part in enumerate(parts):
        if _TYPE_TAG.match(part):
            parts = parts[:index]
            break
    return ".".join(parts) or "body"


def validation_problems(errors: Iterable[dict]) -> tuple[list[str], dict[str, str]]:
    """Pydantic errors as (missing parameter names, {invalid parameter: what is wrong})."""
    missing: list[str] = []
    invalid: dict[str, str] = {}
    for error in errors:
        name = _param_name(error.get("loc", ()))
        if error.get("type") == "missing":
            missing.append(name)
        elif name not in invalid:  # the first reason is enough; input values are never echoed
            invalid[name] = error.get("msg", "invalid value")
    return missing, invalid


def _problems_message(missing: list[str], invalid: dict[str, str]) -> str:
    parts = []
    if missing:
        parts.append("missing: " + ", ".join(missing))
    if invalid:
        parts.append("invalid: " + "; ".join(f"{k}: {v}" for k, v in invalid.items()))
    return "request parameters are wrong (" + " | ".join(parts) + ")"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return envelope(exc.status, exc.message, exc.data)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        missing, invalid = validation_problems(exc.errors())
        return envelope(400, _problems_message(missing, invalid),
                        {"error_type": "invalid_request", "missing_params": missing, "invalid_params": invalid})

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        message = {404: f"no route {request.url.path}", 405: f"method {request.method} is not allowed here"}.get(
            exc.status_code, str(exc.detail))
        return envelope(exc.status_code, message, {"error_type": "http_error"})

    mapped = {
        store.TaskNotFoundError: lambda e: not_found("task"),
        UnsafePath: lambda e: bad_request(str(e)),
        store.TaskActiveError: lambda e: conflict(str(e)),
        store.IdempotencyConflictError: lambda e: conflict(str(e)),
        PoolTimeout: lambda e: unavailable(f"the service is busy: {e}"),
        psycopg2.OperationalError: lambda e: unavailable("the service database cannot be reached"),
        httpx.HTTPError: lambda e: unavailable("the Prefect API cannot be reached or failed"),
        RunsUnavailable: lambda e: unavailable(str(e)),
    }
    for exc_type, to_api_error in mapped.items():
        app.add_exception_handler(exc_type, _mapped_handler(to_api_error))


def _mapped_handler(to_api_error):
    async def handler(request: Request, exc: Exception):
        api_error = to_api_error(exc)
        log.warning("%s %s: %s (%s)", request.method, request.url.path, api_error.message, redact(str(exc)))
        return envelope(api_error.status, api_error.message, api_error.data)

    return handler


class CatchAll:
    """Outermost ASGI layer: an unexpected exception becomes a 500 envelope, logged without passwords."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except ClientDisconnect:  # the client went away: nobody to answer
            return
        except Exception as exc:
            log.error("unexpected error on %s %s:\n%s", scope.get("method"), scope.get("path"),
                      redact("".join(traceback.format_exception(exc))))
            if started:  # a stream already under way can only be cut
                return
            response = envelope(500, "internal error; it has been logged", {"error_type": "internal_error"})
            await response(scope, receive, send)
