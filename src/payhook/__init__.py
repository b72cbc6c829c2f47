"""payhook: payment callbacks in, signed webhooks out."""

from __future__ import annotations

from payhook._hook import PayHook
from payhook._version import __version__

__all__ = ["PayHook", "__version__"]
