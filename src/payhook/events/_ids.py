"""Time-sortable identifiers with a type prefix (``evt_…``, ``dlv_…``, ``sub_…``)."""

from __future__ import annotations

import base64
import os
import time

__all__ = ["new_id"]

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case
# base32hex digits have the same order as Crockford's: a character-for-character swap.
_FROM_BASE32HEX = bytes.maketrans(b"0123456789ABCDEFGHIJKLMNOPQRSTUV", _ALPHABET.encode())


def new_id(prefix: str, *, now_ms: int | None = None) -> str:
    """A ULID-style id: 48-bit millisecond time then 80 random bits, so ids sort by time."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    value = ((ms & (1 << 48) - 1) << 80) | int.from_bytes(os.urandom(10), "big")
    # 26 base32 digits hold 130 bits: encode 160 (20 bytes, 32 digits), drop 6 leading zeros.
    digits = base64.b32hexencode(value.to_bytes(20, "big"))[6:]
    return f"{prefix}_{digits.translate(_FROM_BASE32HEX).decode('ascii')}"
