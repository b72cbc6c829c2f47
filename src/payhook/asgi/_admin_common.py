"""Admin API plumbing: stable error codes, JSON bodies, query parameters, the endpoint wrapper.

Every answer of the admin API is JSON. Errors are ``{"error": {"code": ..., "message": ...}}``
with a stable, snake_case ``code`` (see :data:`ERROR_CODES`); messages are for humans and
never contain secrets or request bodies.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, NoReturn, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from payhook.errors import (
    ConfigurationError,
    ConflictError,
    NotFoundError,
    PayhookError,
    StorageUnavailableError,
)

__all__ = [
    "ERROR_CODES",
    "MAX_JSON_BYTES",
    "ApiError",
    "Endpoint",
    "by_method",
    "endpoint",
    "error_response",
    "json_response",
    "parse_body",
    "parse_time",
    "query_int",
    "query_str",
    "query_time",
    "reject",
]

logger = logging.getLogger("payhook.admin")

M = TypeVar("M", bound=BaseModel)

MAX_JSON_BYTES = 64 * 1024
_MIN_TIME = datetime.min.replace(tzinfo=UTC)
_MAX_TIME = datetime.max.replace(tzinfo=UTC)
_ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

# Every code the admin API answers with, and its HTTP status. Clients may rely on these.
ERROR_CODES: dict[str, int] = {
    "invalid_parameter": 400,
    "invalid_cursor": 400,
    "invalid_json": 400,
    "unauthorized": 401,
    "not_found": 404,
    "event_not_found": 404,
    "delivery_not_found": 404,
    "subscription_not_found": 404,
    "method_not_allowed": 405,
    "subscription_exists": 409,
    "subscription_managed_by_config": 409,
    "subscription_is_handler": 409,
    "delivery_in_flight": 409,
    "conflict": 409,
    "body_too_large": 413,
    "invalid_body": 422,
    "invalid_name": 422,
    "invalid_url": 422,
    "invalid_events": 422,
    "invalid_secret": 422,
    "weak_secret": 422,
    "invalid_subscription": 422,
    "internal_error": 500,
    "storage_unavailable": 503,
}

# payhook error reasons that are already admin error codes, or map to one.
_REASONS = {
    "event_not_found": "event_not_found",
    "delivery_not_found": "delivery_not_found",
    "subscription_not_found": "subscription_not_found",
    "exists": "subscription_exists",
    "in_flight": "delivery_in_flight",
    "subscription_kind": "subscription_is_handler",
    "bad_webhook_secret": "invalid_secret",
    "weak_webhook_secret": "weak_secret",
    "invalid_subscription": "invalid_subscription",
}


class ApiError(Exception):
    """An admin API error answer: a stable ``code`` (its status comes from ERROR_CODES)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.status = ERROR_CODES[code]
        self.message = message


def error_response(code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    """The JSON error answer for ``code``."""
    return JSONResponse(
        {"error": {"code": code, "message": message}},
        status_code=ERROR_CODES[code],
        headers=headers,
    )


def _from_payhook(exc: PayhookError) -> ApiError:
    mapped = _REASONS.get(exc.reason)
    if isinstance(exc, NotFoundError):
        return ApiError(mapped or "not_found", exc.message)
    if isinstance(exc, ConflictError):
        return ApiError(mapped or "conflict", exc.message)
    if isinstance(exc, ConfigurationError):
        return ApiError(mapped or "invalid_body", exc.message)
    if isinstance(exc, StorageUnavailableError):
        return ApiError("storage_unavailable", "The database is unavailable; try again shortly.")
    return ApiError("internal_error", "payhook could not complete the request.")


Endpoint = Callable[[Request], Awaitable[Response]]


def endpoint(fn: Endpoint) -> Endpoint:
    """Answer every failure of ``fn`` with a JSON error; nothing escapes to the host app."""

    @functools.wraps(fn)
    async def wrapper(request: Request) -> Response:
        try:
            return await fn(request)
        except ApiError as exc:
            return error_response(exc.code, exc.message)
        except PayhookError as exc:
            err = _from_payhook(exc)
            if err.code == "internal_error":
                logger.error(
                    "admin request failed: %s",
                    exc.__class__.__name__,
                    extra={"action": "admin_error", "reason": exc.reason},
                )
            headers = {"retry-after": "5"} if err.code == "storage_unavailable" else None
            return error_response(err.code, err.message, headers)
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
            raise ApiError("body_too_large", f"The body must be at most {MAX_JSON_BYTES} bytes.")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise ApiError("invalid_json", "The body is not valid JSON.") from None


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
            raise ApiError("invalid_json", "A JSON object body is required.")
        data = {}
    if not isinstance(data, dict):
        raise ApiError("invalid_body", "The body must be a JSON object.")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError("invalid_body", _field_of(exc)) from None


def reject(code: str, message: str) -> NoReturn:
    """Raise the :class:`ApiError` ``code``."""
    raise ApiError(code, message)


def query_str(request: Request, name: str, *, max_length: int = 256) -> str | None:
    """A query parameter, or None when absent; empty or repeated values are refused."""
    values = request.query_params.getlist(name)
    if not values:
        return None
    if len(values) > 1:
        reject("invalid_parameter", f"{name}: give it once")
    value = values[0]
    if not value or len(value) > max_length:
        reject("invalid_parameter", f"{name}: must be 1 to {max_length} characters")
    if "\x00" in value:  # PostgreSQL text cannot hold NUL: refuse it before any query
        reject("invalid_parameter", f"{name}: must not contain NUL characters")
    return value


def query_int(request: Request, name: str, *, default: int, low: int, high: int) -> int:
    """An integer query parameter within ``[low, high]``."""
    text = query_str(request, name, max_length=12)
    if text is None:
        return default
    if not text.isascii() or not text.isdigit():
        reject("invalid_parameter", f"{name}: must be an integer from {low} to {high}")
    value = int(text)
    if not low <= value <= high:
        reject("invalid_parameter", f"{name}: must be an integer from {low} to {high}")
    return value


_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))\Z"
)
_BAD_TIME = "must be an RFC 3339 time with an offset, e.g. 2026-11-28T09:00:00Z"


def parse_time(text: str, name: str) -> datetime:
    """An RFC 3339 time with an offset (``Z`` or ``+08:00``), as aware UTC.

    Leap seconds count as :59; times beyond what Python represents clamp to its range.
    """
    match = _RFC3339.match(text)
    if match is None:
        reject("invalid_parameter", f"{name}: {_BAD_TIME}")
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    micro = int((match.group(7) or "0")[:6].ljust(6, "0"))
    offset_h, offset_m = int(match.group(10) or 0), int(match.group(11) or 0)
    if offset_h > 23 or offset_m > 59:
        reject("invalid_parameter", f"{name}: {_BAD_TIME}")
    offset = timedelta(hours=offset_h, minutes=offset_m)
    if match.group(9) == "-":
        offset = -offset
    try:
        local = datetime(
            max(year, 1), month, day, hour, minute, min(second, 59), micro, timezone(offset)
        )
    except ValueError:
        reject("invalid_parameter", f"{name}: {_BAD_TIME}")
    try:
        return local.astimezone(UTC)
    except OverflowError:
        return _MIN_TIME if local.year == 1 else _MAX_TIME


def query_time(request: Request, name: str) -> datetime | None:
    """A time query parameter (RFC 3339 with offset), or None."""
    text = query_str(request, name, max_length=64)
    return None if text is None else parse_time(text, name)


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
