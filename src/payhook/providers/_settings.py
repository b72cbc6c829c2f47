"""The settings every ``[[channels]]`` entry shares; each provider's model extends it.

A provider's model names the provider (``provider: Literal["alipay"]``), its own keys, and
which of them hold key material that may also be given as a file (``<key>_file``).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from payhook._settings_base import SettingsModel

__all__ = ["ChannelSettings"]


class ChannelSettings(SettingsModel):
    """One configured channel: one inbound endpoint, ``POST /notify/<name>``.

    Class attributes (read by the configuration loader before validation):
        key_files: keys holding key material; each may instead be given as ``<key>_file``
            (a path relative to the config file), whose text becomes the key's value.
        key_file_lists: ``(list_key, key)`` pairs: every file named in the list ``list_key``
            is read and appended to the tuple ``key``.
    """

    key_files: ClassVar[tuple[str, ...]] = ()
    key_file_lists: ClassVar[tuple[tuple[str, str], ...]] = ()

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    provider: str

    def summary(self) -> str:
        """One line for ``payhook check-config``; never shows a secret."""
        return ""
