"""The settings every ``[[channels]]`` entry shares; each provider's model extends it.

A provider's model names the provider (``provider: Literal["alipay"]``), its own keys, and
which of them hold key material that may also be given as a file (``<key>_file``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from pydantic import Field

from payhook._settings_base import SettingsModel

__all__ = ["ChannelSettings", "KeySlot"]


@dataclass(frozen=True)
class KeySlot:
    """One setting of a channel that holds an RSA key or certificates, and its role.

    Attributes:
        name: the settings field (a text, or a tuple of texts like ``platform_certificates``).
        kind: what the field must hold: ``"public_key"`` (a certificate is accepted too),
            ``"certificate"`` (one or more) or ``"private_key"``.
        role: ``"provider"``: a key the provider signs with, that callbacks verify with;
            ``"own"``: one of the merchant's own private keys (the provider holds its public
            half); ``"simulator"``: the test key ``payhook simulate`` signs with, playing the
            provider, so it must be the private half of the first provider key configured.
        label: how ``payhook check-config`` names it (default: the field name).
        own_key_mistake: provider keys only: the error when the key is the public half of
            one of the merchant's own private keys (the classic paste mistake) and its fix.
    """

    name: str
    kind: Literal["public_key", "certificate", "private_key"]
    role: Literal["provider", "own", "simulator"]
    label: str = ""
    own_key_mistake: str = ""


class ChannelSettings(SettingsModel):
    """One configured channel: one inbound endpoint, ``POST /notify/<name>``.

    Class attributes (read by the configuration loader before validation):
        key_files: keys holding key material; each may instead be given as ``<key>_file``
            (a path relative to the config file), whose text becomes the key's value.
        key_file_lists: ``(list_key, key)`` pairs: every file named in the list ``list_key``
            is read and appended to the tuple ``key``.
        key_slots: the settings holding RSA keys or certificates, with their roles: the
            configuration checks parse them (naming the file of a garbled one), refuse a
            provider key that is the public half of one of the merchant's own private keys,
            and warn when the simulator key cannot sign for the provider key.
    """

    key_files: ClassVar[tuple[str, ...]] = ()
    key_file_lists: ClassVar[tuple[tuple[str, str], ...]] = ()
    key_slots: ClassVar[tuple[KeySlot, ...]] = ()

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    provider: str

    def summary(self) -> str:
        """One line for ``payhook check-config``; never shows a secret."""
        return ""
