"""The checks that catch the classic key mistakes, over every channel of a configuration.

Each channel's settings model lists its key settings and their roles (:class:`KeySlot`).
From them:

- every key is parsed, so a garbled one fails at load, naming its setting;
- a provider key (the Alipay public key, a WeChat Pay public key or platform certificate)
  that is the public half of one of the merchant's own private keys (the Alipay app key,
  the WeChat Pay merchant API key), in any channel, is an error: the classic "app public
  key pasted instead of the Alipay public key", under which every callback is refused;
- a simulator key that is not the private half of the provider key it plays is a warning:
  ``payhook simulate`` callbacks would be refused, real ones are not affected.

Keys are named by a fingerprint (:func:`payhook.signing.key_fingerprint`), never shown.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from pydantic import SecretStr

from payhook.errors import ConfigurationError
from payhook.providers._settings import ChannelSettings, KeySlot
from payhook.signing import (
    key_fingerprint,
    load_certificates,
    load_rsa_private_key,
    load_rsa_public_key,
    public_key_of_certificate,
)

__all__ = [
    "WRONG_KEY_DOC",
    "ChannelKey",
    "KeyFinding",
    "channel_keys",
    "key_findings",
    "key_summary",
    "signature_hint",
]

# The documentation section the refused-callback log line points to.
WRONG_KEY_DOC = "docs/configuration.md#wrong-public-key"

_PEM_BLOCK = re.compile(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", re.S)


@dataclass(frozen=True)
class ChannelKey:
    """One parsed key of a channel: its slot, its label (``platform_certificates[1]``) and
    the public key (the public half, for a private key). Holds no private material."""

    slot: KeySlot
    label: str
    public_key: RSAPublicKey
    fingerprint: str
    serial: str | None = None  # certificates: the serial number, upper-case hex

    @property
    def der(self) -> bytes:
        return self.public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )


@dataclass(frozen=True)
class KeyFinding:
    """A key mistake in channel number ``index`` (its position in the configuration)."""

    index: int
    severity: Literal["error", "warning"]
    message: str


def _certificates(text: str, what: str) -> list[x509.Certificate]:
    """The certificates of ``text``; a bundle with some blocks that cannot be parsed
    (an SM2 or ECDSA certificate beside the RSA one) keeps the others."""
    try:
        return load_certificates(text, what=what)
    except ConfigurationError:
        blocks = _PEM_BLOCK.findall(text)
        if len(blocks) < 2:
            raise
        certs = []
        for block in blocks:
            try:
                certs.extend(load_certificates(block, what=what))
            except ConfigurationError:
                continue
        if not certs:
            raise
        return certs


def _slot_keys(slot: KeySlot, label: str, text: str) -> list[ChannelKey]:
    if slot.kind == "private_key":
        key = load_rsa_private_key(text, what=label).public_key()
        return [ChannelKey(slot, label, key, key_fingerprint(key))]
    if slot.kind == "public_key":
        key = load_rsa_public_key(text, what=label)
        return [ChannelKey(slot, label, key, key_fingerprint(key))]
    keys = []
    for cert in _certificates(text, label):
        try:
            key = public_key_of_certificate(cert, what=label)
        except ConfigurationError:
            continue  # an intermediate of another algorithm: not a key payhook verifies with
        keys.append(
            ChannelKey(slot, label, key, key_fingerprint(key), serial=f"{cert.serial_number:X}")
        )
    if not keys:
        raise ConfigurationError(f"{label}: holds no RSA certificate")
    return keys


def channel_keys(channel: ChannelSettings) -> tuple[ChannelKey, ...]:
    """Every key of ``channel``'s key slots, parsed, in slot order.

    Raises:
        ConfigurationError: a key cannot be parsed or is of the wrong kind; the message
            starts with the setting's name (``platform_certificates[1]`` in a list).
    """
    found: list[ChannelKey] = []
    for slot in type(channel).key_slots:
        value = getattr(channel, slot.name, None)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            found.extend(_slot_keys(slot, slot.name, value.get_secret_value()))
            continue
        for i, item in enumerate(value):
            text = item.get_secret_value() if isinstance(item, SecretStr) else str(item)
            found.extend(_slot_keys(slot, f"{slot.name}[{i}]", text))
    return tuple(found)


def key_findings(channels: Sequence[ChannelSettings]) -> list[KeyFinding]:
    """The key mistakes across ``channels``: errors first, in channel order.

    Raises:
        ConfigurationError: a key cannot be parsed (see :func:`channel_keys`).
    """
    parsed = [channel_keys(channel) for channel in channels]
    own = [(j, key) for j, keys in enumerate(parsed) for key in keys if key.slot.role == "own"]
    errors: list[KeyFinding] = []
    warnings: list[KeyFinding] = []
    for i, keys in enumerate(parsed):
        for key in keys:
            if key.slot.role != "provider":
                continue
            for j, mine in own:
                if mine.der != key.der:
                    continue
                mistake = key.slot.own_key_mistake or (
                    f"{key.label} is the public half of your own private key; "
                    "it must be the provider's public key"
                )
                if j != i:
                    mistake += (
                        f" (it is the public half of {mine.slot.name} of channel "
                        f"{channels[j].name!r})"
                    )
                errors.append(KeyFinding(i, "error", mistake))
        simulator = next((k for k in keys if k.slot.role == "simulator"), None)
        target = next((k for k in keys if k.slot.role == "provider"), None)
        if simulator is not None and target is not None and simulator.der != target.der:
            warnings.append(
                KeyFinding(
                    i,
                    "warning",
                    f"{simulator.label} ({simulator.fingerprint}) is not the private half of "
                    f"{_name(target)} ({target.fingerprint}): callbacks sent by "
                    "`payhook simulate` to this channel will be refused",
                )
            )
    return errors + warnings


def _name(key: ChannelKey) -> str:
    if key.serial is not None and key.slot.label:
        return f"{key.slot.label} {key.serial}"
    return key.label


def key_summary(channel: ChannelSettings) -> str:
    """The keys of ``channel`` by fingerprint, for ``payhook check-config``:
    ``alipay_public_key SHA256:…, app key set SHA256:…``. Never shows key material.

    Raises:
        ConfigurationError: a key cannot be parsed.
    """
    shown: list[str] = []
    labels: set[str] = set()
    for key in channel_keys(channel):
        if key.label in labels and not key.slot.label:
            continue  # a certificate file's intermediates: its first certificate names it
        labels.add(key.label)
        name = _name(key) if key.slot.role == "provider" else key.slot.label or key.label
        shown.append(f"{name} {key.fingerprint}")
    return ", ".join(shown)


def signature_hint(channel: str, key_name: str, fingerprint: str) -> str:
    """The tail of a bad-signature refusal's log line: which key the channel verified with,
    and where the fix for a wrong key is documented."""
    return (
        f"channel {channel} verifies with {key_name} {fingerprint}; if genuine callbacks are "
        f"refused like this, that key is wrong: see {WRONG_KEY_DOC}"
    )
