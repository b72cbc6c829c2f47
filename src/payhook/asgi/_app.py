"""The Starlette app payhook serves and hosts mount: notify, health, readiness, metrics, admin."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp

from payhook._metrics import Metrics
from payhook.asgi._admin import create_admin_app
from payhook.asgi._inbound import unknown_channel
from payhook.operations import Operations

__all__ = ["create_app"]


def create_app(
    *,
    inbound: ASGIApp,
    operations: Operations,
    metrics: Metrics,
    refresh_gauges: Callable[[], Awaitable[None]],
    admin_token: str | None,
    lifespan: Any = None,
) -> Starlette:
    """The ASGI app: ``POST /notify/{channel}``, ``/healthz``, ``/readyz``, ``/metrics`` and,
    when ``admin_token`` is set, the admin API at ``/admin`` (else ``/admin`` is 404).

    Args:
        inbound: the notify endpoint.
        operations: the operator service (readiness and the admin API).
        metrics: what ``/metrics`` renders, after ``refresh_gauges()`` updated the gauges.
    """

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_request: Request) -> Response:
        if await operations.ready():
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "database unavailable"}, status_code=503)

    async def render_metrics(_request: Request) -> Response:
        await refresh_gauges()
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    routes: list[BaseRoute] = [
        Route("/notify/{channel}", inbound, methods=["POST"]),
        # Any other path under /notify (a trailing slash, more segments, none) is no channel:
        # the contract's plain 404, never a redirect (Starlette's redirect_slashes would
        # build one from the Host header, see below).
        Route("/notify/{rest:path}", unknown_channel, methods=["POST"]),
        Route("/notify", unknown_channel, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", render_metrics, methods=["GET"]),
    ]
    if admin_token is not None:
        routes.append(Mount("/admin", app=create_admin_app(operations, token=admin_token)))
    app = Starlette(routes=routes, lifespan=lifespan)
    # No redirects at all: Starlette's slash redirect points at whatever Host the request
    # named (an open redirect), and providers do not follow redirects anyway.
    app.router.redirect_slashes = False
    return app
