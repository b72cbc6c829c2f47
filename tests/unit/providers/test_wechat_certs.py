"""Platform certificates: the key ring, the downloader against a local fake WeChat Pay API,
rotation, refresh on an unknown serial, and the certificates kept in the database."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest
import wechatpayv3.utils  # type: ignore[import-untyped]
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID

from payhook._hook import PayHook
from payhook.config import PayhookSettings
from payhook.errors import (
    ConfigurationError,
    DecryptionError,
    SignatureError,
    StorageUnavailableError,
)
from payhook.providers.wechatpay_v3 import (
    WechatPayV3KeyRing,
    WechatPayV3Provider,
    WechatPayV3Simulator,
)
from payhook.providers.wechatpay_v3._certs import (
    CertificateDownloadError,
    PlatformCertificateDownloader,
)
from payhook.providers.wechatpay_v3._sign import authorization_header
from payhook.storage._certificates import (
    PlatformCertificateTable,
    StoredCertificate,
    load_platform_certificates,
    save_platform_certificates,
)
from payhook.storage._engine import create_engine
from tests.unit.providers._wechat_v3_support import (
    API_V3_KEY,
    MCH_ID,
    FrozenClock,
    make_certificate,
    raw,
    rsa_key,
)

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)
MERCHANT_SERIAL = "3775B6A45ACD588826D15E583A95F5DD3A5F5D8A"
SERIAL_A = 0x5157F09EFDC096DE15EBE81A47057A7232F1B8E1
SERIAL_B = 0x0FEDCBA9876543210FEDCBA9876543210FEDCBA9  # hex starts with 0: normalisation
HEADER_B = "0FEDCBA9876543210FEDCBA9876543210FEDCBA9"


def _cert(name: str, serial: int, *, days: tuple[int, int] = (-365, 1460)) -> x509.Certificate:
    return make_certificate(
        rsa_key(name),
        serial,
        not_before=NOW + timedelta(days=days[0]),
        not_after=NOW + timedelta(days=days[1]),
    )


CERT_A = _cert("platform-a", SERIAL_A)
CERT_B = _cert("platform-b", SERIAL_B)


@dataclass
class FakeWechatPay:
    """A tiny /v3/certificates endpoint that checks the merchant's Authorization header."""

    clock: FrozenClock
    certs: list[x509.Certificate]
    signer: tuple[str, rsa.RSAPrivateKey]
    api_v3_key: bytes = API_V3_KEY
    status: int = 200
    tamper: bool = False
    requests: int = 0
    authorizations: list[dict[str, str]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        if not self._authorized(request):
            return web.json_response({"code": "SIGN_ERROR", "message": "bad auth"}, status=401)
        if self.status == 404:
            return web.json_response(
                {"code": "RESOURCE_NOT_EXISTS", "message": "无可用的平台证书"}, status=404
            )
        if self.status != 200:
            return web.json_response({"code": "SYSTEM_ERROR", "message": "x"}, status=self.status)
        body = json.dumps({"data": [self._item(cert, i) for i, cert in enumerate(self.certs)]})
        return web.Response(body=body.encode(), headers=self._signed(body.encode()))

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, params = header.partition(" ")
        fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
        self.authorizations.append(fields)
        if scheme != "WECHATPAY2-SHA256-RSA2048" or fields.get("mchid") != MCH_ID:
            return False
        if fields.get("serial_no") != MERCHANT_SERIAL:
            return False
        message = f"GET\n{request.path_qs}\n{fields['timestamp']}\n{fields['nonce_str']}\n\n"
        try:
            rsa_key("merchant").public_key().verify(
                base64.b64decode(fields["signature"]),
                message.encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except Exception:
            return False
        return True

    def _item(self, cert: x509.Certificate, index: int) -> dict[str, Any]:
        nonce = f"certnonce{index:03d}"
        pem = cert.public_bytes(serialization.Encoding.PEM)
        ciphertext = AESGCM(self.api_v3_key).encrypt(nonce.encode(), pem, b"certificate")
        return {
            "serial_no": f"{cert.serial_number:040X}",
            "effective_time": cert.not_valid_before_utc.isoformat(),
            "expire_time": cert.not_valid_after_utc.isoformat(),
            "encrypt_certificate": {
                "algorithm": "AEAD_AES_256_GCM",
                "nonce": nonce,
                "associated_data": "certificate",
                "ciphertext": base64.b64encode(ciphertext).decode(),
            },
        }

    def _signed(self, body: bytes) -> dict[str, str]:
        serial, key = self.signer
        timestamp, nonce = (
            str(int(self.clock.now().timestamp())),
            "RESPONSENONCE0000000000000000001",
        )
        signed = body + (b" " if self.tamper else b"")
        message = f"{timestamp}\n{nonce}\n".encode() + signed + b"\n"
        signature = key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        return {
            "Content-Type": "application/json",
            "Request-ID": "test-request",
            "Wechatpay-Timestamp": timestamp,
            "Wechatpay-Nonce": nonce,
            "Wechatpay-Serial": serial,
            "Wechatpay-Signature": base64.b64encode(signature).decode(),
            "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
        }


@asynccontextmanager
async def serve(fake: FakeWechatPay) -> AsyncIterator[str]:
    """Serve ``fake`` on 127.0.0.1 (port 0); yields the base URL."""
    app = web.Application()
    app.router.add_get("/v3/certificates", fake.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    site = web.SockSite(runner, sock)
    await site.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        await runner.cleanup()


def _fake(clock: FrozenClock, **kwargs: Any) -> FakeWechatPay:
    settings: dict[str, Any] = {
        "clock": clock,
        "certs": [CERT_A, CERT_B],
        "signer": (f"{SERIAL_A:X}", rsa_key("platform-a")),
    }
    settings.update(kwargs)
    return FakeWechatPay(**settings)


def _downloader(
    url: str, ring: WechatPayV3KeyRing, clock: FrozenClock, **kwargs: Any
) -> PlatformCertificateDownloader:
    settings: dict[str, Any] = {
        "channel": "wx",
        "mch_id": MCH_ID,
        "merchant_serial_no": MERCHANT_SERIAL,
        "merchant_private_key": rsa_key("merchant"),
        "api_v3_key": API_V3_KEY,
        "api_base_url": url,
        "keys": ring,
        "clock": clock,
    }
    settings.update(kwargs)
    return PlatformCertificateDownloader(**settings)


def _callback(clock: FrozenClock, key_name: str, serial: str) -> Any:
    simulator = WechatPayV3Simulator(
        mch_id=MCH_ID,
        app_id=None,
        api_v3_key=API_V3_KEY,
        private_key=rsa_key(key_name),
        serial=serial,
    )
    built = simulator.build(
        order_id="ORDER-CERT", amount=100, event="paid", refund_amount=None, now=clock.now()
    )
    return raw(dict(built.headers), built.body, clock)


def _provider(ring: WechatPayV3KeyRing, clock: FrozenClock, **kwargs: Any) -> WechatPayV3Provider:
    return WechatPayV3Provider(
        channel="wx", mch_id=MCH_ID, api_v3_key=API_V3_KEY, keys=ring, clock=clock, **kwargs
    )


# --- downloader ------------------------------------------------------------------------------


async def test_bootstrap_download_with_rotation() -> None:
    """A first download verifies with its own certificate; callbacks by either cert then pass."""
    clock = FrozenClock(NOW)
    ring = WechatPayV3KeyRing(clock=clock)
    fake = _fake(clock)
    async with serve(fake) as url:
        assert await _downloader(url, ring, clock).refresh() == 2
    assert fake.requests == 1
    assert set(ring.certificate_serials()) == {f"{SERIAL_A:X}", f"{SERIAL_B:X}"}
    provider = _provider(ring, clock)
    for key_name, serial in [("platform-a", f"{SERIAL_A:X}"), ("platform-b", HEADER_B)]:
        event = provider.verify(_callback(clock, key_name, serial)).events[0]
        assert event.order_id == "ORDER-CERT"


async def test_response_verified_with_an_already_known_key() -> None:
    """Once a certificate is known, a response signed with it is accepted."""
    clock = FrozenClock(NOW)
    ring = WechatPayV3KeyRing(certificates=[CERT_B], clock=clock)
    fake = _fake(clock, certs=[CERT_A], signer=(HEADER_B, rsa_key("platform-b")))
    async with serve(fake) as url:
        assert await _downloader(url, ring, clock).refresh() == 1
    assert len(ring.certificate_serials()) == 2


def test_authorization_header_matches_wechatpayv3(monkeypatch: pytest.MonkeyPatch) -> None:
    """payhook's Authorization header is byte-identical to wechatpayv3's build_authorization."""
    monkeypatch.setattr(wechatpayv3.utils.time, "time", lambda: 1764291600.5)
    expected = wechatpayv3.utils.build_authorization(
        "/v3/certificates", "GET", MCH_ID, MERCHANT_SERIAL, rsa_key("merchant"), nonce_str="N0NCE"
    )
    ours = authorization_header(
        method="GET",
        path="/v3/certificates",
        body=b"",
        mch_id=MCH_ID,
        serial_no=MERCHANT_SERIAL,
        private_key=rsa_key("merchant"),
        timestamp="1764291600",
        nonce="N0NCE",
    )
    assert ours == expected


@pytest.mark.parametrize(
    ("fake_kwargs", "downloader_kwargs", "error", "match"),
    [
        ({}, {"merchant_private_key": rsa_key("other")}, CertificateDownloadError, "HTTP 401"),
        ({"tamper": True}, {}, CertificateDownloadError, "signature does not match"),
        (
            {"signer": ("1234ABCD", rsa_key("stranger"))},
            {},
            CertificateDownloadError,
            "unknown key",
        ),
        ({"api_v3_key": b"x" * 32}, {}, DecryptionError, "api_v3_key"),
        ({"status": 404}, {}, CertificateDownloadError, "public keys"),
        ({"status": 500}, {}, CertificateDownloadError, "HTTP 500"),
    ],
    ids=[
        "bad-merchant-key",
        "tampered-response",
        "unknown-response-signer",
        "wrong-api-v3-key",
        "public-key-merchant",
        "server-error",
    ],
)
async def test_refused_downloads(
    fake_kwargs: dict[str, Any],
    downloader_kwargs: dict[str, Any],
    error: type[Exception],
    match: str,
) -> None:
    """Bad auth, bad response signatures, a wrong APIv3 key and errors add nothing."""
    clock = FrozenClock(NOW)
    ring = WechatPayV3KeyRing(clock=clock)
    async with serve(_fake(clock, **fake_kwargs)) as url:
        with pytest.raises(error, match=match):
            await _downloader(url, ring, clock, **downloader_kwargs).refresh()
    assert ring.certificate_serials() == []


async def test_stale_response_is_refused() -> None:
    """A response whose signed timestamp is more than 5 minutes off is refused."""
    clock = FrozenClock(NOW)
    server_clock = FrozenClock(NOW - timedelta(seconds=301))
    ring = WechatPayV3KeyRing(clock=clock)
    async with serve(_fake(server_clock)) as url:
        with pytest.raises(CertificateDownloadError, match="stale"):
            await _downloader(url, ring, clock).refresh()


async def test_unreachable_api() -> None:
    """A closed port is a CertificateDownloadError, not an aiohttp exception."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    clock = FrozenClock(NOW)
    downloader = _downloader(f"http://127.0.0.1:{port}", WechatPayV3KeyRing(clock=clock), clock)
    with pytest.raises(CertificateDownloadError) as caught:
        await downloader.refresh()
    assert caught.value.reason == "certificate_unreachable"


async def test_expired_certificates_are_not_added() -> None:
    """Only currently valid downloaded certificates enter the ring."""
    clock = FrozenClock(NOW)
    expired = _cert("platform-old", 0xABCDEF, days=(-2000, -1))
    ring = WechatPayV3KeyRing(clock=clock)
    async with serve(_fake(clock, certs=[CERT_A, expired])) as url:
        assert await _downloader(url, ring, clock).refresh() == 1
    assert ring.certificate_serials() == [f"{SERIAL_A:X}"]


async def test_downloaded_certificates_are_kept_in_the_database(database_url: str) -> None:
    """Refreshed certificates are saved and loaded again by the next process."""
    clock = FrozenClock(NOW)
    engine = create_engine(database_url)
    try:
        async with serve(_fake(clock)) as url:
            await _downloader(
                url, WechatPayV3KeyRing(clock=clock), clock, store=PlatformCertificateTable(engine)
            ).refresh()
        rows = await load_platform_certificates(engine, "wx")
        assert [row.serial_no for row in rows] == sorted([f"{SERIAL_A:X}", f"{SERIAL_B:X}"])
        assert rows[0].expire_time == NOW + timedelta(days=1460)
        fresh = WechatPayV3KeyRing(clock=clock)
        loader = _downloader(
            "http://127.0.0.1:9", fresh, clock, store=PlatformCertificateTable(engine)
        )
        assert await loader.load_saved() == 2
        assert _provider(fresh, clock).verify(_callback(clock, "platform-b", HEADER_B)).events
        assert await load_platform_certificates(engine, "other-channel") == []
    finally:
        await engine.dispose()


async def test_save_is_an_upsert_and_load_skips_bad_rows(database_url: str) -> None:
    """Saving a serial twice updates it; expired or unreadable stored rows are skipped."""
    clock = FrozenClock(NOW)
    engine = create_engine(database_url)

    def row(serial: str, pem: str, fetched: datetime) -> StoredCertificate:
        return StoredCertificate(
            serial_no=serial, pem=pem, effective_time=None, expire_time=None, fetched_at=fetched
        )

    pem_a = CERT_A.public_bytes(serialization.Encoding.PEM).decode()
    expired = _cert("platform-old", 0xABCDEF, days=(-2000, -1))
    pem_old = expired.public_bytes(serialization.Encoding.PEM).decode()
    try:
        await save_platform_certificates(engine, "wx", [row("A", pem_a, NOW)])
        later = NOW + timedelta(hours=12)
        await save_platform_certificates(
            engine,
            "wx",
            [row("A", pem_a, later), row("OLD", pem_old, later), row("BAD", "x", later)],
        )
        await save_platform_certificates(engine, "wx", [])
        rows = await load_platform_certificates(engine, "wx")
        assert [(r.serial_no, r.fetched_at) for r in rows] == [
            ("A", later),
            ("BAD", later),
            ("OLD", later),
        ]
        ring = WechatPayV3KeyRing(clock=clock)
        assert (
            await _downloader(
                "http://127.0.0.1:9", ring, clock, store=PlatformCertificateTable(engine)
            ).load_saved()
            == 1
        )
        assert ring.certificate_serials() == [f"{SERIAL_A:X}"]
    finally:
        await engine.dispose()


async def test_storage_unavailable() -> None:
    """An unreachable database raises StorageUnavailableError from the certificate store."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    engine = create_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{port}/none")
    row = StoredCertificate(
        serial_no="A", pem="x", effective_time=None, expire_time=None, fetched_at=NOW
    )
    try:
        with pytest.raises(StorageUnavailableError):
            await load_platform_certificates(engine, "wx")
        with pytest.raises(StorageUnavailableError):
            await save_platform_certificates(engine, "wx", [row])
    finally:
        await engine.dispose()


async def _until(predicate: Any) -> None:
    with anyio.fail_after(5):
        while not predicate():
            await asyncio.sleep(0.01)


async def test_unknown_serial_triggers_one_rate_limited_refresh() -> None:
    """A callback naming a new certificate triggers one refresh; more requests are dropped."""
    clock = FrozenClock(NOW)
    ring = WechatPayV3KeyRing(clock=clock)
    fake = _fake(clock, certs=[CERT_A])
    async with serve(fake) as url:
        downloader = _downloader(url, ring, clock, min_refresh_gap_s=60)
        provider = _provider(ring, clock, on_unknown_serial=downloader.request_refresh)
        task = asyncio.create_task(downloader.run())
        try:
            await _until(lambda: fake.requests == 1 and ring.certificate_serials())
            fake.certs = [CERT_A, CERT_B]  # WeChat Pay rotates in a new certificate
            clock.advance(61)
            callback = _callback(clock, "platform-b", HEADER_B)
            with pytest.raises(SignatureError, match="no known key"):
                provider.verify(callback)
            with pytest.raises(SignatureError):
                provider.verify(_callback(clock, "platform-b", "ABCDEF0123"))
            await _until(lambda: len(ring.certificate_serials()) == 2)
            assert provider.verify(callback).events
            with pytest.raises(SignatureError):
                provider.verify(_callback(clock, "platform-b", "ABCDEF0123"))
            await asyncio.sleep(0.2)
            assert fake.requests == 2
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task


async def test_run_survives_failures_and_accepts_requests_from_threads(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A failed refresh is logged; a request from another thread triggers the next one."""
    clock = FrozenClock(NOW)
    ring = WechatPayV3KeyRing(clock=clock)
    fake = _fake(clock, status=500)
    async with serve(fake) as url:
        downloader = _downloader(url, ring, clock, min_refresh_gap_s=0)
        task = asyncio.create_task(downloader.run())
        try:
            await _until(lambda: fake.requests == 1)
            await _until(lambda: any("refresh failed" in r.getMessage() for r in caplog.records))
            fake.status = 200
            await asyncio.to_thread(downloader.request_refresh)
            await _until(lambda: len(ring.certificate_serials()) == 2)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    assert repr(downloader).count("<hidden>") == 2


@pytest.mark.parametrize(
    "kwargs",
    [
        {"api_v3_key": b"short"},
        {"merchant_serial_no": ""},
        {"api_base_url": "ftp://example"},
        {"refresh_interval_s": 0},
    ],
    ids=["short-key", "no-serial", "bad-url", "zero-interval"],
)
def test_downloader_configuration(kwargs: dict[str, Any]) -> None:
    """Unusable downloader settings raise ConfigurationError."""
    clock = FrozenClock(NOW)
    with pytest.raises(ConfigurationError):
        _downloader("http://127.0.0.1:9", WechatPayV3KeyRing(clock=clock), clock, **kwargs)


# --- key ring --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("serial", "found"),
    [
        (f"{SERIAL_A:X}", True),
        (f"{SERIAL_A:x}", True),
        (f"00{SERIAL_A:X}", True),
        (HEADER_B, True),
        (f"{SERIAL_B:X}", True),
        (f"{SERIAL_A + 1:X}", False),
        (f"0x{SERIAL_A:X}", False),
        ("", False),
        ("Z" * 40, False),
        ("F" * 65, False),
    ],
    ids=[
        "upper",
        "lower",
        "leading-zeros",
        "header-with-zero",
        "without-zero",
        "other",
        "0x-prefix",
        "empty",
        "not-hex",
        "too-long",
    ],
)
def test_certificate_serials_compare_as_numbers(serial: str, found: bool) -> None:
    """Certificate serials match by number, whatever the case or leading zeros."""
    ring = WechatPayV3KeyRing(certificates=[CERT_A, CERT_B], clock=FrozenClock(NOW))
    assert (ring.key_for(serial) is not None) is found


def test_public_key_ids_match_exactly() -> None:
    """PUB_KEY_ID_… ids are opaque: only the exact id matches."""
    key = rsa_key("platform-a").public_key()
    ring = WechatPayV3KeyRing(public_keys={"PUB_KEY_ID_0123": key}, clock=FrozenClock(NOW))
    assert ring.key_for("PUB_KEY_ID_0123") is key
    assert ring.key_for("pub_key_id_0123") is None
    assert ring.key_for("PUB_KEY_ID_123") is None


def test_expired_and_future_certificates_are_ignored_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Certificates outside their validity period never verify; each is warned about once."""
    expired = _cert("platform-old", 0xABCDEF, days=(-2000, -1))
    future = _cert("platform-new", 0xFEDCBA, days=(1, 2000))
    with caplog.at_level(logging.WARNING):
        ring = WechatPayV3KeyRing(certificates=[expired, future, CERT_A], clock=FrozenClock(NOW))
        assert ring.key_for("ABCDEF") is None
        assert ring.key_for("FEDCBA") is None
        assert ring.key_for("FEDCBA") is None
        assert ring.key_for(f"{SERIAL_A:X}") is not None
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum("ABCDEF" in m for m in messages) == 1
    assert sum("FEDCBA" in m for m in messages) == 1
    assert ring.valid_certificates() == [CERT_A]


def test_add_certificates_rotates_in_several_at_once() -> None:
    """add_certificates adds new ones and keeps the old ones (both are used during rotation)."""
    ring = WechatPayV3KeyRing(certificates=[CERT_A], clock=FrozenClock(NOW))
    ring.add_certificates([CERT_A, CERT_B])
    assert ring.key_for(f"{SERIAL_A:X}") is not None
    assert ring.key_for(HEADER_B) is not None
    assert f"{SERIAL_B:X}" in repr(ring)


def test_non_rsa_certificates_are_refused() -> None:
    """A certificate without an RSA key is a ConfigurationError."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ec")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    with pytest.raises(ConfigurationError):
        WechatPayV3KeyRing(certificates=[cert], clock=FrozenClock(NOW))


# --- wiring ----------------------------------------------------------------------------------


def _download_mode(database_url: str, api_base_url: str) -> PayhookSettings:
    pem = rsa_key("merchant").private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    channel = {
        "name": "wx",
        "provider": "wechatpay_v3",
        "mch_id": MCH_ID,
        "api_v3_key": API_V3_KEY.decode(),
        "merchant_serial_no": MERCHANT_SERIAL,
        "merchant_private_key": pem.decode(),
        "api_base_url": api_base_url,
    }
    return PayhookSettings(database_url=database_url, channels=(channel,))


async def test_payhook_hands_the_certificate_table_to_the_downloader(database_url: str) -> None:
    """PayHook starts a download-mode channel's downloader, which keeps what it fetched in
    the database; the next start loads those certificates before serving a callback."""
    clock = FrozenClock(NOW)
    async with serve(_fake(clock)) as url:
        hook = PayHook(_download_mode(database_url, url), clock=clock, run_dispatcher=False)
        await hook.start()
        try:
            provider = hook.providers["wx"]
            assert isinstance(provider, WechatPayV3Provider)
            await _until(lambda: len(provider.keys.certificate_serials()) == 2)
            with anyio.fail_after(5):
                while len(await load_platform_certificates(hook.store.engine, "wx")) < 2:
                    await asyncio.sleep(0.01)
        finally:
            await hook.stop()
    offline = PayHook(
        _download_mode(database_url, "http://127.0.0.1:9"), clock=clock, run_dispatcher=False
    )
    await offline.start()
    try:
        provider = offline.providers["wx"]
        assert isinstance(provider, WechatPayV3Provider)
        assert sorted(provider.keys.certificate_serials()) == sorted(
            [f"{SERIAL_A:X}", f"{SERIAL_B:X}"]
        )
        assert provider.verify(_callback(clock, "platform-b", HEADER_B)).events
    finally:
        await offline.stop()


@dataclass
class MemoryStore:
    """A dictionary-backed CertificateStore: the downloader needs no database."""

    rows: dict[str, list[StoredCertificate]] = field(default_factory=dict)
    fail: bool = False

    async def load_certificates(self, channel: str) -> list[StoredCertificate]:
        if self.fail:
            raise StorageUnavailableError("down")
        return list(self.rows.get(channel, []))

    async def save_certificates(
        self, channel: str, certificates: Sequence[StoredCertificate]
    ) -> None:
        if self.fail:
            raise StorageUnavailableError("down")
        kept = {row.serial_no: row for row in self.rows.get(channel, [])}
        kept.update((row.serial_no, row) for row in certificates)
        self.rows[channel] = list(kept.values())


async def test_downloader_keeps_certificates_in_any_store(caplog: pytest.LogCaptureFixture) -> None:
    """The downloader saves to and loads from the store it is handed; a failing store costs a
    warning, never the refresh."""
    clock = FrozenClock(NOW)
    store = MemoryStore()
    async with serve(_fake(clock)) as url:
        ring = WechatPayV3KeyRing(clock=clock)
        assert await _downloader(url, ring, clock, store=store).refresh() == 2
    assert sorted(row.serial_no for row in store.rows["wx"]) == sorted(
        [f"{SERIAL_A:X}", f"{SERIAL_B:X}"]
    )
    fresh = WechatPayV3KeyRing(clock=clock)
    await _downloader("http://127.0.0.1:9", fresh, clock, store=store).prepare()
    assert len(fresh.certificate_serials()) == 2
    store.fail = True
    with caplog.at_level(logging.WARNING, logger="payhook.providers.wechatpay_v3"):
        await _downloader(
            "http://127.0.0.1:9", WechatPayV3KeyRing(clock=clock), clock, store=store
        ).prepare()
        async with serve(_fake(clock)) as url:
            assert (
                await _downloader(
                    url, WechatPayV3KeyRing(clock=clock), clock, store=store
                ).refresh()
                == 2
            )
    messages = [r.getMessage() for r in caplog.records]
    assert any("could not load saved" in m for m in messages)
    assert any("Could not store platform certificates" in m for m in messages)
