"""Fixed examples for the WeChat Pay v3 platform-certificate downloader, from the mutation run
(issue 14): the exact verdicts on a response's signature headers (bounds, staleness, probes),
on each certificate entry, on the JSON document and error bodies, the settings, and the rate
limit of requested refreshes. The parts are called directly; the HTTP round trip is covered by
``test_wechat_certs.py`` (a local fake WeChat Pay server)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID

from payhook.errors import ConfigurationError, DecryptionError
from payhook.providers.wechatpay_v3 import WechatPayV3KeyRing
from payhook.providers.wechatpay_v3._certs import (
    CertificateDownloadError,
    PlatformCertificateDownloader,
    _bootstrap_key,
    _certificate_items,
    _error_code,
)
from tests.unit.providers._wechat_v3_support import (
    API_V3_KEY,
    FrozenClock,
    make_certificate,
    rsa_key,
)

NOW = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)
UNIX = int(NOW.timestamp())
SERIAL = 0x5157F09EFDC096DE15EBE81A47057A7232F1B8E1
HEX = f"{SERIAL:X}"
KEY = rsa_key("platform-a")
CERT = make_certificate(
    KEY, SERIAL, not_before=NOW - timedelta(days=1), not_after=NOW + timedelta(days=1)
)
LOGGER = "payhook.providers.wechatpay_v3"
NONCE = "RESPONSENONCE0000000000000000001"
BODY = b'{"data": []}'


def _downloader(clock: FrozenClock | None = None, **changes: Any) -> PlatformCertificateDownloader:
    clock = clock or FrozenClock(NOW)
    settings: dict[str, Any] = {
        "channel": "wx",
        "mch_id": "1230000109",
        "merchant_serial_no": "3775B6A45ACD588826D15E583A95F5DD3A5F5D8A",
        "merchant_private_key": rsa_key("merchant"),
        "api_v3_key": API_V3_KEY,
        "api_base_url": "http://127.0.0.1:9",
        "keys": WechatPayV3KeyRing(clock=clock),
        "clock": clock,
    }
    settings.update(changes)
    return PlatformCertificateDownloader(**settings)


# --- settings --------------------------------------------------------------------------------

SETTINGS_REFUSED = [
    ("key_31_bytes", {"api_v3_key": b"k" * 31}, "api_v3_key must be exactly 32 bytes (AES-256)"),
    ("key_33_bytes", {"api_v3_key": b"k" * 33}, "api_v3_key must be exactly 32 bytes (AES-256)"),
    ("key_as_text", {"api_v3_key": "k" * 32}, "api_v3_key must be exactly 32 bytes (AES-256)"),
    ("no_mch_id", {"mch_id": ""}, "mch_id and merchant_serial_no must not be empty"),
    ("no_serial", {"merchant_serial_no": ""}, "mch_id and merchant_serial_no must not be empty"),
    ("ftp_url", {"api_base_url": "ftp://example"}, "api_base_url must be an http(s) URL"),
    ("no_scheme", {"api_base_url": "example.com"}, "api_base_url must be an http(s) URL"),
    ("zero_interval", {"refresh_interval_s": 0}, "refresh intervals and timeouts must be positive"),
    (
        "negative_gap",
        {"min_refresh_gap_s": -0.5},
        "refresh intervals and timeouts must be positive",
    ),
    ("zero_timeout", {"request_timeout_s": 0}, "refresh intervals and timeouts must be positive"),
]


@pytest.mark.parametrize(
    ("changes", "message"),
    [case[1:] for case in SETTINGS_REFUSED],
    ids=[case[0] for case in SETTINGS_REFUSED],
)
def test_settings_refused(changes: dict[str, Any], message: str) -> None:
    """Each unusable setting is refused with its exact message."""
    with pytest.raises(ConfigurationError, match=f"^{re.escape(message)}$"):
        _downloader(**changes)


def test_settings_accepted_at_their_edges() -> None:
    """https, a zero gap and tiny positive intervals are accepted; the URL loses its slash."""
    downloader = _downloader(
        api_base_url="https://api.example/",
        min_refresh_gap_s=0,
        refresh_interval_s=0.001,
        request_timeout_s=0.001,
    )
    assert repr(downloader) == (
        "PlatformCertificateDownloader(channel='wx', mch_id='1230000109', "
        "url='https://api.example/v3/certificates', merchant_private_key=<hidden>, "
        "api_v3_key=<hidden>)"
    )


# --- response signature ----------------------------------------------------------------------


def _signed(
    timestamp: str = str(UNIX), nonce: str = NONCE, body: bytes = BODY, **changes: str | None
) -> dict[str, str]:
    message = f"{timestamp}\n{nonce}\n".encode() + body + b"\n"
    signature = KEY.sign(message, padding.PKCS1v15(), hashes.SHA256())
    headers: dict[str, str | None] = {
        "wechatpay-timestamp": timestamp,
        "wechatpay-nonce": nonce,
        "wechatpay-serial": HEX,
        "wechatpay-signature": base64.b64encode(signature).decode(),
    }
    headers.update(changes)
    return {k: v for k, v in headers.items() if v is not None}


def _check(headers: dict[str, str], certs: list[x509.Certificate] | None = None) -> None:
    _downloader()._check_response_signature(headers, BODY, [CERT] if certs is None else certs)


def _refusal(headers: dict[str, str], certs: list[x509.Certificate] | None = None) -> str:
    with pytest.raises(CertificateDownloadError) as caught:
        _check(headers, certs)
    assert caught.value.reason == "certificate_signature"
    return caught.value.message


NOT_SIGNED = "the certificate response is not signed"
STALE = "the certificate response timestamp is stale"

SIGNATURE_REFUSALS = [
    ("no_timestamp", _signed(**{"wechatpay-timestamp": None}), NOT_SIGNED),
    ("no_nonce", _signed(**{"wechatpay-nonce": None}), NOT_SIGNED),
    ("no_serial", _signed(**{"wechatpay-serial": None}), NOT_SIGNED),
    ("empty_serial", _signed(**{"wechatpay-serial": ""}), NOT_SIGNED),
    ("timestamp_13_digits", _signed(timestamp="0" + "1" * 12), NOT_SIGNED),
    ("timestamp_newline", _signed(timestamp=f"{UNIX}\n"), NOT_SIGNED),
    ("timestamp_sign", _signed(timestamp=f"+{UNIX}"), NOT_SIGNED),
    ("nonce_129", _signed(nonce="n" * 129), NOT_SIGNED),
    ("nonce_space", _signed(nonce="a b"), NOT_SIGNED),
    ("nonce_newline", _signed(nonce="abc\n"), NOT_SIGNED),
    ("timestamp_12_digits", _signed(timestamp="1" * 12), STALE),
    ("timestamp_one_digit", _signed(timestamp="1"), STALE),
    ("301_s_old", _signed(timestamp=str(UNIX - 301)), STALE),
    ("301_s_ahead", _signed(timestamp=str(UNIX + 301)), STALE),
    (
        "no_signature",
        _signed(**{"wechatpay-signature": None}),
        "the certificate response signature does not match",
    ),
    (
        "probe",
        _signed(**{"wechatpay-signature": "WECHATPAY/SIGNTEST/abc"}),
        "the certificate response was a signature probe",
    ),
    (
        "not_base64",
        _signed(**{"wechatpay-signature": "not base64!"}),
        "the certificate response signature is not base64",
    ),
    (
        "unknown_key",
        _signed(**{"wechatpay-serial": "ABCDEF"}),
        "the certificate response names an unknown key",
    ),
    (
        "other_body",
        _signed(body=b'{"data": [] }'),
        "the certificate response signature does not match",
    ),
]


@pytest.mark.parametrize(
    ("headers", "message"),
    [case[1:] for case in SIGNATURE_REFUSALS],
    ids=[case[0] for case in SIGNATURE_REFUSALS],
)
def test_response_signature_refusals(headers: dict[str, str], message: str) -> None:
    """Each fault of the response's signature headers has its exact message and reason."""
    assert _refusal(headers) == message


