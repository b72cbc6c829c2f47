"""Admin API: subscriptions (list, create, inspect, change, delete) and bulk recovery.

A subscription's secret appears in exactly one answer: the one that created it (generated
when the request gave none). Every other answer shows ``"secret": "whsec_********"``.
Subscriptions declared in the config file are upserted at every start, so the API only
toggles them (``enabled``); their URL, filters and secret change in the file. In-process
handler subscriptions are owned by the code that registered them the same way.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from payhook.asgi._admin_common import (
    by_method,
    json_response,
    parse_body,
    parse_time,
    reject,
)
from payhook.errors import ConfigurationError, NotFoundError
from payhook.events import to_rfc3339
from payhook.storage._outbox_admin import recover_dead
from payhook.storage._subscription_model import (
    Subscription,
    validate_events,
    validate_name,
    validate_secret,
    validate_url,
)
from payhook.storage._subscriptions import (
    DEFAULT_GRACE_S,
    create_subscription,
    delete_subscription,
    get_subscription,
    list_subscriptions,
    update_subscription,
)

if TYPE_CHECKING:
    from payhook._hook import PayHook

__all__ = ["SECRET_MASK", "subscription_json", "subscription_routes"]

logger = logging.getLogger("payhook.admin")

SECRET_MASK = "whsec_********"  # noqa: S105 - what every answer shows instead of a secret
MAX_GRACE_S = 7 * 86400
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}\Z")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, hide_input_in_errors=True)


class _Create(_Model):
    name: str = Field(max_length=128)
    url: str = Field(max_length=2048)
    events: list[str] = Field(default=["*"], max_length=64)
    secret: str | None = Field(default=None, max_length=256)
    enabled: bool = True


class _Patch(_Model):
    url: str | None = Field(default=None, max_length=2048)
    events: list[str] | None = Field(default=None, max_length=64)
    enabled: bool | None = None
    secret: str | None = Field(default=None, max_length=256)
    grace_period_s: int = Field(default=int(DEFAULT_GRACE_S), ge=0, le=MAX_GRACE_S)


class _Recover(_Model):
    since: str = Field(max_length=64)
    dry_run: bool = False


def subscription_json(sub: Subscription, now: Any, *, secret: str | None = None) -> dict[str, Any]:
    """The public view of ``sub``; ``secret`` is given only in the creation answer."""
    data = sub.public_dict(now)
    data["secret"] = secret if secret is not None else (SECRET_MASK if sub.kind == "http" else None)
    return data


def _validated(code: str, check: Callable[[Any], Any], value: Any) -> None:
    try:
        check(value)
    except ConfigurationError as exc:
        if code == "invalid_secret" and exc.reason == "weak_webhook_secret":
            reject("weak_secret", exc.message)
        reject(code, exc.message)


def _name(request: Request) -> str:
    name = str(request.path_params["name"])
    if not _NAME.match(name):  # could never have been created; also keeps NUL off the database
        reject("subscription_not_found", "No subscription has this name.")
    return name


def _check_url(url: str) -> None:
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        reject("invalid_url", "a subscription URL must not contain control characters")
    _validated("invalid_url", validate_url, url)


async def _find(hook: PayHook, name: str) -> Subscription:
    try:
        return await get_subscription(hook.store.engine, name)
    except NotFoundError:
        reject("subscription_not_found", "No subscription has this name.")


def _editable(sub: Subscription, *, what: str) -> None:
    if sub.kind != "http":
        reject(
            "subscription_is_handler",
            f"{sub.name!r} is an in-process handler: {what} it in the code that registers it.",
        )
    if sub.source == "config":
        reject(
            "subscription_managed_by_config",
            f"{sub.name!r} is declared in the config file: {what} it there and restart.",
        )


class _Routes:
    def __init__(self, hook: PayHook) -> None:
        self.hook = hook
        self.engine = hook.store.engine

    async def list_all(self, request: Request) -> Response:
        if request.query_params:
            reject("invalid_parameter", "this listing takes no parameters")
        now = self.hook.clock.now()
        subs = await list_subscriptions(self.engine)
        return json_response({"items": [subscription_json(s, now) for s in subs]})

    async def create(self, request: Request) -> Response:
        body = await parse_body(request, _Create)
        _validated("invalid_name", validate_name, body.name)
        _check_url(body.url)
        _validated("invalid_events", validate_events, body.events)
        if body.secret is not None:
            _validated("invalid_secret", validate_secret, body.secret)
        sub, secret = await create_subscription(
            self.engine,
            name=body.name,
            url=body.url,
            events=body.events,
            secret=body.secret,
            enabled=body.enabled,
            clock=self.hook.clock,
        )
        logger.info(
            "subscription created",
            extra={"action": "admin_subscription_created", "subscription": sub.name},
        )
        return json_response(
            subscription_json(sub, self.hook.clock.now(), secret=secret), status_code=201
        )

    async def get(self, request: Request) -> Response:
        if request.query_params:
            reject("invalid_parameter", "this endpoint takes no parameters")
        sub = await _find(self.hook, _name(request))
        return json_response(subscription_json(sub, self.hook.clock.now()))

    async def patch(self, request: Request) -> Response:
        body = await parse_body(request, _Patch)
        sub = await _find(self.hook, _name(request))
        if body.url is not None or body.events is not None or body.secret is not None:
            _editable(sub, what="change the URL, event filters or secret of")
        if body.url is not None:
            _check_url(body.url)
        if body.events is not None:
            _validated("invalid_events", validate_events, body.events)
        if body.secret is not None:
            _validated("invalid_secret", validate_secret, body.secret)
        try:
            updated = await update_subscription(
                self.engine,
                sub.name,
                url=body.url,
                events=body.events,
                enabled=body.enabled,
                secret=body.secret,
                grace_s=float(body.grace_period_s),
                clock=self.hook.clock,
            )
        except NotFoundError:
            reject("subscription_not_found", "No subscription has this name.")
        changed = sorted(
            k for k in ("url", "events", "enabled", "secret") if getattr(body, k) is not None
        )
        logger.info(
            "subscription changed: %s",
            ", ".join(changed) or "nothing",
            extra={"action": "admin_subscription_changed", "subscription": sub.name},
        )
        return json_response(subscription_json(updated, self.hook.clock.now()))

    async def delete(self, request: Request) -> Response:
        sub = await _find(self.hook, _name(request))
        _editable(sub, what="remove")
        try:
            await delete_subscription(self.engine, sub.name)
        except NotFoundError:
            reject("subscription_not_found", "No subscription has this name.")
        logger.info(
            "subscription deleted",
            extra={"action": "admin_subscription_deleted", "subscription": sub.name},
        )
        return Response(status_code=204)

    async def recover(self, request: Request) -> Response:
        body = await parse_body(request, _Recover)
        since = parse_time(body.since, "since")
        name = _name(request)
        try:
            count = await recover_dead(
                self.engine,
                name,
                since,
                body.dry_run,
                clock=self.hook.clock,
                signal=self.hook.store.signal,
            )
        except NotFoundError:
            reject("subscription_not_found", "No subscription has this name.")
        if not body.dry_run:
            logger.info(
                "%d dead deliveries re-queued",
                count,
                extra={"action": "admin_recover", "subscription": name},
            )
        return json_response(
            {
                "subscription": name,
                "since": to_rfc3339(since),
                "dry_run": body.dry_run,
                "count": count,
            }
        )


def subscription_routes(hook: PayHook) -> list[Route]:
    """The ``/subscriptions`` routes of the admin app."""
    r = _Routes(hook)
    return [
        by_method("/subscriptions", GET=r.list_all, POST=r.create),
        by_method("/subscriptions/{name}", GET=r.get, PATCH=r.patch, DELETE=r.delete),
        by_method("/subscriptions/{name}/recover", POST=r.recover),
    ]
