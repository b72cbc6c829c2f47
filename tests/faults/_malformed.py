"""Malformed callbacks for the HTTP fuzz run: one generator per kind of damage, per channel.

Every request built here must be refused: none may store an event. Some are *authentic*
(signed with the sandbox simulator keys, exactly as the provider would sign) but carry a
hostile payload, so the parsers behind the signature check are fuzzed too. The only 5xx the
contract allows is the "authentic but our key cannot decrypt it" case (WeChat Pay v3 and v2);
requests that can legitimately get it are flagged ``may_500``.
"""

from __future__ import annotations

import base64
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote_plus

from payhook._clock import SystemClock
from payhook.config import load_settings
from payhook.errors import DecryptionError, RefusedError
from payhook.providers import Provider, RawNotification, build_provider
from payhook.providers._safe_xml import render_flat_xml
from payhook.providers.alipay import AlipayChannel
from payhook.providers.alipay._form import sign_notification
from payhook.providers.wechatpay_v2 import WechatPayV2Channel, encrypt_req_info, wechat_v2_sign
from payhook.providers.wechatpay_v3 import WechatPayV3Channel
from payhook.providers.wechatpay_v3._sign import random_nonce, response_message, rsa_sha256_sign
from payhook.signing import aead_aes_gcm_encrypt, load_rsa_private_key
from tests.faults._callbacks import Callbacks, Fact

CONTENT_TYPES = (
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=GBK",
    "application/json",
    "application/json; charset=utf-16",
    "text/xml",
    "application/xml; charset=gb2312",
    "multipart/form-data; boundary=----x",
    "multipart/form-data",
    "text/plain; charset=klingon",
    "application/octet-stream",
    "",
    'text/plain; charset="utf-8"; q=\x7f',
    "application/json; charset=" + "a" * 2000,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Malformed:
    """One malformed request."""

    kind: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    may_500: bool = False  # authentic, but payhook's key cannot decrypt it (contract §4)


def _flip(rng: random.Random, data: bytes) -> bytes:
    if not data:
        return b"\x00"
    i = rng.randrange(len(data))
    return data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1 :]


def _xml_bombs(rng: random.Random) -> bytes:
    choice = rng.randrange(6)
    if choice == 0:  # billion laughs
        ents = '<!ENTITY a0 "lol">' + "".join(
            f'<!ENTITY a{i} "{f"&a{i - 1};" * 10}">' for i in range(1, 10)
        )
        return f'<?xml version="1.0"?><!DOCTYPE xml [{ents}]><xml><a>&a9;</a></xml>'.encode()
    if choice == 1:  # quadratic blow-up
        big = "x" * 30000
        return f'<!DOCTYPE xml [<!ENTITY b "{big}">]><xml><a>{"&b;" * 1000}</a></xml>'.encode()
    if choice == 2:  # external entity
        return (
            b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
            b"<xml><return_code>SUCCESS</return_code><a>&e;</a></xml>"
        )
    if choice == 3:  # external parameter entity / DTD
        return (
            b'<!DOCTYPE xml [<!ENTITY % d SYSTEM "http://127.0.0.1:1/evil.dtd"> %d;]>'
            b"<xml><a>1</a></xml>"
        )
    if choice == 4:  # deep nesting
        depth = rng.randrange(500, 20000)
        return b"<xml>" + b"<a>" * depth + b"</a>" * depth + b"</xml>"
    return b"<xml>" + b"<a>1</a>" * rng.randrange(1000, 6000) + b"</xml>"  # wide


def _json_bombs(rng: random.Random) -> bytes:
    choice = rng.randrange(6)
    depth = rng.randrange(1000, 30000)
    if choice == 0:
        return b"[" * depth + b"]" * depth
    if choice == 1:
        return b'{"a":' * depth + b"1" + b"}" * depth
    if choice == 2:
        return b'{"id":' + b"9" * rng.randrange(5000, 60000) + b"}"
    if choice == 3:
        return b'{"id":1e999999,"event_type":-1e999999,"resource":NaN}'
    if choice == 4:
        return json.dumps({f"k{i}": i for i in range(rng.randrange(1000, 5000))}).encode()
    return b'{"resource":{"ciphertext":"' + b"A" * 60000 + b'"}}'