@pytest.mark.parametrize(
    "headers",
    [
        _signed(),
        _signed(timestamp=str(UNIX - 300)),
        _signed(timestamp=str(UNIX + 300)),
        _signed(nonce="n"),
        _signed(nonce="~" * 128),
        _signed(**{"wechatpay-serial": "00" + HEX.lower()}),
    ],
    ids=["now", "300_s_old", "300_s_ahead", "nonce_1", "nonce_128", "serial_padded_lower"],
)
def test_response_signature_accepted(headers: dict[str, str]) -> None:
    """Signed within 300 s either way, nonces of 1 to 128 characters, serial as a number."""
    _check(headers)


def test_response_verified_with_a_key_the_ring_holds() -> None:
    """A response signed by a certificate already in the ring needs none in the payload."""
    clock = FrozenClock(NOW)
    ring = WechatPayV3KeyRing(certificates=[CERT], clock=clock)
    _downloader(clock, keys=ring)._check_response_signature(_signed(), BODY, [])
    with pytest.raises(CertificateDownloadError, match="names an unknown key"):
        _downloader()._check_response_signature(_signed(), BODY, [])


def test_bootstrap_key() -> None:
    """The payload's certificate whose serial the header names (as a number), else None."""
    other = make_certificate(
        rsa_key("platform-b"), 0xABC, not_before=NOW, not_after=NOW + timedelta(days=1)
    )
    found = _bootstrap_key("0" + HEX.lower(), [other, CERT])
    assert found is not None
    assert found.public_numbers() == KEY.public_key().public_numbers()
    assert _bootstrap_key("ABD", [other, CERT]) is None
    assert _bootstrap_key("not hex", [other, CERT]) is None
    assert _bootstrap_key(HEX, []) is None


