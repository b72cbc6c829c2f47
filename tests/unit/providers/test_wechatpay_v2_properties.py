"""Property tests: the strict XML parser, the v2 signature and the v2 provider, hostile input."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from xml.sax.saxutils import escape

from hypothesis import assume, example, given, strategies as st
from wechatpy.pay.utils import (  # type: ignore[import-untyped]
    calculate_signature,
    calculate_signature_hmac,
)

from payhook.errors import NotificationError, RefusedError, SignatureError
from payhook.events import EventType
from payhook.providers import RawNotification
from payhook.providers._safe_xml import parse_flat_xml, render_flat_xml
from payhook.providers.wechatpay_v2 import (
    WechatPayV2Provider,
    WechatPayV2Simulator,
    wechat_v2_sign,
)

API_KEY = "192006250b4c09247ec02edce69f6a2d"
MCH_ID = "10000100"
APP_ID = "wxd930ea5d5a258f4f"
NOW = datetime(2026, 11, 28, 1, 2, 3, tzinfo=UTC)
# synthetic.wechat_v2_pay_md5 (shared/vectors/providers.json)
PAY_MD5_XML = (
    b"<xml><appid><![CDATA[wxd930ea5d5a258f4f]]></appid><bank_type><![CDATA[OTHERS]]></bank_type>"
    b"<cash_fee><![CDATA[8888]]></cash_fee><fee_type><![CDATA[CNY]]></fee_type>"
    b"<is_subscribe><![CDATA[N]]></is_subscribe><mch_id><![CDATA[10000100]]></mch_id>"
    b"<nonce_str><![CDATA[ibuaiVcKdpRxkhJA]]></nonce_str>"
    b"<openid><![CDATA[oUpF8uMEb4qRXf22hE3X68TekukE]]></openid>"
    b"<out_trade_no><![CDATA[PAYHOOK-20240520-0003]]></out_trade_no>"
    b"<result_code><![CDATA[SUCCESS]]></result_code>"
    b"<return_code><![CDATA[SUCCESS]]></return_code>"
    b"<time_end><![CDATA[20240520131405]]></time_end><total_fee><![CDATA[8888]]></total_fee>"
    b"<trade_type><![CDATA[JSAPI]]></trade_type>"
    b"<transaction_id><![CDATA[4200002024052098765432109876]]></transaction_id>"
    b"<sign><![CDATA[EDE5389C3A018A2FA0744E8E5D4FAD89]]></sign></xml>"
)
PAY_FIELDS = parse_flat_xml(PAY_MD5_XML)
PROVIDER = WechatPayV2Provider(channel="c", mch_id=MCH_ID, app_id=APP_ID, api_key=API_KEY)

# XML element names without a namespace prefix, and text XML 1.0 can carry.
names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.\-]{0,15}", fullmatch=True)
xml_text = st.text(
    alphabet=st.characters(
        exclude_categories=["Cs"],
        exclude_characters=[*map(chr, [*range(9), 11, 12, *range(14, 32)]), "\ufffe", "\uffff"],
    ),
    max_size=40,
)
flat_dicts = st.dictionaries(names, xml_text, max_size=12)


def _raw(body: bytes) -> RawNotification:
    return RawNotification(channel="c", headers={}, body=body, received_at=NOW)


def _parse(body: bytes) -> dict[str, str] | NotificationError:
    try:
        return parse_flat_xml(body)
    except NotificationError as exc:
        return exc


def _refusal(body: bytes) -> RefusedError | None:
    try:
        PROVIDER.verify(_raw(body))
    except RefusedError as exc:
        return exc
    return None


# --- the parser ---

_CR = {"\r": "&#13;"}  # a literal CR in text would be normalized to LF


@given(st.binary(max_size=300))
@example(b"<xml><a>1</a></xml>")
@example(b'<!DOCTYPE xml [<!ENTITY e "x">]><xml><a>&e;</a></xml>')
def test_parser_on_arbitrary_bytes_raises_only_notification_error(body: bytes) -> None:
    """Arbitrary bytes give a dict of strings or NotificationError(bad_xml), nothing else."""
    result = _parse(body)
    if isinstance(result, NotificationError):
        assert result.reason == "bad_xml"
    else:
        assert all(isinstance(v, str) for v in result.values())


@given(st.text(max_size=200))
def test_parser_on_arbitrary_markup_inside_root(inner: str) -> None:
    """Arbitrary text inside <xml> (more often near-valid XML) also fails only as bad_xml."""
    result = _parse(f"<xml>{inner}</xml>".encode())
    assert isinstance(result, dict) or result.reason == "bad_xml"


@given(flat_dicts)
def test_render_then_parse_round_trips(fields: dict[str, str]) -> None:
    """Every flat dict of XML-representable strings survives render_flat_xml -> parse_flat_xml."""
    assert parse_flat_xml(render_flat_xml(fields)) == fields


@given(flat_dicts, st.sampled_from(["", "\n", "\n  "]))
def test_bare_escaped_text_parses_like_cdata(fields: dict[str, str], indent: str) -> None:
    """Values written as escaped bare text (no CDATA), pretty-printed or not, parse the same."""
    cells = "".join(f"{indent}<{k}>{escape(v, _CR)}</{k}>" for k, v in fields.items())
    assert parse_flat_xml(f"<xml>{cells}{indent[:1]}</xml>".encode()) == fields


# --- the signature ---


@given(flat_dicts, st.text(min_size=32, max_size=32, alphabet="0123456789abcdefABCDEF"))
def test_sign_agrees_with_wechatpy(fields: dict[str, str], key: str) -> None:
    """payhook and wechatpy compute the same MD5 and HMAC-SHA256 signs for any fields."""
    assert wechat_v2_sign(fields, key) == calculate_signature(fields, key)
    assert wechat_v2_sign(fields, key, "HMAC-SHA256") == calculate_signature_hmac(fields, key)


# --- the provider ---


@given(st.binary(max_size=400))
def test_verify_on_arbitrary_bytes_raises_only_refusals(body: bytes) -> None:
    """Whatever bytes arrive, verify raises only RefusedError subclasses."""
    _refusal(body)  # anything but a RefusedError propagates and fails the test


@given(flat_dicts)
def test_verify_on_arbitrary_flat_documents_raises_only_refusals(fields: dict[str, str]) -> None:
    """Well-formed but arbitrary documents, even claiming success for our merchant, are refused."""
    fields = {**fields, "return_code": "SUCCESS", "mch_id": MCH_ID, "appid": APP_ID}
    assert _refusal(render_flat_xml(fields)) is not None


@given(
    st.sampled_from(sorted(k for k in PAY_FIELDS if k != "sign")),
    xml_text,
)
def test_any_field_change_is_refused(name: str, value: str) -> None:
    """Changing any signed field's value (or emptying it) makes the notification refused."""
    assume(PAY_FIELDS[name] != value)
    body = render_flat_xml({**PAY_FIELDS, name: value})
    refusal = _refusal(body)
    if name in ("mch_id", "appid", "return_code"):
        assert isinstance(refusal, NotificationError)
        assert refusal.reason in ("wrong_merchant", "return_code_fail")
    else:
        assert isinstance(refusal, SignatureError)