def _random_bytes(rng: random.Random) -> bytes:
    return rng.randbytes(rng.randrange(0, 4096))


def _charset_garbage(rng: random.Random, text: str) -> bytes:
    codec = rng.choice(["utf-16", "utf-32", "gbk", "latin-1", "utf-7", "cp500", "shift_jis"])
    try:
        return text.encode(codec, "replace")
    except LookupError:
        return text.encode()


class Generator:
    """Malformed requests for the three channels of a :mod:`tests.faults._payhook` config."""

    def __init__(self, config: Path, *, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.callbacks = Callbacks(config)
        settings = load_settings(config)
        self._alipay = next(c for c in settings.channels if isinstance(c, AlipayChannel))
        self._v3 = next(c for c in settings.channels if isinstance(c, WechatPayV3Channel))
        self._v2 = next(c for c in settings.channels if isinstance(c, WechatPayV2Channel))
        assert self._alipay.simulator_private_key is not None
        assert self._v3.simulator_private_key is not None
        self._alipay_key = load_rsa_private_key(
            self._alipay.simulator_private_key.get_secret_value()
        )
        self._v3_key = load_rsa_private_key(self._v3.simulator_private_key.get_secret_value())
        self._api_v2_key = self._v2.api_key.get_secret_value()
        self._serial = self._v3.wechatpay_public_key_id or ""
        self._counter = 0
        self._providers: dict[str, Provider] = {
            c.name: build_provider(c, clock=SystemClock()) for c in settings.channels
        }

    # -- valid material to damage -------------------------------------------------------

    def _valid(self, channel: str) -> tuple[dict[str, str], bytes]:
        self._counter += 1
        fact = Fact(channel=channel, order_id=f"FUZZ-{self._counter}", event="paid", amount=100)
        callback = self.callbacks.build(fact)
        return dict(callback.headers), callback.body

    # -- authentic but hostile ----------------------------------------------------------

    def _alipay_authentic(self) -> Malformed:
        rng = self.rng
        fields = {
            "notify_type": "trade_status_sync",
            "notify_id": str(rng.getrandbits(64)),
            "notify_time": "2026-11-28 10:00:00",
            "charset": "utf-8",
            "version": "1.0",
            "app_id": self._alipay.app_id,
            "seller_id": self._alipay.seller_id or "",
            "trade_no": str(rng.getrandbits(80)),
            "out_trade_no": f"FUZZ-A-{rng.getrandbits(32)}",
            "trade_status": rng.choice(["TRADE_SUCCESS", "TRADE_FINISHED", "TRADE_CLOSED"]),
            "total_amount": "1.00",
            "gmt_payment": "2026-11-28 09:59:00",
        }
        damage = rng.randrange(6)
        if damage == 0:
            fields["app_id"] = "2021999999999999"  # another app
        elif damage == 1:
            fields["total_amount"] = rng.choice(
                ["1e999", "NaN", "-1.00", "1.001", "", "１.００", "0x10", "9" * 400, "1,00"]
            )
        elif damage == 2:
            fields["seller_id"] = "2088999999999999"  # another seller
        elif damage == 3:
            fields["gmt_payment"] = rng.choice(["yesterday", "2026-13-45 99:99:99", "\u0000"])
            fields["total_amount"] = "-5"
        elif damage == 4:
            del fields["out_trade_no"]
            fields["total_amount"] = "abc"
        else:
            fields["refund_fee"] = rng.choice(["-1", "1e9999", "x"])
            fields["out_biz_no"] = "R-" + "9" * rng.randrange(1, 3000)
            fields["app_id"] = "2021999999999999"
        body = sign_notification(fields, self._alipay_key)
        return Malformed(
            kind="authentic_hostile",
            body=body,
            headers={"content-type": "application/x-www-form-urlencoded; charset=utf-8"},
        )

    def _v3_signed(self, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        nonce = random_nonce()
        return {
            "content-type": "application/json",
            "wechatpay-timestamp": ts,
            "wechatpay-nonce": nonce,
            "wechatpay-serial": self._serial,
            "wechatpay-signature-type": "WECHATPAY2-SHA256-RSA2048",
            "wechatpay-signature": rsa_sha256_sign(self._v3_key, response_message(ts, nonce, body)),
        }

    def _v3_authentic(self) -> Malformed:
        rng = self.rng
        damage = rng.randrange(6)
        envelope: object
        if damage == 0:  # resource encrypted with another key: our key cannot decrypt it
            envelope = {
                "id": "EV-fuzz",
                "event_type": "TRANSACTION.SUCCESS",
                "resource": {
                    "algorithm": "AEAD_AES_256_GCM",
                    "nonce": "abcdefghijkl",
                    "associated_data": "transaction",
                    "ciphertext": aead_aes_gcm_encrypt(
                        rng.randbytes(32), nonce="abcdefghijkl", associated_data="transaction",
                        plaintext=b'{"mchid":"1"}',
                    ),
                },
            }  # fmt: skip
        elif damage == 1:  # ciphertext that is not base64 at all
            envelope = {
                "id": "EV-fuzz",
                "event_type": rng.choice(["TRANSACTION.SUCCESS", "REFUND.SUCCESS"]),
                "resource": {
                    "algorithm": "AEAD_AES_256_GCM",
                    "nonce": "n" * rng.randrange(0, 40),
                    "ciphertext": rng.choice(["!!!", "", "====", "A", "😀", "a" * 100001]),
                },
            }
        elif damage == 2:  # decrypts, but to hostile JSON
            plain = rng.choice(
                [b"[" * 5000 + b"]" * 5000, b"not json", b'{"mchid":' + b"1" * 9000 + b"}",
                 b'{"mchid":"1900000001","amount":{"total":1e999}}', b"\xff\xfe"]
            )  # fmt: skip
            nonce = random_nonce(12)
            envelope = {
                "id": "EV-fuzz",
                "event_type": "TRANSACTION.SUCCESS",
                "resource": {
                    "algorithm": "AEAD_AES_256_GCM",
                    "nonce": nonce,
                    "associated_data": "transaction",
                    "ciphertext": aead_aes_gcm_encrypt(
                        self._v3.api_v3_key.get_secret_value().encode(), nonce=nonce,
                        associated_data="transaction", plaintext=plain,
                    ),
                },
            }  # fmt: skip
        elif damage == 3:  # a JSON bomb as the whole (signed) body
            body = _json_bombs(rng)
            if body.startswith((b'{"id"', b'{"k0"')):
                body = b"[" + body + b"]"
            return Malformed(kind="authentic_hostile", body=body, headers=self._v3_signed(body))
        elif damage == 4:  # the envelope's fields of the wrong JSON types
            envelope = {
                "id": rng.choice([None, 1, [], {}, True]),
                "event_type": rng.choice([None, 1, ["TRANSACTION.SUCCESS"], {}]),
                "resource": rng.choice([None, "x", 1, []]),
            }
        else:  # authentic, fresh, but the signed timestamp is stale
            body = self._valid("wechat")[1]
            headers = self._v3_signed(body, timestamp=int(time.time()) - rng.randrange(301, 10**6))
            return Malformed(kind="authentic_stale", body=body, headers=headers)
        body = json.dumps(envelope).encode()
        return Malformed(kind="authentic_hostile", body=body, headers=self._v3_signed(body))

    def _v2_authentic(self) -> Malformed:
        rng = self.rng
        damage = rng.randrange(4)
        fields = {
            "return_code": "SUCCESS",
            "appid": self._v2.app_id or "",
            "mch_id": self._v2.mch_id,
            "nonce_str": f"{rng.getrandbits(64):x}",
            "result_code": "SUCCESS",
            "out_trade_no": f"FUZZ-V2-{rng.getrandbits(32)}",
            "transaction_id": f"42{rng.getrandbits(60)}",
            "total_fee": "100",
            "time_end": "20261128100000",
        }
        if damage == 0:
            fields["mch_id"] = "1999999999"  # another merchant
        elif damage == 1:
            fields["total_fee"] = rng.choice(["1.00", "-1", "", "1e9", "9" * 500, "一百"])
        elif damage == 2:  # a refund whose req_info our key cannot decrypt
            fields = {k: fields[k] for k in ("return_code", "appid", "mch_id", "nonce_str")}
            fields["req_info"] = rng.choice(
                [
                    encrypt_req_info(b"<root><a>1</a></root>", "k" * 32),  # another key
                    base64.b64encode(rng.randbytes(rng.randrange(0, 200))).decode(),
                    "!!!not base64!!!",
                    encrypt_req_info(b"[[[" * 100, self._api_v2_key),  # our key, not XML
                ]
            )
            return Malformed(
                kind="authentic_hostile",
                body=render_flat_xml(fields),
                headers={"content-type": "text/xml"},
            )
        else:
            fields["time_end"] = rng.choice(["tomorrow", "20261399999999", "0"])
            fields["total_fee"] = "-3"
        sign_type = rng.choice(["MD5", "HMAC-SHA256"])
        if sign_type != "MD5" or rng.random() < 0.5:
            fields["sign_type"] = sign_type
        fields["sign"] = wechat_v2_sign(fields, self._api_v2_key, sign_type)
        return Malformed(
            kind="authentic_hostile",
            body=render_flat_xml(fields),
            headers={"content-type": "text/xml"},
        )

    # -- one request ----------------------------------------------------------------------

    def make(self, channel: str) -> Malformed:
        """One malformed request for ``channel`` (a kind drawn at random).

        Each candidate is checked offline with the channel's own verifier first: a damage that
        happens to be neutral (``%e6`` for ``%E6``, a sign's letter case) would be a valid
        callback, so it is drawn again. Whether a 5xx is allowed is decided the same way.
        """
        makers: list[Callable[[str], Malformed]] = [
            self._random,
            self._truncated,
            self._bit_flip,
            self._wrong_charset,
            self._huge_headers,
            self._bad_base64,
            self._json_bomb,
            self._xml_bomb,
            self._wrong_content_type,
            self._authentic,
        ]
        while True:
            candidate = self.rng.choice(makers)(channel)
            verdict = self._oracle(channel, candidate)
            if verdict == "accepted":
                continue
            return replace(candidate, may_500=verdict == "undecryptable")

    def _oracle(self, channel: str, request: Malformed) -> str:
        raw = RawNotification(
            channel=channel,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=request.body,
            received_at=datetime.now(UTC),
        )
        try:
            self._providers[channel].verify(raw)
        except RefusedError:
            return "refused"
        except DecryptionError:
            return "undecryptable"
        return "accepted"

    def _random(self, _channel: str) -> Malformed:
        return Malformed(
            kind="random_bytes",
            body=_random_bytes(self.rng),
            headers={"content-type": self.rng.choice(CONTENT_TYPES)},
        )

    def _truncated(self, channel: str) -> Malformed:
        headers, body = self._valid(channel)
        cut = self.rng.randrange(0, len(body))
        return Malformed(kind="truncated", body=body[:cut], headers=headers)

    def _bit_flip(self, channel: str) -> Malformed:
        headers, body = self._valid(channel)
        if channel == "wechat" and self.rng.random() < 0.3:
            name = self.rng.choice(
                ["wechatpay-signature", "wechatpay-nonce", "wechatpay-timestamp"]
            )
            key = next(k for k in headers if k.lower() == name)
            value = headers[key]
            i = self.rng.randrange(len(value))
            headers[key] = value[:i] + chr((ord(value[i]) + 1 - 32) % 95 + 32) + value[i + 1 :]
            if headers[key] == value:
                headers[key] = value + "A"
            return Malformed(kind="bit_flip", body=body, headers=headers)
        return Malformed(kind="bit_flip", body=_flip(self.rng, body), headers=headers)

    def _wrong_charset(self, channel: str) -> Malformed:
        headers, body = self._valid(channel)
        rng = self.rng
        if channel == "alipay":
            text = body.decode("ascii")
            choice = rng.randrange(3)
            if choice == 0:  # charset field changed: the signature no longer matches
                text = text.replace(
                    "charset=utf-8", f"charset={rng.choice(['GBK', 'latin1', 'x', ''])}"
                )
                return Malformed(kind="wrong_charset", body=text.encode(), headers=headers)
            if choice == 1:  # raw GBK bytes in a form that claims UTF-8
                extra = "&subject=" + "中文订单"
                return Malformed(
                    kind="wrong_charset", body=body + extra.encode("gbk"), headers=headers
                )
            return Malformed(
                kind="wrong_charset", body=_charset_garbage(rng, text), headers=headers
            )
        if channel == "wechat":
            return Malformed(
                kind="wrong_charset",
                body=_charset_garbage(rng, body.decode("utf-8")),
                headers=headers,
            )
        text = body.decode("utf-8")
        if rng.random() < 0.5:
            text = '<?xml version="1.0" encoding="GBK"?>' + text.replace("SUCCESS", "成功")
            return Malformed(kind="wrong_charset", body=text.encode("gbk"), headers=headers)
        return Malformed(kind="wrong_charset", body=_charset_garbage(rng, text), headers=headers)

    def _huge_headers(self, channel: str) -> Malformed:
        headers, body = self._valid(channel)
        body = _flip(self.rng, body)
        rng = self.rng
        # Large but under payhook serve's 64 KiB header cap (headers over the cap are refused at
        # the protocol level: tests/security/test_slow_clients.py covers that).
        if rng.random() < 0.5:
            headers[f"x-junk-{rng.randrange(100)}"] = "j" * rng.randrange(8 * 1024, 36 * 1024)
        else:
            for i in range(rng.randrange(100, 400)):
                headers[f"x-h{i}"] = "v" * rng.randrange(1, 100)
        if channel == "wechat" and rng.random() < 0.5:
            key = next(k for k in headers if k.lower() == "wechatpay-signature")
            headers[key] = "A" * rng.randrange(4096, 20000)
        return Malformed(kind="huge_headers", body=body, headers=headers)

    def _bad_base64(self, channel: str) -> Malformed:
        headers, body = self._valid(channel)
        rng = self.rng
        garbage = rng.choice(["!!!", "%%%", "A", "AB=C", "====", "\u00e9\u00e9", "*" * 700, "=="])
        if channel == "alipay":
            head, _, _ = body.rpartition(b"&sign=")
            return Malformed(
                kind="bad_base64",
                body=head + b"&sign=" + quote_plus(garbage).encode(),
                headers=headers,
            )
        if channel == "wechat":
            key = next(k for k in headers if k.lower() == "wechatpay-signature")
            headers[key] = garbage if garbage.isascii() else "@@@"
            return Malformed(kind="bad_base64", body=body, headers=headers)
        fields_body = render_flat_xml(
            {"return_code": "SUCCESS", "mch_id": self._v2.mch_id, "appid": self._v2.app_id or "",
             "req_info": garbage}
        )  # fmt: skip
        return Malformed(kind="bad_base64", body=fields_body, headers=headers)

    def _json_bomb(self, channel: str) -> Malformed:
        body = _json_bombs(self.rng)
        if channel == "wechat" and self.rng.random() < 0.5:
            # Real headers, but signed over another body: refused at the signature.
            headers = self._v3_signed(body + b" ")
            return Malformed(kind="json_bomb", body=body, headers=headers)
        return Malformed(kind="json_bomb", body=body, headers={"content-type": "application/json"})

    def _xml_bomb(self, _channel: str) -> Malformed:
        return Malformed(
            kind="xml_bomb", body=_xml_bombs(self.rng), headers={"content-type": "text/xml"}
        )

    def _wrong_content_type(self, channel: str) -> Malformed:
        headers, body = self._valid(channel)
        for key in [k for k in headers if k.lower() == "content-type"]:
            del headers[key]
        headers["content-type"] = self.rng.choice(CONTENT_TYPES)
        # The content type is not signed: a damaged body makes sure the request is refused.
        return Malformed(kind="wrong_content_type", body=_flip(self.rng, body), headers=headers)

    def _authentic(self, channel: str) -> Malformed:
        if channel == "alipay":
            return self._alipay_authentic()
        if channel == "wechat":
            return self._v3_authentic()
        return self._v2_authentic()