# --- certificate entries ---------------------------------------------------------------------


def _entry(
    cert: x509.Certificate | bytes = CERT,
    *,
    key: bytes = API_V3_KEY,
    iv: str = "certnonce001",
    aad: str = "certificate",
    serial: object = f"{SERIAL:040X}",
    **changes: object,
) -> dict[str, Any]:
    plain = cert if isinstance(cert, bytes) else cert.public_bytes(serialization.Encoding.PEM)
    ciphertext = AESGCM(key).encrypt(iv.encode(), plain, aad.encode())
    encrypted: dict[str, object] = {
        "algorithm": "AEAD_AES_256_GCM",
        "nonce": iv,
        "associated_data": aad,
        "ciphertext": base64.b64encode(ciphertext).decode(),
    }
    for name, value in changes.items():
        if value is None:
            encrypted.pop(name, None)
        else:
            encrypted[name] = value
    return {"serial_no": serial, "encrypt_certificate": encrypted}


def _entry_refusal(item: dict[str, Any]) -> str:
    with pytest.raises(CertificateDownloadError) as caught:
        _downloader()._decrypt_all([item])
    assert caught.value.reason == "certificate_download"
    return caught.value.message


EC_CERT = (
    x509.CertificateBuilder()
    .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ec")]))
    .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ec")]))
    .public_key(ec.generate_private_key(ec.SECP256R1()).public_key())
    .serial_number(SERIAL)
    .not_valid_before(NOW - timedelta(days=1))
    .not_valid_after(NOW + timedelta(days=1))
    .sign(KEY, hashes.SHA256())
)
LACKS = "a certificate entry lacks serial_no or encrypt_certificate"
LACKS_FIELD = "a certificate entry lacks nonce or ciphertext"
NOT_RSA = "a downloaded certificate is not an RSA certificate"

ENTRY_REFUSALS = [
    ("no_serial", {"encrypt_certificate": _entry()["encrypt_certificate"]}, LACKS),
    ("serial_number", _entry(serial=SERIAL), LACKS),
    ("no_encrypt_certificate", {"serial_no": HEX}, LACKS),
    ("encrypt_certificate_text", {"serial_no": HEX, "encrypt_certificate": "x"}, LACKS),
    (
        "other_algorithm",
        _entry(algorithm="AEAD_AES_128_GCM"),
        "a certificate is not encrypted with AEAD_AES_256_GCM",
    ),
    (
        "no_algorithm",
        _entry(algorithm=None),
        "a certificate is not encrypted with AEAD_AES_256_GCM",
    ),
    ("no_nonce", _entry(nonce=None), LACKS_FIELD),
    ("nonce_number", _entry(nonce=7), LACKS_FIELD),
    ("no_ciphertext", _entry(ciphertext=None), LACKS_FIELD),
    ("ciphertext_list", _entry(ciphertext=["x"]), LACKS_FIELD),
    (
        "ciphertext_not_base64",
        _entry(ciphertext="!!!!"),
        "a certificate entry is malformed: ciphertext is not valid base64",
    ),
    ("not_a_certificate", _entry(b"hello"), NOT_RSA),
    ("ec_certificate", _entry(EC_CERT), NOT_RSA),
]


