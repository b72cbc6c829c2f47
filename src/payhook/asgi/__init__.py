"""Starlette edge: the mountable app."""

from __future__ import annotations

from payhook.asgi._app import create_app

__all__ = ["create_app"]
