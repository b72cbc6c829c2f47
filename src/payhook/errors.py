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
      RequestError                  an operator request (admin API, CLI) payhook cannot do as asked
        InvalidRequestError           400 invalid_parameter: a bad query parameter, time or flag
          InvalidCursorError            400 invalid_cursor
          InvalidJsonError              400 invalid_json
        BodyTooLargeError             413 body_too_large
        InvalidBodyError              422 invalid_body
          InvalidSubscriptionError      422 invalid_subscription
            InvalidNameError              422 invalid_name
            InvalidUrlError               422 invalid_url
            InvalidEventsError            422 invalid_events
            InvalidSecretError            422 invalid_secret
              WeakSecretError               422 weak_secret
        NotFoundError                 404 not_found
          EventNotFoundError            404 event_not_found
          DeliveryNotFoundError         404 delivery_not_found
          SubscriptionNotFoundError     404 subscription_not_found
        ConflictError                 409 conflict
          SubscriptionExistsError       409 subscription_exists
          SubscriptionManagedByConfigError  409 subscription_managed_by_config
          SubscriptionIsHandlerError    409 subscription_is_handler
          DeliveryInFlightError         409 delivery_in_flight

Every error carries a short snake_case ``reason`` used as a metric label and log field.
Messages never contain secrets, signatures or full bodies.

A :class:`RequestError` carries its own stable ``code`` and HTTP ``status_code``: the admin
API answers ``{"error": {"code": ..., "message": ...}}`` with them, the CLI prints the
message; no table maps reasons to codes. Codes are part of the admin API's contract.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "BodyTooLargeError",
    "ConfigurationError",
    "ConflictError",
    "DecryptionError",
    "DeliveryInFlightError",
    "DeliveryNotFoundError",
    "EventNotFoundError",
    "InvalidBodyError",
    "InvalidCursorError",
    "InvalidEventsError",
    "InvalidJsonError",
    "InvalidNameError",
    "InvalidRequestError",
    "InvalidSecretError",
    "InvalidSubscriptionError",
    "InvalidUrlError",
    "NotFoundError",
    "NotificationError",
    "PayhookError",
    "RefusedError",
    "RefusedTargetError",
    "RequestError",
    "SignatureError",
    "SignatureProbeError",
    "StorageError",
    "StorageUnavailableError",
    "SubscriptionExistsError",
    "SubscriptionIsHandlerError",
    "SubscriptionManagedByConfigError",
    "SubscriptionNotFoundError",
    "TimestampError",
    "VerificationError",
    "WeakSecretError",
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
    """The signature is missing, malformed or does not match.

    ``hint`` (for the log only, never the provider's reply): which key the channel verified
    with, by fingerprint, and where the fix for a wrong key is documented.
    """

    default_reason = "bad_signature"

    def __init__(
        self, message: str | None = None, *, reason: str | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message, reason=reason)
        self.hint = hint


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


class RequestError(PayhookError):
    """The request cannot be carried out as asked.

    Each subclass names a stable ``code`` (the admin API's ``error.code``) and the HTTP
    ``status_code`` it is answered with; ``reason`` defaults to the code.
    """

    code: ClassVar[str] = "invalid_parameter"
    status_code: ClassVar[int] = 400

    def __init__(self, message: str | None = None, *, reason: str | None = None) -> None:
        super().__init__(message, reason=reason or self.code)


class InvalidRequestError(RequestError):
    """A query parameter, time or option value is not valid."""

    code = "invalid_parameter"
    status_code = 400


class InvalidCursorError(InvalidRequestError):
    """Not a cursor of this listing: give ``next_cursor`` back as it was received."""

    code = "invalid_cursor"


class InvalidJsonError(InvalidRequestError):
    """The body is not valid JSON."""

    code = "invalid_json"


class BodyTooLargeError(RequestError):
    """The request body is too large."""

    code = "body_too_large"
    status_code = 413


class InvalidBodyError(RequestError):
    """The request body is not valid."""

    code = "invalid_body"
    status_code = 422


class InvalidSubscriptionError(InvalidBodyError):
    """The subscription is not valid.

    ``problem`` says what is wrong with the field the subclass names (``field``); the
    message is ``"{field}: {problem}"`` (the problem alone when no field is named).
    """

    code = "invalid_subscription"
    field: ClassVar[str | None] = None

    def __init__(self, problem: str, *, reason: str | None = None) -> None:
        super().__init__(f"{self.field}: {problem}" if self.field else problem, reason=reason)
        self.problem = problem


class InvalidNameError(InvalidSubscriptionError):
    """A subscription name is 1-128 letters, digits or _.:- characters."""

    code = "invalid_name"
    field = "name"


class InvalidUrlError(InvalidSubscriptionError):
    """The subscription URL is not valid."""

    code = "invalid_url"
    field = "url"


class RefusedTargetError(InvalidUrlError):
    """The subscription URL points at an address payhook does not deliver to: a link-local
    or cloud metadata address, or (with ``[dispatcher] refuse_private_targets``) a private,
    loopback or other non-public one."""

    code = "refused_target"


class InvalidEventsError(InvalidSubscriptionError):
    """The event filters are not valid."""

    code = "invalid_events"
    field = "events"


class InvalidSecretError(InvalidSubscriptionError):
    """The webhook secret is not a valid ``whsec_`` secret."""

    code = "invalid_secret"
    field = "secret"


class WeakSecretError(InvalidSecretError):
    """The webhook secret is too weak: it must hold at least 24 random bytes."""

    code = "weak_secret"


class NotFoundError(RequestError):
    """The requested object does not exist."""

    code = "not_found"
    status_code = 404


class EventNotFoundError(NotFoundError):
    """No event has this id."""

    code = "event_not_found"


class DeliveryNotFoundError(NotFoundError):
    """No delivery has this id."""

    code = "delivery_not_found"


class SubscriptionNotFoundError(NotFoundError):
    """No subscription has this name."""

    code = "subscription_not_found"


class ConflictError(RequestError):
    """The request conflicts with the current state."""

    code = "conflict"
    status_code = 409


class SubscriptionExistsError(ConflictError):
    """A subscription with this name already exists."""

    code = "subscription_exists"


class SubscriptionManagedByConfigError(ConflictError):
    """The subscription is declared in the config file: change it there and restart."""

    code = "subscription_managed_by_config"


class SubscriptionIsHandlerError(ConflictError):
    """The name belongs to a subscription of another kind (an in-process handler or a URL)."""

    code = "subscription_is_handler"


class DeliveryInFlightError(ConflictError):
    """A worker is sending this delivery right now."""

    code = "delivery_in_flight"