@pytest.mark.parametrize(
    "item", [case[1] for case in ENTRY_REFUSALS], ids=[case[0] for case in ENTRY_REFUSALS]
)
def test_entry_refusals(item: dict[str, Any], request: pytest.FixtureRequest) -> None:
    """Each malformed certificate entry has its exact message."""
    expected = {case[0]: case[2] for case in ENTRY_REFUSALS}[request.node.callspec.id]
    assert _entry_refusal(item) == expected


def test_wrong_api_v3_key_is_a_decryption_error() -> None:
    """A certificate encrypted under another key (or other associated data) names api_v3_key."""
    message = (
        "a downloaded platform certificate could not be decrypted: check the channel's api_v3_key"
    )
    for item in (_entry(key=b"x" * 32), _entry(associated_data="other")):
        with pytest.raises(DecryptionError) as caught:
            _downloader()._decrypt_all([item])
        assert caught.value.message == message


def test_entries_decrypt_in_order() -> None:
    """Entries decrypt in order; missing or non-text associated data reads as empty."""
    other = make_certificate(
        rsa_key("platform-b"), 0xABC, not_before=NOW, not_after=NOW + timedelta(days=1)
    )
    items = [
        _entry(other, serial="abc", aad="", associated_data=None),
        _entry(),
        _entry(other, serial="0ABC", aad="", associated_data=5),
    ]
    assert _downloader()._decrypt_all(items) == [other, CERT, other]


def test_entry_with_another_serial_is_skipped(caplog: pytest.LogCaptureFixture) -> None:
    """An entry whose serial_no names another certificate is skipped, logged with 64 chars."""
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        certs = _downloader()._decrypt_all(
            [_entry(serial="1" * 70), _entry(serial="not hex"), _entry()]
        )
    assert certs == [CERT]
    assert [(r.name, r.getMessage()) for r in caplog.records] == [
        (
            LOGGER,
            f"Skipped a downloaded certificate whose serial_no {'1' * 64} does not match it.",
        ),
        (LOGGER, "Skipped a downloaded certificate whose serial_no not hex does not match it."),
    ]


# --- documents -------------------------------------------------------------------------------

DOCUMENT_REFUSALS = [
    ("not_utf8", b"\xff", "the certificate response is not JSON"),
    ("not_json", b"{", "the certificate response is not JSON"),
    ("deep", b"[" * 100_000 + b"]" * 100_000, "the certificate response is not JSON"),
    ("array", b"[]", "the certificate response has no data list"),
    ("no_data", b"{}", "the certificate response has no data list"),
    ("data_object", b'{"data": {}}', "the certificate response has no data list"),
    ("item_not_object", b'{"data": [{}, 1]}', "the certificate response has no data list"),
]


@pytest.mark.parametrize(
    ("body", "message"),
    [case[1:] for case in DOCUMENT_REFUSALS],
    ids=[case[0] for case in DOCUMENT_REFUSALS],
)
def test_document_refusals(body: bytes, message: str) -> None:
    """A body that is not ``{"data": [objects]}`` is refused with its exact message."""
    with pytest.raises(CertificateDownloadError) as caught:
        _certificate_items(body)
    assert caught.value.message == message
    assert caught.value.reason == "certificate_download"


def test_document_items() -> None:
    """The data list's objects, as they are (an empty list too)."""
    assert _certificate_items(b'{"data": [{"a": 1}, {}]}') == [{"a": 1}, {}]
    assert _certificate_items(b'{"data": []}') == []


HINT = " (no platform certificates: this merchant uses WeChat Pay public keys)"
ERROR_CODES = [
    ("code", b'{"code": "SIGN_ERROR", "message": "x"}', " (SIGN_ERROR)"),
    ("not_exists", b'{"code": "RESOURCE_NOT_EXISTS"}', " (RESOURCE_NOT_EXISTS)" + HINT),
    ("long", json.dumps({"code": "C" * 70}).encode(), f" ({'C' * 64})"),
    ("code_number", b'{"code": 404}', ""),
    ("no_code", b"{}", ""),
    ("array", b'["code"]', ""),
    ("not_json", b"<html>", ""),
    ("not_utf8", b"\xff", ""),
    ("deep", b"[" * 100_000 + b"]" * 100_000, ""),
]


