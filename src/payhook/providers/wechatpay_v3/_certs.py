"""Download WeChat Pay platform certificates (``GET /v3/certificates``) for certificate mode.

The request is signed with the merchant key (``Authorization: WECHATPAY2-SHA256-RSA2048 …``);
each certificate arrives encrypted with the APIv3 key, and the response is signed by WeChat
Pay. New certificates appear at least 24 h before WeChat Pay starts using them, so a refresh
every 12 h keeps the ring current; a callback naming an unknown serial asks for one more,
rate-limited (providers.md §2.2).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from payhook._clock import Clock
from payhook._stores import CertificateStore, StoredCertificate
from payhook._version import __version__
from payhook.errors import ConfigurationError, DecryptionError, PayhookError
from payhook.providers.wechatpay_v3._keys import WechatPayV3KeyRing, normalise_serial
from payhook.providers.wechatpay_v3._sign import (
    PROBE_PREFIX,
    authorization_header,
    decode_signature,
    random_nonce,
    response_message,
    rsa_sha256_verify,
)
from payhook.signing import AEAD_AES_256_GCM, aead_aes_gcm_decrypt, public_key_of_certificate

__all__ = ["CertificateDownloadError", "PlatformCertificateDownloader"]

logger = logging.getLogger("payhook.providers.wechatpay_v3")

_PATH = "/v3/certificates"
_MAX_RESPONSE_BYTES = 1 << 20
_RESPONSE_TOLERANCE_S = 300.0
_TIMESTAMP = re.compile(r"[0-9]{1,12}\Z")
_NONCE = re.compile(r"[\x21-\x7e]{1,128}\Z")


class CertificateDownloadError(PayhookError):
    """The platform certificates could not be downloaded or verified."""

    default_reason = "certificate_download"


def _fail(message: str, reason: str = "certificate_download") -> CertificateDownloadError:
    return CertificateDownloadError(message, reason=reason)


class PlatformCertificateDownloader:
    """Keeps a channel's platform certificates current (certificate mode only).

    Args:
        channel: the channel name (the key certificates are stored under).
        mch_id: the merchant id.
        merchant_serial_no: the serial of the merchant API certificate (names the signing key).
        merchant_private_key: the merchant API private key (``apiclient_key.pem``).
        api_v3_key: the 32-byte APIv3 key the certificates are encrypted with.
        api_base_url: ``https://api.mch.weixin.qq.com``, or a local fake in tests.
        keys: the channel's key ring, which receives the certificates.
        clock: time source for signatures, validity and the refresh schedule.
        store: when given, downloaded certificates are kept there and loaded at start.
        refresh_interval_s: time between scheduled refreshes.
        min_refresh_gap_s: requested refreshes closer than this to the last one are dropped.
        request_timeout_s: timeout of one download.

    Raises:
        ConfigurationError: an argument is unusable.
    """

    def __init__(
        self,
        *,
        channel: str,
        mch_id: str,
        merchant_serial_no: str,
        merchant_private_key: RSAPrivateKey,
        api_v3_key: bytes,
        api_base_url: str,
        keys: WechatPayV3KeyRing,
        clock: Clock,
        store: CertificateStore | None = None,
        refresh_interval_s: float = 12 * 3600,
        min_refresh_gap_s: float = 60.0,
        request_timeout_s: float = 10.0,
    ) -> None:
        key: object = api_v3_key  # checked at run time: it comes from configuration
        if not isinstance(key, bytes) or len(key) != 32:
            raise ConfigurationError("api_v3_key must be exactly 32 bytes (AES-256)")
        if not mch_id or not merchant_serial_no:
            raise ConfigurationError("mch_id and merchant_serial_no must not be empty")
        if urlsplit(api_base_url).scheme not in ("http", "https"):
            raise ConfigurationError("api_base_url must be an http(s) URL")
        if not refresh_interval_s > 0 or min_refresh_gap_s < 0 or not request_timeout_s > 0:
            raise ConfigurationError("refresh intervals and timeouts must be positive")
        self.channel = channel
        self._mch_id = mch_id
        self._serial_no = merchant_serial_no
        self._private_key = merchant_private_key
        self._api_v3_key = api_v3_key
        self._url = api_base_url.rstrip("/") + _PATH
        self._keys = keys
        self._clock = clock
        self._store = store
        self._interval = float(refresh_interval_s)
        self._min_gap = float(min_refresh_gap_s)
        self._timeout = float(request_timeout_s)
        self._lock = asyncio.Lock()
        self._last_attempt: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None
        self._pending = False

    def __repr__(self) -> str:
        return (
            f"PlatformCertificateDownloader(channel={self.channel!r}, mch_id={self._mch_id!r}, "
            f"url={self._url!r}, merchant_private_key=<hidden>, api_v3_key=<hidden>)"
        )

    # -- public API ----------------------------------------------------------------------

    async def refresh(self) -> int:
        """Download, verify and decrypt the platform certificates; add them to the ring.

        Returns:
            How many currently valid certificates the response held.

        Raises:
            CertificateDownloadError: unreachable, refused, malformed, or badly signed.
            DecryptionError: a certificate does not decrypt with the APIv3 key.
        """
        async with self._lock:
            self._last_attempt = self._clock.monotonic()
            status, headers, body = await self._download()
            if status != 200:
                raise _fail(f"GET {_PATH} answered HTTP {status}{_error_code(body)}")
            certs = self._decrypt_all(_certificate_items(body))
            self._check_response_signature(headers, body, certs)
            now = self._clock.now()
            valid = [c for c in certs if c.not_valid_before_utc <= now <= c.not_valid_after_utc]
            self._keys.add_certificates(valid)
            logger.info(
                "Channel %s: %d valid WeChat Pay platform certificate(s) downloaded (%s).",
                self.channel,
                len(valid),
                ", ".join(f"{c.serial_number:X}" for c in valid),
                extra={"action": "wechatpay_certs_refreshed", "channel": self.channel},
            )
            await self._save(valid)
            return len(valid)

    async def prepare(self) -> None:
        """Load the certificates kept by earlier runs (best effort: :meth:`run` downloads
        them afresh), so a restart does not depend on WeChat Pay being reachable."""
        try:
            await self.load_saved()
        except Exception:  # noqa: BLE001 - start anyway: run() downloads them afresh
            logger.warning(
                "Channel %s: could not load saved WeChat Pay platform certificates.",
                self.channel,
                extra={"action": "certificates_load_failed", "channel": self.channel},
            )

    async def load_saved(self) -> int:
        """Add the certificates kept in the store by earlier runs; returns how many.

        Unreadable and expired certificates are skipped with a warning.

        Raises:
            StorageUnavailableError: the store cannot be reached.
        """
        if self._store is None:
            return 0
        now = self._clock.now()
        loaded: list[x509.Certificate] = []
        for row in await self._store.load_certificates(self.channel):
            try:
                cert = x509.load_pem_x509_certificate(row.pem.encode())
                public_key_of_certificate(cert)
            except (ValueError, ConfigurationError):
                logger.warning("Stored platform certificate %s is unreadable.", row.serial_no)
                continue
            if cert.not_valid_after_utc < now:
                logger.warning("Stored platform certificate %s has expired.", row.serial_no)
                continue
            loaded.append(cert)
        self._keys.add_certificates(loaded)
        return len(loaded)

    def request_refresh(self, serial: str | None = None) -> None:
        """Ask for a refresh soon (a callback named an unknown serial); rate-limited.

        Safe to call from any thread; dropped when the last refresh or request is more
        recent than ``min_refresh_gap_s``. The optional ``serial`` (only logged) lets this
        method be passed as the provider's ``on_unknown_serial`` as it is.
        """
        now = self._clock.monotonic()
        if self._last_attempt is not None and now - self._last_attempt < self._min_gap:
            logger.debug("Platform-certificate refresh request dropped (rate limit).")
            return
        logger.info(
            "Channel %s: refreshing platform certificates for serial %r.",
            self.channel,
            (serial or "")[:64],
            extra={"action": "wechatpay_certs_requested", "channel": self.channel},
        )
        self._last_attempt = now
        self._pending = True
        loop, wakeup = self._loop, self._wakeup
        if loop is None or wakeup is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            wakeup.set()
        else:
            with contextlib.suppress(RuntimeError):  # the loop has already closed
                loop.call_soon_threadsafe(wakeup.set)

    async def run(self) -> None:
        """Refresh now, then every ``refresh_interval_s`` and on request, until cancelled.

        Failures are logged and retried with a growing delay (``min_refresh_gap_s`` doubled,
        at most ``refresh_interval_s``).
        """
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        backoff = max(self._min_gap, 1.0)
        try:
            while True:
                self._pending = False
                self._wakeup.clear()
                try:
                    await self.refresh()
                except PayhookError as exc:
                    logger.warning(
                        "Channel %s: platform-certificate refresh failed: %s",
                        self.channel,
                        exc.message,
                        extra={"action": "wechatpay_certs_failed", "channel": self.channel},
                    )
                except Exception:  # background loop boundary: log, keep the loop alive
                    logger.exception(
                        "Channel %s: platform-certificate refresh crashed.",
                        self.channel,
                        extra={"action": "wechatpay_certs_failed", "channel": self.channel},
                    )
                else:
                    backoff = max(self._min_gap, 1.0)
                    if not self._pending:
                        await self._wait(self._interval)
                    continue
                wait = min(backoff, self._interval)
                backoff = min(backoff * 2, self._interval)
                if not self._pending:
                    await self._wait(wait)
        finally:
            self._loop = None
            self._wakeup = None

    # -- internals -----------------------------------------------------------------------

    async def _wait(self, seconds: float) -> None:
        assert self._wakeup is not None
        sleeper = asyncio.ensure_future(self._clock.sleep(seconds))
        waiter = asyncio.ensure_future(self._wakeup.wait())
        try:
            await asyncio.wait({sleeper, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, waiter):
                task.cancel()
            await asyncio.gather(sleeper, waiter, return_exceptions=True)
            self._wakeup.clear()

    async def _download(self) -> tuple[int, dict[str, str], bytes]:
        split = urlsplit(self._url)
        path = split.path + (f"?{split.query}" if split.query else "")
        authorization = authorization_header(
            method="GET",
            path=path,
            body=b"",
            mch_id=self._mch_id,
            serial_no=self._serial_no,
            private_key=self._private_key,
            timestamp=str(int(self._clock.now().timestamp())),
            nonce=random_nonce(),
        )
        headers = {
            "Authorization": authorization,
            "Accept": "application/json",
            "User-Agent": f"payhook/{__version__}",
        }
        # Imported here: only certificate-download channels need an HTTP client, and the
        # registry imports this module for every command line start.
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=self._timeout)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(self._url, headers=headers, allow_redirects=False) as response,
            ):
                body = await response.content.read(_MAX_RESPONSE_BYTES + 1)
                if len(body) > _MAX_RESPONSE_BYTES:
                    raise _fail("the certificate response is too large")
                answer = {name.lower(): value for name, value in response.headers.items()}
                return response.status, answer, body
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            raise _fail(
                f"GET {_PATH} failed: {type(exc).__name__}", reason="certificate_unreachable"
            ) from None

    def _decrypt_all(self, items: list[Mapping[str, Any]]) -> list[x509.Certificate]:
        certs: list[x509.Certificate] = []
        for item in items:
            serial = item.get("serial_no")
            encrypted = item.get("encrypt_certificate")
            if not isinstance(serial, str) or not isinstance(encrypted, dict):
                raise _fail("a certificate entry lacks serial_no or encrypt_certificate")
            if encrypted.get("algorithm") != AEAD_AES_256_GCM:
                raise _fail("a certificate is not encrypted with AEAD_AES_256_GCM")
            fields = [encrypted.get(n) for n in ("nonce", "associated_data", "ciphertext")]
            nonce, aad, ciphertext = (f if isinstance(f, str) else None for f in fields)
            if nonce is None or ciphertext is None:
                raise _fail("a certificate entry lacks nonce or ciphertext")
            try:
                pem = aead_aes_gcm_decrypt(
                    self._api_v3_key, nonce=nonce, associated_data=aad or "", ciphertext=ciphertext
                )
            except DecryptionError:
                raise DecryptionError(
                    "a downloaded platform certificate could not be decrypted: "
                    "check the channel's api_v3_key"
                ) from None
            except PayhookError as exc:
                raise _fail(f"a certificate entry is malformed: {exc.message}") from None
            try:
                cert = x509.load_pem_x509_certificate(pem)
                public_key_of_certificate(cert)
            except (ValueError, ConfigurationError):
                raise _fail("a downloaded certificate is not an RSA certificate") from None
            if normalise_serial(serial) != cert.serial_number:
                logger.warning(
                    "Skipped a downloaded certificate whose serial_no %s does not match it.",
                    serial[:64],
                )
                continue
            certs.append(cert)
        return certs

    def _check_response_signature(
        self, headers: Mapping[str, str], body: bytes, certs: list[x509.Certificate]
    ) -> None:
        timestamp = headers.get("wechatpay-timestamp", "")
        nonce = headers.get("wechatpay-nonce", "")
        signature = headers.get("wechatpay-signature", "")
        serial = headers.get("wechatpay-serial", "")
        if not _TIMESTAMP.match(timestamp) or not _NONCE.match(nonce) or not serial:
            raise _fail("the certificate response is not signed", reason="certificate_signature")
        if signature.startswith(PROBE_PREFIX):
            raise _fail("the certificate response was a signature probe", "certificate_signature")
        if abs(self._clock.now().timestamp() - int(timestamp)) > _RESPONSE_TOLERANCE_S:
            raise _fail("the certificate response timestamp is stale", "certificate_signature")
        signature_bytes = decode_signature(signature)
        if signature_bytes is None:
            raise _fail("the certificate response signature is not base64", "certificate_signature")
        key = self._keys.key_for(serial) or _bootstrap_key(serial, certs)
        if key is None:
            raise _fail("the certificate response names an unknown key", "certificate_signature")
        if not rsa_sha256_verify(key, signature_bytes, response_message(timestamp, nonce, body)):
            raise _fail(
                "the certificate response signature does not match", "certificate_signature"
            )

    async def _save(self, certs: list[x509.Certificate]) -> None:
        if self._store is None or not certs:
            return
        fetched_at = self._clock.now()
        rows = [
            StoredCertificate(
                serial_no=f"{cert.serial_number:X}",
                pem=cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
                effective_time=cert.not_valid_before_utc,
                expire_time=cert.not_valid_after_utc,
                fetched_at=fetched_at,
            )
            for cert in certs
        ]
        try:
            await self._store.save_certificates(self.channel, rows)
        except PayhookError as exc:
            # The ring already holds them; keeping them for the next start is best effort.
            logger.warning("Could not store platform certificates: %s", exc.message)


def _bootstrap_key(serial: str, certs: list[x509.Certificate]) -> RSAPublicKey | None:
    # First download: no key is known yet, so the response is checked with the certificate it
    # names from its own payload (as WeChat Pay's official downloaders do). The payload itself
    # is authenticated by AES-GCM under the APIv3 key, which only WeChat Pay and the merchant hold.
    number = normalise_serial(serial)
    for cert in certs:
        if cert.serial_number == number:
            return public_key_of_certificate(cert)
    return None


def _certificate_items(body: bytes) -> list[Mapping[str, Any]]:
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _fail("the certificate response is not JSON") from None
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise _fail("the certificate response has no data list")
    return data


def _error_code(body: bytes) -> str:
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return ""
    code = document.get("code") if isinstance(document, dict) else None
    if not isinstance(code, str):
        return ""
    hint = " (no platform certificates: this merchant uses WeChat Pay public keys)"
    return f" ({code[:64]})" + (hint if code == "RESOURCE_NOT_EXISTS" else "")
