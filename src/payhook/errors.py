"""payhook's exception tree.

::

    PayhookError
      ConfigurationError            bad settings, unreadable key, duplicate names
      RefusedError                  an inbound callback payhook will not accept
        VerificationError             not authentic (provider answers: 401 / 400 / fail)
          SignatureError                signature absent, malformed or mismatched
          SignatureProbeError           WeChat Pay ``WECHATPAY/SIGNTEST/`` probe
          TimestampError                outside the replay window
        NotificationError             authentic or not, unusable: malformed, wrong merchant
      DecryptionError               authentic, but payhook's own key cannot decrypt it (5xx)
      StorageError
        StorageUnavailableError       the database cannot take the write right now (5xx)
      NotFoundError                 admin lookups
      ConflictError                 admin state conflicts

Every error carries a short snake_case ``reason`` used as a metric label and log field.
Messages never contain secrets, signatures or full bodies.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "ConfigurationError",
    "ConflictError",
    "DecryptionError",
    "NotFoundError",
    "NotificationError",
    "PayhookError",
    "RefusedError",
    "SignatureError",
    "SignatureProbeError",
    "StorageError",
    "StorageUnavailableError",
    "TimestampError",
    "VerificationError",
]


class PayhookError(Exception):
    """Base class of every error payhook raises on purpose."""

    default_reason: ClassVar[str] = "error"

    def __init__(self, message: str | None = None, *, reason: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or self.__class__.__name__).strip())
        self.reason = reason or self.default_reason

    @property
    def message(self) -> str:
        return str(self.args[0])


class ConfigurationError(PayhookError):
    """The configuration is invalid."""

    default_reason = "configuration"


class RefusedError(PayhookError):
    """The callback was refused."""

    default_reason = "refused"


class VerificationError(RefusedError):
    """The callback is not authentic."""

    default_reason = "bad_signature"


class SignatureError(VerificationError):
    """The signature is missing, malformed or does not match."""

    default_reason = "bad_signature"


class SignatureProbeError(VerificationError):
    """A WeChat Pay signature probe (``WECHATPAY/SIGNTEST/``): refused on purpose."""

    default_reason = "signature_probe"


class TimestampError(VerificationError):
    """The callback's timestamp is outside the replay window."""

    default_reason = "stale_timestamp"


class NotificationError(RefusedError):
    """The callback is malformed or not meant for this merchant."""

    default_reason = "malformed"


class DecryptionError(PayhookError):
    """An authentic callback could not be decrypted with the configured key: check the key."""

    default_reason = "decryption_failed"


class StorageError(PayhookError):
    """A storage operation failed."""

    default_reason = "storage"


class StorageUnavailableError(StorageError):
    """The database is unavailable right now."""

    default_reason = "storage_unavailable"


class NotFoundError(PayhookError):
    """The requested object does not exist."""

    default_reason = "not_found"


class ConflictError(PayhookError):
    """The request conflicts with the current state."""

    default_reason = "conflict"