@pytest.mark.parametrize(
    ("body", "suffix"), [case[1:] for case in ERROR_CODES], ids=[case[0] for case in ERROR_CODES]
)
def test_error_code_suffix(body: bytes, suffix: str) -> None:
    """The code of an error body, at most 64 characters, with the public-key hint."""
    assert _error_code(body) == suffix


# --- requested refreshes ---------------------------------------------------------------------


def test_requested_refresh_rate_limit(caplog: pytest.LogCaptureFixture) -> None:
    """A request is dropped while the last one is younger than min_refresh_gap_s, and let
    through once exactly that much time has passed; the serial is logged cut to 64."""
    clock = FrozenClock(NOW)
    downloader = _downloader(clock, min_refresh_gap_s=60.0)
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        downloader.request_refresh("A" * 70)
        clock.advance(59.5)
        downloader.request_refresh("B")
        clock.advance(0.5)
        downloader.request_refresh(None)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.INFO, f"Channel wx: refreshing platform certificates for serial {'A' * 64!r}."),
        (logging.DEBUG, "Platform-certificate refresh request dropped (rate limit)."),
        (logging.INFO, "Channel wx: refreshing platform certificates for serial ''."),
    ]
    infos = [r for r in caplog.records if r.levelno == logging.INFO]
    assert [(r.__dict__["action"], r.__dict__["channel"]) for r in infos] == [
        ("wechatpay_certs_requested", "wx"),
        ("wechatpay_certs_requested", "wx"),
    ]


def test_default_rate_limit_is_60_seconds(caplog: pytest.LogCaptureFixture) -> None:
    """Without min_refresh_gap_s, requests closer than 60 s to the last one are dropped."""
    clock = FrozenClock(NOW)
    downloader = _downloader(clock)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        downloader.request_refresh("A")
        clock.advance(59.5)
        downloader.request_refresh("B")
        assert len(caplog.records) == 1
        clock.advance(0.5)
        downloader.request_refresh("C")
    assert [r.getMessage() for r in caplog.records] == [
        "Channel wx: refreshing platform certificates for serial 'A'.",
        "Channel wx: refreshing platform certificates for serial 'C'.",
    ]


def test_default_intervals() -> None:
    """A refresh every 12 h (providers.md §2.2), a 60 s gap and a 10 s download timeout."""
    downloader = _downloader()
    assert downloader._interval == 43200.0
    assert downloader._min_gap == 60.0
    assert downloader._timeout == 10.0


def test_base_url_keeps_its_path() -> None:
    """Only trailing slashes are cut from the base URL; its own path stays."""
    downloader = _downloader(api_base_url="http://127.0.0.1:9/PREFIX//")
    assert "url='http://127.0.0.1:9/PREFIX/v3/certificates'" in repr(downloader)


def test_download_error_default_reason() -> None:
    """A CertificateDownloadError raised without a reason has certificate_download."""
    assert CertificateDownloadError("x").reason == "certificate_download"


def test_request_outside_run_only_marks_pending() -> None:
    """Before run() has a loop, a request is only remembered (even with a wake-up event)."""
    downloader = _downloader()
    event = asyncio.Event()
    downloader._wakeup = event
    downloader.request_refresh("A")
    assert downloader._pending is True
    assert not event.is_set()


@pytest.mark.anyio
async def test_request_inside_the_loop_wakes_run_at_once() -> None:
    """From run()'s own loop, a request sets the wake-up event right away."""
    downloader = _downloader()
    event = asyncio.Event()
    downloader._loop, downloader._wakeup = asyncio.get_running_loop(), event
    downloader.request_refresh("A")
    assert event.is_set()
    assert downloader._pending is True


@pytest.mark.anyio
async def test_request_from_another_thread_wakes_run() -> None:
    """From another thread, the wake-up goes through the loop (call_soon_threadsafe)."""
    downloader = _downloader()
    event = asyncio.Event()
    downloader._loop, downloader._wakeup = asyncio.get_running_loop(), event
    thread = threading.Thread(target=downloader.request_refresh, args=("A",))
    thread.start()
    thread.join()
    await event.wait()
    assert downloader._pending is True


def test_request_after_the_loop_closed_is_harmless() -> None:
    """A request from a thread after run()'s loop has closed raises nothing."""
    downloader = _downloader()
    loop = asyncio.new_event_loop()
    event = asyncio.Event()
    loop.close()
    downloader._loop, downloader._wakeup = loop, event
    downloader.request_refresh("A")
    assert not event.is_set()
    assert downloader._pending is True
