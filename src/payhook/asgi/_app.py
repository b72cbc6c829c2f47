"""The Starlette app payhook serves and hosts mount: notify, health, readiness, metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from payhook.asgi._inbound import InboundEndpoint

if TYPE_CHECKING:
    from payhook._hook import PayHook

__all__ = ["create_app"]


def create_app(hook: PayHook, *, lifespan: Any = None) -> Starlette:
    """The ASGI app for ``hook``: ``POST /notify/{channel}``, ``/healthz``, ``/readyz``,
    ``/metrics`` and, when an admin token is configured, ``/admin``."""
    inbound = InboundEndpoint(
        providers=hook.providers,
        store=hook.store,
        clock=hook.clock,
        metrics=hook.metrics,
        max_body_bytes=hook.settings.max_body_bytes,
    )

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_request: Request) -> Response:
        if await hook.store.ping():
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "database unavailable"}, status_code=503)

    async def metrics(_request: Request) -> Response:
        await hook.refresh_gauges()
        return Response(generate_latest(hook.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    routes: list[BaseRoute] = [
        Route("/notify/{channel}", inbound, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    admin = hook.admin_app()
    if admin is not None:
        routes.append(Mount("/admin", app=admin))
    return Starlette(routes=routes, lifespan=lifespan)
