"""The shape of an in-process subscriber (``@hook.on(...)``): an async function of one event."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from payhook.events._model import Event

__all__ = ["Handler"]

Handler = Callable[[Event], Awaitable[None]]
