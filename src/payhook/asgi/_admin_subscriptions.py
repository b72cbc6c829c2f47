"""Admin API: subscriptions (list, create, inspect, change, delete) and bulk recovery.

A subscription's secret appears in exactly one answer: the one that created it (generated
when the request gave none). Every other answer shows ``"secret": "whsec_********"``.
Subscriptions declared in the config file are upserted at every start, so the API only
toggles them (``enabled``); their URL, filters and secret change in the file. In-process
handler subscriptions are owned by the code that registered them the same way.
"""

from __future__ import annotations

import logging

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from payhook._subscription_rules import MAX_URL_LENGTH
from payhook.asgi._admin_common import by_method, json_response, parse_body
from payhook.errors import InvalidRequestError
from payhook.events import to_rfc3339
from payhook.operations import DEFAULT_GRACE_S, Operations, parse_time, subscription_json

__all__ = ["subscription_routes"]

logger = logging.getLogger("payhook.admin")

MAX_GRACE_S = 7 * 86400


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, hide_input_in_errors=True)


class _Create(_Model):
    name: str = Field(max_length=128)
    url: str = Field(max_length=MAX_URL_LENGTH)
    events: list[str] = Field(default=["*"], max_length=64)
    secret: str | None = Field(default=None, max_length=256)
    enabled: bool = True


class _Patch(_Model):
    url: str | None = Field(default=None, max_length=MAX_URL_LENGTH)
    events: list[str] | None = Field(default=None, max_length=64)
    enabled: bool | None = None
    secret: str | None = Field(default=None, max_length=256)
    grace_period_s: int = Field(default=int(DEFAULT_GRACE_S), ge=0, le=MAX_GRACE_S)


class _Recover(_Model):
    since: str = Field(max_length=64)
    dry_run: bool = False


def _no_params(request: Request) -> None:
    if request.query_params:
        raise InvalidRequestError("this endpoint takes no parameters")


class _Routes:
    def __init__(self, operations: Operations) -> None:
        self.ops = operations

    async def list_all(self, request: Request) -> Response:
        _no_params(request)
        now = self.ops.now()
        subs = await self.ops.subscriptions()
        return json_response({"items": [subscription_json(s, now) for s in subs]})

    async def create(self, request: Request) -> Response:
        body = await parse_body(request, _Create)
        sub, secret = await self.ops.create_subscription(
            name=body.name,
            url=body.url,
            events=body.events,
            secret=body.secret,
            enabled=body.enabled,
        )
        logger.info(
            "subscription created",
            extra={"action": "admin_subscription_created", "subscription": sub.name},
        )
        return json_response(subscription_json(sub, self.ops.now(), secret=secret), status_code=201)

    async def get(self, request: Request) -> Response:
        _no_params(request)
        sub = await self.ops.subscription(str(request.path_params["name"]))
        return json_response(subscription_json(sub, self.ops.now()))

    async def patch(self, request: Request) -> Response:
        body = await parse_body(request, _Patch)
        updated = await self.ops.update_subscription(
            str(request.path_params["name"]),
            url=body.url,
            events=body.events,
            enabled=body.enabled,
            secret=body.secret,
            grace_s=float(body.grace_period_s),
        )
        changed = sorted(
            k for k in ("url", "events", "enabled", "secret") if getattr(body, k) is not None
        )
        logger.info(
            "subscription changed: %s",
            ", ".join(changed) or "nothing",
            extra={"action": "admin_subscription_changed", "subscription": updated.name},
        )
        return json_response(subscription_json(updated, self.ops.now()))

    async def delete(self, request: Request) -> Response:
        name = str(request.path_params["name"])
        await self.ops.delete_subscription(name)
        logger.info(
            "subscription deleted",
            extra={"action": "admin_subscription_deleted", "subscription": name},
        )
        return Response(status_code=204)

    async def recover(self, request: Request) -> Response:
        body = await parse_body(request, _Recover)
        since = parse_time(body.since, name="since", now=self.ops.now())
        name = str(request.path_params["name"])
        result = await self.ops.recover(name, since, dry_run=body.dry_run)
        count = result.found if body.dry_run else result.requeued
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


def subscription_routes(operations: Operations) -> list[Route]:
    """The ``/subscriptions`` routes of the admin app."""
    r = _Routes(operations)
    return [
        by_method("/subscriptions", GET=r.list_all, POST=r.create),
        by_method("/subscriptions/{name}", GET=r.get, PATCH=r.patch, DELETE=r.delete),
        by_method("/subscriptions/{name}/recover", POST=r.recover),
    ]
