"""The admin API (contract §7), mounted at ``/admin`` only when ``admin_token`` is set.

Every request needs ``Authorization: Bearer <admin_token>`` (compared in constant time);
without it the answer is 401, whatever the path, so the API's shape is not probeable.
Routes: events (list, inspect, replay), deliveries (list, inspect, retry), subscriptions
(CRUD, bulk recovery of dead deliveries) and the OpenAPI document at ``/admin/openapi.json``.
"""

from __future__ import annotations

import hmac
import logging
import re
from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from payhook.asgi._admin_common import (
    by_method,
    error_response,
    json_response,
    parse_body,
    query_int,
    query_str,
    query_time,
    reject,
)
from payhook.asgi._admin_subscriptions import subscription_routes
from payhook.asgi._openapi import openapi_document
from payhook.errors import ConfigurationError, NotFoundError
from payhook.events import validate_filter
from payhook.storage._admin_queries import (
    DELIVERY_STATUSES,
    MAX_LIMIT,
    decode_cursor,
    deliveries_of_events,
    get_delivery,
    get_event,
    list_deliveries,
    list_events,
)
from payhook.storage._outbox_admin import replay_event, retry_delivery
from payhook.storage._subscriptions import get_subscription

if TYPE_CHECKING:
    from payhook._hook import PayHook

__all__ = ["BearerAuth", "create_admin_app"]

logger = logging.getLogger("payhook.admin")

_EVENT_ID = re.compile(r"evt_[0-9a-z]{26}\Z")
_DELIVERY_ID = re.compile(r"dlv_[0-9a-z]{26}\Z")


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

    subscription: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


def _event_id(request: Request) -> str:
    value = str(request.path_params["id"])
    if not _EVENT_ID.match(value):
        reject("event_not_found", "No event has this id.")
    return value


def _delivery_id(request: Request) -> str:
    value = str(request.path_params["id"])
    if not _DELIVERY_ID.match(value):
        reject("delivery_not_found", "No delivery has this id.")
    return value


def _cursor(request: Request, prefix: str) -> str | None:
    text = query_str(request, "cursor", max_length=64)
    if text is None:
        return None
    found = decode_cursor(text, prefix)
    if found is None:
        reject("invalid_cursor", "cursor: not a cursor of this listing (use next_cursor as is)")
    return found


def _time_range(request: Request) -> tuple[datetime | None, datetime | None]:
    # An empty range (until <= since) is not an error: it simply matches nothing.
    return query_time(request, "since"), query_time(request, "until")


def _known_params(request: Request, *names: str) -> None:
    for name in request.query_params:
        if name not in names:
            reject("invalid_parameter", f"{name}: unknown parameter")


