"""The admin API (contract §7), mounted at ``/admin`` only when ``admin_token`` is set.

Every request needs ``Authorization: Bearer <admin_token>`` (compared in constant time);
without it the answer is 401, whatever the path, so the API's shape is not probeable.
Routes: events (list, inspect, replay), deliveries (list, inspect, retry), subscriptions
(CRUD, bulk recovery of dead deliveries) and the OpenAPI document at ``/admin/openapi.json``.
"""

from __future__ import annotations

import hmac
import logging
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from payhook._subscription_rules import NAME_PATTERN
from payhook.asgi._admin_common import (
    by_method,
    error_response,
    json_response,
    parse_body,
    query_int,
    query_str,
    query_time,
)
from payhook.asgi._admin_subscriptions import subscription_routes
from payhook.asgi._openapi import openapi_document
from payhook.errors import InvalidRequestError
from payhook.operations import MAX_LIMIT, DeliveryView, EventView, Operations, Page

__all__ = ["BearerAuth", "create_admin_app"]

logger = logging.getLogger("payhook.admin")


class BearerAuth:
    """Pure ASGI middleware: 401 unless ``Authorization: Bearer <token>`` matches."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self._app = app
        self._token = token.encode()

    def __repr__(self) -> str:
        return "BearerAuth(token=***)"

    def _authorized(self, scope: Scope) -> bool:
        header = b""
        for key, value in scope.get("headers", ()):
            if key == b"authorization":
                header = value
                break
        scheme, _, given = header.partition(b" ")
        if scheme.lower() != b"bearer":
            # Still compare, so a missing header and a wrong one take the same time.
            hmac.compare_digest(self._token, b"")
            return False
        return hmac.compare_digest(self._token, given.strip())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            await self._app(scope, receive, send)
            return
        if not self._authorized(scope):
            response = error_response(
                "unauthorized",
                "Send the admin token as 'Authorization: Bearer <admin_token>'.",
                headers={"www-authenticate": 'Bearer realm="payhook-admin"'},
            )
            await response(scope, receive, send)
            return
        await self._app(scope, receive, send)


class _Replay(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, hide_input_in_errors=True)

    subscription: str | None = Field(default=None, pattern=NAME_PATTERN)


def _page(page: Page[EventView] | Page[DeliveryView]) -> Response:
    return json_response(
        {"items": [item.to_json() for item in page.items], "next_cursor": page.next_cursor}
    )


def _known_params(request: Request, *names: str) -> None:
    for name in request.query_params:
        if name not in names:
            raise InvalidRequestError(f"{name}: unknown parameter")


class _Routes:
    """The event and delivery endpoints, on one operator service."""

    def __init__(self, operations: Operations) -> None:
        self.ops = operations

    def _time_range(self, request: Request) -> tuple[datetime | None, datetime | None]:
        # An empty range (until <= since) is not an error: it simply matches nothing.
        return query_time(request, "since", self.ops), query_time(request, "until", self.ops)

    async def list_events(self, request: Request) -> Response:
        _known_params(request, "order_id", "type", "channel", "since", "until", "limit", "cursor")
        since, until = self._time_range(request)
        page = await self.ops.list_events(
            order_id=query_str(request, "order_id", max_length=128),
            event_type=query_str(request, "type", max_length=64),
            channel=query_str(request, "channel", max_length=64),
            since=since,
            until=until,
            limit=query_int(request, "limit", default=50, low=1, high=MAX_LIMIT),
            cursor=query_str(request, "cursor", max_length=64),
        )
        return _page(page)

    async def get_event(self, request: Request) -> Response:
        _known_params(request)
        event, found = await self.ops.event(str(request.path_params["id"]))
        data = event.to_json()
        data["deliveries"] = [d.to_json() for d in found]
        return json_response(data)

    async def replay(self, request: Request) -> Response:
        _known_params(request)
        event_id = str(request.path_params["id"])
        body = await parse_body(request, _Replay, optional=True)
        created = await self.ops.replay(event_id, body.subscription)
        logger.info(
            "event replayed to %d subscription(s)",
            len(created),
            extra={
                "action": "admin_replay",
                "event_id": event_id,
                "subscription": body.subscription,
            },
        )
        return json_response(
            {"event_id": event_id, "deliveries": [d.to_json() for d in created]},
            status_code=202,
        )

    async def list_deliveries(self, request: Request) -> Response:
        _known_params(
            request,
            "status",
            "subscription",
            "event_id",
            "order_id",
            "since",
            "until",
            "limit",
            "cursor",
        )
        status = query_str(request, "status", max_length=16)
        since, until = self._time_range(request)
        page = await self.ops.list_deliveries(
            status=status,
            subscription=query_str(request, "subscription", max_length=128),
            event_id=query_str(request, "event_id", max_length=32),
            order_id=query_str(request, "order_id", max_length=128),
            since=since,
            until=until,
            limit=query_int(request, "limit", default=50, low=1, high=MAX_LIMIT),
            cursor=query_str(request, "cursor", max_length=64),
        )
        return _page(page)

    async def get_delivery(self, request: Request) -> Response:
        _known_params(request)
        found = await self.ops.delivery(str(request.path_params["id"]))
        return json_response(found.to_json())

    async def retry(self, request: Request) -> Response:
        _known_params(request)
        delivery_id = str(request.path_params["id"])
        await parse_body(request, _Empty, optional=True)
        found = await self.ops.retry(delivery_id)
        logger.info(
            "delivery re-queued", extra={"action": "admin_retry", "delivery_id": delivery_id}
        )
        return json_response(found.to_json(), status_code=202)


class _Empty(BaseModel):
    model_config = ConfigDict(extra="forbid")


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        return error_response(
            "method_not_allowed", "This method is not allowed here.", dict(exc.headers or {})
        )
    return error_response("not_found", "No such admin endpoint.")


def create_admin_app(operations: Operations, *, token: str) -> Starlette:
    """The admin API on ``operations`` (mount it at ``/admin``), guarded by ``token``."""
    routes = _Routes(operations)

    async def openapi(request: Request) -> Response:
        return json_response(openapi_document(str(request.scope.get("root_path") or "/admin")))

    app = Starlette(
        routes=[
            by_method("/openapi.json", GET=openapi),
            by_method("/events", GET=routes.list_events),
            by_method("/events/{id}", GET=routes.get_event),
            by_method("/events/{id}/replay", POST=routes.replay),
            by_method("/deliveries", GET=routes.list_deliveries),
            by_method("/deliveries/{id}", GET=routes.get_delivery),
            by_method("/deliveries/{id}/retry", POST=routes.retry),
            *subscription_routes(operations),
        ],
        middleware=[Middleware(BearerAuth, token=token)],
        exception_handlers={HTTPException: _http_error},
    )
    # /admin/events/ is 404, not a redirect built from the request's Host header.
    app.router.redirect_slashes = False
    return app