@given(st.integers(0, len(PAY_MD5_XML) - 1), st.integers(0, 255))
def test_any_single_byte_change_is_refused(position: int, byte: int) -> None:
    """Replacing any byte of a signed body is refused, unless it only changes the sign's case."""
    assume(PAY_MD5_XML[position] != byte)
    body = PAY_MD5_XML[:position] + bytes([byte]) + PAY_MD5_XML[position + 1 :]
    if _refusal(body) is not None:
        return
    fields = parse_flat_xml(body)
    assert fields["sign"] != PAY_FIELDS["sign"]
    assert {**fields, "sign": fields["sign"].upper()} == PAY_FIELDS


@given(st.binary(min_size=1, max_size=256))
def test_random_req_info_is_refused_as_bad_req_info(ciphertext: bytes) -> None:
    """A refund result whose req_info is not our encryption is refused as bad_req_info."""
    body = render_flat_xml(
        {
            "return_code": "SUCCESS",
            "appid": APP_ID,
            "mch_id": MCH_ID,
            "req_info": base64.b64encode(ciphertext).decode(),
        }
    )
    refusal = _refusal(body)
    assert isinstance(refusal, NotificationError)
    assert refusal.reason == "bad_req_info"


@given(
    order_id=xml_text.filter(lambda s: s != ""),
    amount=st.integers(0, 10**12),
    sign_type=st.sampled_from(["MD5", "HMAC-SHA256"]),
)
def test_simulated_payments_round_trip(order_id: str, amount: int, sign_type: str) -> None:
    """Any simulated payment verifies back to its order id and amount."""
    simulator = WechatPayV2Simulator(
        mch_id=MCH_ID, app_id=APP_ID, api_key=API_KEY, sign_type=sign_type
    )
    callback = simulator.build(
        order_id=order_id, amount=amount, event="paid", refund_amount=None, now=NOW
    )
    provider = WechatPayV2Provider(
        channel="c", mch_id=MCH_ID, app_id=APP_ID, api_key=API_KEY, sign_type=sign_type
    )
    (draft,) = provider.verify(_raw(callback.body)).events
    assert (draft.type, draft.order_id, draft.amount) == (EventType.ORDER_PAID, order_id, amount)


@given(
    order_id=xml_text.filter(lambda s: s != ""),
    amounts=st.tuples(st.integers(1, 10**12), st.integers(1, 10**12)).map(sorted),
)
def test_simulated_refunds_round_trip(order_id: str, amounts: list[int]) -> None:
    """Any simulated refund decrypts back to its order id, amount and refund amount."""
    refund, amount = amounts
    simulator = WechatPayV2Simulator(mch_id=MCH_ID, app_id=APP_ID, api_key=API_KEY)
    callback = simulator.build(
        order_id=order_id, amount=amount, event="refund", refund_amount=refund, now=NOW
    )
    (draft,) = PROVIDER.verify(_raw(callback.body)).events
    assert draft.type is EventType.REFUND_SUCCEEDED
    assert (draft.order_id, draft.amount, draft.refund_amount) == (order_id, amount, refund)