class _Routes:
    """The event and delivery endpoints, bound to one PayHook."""

    def __init__(self, hook: PayHook) -> None:
        self.hook = hook
        self.engine = hook.store.engine

    async def list_events(self, request: Request) -> Response:
        _known_params(request, "order_id", "type", "channel", "since", "until", "limit", "cursor")
        event_type = query_str(request, "type", max_length=64)
        if event_type is not None and not validate_filter(event_type):
            reject("invalid_parameter", "type: an event type, 'prefix.*' or '*'")
        since, until = _time_range(request)
        page = await list_events(
            self.engine,
            order_id=query_str(request, "order_id", max_length=128),
            event_type=event_type,
            channel=query_str(request, "channel", max_length=64),
            since=since,
            until=until,
            limit=query_int(request, "limit", default=50, low=1, high=MAX_LIMIT),
            after_id=_cursor(request, "evt"),
        )
        return json_response(
            {"items": [item.to_json() for item in page.items], "next_cursor": page.next_cursor}
        )

    async def get_event(self, request: Request) -> Response:
        _known_params(request)
        event = await get_event(self.engine, _event_id(request))
        found = await deliveries_of_events(self.engine, [event.id], now=self.hook.clock.now())
        data = event.to_json()
        data["deliveries"] = [d.to_json() for d in found[event.id]]
        return json_response(data)

    async def replay(self, request: Request) -> Response:
        _known_params(request)
        event_id = _event_id(request)
        body = await parse_body(request, _Replay, optional=True)
        # Look both up first: replay_event's NotFoundError does not say which one is missing.
        await get_event(self.engine, event_id)
        if body.subscription is not None:
            try:
                await get_subscription(self.engine, body.subscription)
            except NotFoundError:
                reject("subscription_not_found", "No subscription has this name.")
        ids = await replay_event(
            self.engine,
            event_id,
            body.subscription,
            clock=self.hook.clock,
            signal=self.hook.store.signal,
        )
        logger.info(
            "event replayed to %d subscription(s)",
            len(ids),
            extra={
                "action": "admin_replay",
                "event_id": event_id,
                "subscription": body.subscription,
            },
        )
        now = self.hook.clock.now()
        created = [(await get_delivery(self.engine, i, now=now)).to_json() for i in ids]
        return json_response({"event_id": event_id, "deliveries": created}, status_code=202)

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
        if status is not None and status not in DELIVERY_STATUSES:
            reject("invalid_parameter", f"status: one of {', '.join(DELIVERY_STATUSES)}")
        since, until = _time_range(request)
        page = await list_deliveries(
            self.engine,
            status=status,
            subscription=query_str(request, "subscription", max_length=128),
            event_id=query_str(request, "event_id", max_length=32),
            order_id=query_str(request, "order_id", max_length=128),
            since=since,
            until=until,
            limit=query_int(request, "limit", default=50, low=1, high=MAX_LIMIT),
            after_id=_cursor(request, "dlv"),
            now=self.hook.clock.now(),
        )
        return json_response(
            {"items": [item.to_json() for item in page.items], "next_cursor": page.next_cursor}
        )

    async def get_delivery(self, request: Request) -> Response:
        _known_params(request)
        found = await get_delivery(self.engine, _delivery_id(request), now=self.hook.clock.now())
        return json_response(found.to_json())

    async def retry(self, request: Request) -> Response:
        _known_params(request)
        delivery_id = _delivery_id(request)
        await parse_body(request, _Empty, optional=True)
        try:
            await retry_delivery(
                self.engine, delivery_id, clock=self.hook.clock, signal=self.hook.store.signal
            )
        except NotFoundError:
            reject("delivery_not_found", "No delivery has this id.")
        logger.info(
            "delivery re-queued", extra={"action": "admin_retry", "delivery_id": delivery_id}
        )
        found = await get_delivery(self.engine, delivery_id, now=self.hook.clock.now())
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


def create_admin_app(hook: PayHook) -> Starlette:
    """The admin API of ``hook`` (mount it at ``/admin``), guarded by the admin token.

    Raises:
        ConfigurationError: ``hook.settings.admin_token`` is not set.
    """
    if hook.settings.admin_token is None:
        raise ConfigurationError("the admin API needs admin_token")
    token = hook.settings.admin_token.get_secret_value()
    routes = _Routes(hook)

    async def openapi(request: Request) -> Response:
        return json_response(openapi_document(str(request.scope.get("root_path") or "/admin")))

    return Starlette(
        routes=[
            by_method("/openapi.json", GET=openapi),
            by_method("/events", GET=routes.list_events),
            by_method("/events/{id}", GET=routes.get_event),
            by_method("/events/{id}/replay", POST=routes.replay),
            by_method("/deliveries", GET=routes.list_deliveries),
            by_method("/deliveries/{id}", GET=routes.get_delivery),
            by_method("/deliveries/{id}/retry", POST=routes.retry),
            *subscription_routes(hook),
        ],
        middleware=[Middleware(BearerAuth, token=token)],
        exception_handlers={HTTPException: _http_error},
    )
