"""The verification keys of one WeChat Pay v3 channel, chosen by the ``Wechatpay-Serial`` header.

WeChat Pay signs callbacks either with a WeChat Pay public key (``PUB_KEY_ID_…``) or with a
platform certificate (serial in hex), and moves merchants from the second to the first
gradually, so both kinds are accepted side by side (providers.md §2.2).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping, Sequence
from types import MappingProxyType

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from payhook._clock import Clock
from payhook.errors import ConfigurationError
from payhook.signing import public_key_of_certificate

__all__ = ["WechatPayV3KeyRing", "normalise_serial"]

logger = logging.getLogger("payhook.providers.wechatpay_v3")

# Platform-certificate serials are 40 hex digits in practice; allow any length up to 64.
_HEX_SERIAL = re.compile(r"[0-9A-Fa-f]{1,64}\Z")
_NO_PUBLIC_KEYS: Mapping[str, RSAPublicKey] = MappingProxyType({})


def normalise_serial(serial: str) -> int | None:
    """A certificate serial given as hex text, as a number (``None`` if it is not hex).

    Serials are compared as numbers: some SDKs print them without a leading ``0``.
    """
    if not _HEX_SERIAL.match(serial):
        return None
    return int(serial, 16)


class WechatPayV3KeyRing:
    """The keys that may sign one channel's callbacks.

    WeChat Pay public keys are looked up by their exact id (``PUB_KEY_ID_…``). Platform
    certificates are looked up by serial, compared as a number, so ``0ABC`` and ``abc`` name
    the same certificate. Several certificates can be valid at once: during a rotation WeChat
    Pay signs with the old and the new one at random. A certificate outside its validity period
    is ignored, with a warning.

    The ring is safe to read from several threads while the certificate downloader adds to it.

    Args:
        public_keys: ``PUB_KEY_ID_…`` -> WeChat Pay public key.
        certificates: platform certificates (RSA).
        clock: tells which certificates are currently valid.

    Raises:
        ConfigurationError: a key id is empty or a certificate does not hold an RSA key.
    """

    __slots__ = ("_certs", "_clock", "_lock", "_public_keys", "_warned")

    def __init__(
        self,
        *,
        public_keys: Mapping[str, RSAPublicKey] = _NO_PUBLIC_KEYS,
        certificates: Sequence[x509.Certificate] = (),
        clock: Clock,
    ) -> None:
        for key_id, key in public_keys.items():
            if not key_id:
                raise ConfigurationError("a WeChat Pay public key id is empty")
            if not isinstance(key, RSAPublicKey):
                raise ConfigurationError(f"WeChat Pay public key {key_id} is not an RSA key")
        self._public_keys = dict(public_keys)
        self._clock = clock
        self._lock = threading.Lock()
        self._warned: set[int] = set()
        # serial -> (certificate, its key); replaced as a whole, so readers need no lock.
        self._certs: dict[int, tuple[x509.Certificate, RSAPublicKey]] = {}
        self.add_certificates(certificates)

    def __repr__(self) -> str:
        return (
            f"WechatPayV3KeyRing(public_keys={sorted(self._public_keys)!r}, "
            f"certificates={self.certificate_serials()!r})"
        )

    def add_certificates(self, certs: Sequence[x509.Certificate]) -> None:
        """Add platform certificates (a rotation adds several at once); same serial replaces.

        Raises:
            ConfigurationError: a certificate does not hold an RSA key.
        """
        parsed = [(cert, public_key_of_certificate(cert)) for cert in certs]
        now = self._clock.now()
        with self._lock:
            merged = dict(self._certs)
            for cert, key in parsed:
                merged[cert.serial_number] = (cert, key)
                if now > cert.not_valid_after_utc:
                    logger.warning(
                        "WeChat Pay platform certificate %X expired on %s; it will not be used.",
                        cert.serial_number,
                        cert.not_valid_after_utc.isoformat(),
                        extra={"action": "wechatpay_cert_expired"},
                    )
                    self._warned.add(cert.serial_number)
            self._certs = merged

    def certificate_serials(self) -> list[str]:
        """The serials of every certificate held (upper-case hex), valid or not."""
        return [f"{serial:X}" for serial in sorted(self._certs)]

    def valid_certificates(self) -> list[x509.Certificate]:
        """The certificates that are within their validity period now."""
        now = self._clock.now()
        return [
            cert
            for cert, _key in self._certs.values()
            if cert.not_valid_before_utc <= now <= cert.not_valid_after_utc
        ]

    def describe(self, serial: str) -> str:
        """How the configuration names the key of ``serial`` (one ``key_for`` returns):
        ``wechatpay_public_key PUB_KEY_ID_…`` or ``platform certificate <serial>``."""
        if serial in self._public_keys:
            return f"wechatpay_public_key {serial}"
        number = normalise_serial(serial)
        return "a platform certificate" if number is None else f"platform certificate {number:X}"

    def key_for(self, serial: str) -> RSAPublicKey | None:
        """The key for a ``Wechatpay-Serial`` value, or ``None`` when the ring has no valid one.

        A public-key id must match exactly; a certificate serial is compared as a number.
        """
        public_key = self._public_keys.get(serial)
        if public_key is not None:
            return public_key
        number = normalise_serial(serial)
        if number is None:
            return None
        entry = self._certs.get(number)
        if entry is None:
            return None
        cert, key = entry
        now = self._clock.now()
        if cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            return key
        if number not in self._warned:
            self._warned.add(number)
            logger.warning(
                "WeChat Pay platform certificate %X is outside its validity period "
                "(%s to %s); callbacks signed with it are refused.",
                number,
                cert.not_valid_before_utc.isoformat(),
                cert.not_valid_after_utc.isoformat(),
                extra={"action": "wechatpay_cert_not_valid"},
            )
        return None
