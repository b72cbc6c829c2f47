"""Admin API plumbing: error answers, JSON bodies, query parameters, the endpoint wrapper.

Every answer of the admin API is JSON. Errors are ``{"error": {"code": ..., "message": ...}}``
with a stable, snake_case ``code``: a :class:`~payhook.errors.RequestError` carries its own
code and status; the few codes only the HTTP edge produces are listed in :data:`EDGE_CODES`.
Messages are for humans and never contain secrets or request bodies.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from payhook.errors import (
    BodyTooLargeError,
    InvalidBodyError,
    InvalidJsonError,
    InvalidRequestError,
    PayhookError,
    RequestError,
    StorageUnavailableError,
)
from payhook.operations import Operations, parse_time

__all__ = [
    "EDGE_CODES",
    "ERROR_CODES",
    "MAX_JSON_BYTES",
    "Endpoint",
    "by_method",
    "endpoint",
    "error_response",
    "json_response",
    "parse_body",
    "query_int",
    "query_str",
    "query_time",
]

logger = logging.getLogger("payhook.admin")

M = TypeVar("M", bound=BaseModel)

MAX_JSON_BYTES = 64 * 1024
_ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

# The codes the HTTP edge answers with itself (no RequestError behind them).
EDGE_CODES: dict[str, int] = {
    "unauthorized": 401,
    "method_not_allowed": 405,
    "internal_error": 500,
    "storage_unavailable": 503,
}


def _request_codes(cls: type[RequestError]) -> dict[str, int]:
    found = {cls.code: cls.status_code}
    for sub in cls.__subclasses__():
        found.update(_request_codes(sub))
    return found


# Every code the admin API answers with, and its HTTP status. Clients may rely on these.
ERROR_CODES: dict[str, int] = {**_request_codes(RequestError), **EDGE_CODES}


def error_response(
    code: str, message: str, headers: dict[str, str] | None = None, *, status: int | None = None
) -> Response:
    """The JSON error answer for ``code``."""
    return JSONResponse(
        {"error": {"code": code, "message": message}},
        status_code=status if status is not None else ERROR_CODES[code],
        headers=headers,
    )


Endpoint = Callable[[Request], Awaitable[Response]]


def endpoint(fn: Endpoint) -> Endpoint:
    """Answer every failure of ``fn`` with a JSON error; nothing escapes to the host app."""

    @functools.wraps(fn)
    async def wrapper(request: Request) -> Response:
        try:
            return await fn(request)
        except RequestError as exc:
            return error_response(exc.code, exc.message, status=exc.status_code)
        except StorageUnavailableError:
            return error_response(
                "storage_unavailable",
                "The database is unavailable; try again shortly.",
                {"retry-after": "5"},
            )
        except PayhookError as exc:
            logger.error(
                "admin request failed: %s",
                exc.__class__.__name__,
                extra={"action": "admin_error", "reason": exc.reason},
            )
            return error_response("internal_error", "payhook could not complete the request.")
        except Exception as exc:  # the admin API's one catch-all boundary
            logger.error(
                "admin request crashed: %s",
                exc.__class__.__name__,
                exc_info=True,
                extra={"action": "admin_crashed"},
            )
            return error_response("internal_error", "payhook could not complete the request.")

    return wrapper


# --------------------------------------------------------------------------------------------
# request parsing


async def _read_json(request: Request) -> object:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_JSON_BYTES:
            raise BodyTooLargeError(f"The body must be at most {MAX_JSON_BYTES} bytes.")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise InvalidJsonError("The body is not valid JSON.") from None


def _field_of(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(part) for part in err["loc"]) or "body"
    if err["type"] == "extra_forbidden":
        return f"{where}: unknown field"
    if err["type"] == "missing":
        return f"{where}: is required"
    return f"{where}: {err['msg']}"


async def parse_body(request: Request, model: type[M], *, optional: bool = False) -> M:
    """The JSON body validated as ``model`` (an empty body is ``{}`` when ``optional``)."""
    data = await _read_json(request)
    if data is None:
        if not optional:
            raise InvalidJsonError("A JSON object body is required.")
        data = {}
    if not isinstance(data, dict):
        raise InvalidBodyError("The body must be a JSON object.")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidBodyError(_field_of(exc)) from None


def query_str(request: Request, name: str, *, max_length: int = 256) -> str | None:
    """A query parameter, or None when absent; empty or repeated values are refused."""
    values = request.query_params.getlist(name)
    if not values:
        return None
    if len(values) > 1:
        raise InvalidRequestError(f"{name}: give it once")
    value = values[0]
    if not value or len(value) > max_length:
        raise InvalidRequestError(f"{name}: must be 1 to {max_length} characters")
    if "\x00" in value:  # PostgreSQL text cannot hold NUL: refuse it before any query
        raise InvalidRequestError(f"{name}: must not contain NUL characters")
    return value


def query_int(request: Request, name: str, *, default: int, low: int, high: int) -> int:
    """An integer query parameter within ``[low, high]``."""
    text = query_str(request, name, max_length=12)
    if text is None:
        return default
    if not text.isascii() or not text.isdigit() or not low <= int(text) <= high:
        raise InvalidRequestError(f"{name}: must be an integer from {low} to {high}")
    return int(text)


def query_time(request: Request, name: str, operations: Operations) -> datetime | None:
    """A time query parameter (RFC 3339 with an offset, or an age such as ``6h``), or None."""
    text = query_str(request, name, max_length=64)
    return None if text is None else parse_time(text, name=name, now=operations.now())


def by_method(path: str, **handlers: Endpoint) -> Route:
    """One route for ``path`` dispatching on the method (405 with ``Allow`` otherwise)."""
    wrapped = {method: endpoint(fn) for method, fn in handlers.items()}
    if "GET" in wrapped:
        wrapped["HEAD"] = wrapped["GET"]
    allow = ", ".join(sorted(wrapped))

    async def dispatch(request: Request) -> Response:
        handler = wrapped.get(request.method)
        if handler is None:
            return error_response(
                "method_not_allowed", "This method is not allowed here.", {"allow": allow}
            )
        return await handler(request)

    return Route(path, dispatch, methods=_ALL_METHODS)


def json_response(data: Any, status_code: int = 200) -> Response:
    """A JSON answer."""
    return JSONResponse(data, status_code=status_code)
