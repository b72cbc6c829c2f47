"""Starlette edge: the mountable app."""

from __future__ import annotations

from payhook.asgi._admin import create_admin_app
from payhook.asgi._app import create_app
from payhook.asgi._inbound import InboundEndpoint

__all__ = ["InboundEndpoint", "create_admin_app", "create_app"]
