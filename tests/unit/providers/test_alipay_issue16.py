"""Alipay regressions of issue 16: field folding, pinned sign types, partner sub-merchants."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote_plus

import pytest

from payhook.errors import NotificationError, SignatureError
from payhook.providers import RawNotification
from payhook.providers.alipay import AlipayChannel, AlipayProvider, sign_notification
from payhook.providers.alipay._fields import check_identifiers
from payhook.providers.alipay._form import parse_form, string_to_sign
from payhook.signing import load_rsa_private_key, load_rsa_public_key

VECTORS = Path(__file__).parents[2] / "vectors" / "alipay"
PRIVATE = load_rsa_private_key((VECTORS / "test_alipay_private.pem").read_bytes())
PUBLIC = load_rsa_public_key((VECTORS / "test_alipay_public.pem").read_bytes())
APP_ID = "2021000122672388"
NOW = datetime(2024, 5, 20, 5, 14, 6, tzinfo=UTC)


def _provider(**kwargs: object) -> AlipayProvider:
    return AlipayProvider(channel="alipay", app_id=APP_ID, public_key=PUBLIC, **kwargs)  # type: ignore[arg-type]


def _raw(body: bytes) -> RawNotification:
    return RawNotification(channel="alipay", headers={}, body=body, received_at=NOW)


def _fields(**changes: str | None) -> dict[str, str]:
    fields = {
        "gmt_create": "2024-05-20 13:14:00",
        "charset": "utf-8",
        "gmt_payment": "2024-05-20 13:14:05",
        "notify_time": "2024-05-20 13:14:06",
        "subject": "shift",
        "buyer_id": "2088102177846880",
        "version": "1.0",
        "notify_id": "2024052001222131406012345678901234",
        "notify_type": "trade_status_sync",
        "out_trade_no": "A-shift-20240520",
        "total_amount": "88.88",
        "point_amount": "0.00",
        "receipt_amount": "88.88",
        "trade_status": "TRADE_SUCCESS",
        "trade_no": "2024052022001400001234567890",
        "auth_app_id": APP_ID,
        "app_id": APP_ID,
        "seller_id": "2088721003236442",
    }
    for key, value in changes.items():
        if value is None:
            fields.pop(key, None)
        else:
            fields[key] = value
    return fields


def _signed(sign_type: str = "RSA2", **changes: str | None) -> bytes:
    return sign_notification(_fields(**changes), PRIVATE, sign_type=sign_type)


def _fold(body: bytes, into: str, moved: str) -> bytes:
    """Re-encode a signed body with ``&moved=value`` folded into the value of ``into``."""
    pairs = [segment.split(b"=", 1) for segment in body.split(b"&")]
    moved_value = next(value for name, value in pairs if name == moved.encode())
    out = []
    for name, value in pairs:
        if name == moved.encode():
            continue
        if name == into.encode():
            value += quote_plus(f"&{moved}=").encode() + moved_value
        out.append(name + b"=" + value)
    return b"&".join(out)


@pytest.mark.parametrize(
    ("into", "moved"),
    [
        ("out_trade_no", "point_amount"),
        ("notify_type", "out_trade_no"),
        ("app_id", "auth_app_id"),
        ("trade_no", "trade_status"),
        ("buyer_id", "charset"),
        ("gmt_create", "gmt_payment"),
    ],
    ids=["order_id", "order_id_moved", "app_id", "trade_no", "buyer_id", "paid_at"],
)
def test_folded_fields_still_verify_but_are_refused(into: str, moved: str) -> None:
    """Issue 16 item 4: a genuinely signed notification with a field folded into its sorted
    predecessor has the same string to sign, and is refused as malformed, never mapped."""
    genuine = _signed()
    folded = _fold(genuine, into, moved)
    assert folded != genuine
    # The folding attack is real: the signed content is unchanged.
    assert string_to_sign(parse_form(folded)) == string_to_sign(parse_form(genuine))
    with pytest.raises(NotificationError) as caught:
        _provider().verify(_raw(folded))
    assert caught.value.reason in ("malformed_field", "missing_field")
    assert "&" not in str(caught.value)


def test_the_review_notification_is_refused_and_the_real_copy_is_paid() -> None:
    """The review case: order "A-shift-…&point_amount=0.00" is refused; the genuine copy maps
    to its real order."""
    genuine = _signed()
    folded = _fold(genuine, "out_trade_no", "point_amount")
    with pytest.raises(NotificationError, match="out_trade_no") as caught:
        _provider().verify(_raw(folded))
    assert caught.value.reason == "malformed_field"
    (event,) = _provider().verify(_raw(genuine)).events
    assert event.order_id == "A-shift-20240520"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("out_trade_no", "A 1"),
        ("out_trade_no", "A%1"),
        ("out_trade_no", "x" * 65),
        ("out_trade_no", "订单1"),
        ("trade_no", "2024-1"),
        ("app_id", "2021 1"),
        ("seller_id", "2088=1"),
        ("notify_id", "n&1"),
        ("out_biz_no", "R=1"),
        ("buyer_open_id", "a b"),
        ("trade_status", "TRADE SUCCESS"),
    ],
)
def test_identifiers_outside_the_documented_characters_are_refused(name: str, value: str) -> None:
    """Identifier fields accept only the characters Alipay documents for them."""
    provider = _provider(sub_merchant_ids=None)
    body = _signed(**{name: value})
    with pytest.raises(NotificationError, match=name) as caught:
        provider.verify(_raw(body))
    assert caught.value.reason == "malformed_field"


def test_documented_identifier_shapes_are_accepted() -> None:
    """Underscores and hyphens in merchant numbers and a 64-character order id are accepted."""
    order = "A_" + "b-" * 31
    assert len(order) == 64
    (event,) = _provider().verify(_raw(_signed(out_trade_no=order))).events
    assert event.order_id == order


def test_paid_trade_without_gmt_payment_field_is_refused() -> None:
    """A paid trade must carry gmt_payment as its own field (possibly empty)."""
    with pytest.raises(NotificationError, match="gmt_payment") as caught:
        _provider().verify(_raw(_signed(gmt_payment=None)))
    assert caught.value.reason == "missing_field"
    (event,) = _provider().verify(_raw(_signed(gmt_payment=""))).events
    assert event.paid_at is None


def test_rsa_is_refused_unless_the_channel_allows_it() -> None:
    """Issue 16 item 5: RSA (SHA1) is refused by default; sign_types = [RSA2, RSA] allows it."""
    body = _signed(sign_type="RSA")
    with pytest.raises(SignatureError) as caught:
        _provider().verify(_raw(body))
    assert caught.value.reason == "sign_type_not_allowed"
    assert _provider(sign_types=("RSA2", "RSA")).verify(_raw(body)).events
    assert _provider().verify(_raw(_signed())).events
    with pytest.raises(SignatureError):
        _provider(sign_types=("RSA",)).verify(_raw(_signed()))


def test_sub_merchant_id_is_the_authorising_app() -> None:
    """data.sub_merchant_id is auth_app_id when it differs from app_id, else null."""
    (own,) = _provider().verify(_raw(_signed())).events
    assert own.sub_merchant_id is None
    (absent,) = _provider().verify(_raw(_signed(auth_app_id=None))).events
    assert absent.sub_merchant_id is None
    (partner,) = _provider().verify(_raw(_signed(auth_app_id="2021000000000777"))).events
    assert partner.sub_merchant_id == "2021000000000777"
    assert partner.merchant_id == APP_ID


def test_sub_merchant_ids_refuse_other_sub_merchants() -> None:
    """With sub_merchant_ids set, another authorising app is refused like a wrong merchant."""
    provider = _provider(sub_merchant_ids=("2021000000000777",))
    (event,) = provider.verify(_raw(_signed(auth_app_id="2021000000000777"))).events
    assert event.sub_merchant_id == "2021000000000777"
    assert provider.verify(_raw(_signed())).events  # the partner's own app: not a sub-merchant
    with pytest.raises(NotificationError) as caught:
        provider.verify(_raw(_signed(auth_app_id="2021000000000888")))
    assert caught.value.reason == "wrong_merchant"


def test_channel_settings_keys() -> None:
    """sign_types defaults to RSA2 only; unknown values and empty lists are errors."""
    base = {"name": "a", "provider": "alipay", "app_id": APP_ID, "alipay_public_key": "x"}
    channel = AlipayChannel.model_validate(base)
    assert channel.sign_types == ("RSA2",)
    assert channel.sub_merchant_ids is None
    both = AlipayChannel.model_validate(
        {**base, "sign_types": ["RSA2", "RSA"], "sub_merchant_ids": ["2021000000000777"]}
    )
    assert both.sign_types == ("RSA2", "RSA")
    assert "sign_types RSA2/RSA" in both.summary()
    assert "1 sub-merchant(s)" in both.summary()
    for bad in ({"sign_types": []}, {"sign_types": ["MD5"]}, {"sub_merchant_ids": []}):
        with pytest.raises(ValueError, match=r"sign_types|sub_merchant_ids"):
            AlipayChannel.model_validate({**base, **bad})


# (field, longest accepted value, one character too long) for every checked identifier.
LIMITS = [
    ("out_trade_no", "A_-" * 21 + "z", 64),
    ("out_biz_no", "R_-" * 21 + "z", 64),
    ("trade_no", "9" * 64, 64),
    ("app_id", "2" * 32, 32),
    ("auth_app_id", "2" * 32, 32),
    ("seller_id", "8" * 28, 28),
    ("buyer_id", "8" * 28, 28),
    ("buyer_open_id", "o_-" * 42 + "zz", 128),
    ("notify_id", "n" * 128, 128),
    ("trade_status", "T_" * 32, 64),
    ("notify_type", "t_" * 32, 64),
]


@pytest.mark.parametrize(("name", "longest", "limit"), LIMITS, ids=[case[0] for case in LIMITS])
def test_identifier_limits_and_anchors(name: str, longest: str, limit: int) -> None:
    """Each identifier accepts its documented longest value and refuses one more character,
    a character outside its set after a valid prefix, and a trailing newline."""
    assert len(longest) == limit
    check_identifiers({name: longest})
    check_identifiers({name: longest[0]})  # one character is enough
    check_identifiers({name: ""})  # empty values are left to the mapping
    for bad in (longest + longest[-1], longest[:5] + "&x=1", longest[:5] + "\n", "%26"):
        with pytest.raises(NotificationError, match=name) as caught:
            check_identifiers({name: bad})
        assert caught.value.reason == "malformed_field"


def test_identifier_character_classes() -> None:
    """Digits-and-letters fields refuse "_" and "-"; word fields refuse digits."""
    for name in ("trade_no", "app_id", "auth_app_id", "seller_id", "buyer_id", "notify_id"):
        for bad in ("12_3", "12-3"):
            with pytest.raises(NotificationError, match=name):
                check_identifiers({name: bad})
        check_identifiers({name: "aZ09"})
    for name in ("trade_status", "notify_type"):
        with pytest.raises(NotificationError, match=name):
            check_identifiers({name: "TRADE1"})
        check_identifiers({name: "Trade_Success"})
    for name in ("out_trade_no", "out_biz_no", "buyer_open_id"):
        check_identifiers({name: "aZ09_-"})
        with pytest.raises(NotificationError, match=name):
            check_identifiers({name: "a.b"})
