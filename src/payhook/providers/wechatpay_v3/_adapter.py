"""WeChat Pay APIv3 callbacks: header checks, replay window, RSA-SHA256 over the raw body,
AEAD_AES_256_GCM decryption, mapping to canonical events and the 204 / FAIL JSON reply
(providers.md §2, contract §4).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Collection, Mapping
from typing import Any

from payhook._clock import Clock
from payhook.errors import (
    ConfigurationError,
    DecryptionError,
    NotificationError,
    SignatureError,
    SignatureProbeError,
    TimestampError,
)
from payhook.providers._base import Outcome, ParsedNotification, RawNotification, Reply
from payhook.providers._key_checks import signature_hint
from payhook.providers.wechatpay_v3._keys import WechatPayV3KeyRing
from payhook.providers.wechatpay_v3._map import (
    PROVIDER,
    REFUND_FAILED_STATUS,
    map_combined,
    map_other,
    map_paid,
    map_refund,
    required_text,
)
from payhook.providers.wechatpay_v3._sign import (
    PROBE_PREFIX,
    SIGNATURE_TYPE,
    decode_signature,
    response_message,
    rsa_sha256_verify,
)
from payhook.signing import AEAD_AES_256_GCM, aead_aes_gcm_decrypt, key_fingerprint

__all__ = ["WechatPayV3Provider"]

logger = logging.getLogger("payhook.providers.wechatpay_v3")

_REQUIRED = ("wechatpay-timestamp", "wechatpay-nonce", "wechatpay-signature", "wechatpay-serial")
_TIMESTAMP = re.compile(r"[0-9]{1,12}\Z")
# WeChat nonces are 32 alphanumerics; anything printable is accepted, but no line breaks,
# which would make the three-line message ambiguous.
_NONCE = re.compile(r"[\x21-\x7e]{1,128}\Z")
_MAX_REPLY_MESSAGE = 256
_REPLIES = {
    Outcome.REFUSED_AUTH: (401, "signature verification failed"),
    Outcome.REFUSED_MALFORMED: (400, "malformed notification"),
    Outcome.KEY_MISCONFIGURED: (500, "cannot decrypt the notification"),
    Outcome.STORAGE_UNAVAILABLE: (500, "temporarily unavailable, retry later"),
}
_DECRYPT_HINT = (
    "an authentic WeChat Pay v3 callback could not be decrypted: "
    "check the channel's api_v3_key (the APIv3 key set in the merchant platform)"
)


class WechatPayV3Provider:
    """Verifies WeChat Pay APIv3 callbacks for one channel (one ``mch_id`` and APIv3 key).

    Checks, in order: the ``Wechatpay-*`` headers are present; a signature probe is refused;
    the signature type is ``WECHATPAY2-SHA256-RSA2048`` (or absent); the timestamp is within
    ``timestamp_tolerance_s`` of now, before any crypto; the key named by ``Wechatpay-Serial``
    is known; RSA-SHA256 over ``timestamp\\nnonce\\nbody\\n`` verifies; the JSON envelope's
    ``resource`` decrypts with the APIv3 key; ``mchid`` (and ``appid`` when configured) are the
    channel's.

    Args:
        channel: the configured channel name.
        mch_id: the merchant id callbacks must carry (``mchid``, or ``sp_mchid`` for partners).
        api_v3_key: the 32-byte APIv3 key.
        keys: WeChat Pay public keys and platform certificates.
        clock: the time source for the replay window.
        app_id: when set, the ``appid`` (``sp_appid`` for partners) callbacks must carry.
        timestamp_tolerance_s: the replay window, in seconds either way.
        on_unknown_serial: called with the serial when a callback names a key the ring lacks,
            so the certificate downloader can schedule a (rate-limited) refresh.
        sub_merchant_ids: when set, the partner ``sub_mchid`` values accepted; a callback
            for any other sub-merchant is refused as for another merchant.

    Raises:
        ConfigurationError: ``api_v3_key`` is not 32 bytes, ``mch_id`` is empty, or the
            tolerance is not positive.
    """

    kind = "wechatpay_v3"
    __slots__ = (
        "_api_v3_key",
        "_app_id",
        "_clock",
        "_keys",
        "_mch_id",
        "_on_unknown_serial",
        "_sub_merchant_ids",
        "_tolerance",
        "channel",
    )

    def __init__(
        self,
        *,
        channel: str,
        mch_id: str,
        api_v3_key: bytes,
        keys: WechatPayV3KeyRing,
        clock: Clock,
        app_id: str | None = None,
        timestamp_tolerance_s: float = 300.0,
        on_unknown_serial: Callable[[str], None] | None = None,
        sub_merchant_ids: Collection[str] | None = None,
    ) -> None:
        key: object = api_v3_key  # checked at run time: it comes from configuration
        if not isinstance(key, bytes) or len(key) != 32:
            raise ConfigurationError("api_v3_key must be exactly 32 bytes (AES-256)")
        if not mch_id:
            raise ConfigurationError("mch_id must not be empty")
        if not timestamp_tolerance_s > 0:
            raise ConfigurationError("timestamp_tolerance must be positive")
        self.channel = channel
        self._mch_id = mch_id
        self._api_v3_key = api_v3_key
        self._keys = keys
        self._clock = clock
        self._app_id = app_id
        self._tolerance = float(timestamp_tolerance_s)
        self._on_unknown_serial = on_unknown_serial
        self._sub_merchant_ids = None if sub_merchant_ids is None else frozenset(sub_merchant_ids)

    def __repr__(self) -> str:
        return (
            f"WechatPayV3Provider(channel={self.channel!r}, mch_id={self._mch_id!r}, "
            f"app_id={self._app_id!r}, api_v3_key=<hidden>, keys={self._keys!r})"
        )

    @property
    def keys(self) -> WechatPayV3KeyRing:
        """The key ring callbacks are verified with."""
        return self._keys

    def verify(self, raw: RawNotification) -> ParsedNotification:
        """Verify ``raw``, decrypt its resource and map it to canonical event drafts: one, or
        one per successful sub-order of a combined order (合单).

        Raises:
            SignatureError: a header is missing or malformed, the serial is unknown, the
                signature type is unsupported or the signature does not match.
            SignatureProbeError: a ``WECHATPAY/SIGNTEST/`` probe.
            TimestampError: the timestamp is outside the replay window.
            NotificationError: authentic but malformed, or not for this merchant.
            DecryptionError: authentic, but the APIv3 key cannot decrypt the resource.
        """
        self._check_signature(raw)
        envelope = self._parse_envelope(raw.body)
        event_id = required_text(envelope, "id")
        event_type = required_text(envelope, "event_type")
        mch_id, app_id, subs = self._mch_id, self._app_id, self._sub_merchant_ids
        if event_type == "TRANSACTION.SUCCESS":
            resource = self._decrypted(envelope)
            if "combine_mchid" in resource and "sub_orders" in resource:
                drafts = map_combined(
                    resource, envelope, mch_id=mch_id, app_id=app_id, sub_merchant_ids=subs
                )
                return ParsedNotification(
                    notification_id=event_id,
                    events=drafts,
                    order_id=drafts[0].combine_order_id,
                )
            draft = map_paid(
                resource, envelope, mch_id=mch_id, app_id=app_id, sub_merchant_ids=subs
            )
        elif event_type == "REFUND.SUCCESS" or event_type in REFUND_FAILED_STATUS:
            resource = self._decrypted(envelope)
            draft = map_refund(
                resource, envelope, event_type, mch_id=mch_id, app_id=app_id, sub_merchant_ids=subs
            )
        else:
            draft = map_other(
                self._other_resource(envelope),
                envelope,
                event_id=event_id,
                event_type=event_type,
                mch_id=mch_id,
                channel=self.channel,
            )
        return ParsedNotification(
            notification_id=event_id, events=(draft,), order_id=draft.order_id
        )

    def reply(self, outcome: Outcome, message: str = "") -> Reply:
        """204 with no body when accepted; otherwise 401/400/500 with ``{"code":"FAIL",...}``."""
        if outcome is Outcome.ACCEPTED:
            return Reply(status=204, body=b"", content_type=None)
        status, default = _REPLIES[outcome]
        text = (message or default)[:_MAX_REPLY_MESSAGE]
        body = json.dumps({"code": "FAIL", "message": text}, ensure_ascii=False).encode()
        return Reply(status=status, body=body, content_type="application/json")

    # -- verification --------------------------------------------------------------------

    def _check_signature(self, raw: RawNotification) -> None:
        headers = {str(name).lower(): value for name, value in raw.headers.items()}
        for name in _REQUIRED:
            value = headers.get(name)
            if not isinstance(value, str) or not value:
                raise SignatureError(f"{name} header is missing", reason="missing_header")
        signature = headers["wechatpay-signature"]
        if signature.startswith(PROBE_PREFIX):
            logger.info(
                "Refused a WeChat Pay signature probe (WECHATPAY/SIGNTEST/); "
                "WeChat Pay retries it with a real signature.",
                extra={"action": "signature_probe", "provider": PROVIDER, "channel": self.channel},
            )
            raise SignatureProbeError("signature probe (WECHATPAY/SIGNTEST/) refused")
        signature_type = headers.get("wechatpay-signature-type", SIGNATURE_TYPE)
        if signature_type != SIGNATURE_TYPE:
            raise SignatureError(
                "Wechatpay-Signature-Type is not supported", reason="unsupported_signature_type"
            )
        timestamp = headers["wechatpay-timestamp"]
        if not _TIMESTAMP.match(timestamp):
            raise TimestampError("Wechatpay-Timestamp is not a unix time", reason="bad_timestamp")
        skew = self._clock.now().timestamp() - int(timestamp)
        if abs(skew) > self._tolerance:
            raise TimestampError(
                f"Wechatpay-Timestamp is {abs(skew):.0f} s "
                f"{'old' if skew > 0 else 'in the future'}, beyond {self._tolerance:.0f} s"
            )
        nonce = headers["wechatpay-nonce"]
        if not _NONCE.match(nonce):
            raise SignatureError("Wechatpay-Nonce is malformed", reason="malformed_header")
        signature_bytes = decode_signature(signature)
        if signature_bytes is None:
            raise SignatureError("Wechatpay-Signature is not base64", reason="bad_signature")
        serial = headers["wechatpay-serial"]
        key = self._keys.key_for(serial)
        if key is None:
            self._unknown_serial(serial)
            raise SignatureError("Wechatpay-Serial names no known key", reason="unknown_serial")
        # WeChat Pay signs timestamp\nnonce\nbody\n over the raw body bytes (签名验证).
        if not rsa_sha256_verify(
            key, signature_bytes, response_message(timestamp, nonce, raw.body)
        ):
            hint = signature_hint(self.channel, self._keys.describe(serial), key_fingerprint(key))
            raise SignatureError("signature does not match", reason="bad_signature", hint=hint)

    def _unknown_serial(self, serial: str) -> None:
        logger.warning(
            "A WeChat Pay callback names key %r, which channel %s does not hold.",
            serial[:80],
            self.channel,
            extra={"action": "unknown_serial", "provider": PROVIDER, "channel": self.channel},
        )
        if self._on_unknown_serial is None:
            return
        try:
            self._on_unknown_serial(serial)
        except Exception:  # a failing refresh hook must not change the verdict
            logger.exception("on_unknown_serial failed", extra={"action": "unknown_serial"})

    @staticmethod
    def _parse_envelope(body: bytes) -> dict[str, Any]:
        try:
            envelope = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise NotificationError("the body is not JSON", reason="malformed") from None
        if not isinstance(envelope, dict):
            raise NotificationError("the body is not a JSON object", reason="malformed")
        return envelope

    def _decrypt(self, resource: Mapping[str, Any]) -> bytes:
        algorithm = resource.get("algorithm")
        if algorithm != AEAD_AES_256_GCM:
            raise NotificationError(
                "resource.algorithm is not AEAD_AES_256_GCM", reason="unsupported_algorithm"
            )
        nonce = required_text(resource, "nonce")
        ciphertext = required_text(resource, "ciphertext")
        associated_data = resource.get("associated_data", "")
        if associated_data is None:
            associated_data = ""
        if not isinstance(associated_data, str):
            raise NotificationError("resource.associated_data is not text", reason="malformed")
        try:
            return aead_aes_gcm_decrypt(
                self._api_v3_key,
                nonce=nonce,
                associated_data=associated_data,
                ciphertext=ciphertext,
            )
        except DecryptionError:
            logger.error(
                "Channel %s: %s.",
                self.channel,
                _DECRYPT_HINT,
                extra={
                    "action": "decryption_failed",
                    "provider": PROVIDER,
                    "channel": self.channel,
                },
            )
            raise DecryptionError(_DECRYPT_HINT) from None

    def _decrypted(self, envelope: Mapping[str, Any]) -> dict[str, Any]:
        resource = envelope.get("resource")
        if not isinstance(resource, dict):
            raise NotificationError("resource is missing", reason="missing_field")
        plaintext = self._decrypt(resource)
        try:
            value = json.loads(plaintext.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise NotificationError(
                "the decrypted resource is not JSON", reason="malformed"
            ) from None
        if not isinstance(value, dict):
            raise NotificationError("the decrypted resource is not an object", reason="malformed")
        return value

    def _other_resource(self, envelope: Mapping[str, Any]) -> object:
        # A kind payhook does not model is acknowledged, never refused: decrypt it when it is
        # encrypted the usual way, otherwise keep the envelope's resource as sent. A tag
        # failure is still a key problem (DecryptionError), as for every other kind.
        resource = envelope.get("resource")
        if not isinstance(resource, dict) or resource.get("algorithm") != AEAD_AES_256_GCM:
            return resource
        try:
            plaintext = self._decrypt(resource)
        except NotificationError:
            return resource
        try:
            return json.loads(plaintext.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return plaintext.decode("utf-8", "replace")
