"""The WeChat Pay v2 (XML) provider: vectors, negative table, refunds, replies and simulator."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from wechatpy.crypto import WeChatRefundCrypto  # type: ignore[import-untyped]
from wechatpy.pay.utils import (  # type: ignore[import-untyped]
    calculate_signature,
    calculate_signature_hmac,
    dict_to_xml,
)

from payhook.errors import (
    ConfigurationError,
    NotificationError,
    RefusedError,
    SignatureError,
)
from payhook.events import BEIJING, EventType
from payhook.providers import Outcome, Provider, RawNotification, Simulator
from payhook.providers._safe_xml import parse_flat_xml, render_flat_xml
from payhook.providers.wechatpay_v2 import (
    WechatPayV2Provider,
    WechatPayV2Simulator,
    encrypt_req_info,
    wechat_v2_sign,
)

# --- vectors (copied from shared/vectors/providers.json; see test_vectors_match_shared_file) ---

# confirmed.wx_v2_official_sign_example: WeChat Pay v2 docs 安全规范 (chapter=4_3).
OFFICIAL_PARAMS = {
    "appid": "wxd930ea5d5a258f4f",
    "mch_id": "10000100",
    "device_info": "1000",
    "body": "test",
    "nonce_str": "ibuaiVcKdpRxkhJA",
}
OFFICIAL_KEY = "192006250b4c09247ec02edce69f6a2d"
OFFICIAL_MD5 = "9A0A8659F005D6984697E2CA0A9CF3B7"
OFFICIAL_HMAC = "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6"

API_KEY = OFFICIAL_KEY
MCH_ID = "10000100"
APP_ID = "wxd930ea5d5a258f4f"

_PAY_FIELDS_XML = (
    b"<appid><![CDATA[wxd930ea5d5a258f4f]]></appid><bank_type><![CDATA[OTHERS]]></bank_type>"
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
)
# synthetic.wechat_v2_pay_md5 / synthetic.wechat_v2_pay_hmac_sha256
PAY_MD5_XML = (
    b"<xml>" + _PAY_FIELDS_XML + b"<sign><![CDATA[EDE5389C3A018A2FA0744E8E5D4FAD89]]></sign></xml>"
)
PAY_HMAC_XML = (
    b"<xml>" + _PAY_FIELDS_XML + b"<sign_type><![CDATA[HMAC-SHA256]]></sign_type>"
    b"<sign><![CDATA[1B19974745F2B6F8062CAD409F5C7C6FED4B9A8E7281DBB111D658BD10C3DD5A]]></sign>"
    b"</xml>"
)
PAY_TRANSACTION_ID = "4200002024052098765432109876"

# confirmed.wx_v2_refund_req_info_wechatpy (wechatpy tests/test_crypto.py)
WECHATPY_KEY = "OF4Ne3znh8KqL0V4NqmALQa0uXMYKcEk"
WECHATPY_REQ_INFO = (
    "51A27s9LxbaEv52nBOrqa0FCs3HVIM31Wc3BpNqSCP5MQlS8HL1Vl7mZ21043B7PZy7adtOZGtZv44lGl0U8JXlV"
    "FL4Ltxsw6+pACjZBB0Qi1LUDjFlP2IyTxYX4eC57kxnCphDdIyRkU67kOWW/HN/efggTUlaPJkoL5kVe9Y1MZF55"
    "IHR4lwGI7WtVLtxATX1tkAVZF+/ri0WlPXo9+GkqeB2/id6Ozw09Tqp8C/TKbmKBpRhTCRU2TzfQoLa6fjbgETFH"
    "J795aEMyUZPQYbbsz6U9Rj9lUzEh8+Oc8KYTXa9zVk+nnFr82+yjffb3d36ylTe0y/VmYf90rf9cbiJQdM00zZ8Q"
    "a99SlMTs2wjOO4Mi4Btlg1PebsLF8TkqbSZkRJDGs61UunUB8Km1b/VeBxXuv4D3H7DiVZ9Fj7lq2j07zFDpxxlh"
    "hen7kZvMWWO3lrfFpA9c4eFOqfF9SxcU9nBmHfDD1g/dsrMl6+a71xQHJ/gn80fZOefUBv92ggqutsuJ4gd4Oqkm"
    "O0XUs8e4XQyLpra+LvpmahsU5lBIZuQcMq3FHrqe8hXTfp3+3qym2wGfvPI75jx41VZwmBQy9izB1Id+A5lUeXC5"
    "QJy+ryDu/dWkhB+aMjkElaI/Epmcc/IEPaI73W6Hc58hNednOM536rPnn+GDc98PdGszpLTjmaZSu8dtqwPaym66"
    "yRqFQowzFoBbooik57iHUFBCeWya7XcXYL9WKhRF3uIZM+Kfv9/Zs2pF+w9/EJpltuzPpT1GP2VTMSHz45zwphFl"
    "S2lX8wHyZ+k9n2dptzQqpOCPedt5iQAmAe1oNQMxNdPDH9g68x9UzWD1kfK/dPO+3NPAh0XG+io4x15fIknNf7JL"
    "jpAuWicMMzCdwC4hhqeYOzQ+pC9f2xJXi5YViNKIZY69oO8eoHYRitLZrHLgx3oB2zimmqX6BI+DMklKAzAqqgGm"
    "bFxcVTvxZB6cMCx+H7TTWXnjAG+6A3SrCcxg0l5+UB93pkAYR7SVJ+VaZoiBqlqnZvb7IM17n9XaaFntlzvbbFCI"
    "a7OnOQb5Lvw="
)
# confirmed.wx_v2_refund_req_info_gopay (gopay wechat/notify_test.go)
GOPAY_KEY = "ziR0QKsTUfMOuochC9RfCdmfHECorQAP"
GOPAY_REQ_INFO = (
    "YYwp8C48th0wnQzTqeI+41pflB26v+smFj9z6h9RPBgxTyZyxc+4YNEz7QEgZNWj/6rIb2MfyWMZmCc41CfjKSss"
    "oSZPXxOhUayb6KvNSZ1p6frOX1PDWzhyruXK7ouNND+gDsG4yZ0XXzsL4/pYNwLLba/71QrnkJ/BHcByk4EXnglj"
    "u5DLup9pJQSnTxjomI9Rxu57m9jg5lLQFxMWXyeASZJNvof0ulnHlWJswS4OxKOkmW7VEyKyLGV6npoOm03Qsx2w"
    "kRxLsSa9gPpg4hdaReeUqh1FMbm7aWjyrVYT/MEZWg98p4GomEIYvz34XfDncTezX4bf/ZiSLXt79aE1/YTZrYfy"
    "mXeCrGjlbe0rg/T2ezJHAC870u2vsVbY1/KcE2A443N+DEnAziXlBQ1AeWq3Rqk/O6/TMM0lomzgctAOiAMg+bh5"
    "+Gu1ubA9O3E+vehULydD5qx2o6i3+qA9ORbH415NyRrQdeFq5vmCiRikp5xYptWiGZA0tkoaLKMPQ4ndE5gWHqiB"
    "bGPfULZWokI+QjjhhBmwgbd6J0VqpRorwOuzC/BHdkP72DCdNcm7IDUpggnzBIy0+seWIkcHEryKjge3YDHpJeQC"
    "qrAH0CgxXHDt1xtbQbST1VqFyuhPhUjDXMXrknrGPN/oE1t0rLRq+78cI+k8xe5E6seeUXQsEe8r3358mpcDYSmX"
    "WSXVZxK6er9EF98APqHwcndyEJD2YyCh/mMVhERuX+7kjlRXSiNUWa/Cv/XAKFQuvUYA5ea2eYWtPRHa4DpyuF1S"
    "NsaqVKfgqKXZrJHfAgslVpSVqUpX4zkKszHF4kwMZO3M7J1P94Mxa7Tm9mTOJePOoHPXeEB+m9rX6pSfoi3mJDQ5"
    "inJ+Vc4gOkg/Wd/lqiy6TTyP/dHDN6/v+AuJx5AXBo/2NDD3fWhHjkqEKIuARr2ClZt9ZRQO4HkXdZo7CN06sGCH"
    "k48Tg8PmxnxKcMZm7Aoquv5yMIM2gWSWIRJhwJ8cUpafIHc+GesDlbF6Zbt+/KXkafJAQq2RklEN+WvZ/zFz113E"
    "PgWPjp16TwBoziq96MMekvWKY/vdhjol8VFtGH9F61Oy1Xwf6DJtPw=="
)
# synthetic.wechat_v2_refund_req_info (encrypted under the official example key)
SYNTHETIC_REQ_INFO = (
    "WBzGpzQuNpcFxIlFjUUD9FS4tLqEQ5H8bdh90ek2njMlqCiTheyvt8zkq1iX4OJ8xyIJDKwsKMcMuxrZm5SNh/oJ"
    "Nlm+UsOmQERpH5oyCFu8AUQTByTbhqdQU3hlZvMuxv51sjtysle/2RedimnUU+UpIg9KQCr+iQCWqs5Wzdm966U2"
    "NudilAh8wIcWY9PJaiXG0Q3/HbqiBMKKvtein3NqdLP64eV1o8zg28aOpwOb0dneN/rkr8jDQGJir+aCGoGsk7Vo"
    "JHd3evYG2qsLiSNaSMH7Tg+cJiDq2u6PNy2HTGW4XoiPdd/taknCYdKCL2b0VGsgsiHlFQYefpYT0r21zv/FKlsg"
    "uGgHUdtaXnFb+rEwJx5AJJNVxMLK5Rx4XrJyAp2Z7hTVlHwu7qzLjzaWOiHiZK9jS4DNYVC2fAHSvdXRq+30JiUt"
    "z4nnP6v04+rSQrp8zJtZMlUqfVopx9HoSQA24Pt3JO29S+Ki+RQvBArppRc+wujc8DzgF9TV0FRFAg15lIQ1+F2V"
    "mkpCOdgg2gP3L41Kne/pTgVb81kezGUYemCvDjwKzTptnOmLQKi4bbdI2yGM0kwxhcJTE4UhCitMNBOwwvCl9Cl3"
    "QlxwbxlMa4hxuRFuNk/YtfLSaq0HcdUFpqA+pdyZvN+KyyoO/ljXkxINgU9bQWDp0JFowBfuiUOzAVc/xJLvQ2Zk"
    "0nxZSDI1S+H/2omLX16fv/5YNEr5n+Rvc5rBHMmRD4N1w9I+UzwKSro49Yl/JrJK2ALCJdMg0hkNz464rtRWVAMv"
    "MJi3WBVf6qM50wLS/QhVlWIX5AsD7hhpeJTuQHsKCilC0kckUnhKuTVKNxHzhQQgQCZmeEGYCoSe180E2MBoEz3D"
    "KwGQvUY0dXd4Cm5NzalY53aknjOtpFCK8ivJ9msuHSLbdT07BhyBTGWpWxsezDTGdw62tmPBIUtkUoSne3USSsKG"
    "UzWn7tZ2fj5MgqzzV/GCWh7WScwIS7/ap8fCFAdNuALtg/TU/WA3vmq6DKT0Sf7UtjOQC98Q/5a8Z+lBrlkMHiq1"
    "4Dmt/DMtLqI="
)

# (id, API key, req_info, fields the decrypted <root> must hold)
REFUND_VECTORS: list[tuple[str, str, str, dict[str, str]]] = [
    (
        "wechatpy",
        WECHATPY_KEY,
        WECHATPY_REQ_INFO,
        {
            "out_refund_no": "1234",
            "out_trade_no": "2020010418301551404339261814",
            "transaction_id": "4200000483202001042069747825",
            "refund_id": "50300103182020010413419046597",
            "refund_fee": "1",
            "total_fee": "1",
            "refund_status": "SUCCESS",
            "success_time": "2020-01-04 18:34:24",
            "refund_recv_accout": "招商银行信用卡8915",
        },
    ),
    (
        "gopay",
        GOPAY_KEY,
        GOPAY_REQ_INFO,
        {
            "out_refund_no": "50fd012ed1b311e7af7800163e32c503",
            "out_trade_no": "4893e76d8c8b434cb64e9cd536338e33",
            "transaction_id": "4200000015201711256947025404",
            "refund_id": "50000404922017112502468056157",
            "refund_fee": "6",
            "total_fee": "6",
            "refund_status": "SUCCESS",
            "success_time": "2017-11-25 15:36:17",
        },
    ),
    (
        "synthetic",
        API_KEY,
        SYNTHETIC_REQ_INFO,
        {
            "out_refund_no": "RF-20240521-0002",
            "out_trade_no": "PAYHOOK-20240520-0003",
            "transaction_id": PAY_TRANSACTION_ID,
            "refund_id": "50000000382019052709732678859",
            "refund_fee": "1000",
            "total_fee": "8888",
            "refund_status": "SUCCESS",
            "success_time": "2024-05-21 09:00:01",
        },
    ),
]

NOW = datetime(2026, 11, 28, 1, 2, 3, tzinfo=UTC)
SHARED_VECTORS = Path(__file__).resolve().parents[4] / "shared" / "vectors" / "providers.json"


# --- helpers ---


def _provider(
    *,
    mch_id: str = MCH_ID,
    app_id: str | None = APP_ID,
    api_key: str = API_KEY,
    sign_type: str = "MD5",
) -> WechatPayV2Provider:
    return WechatPayV2Provider(
        channel="wechat-legacy", mch_id=mch_id, app_id=app_id, api_key=api_key, sign_type=sign_type
    )


def _raw(body: bytes) -> RawNotification:
    return RawNotification(
        channel="wechat-legacy", headers={"content-type": "text/xml"}, body=body, received_at=NOW
    )


def _pay_fields() -> dict[str, str]:
    fields = parse_flat_xml(PAY_MD5_XML)
    del fields["sign"]
    return fields


def _signed(
    fields: dict[str, str], *, sign_type: str = "MD5", key: str = API_KEY, with_type: bool = True
) -> bytes:
    fields = dict(fields)
    if with_type and sign_type != "MD5":
        fields["sign_type"] = sign_type
    fields["sign"] = wechat_v2_sign(fields, key, sign_type)
    return render_flat_xml(fields)


def _refund_body(
    req_info: str, *, mch_id: str = MCH_ID, appid: str = APP_ID, return_code: str = "SUCCESS"
) -> bytes:
    return render_flat_xml(
        {
            "return_code": return_code,
            "appid": appid,
            "mch_id": mch_id,
            "nonce_str": "TeqClE3i0mvn3DrK",
            "req_info": req_info,
        }
    )


def _refund_req_info(**changes: str) -> str:
    inner = {
        "out_refund_no": "RF-1",
        "out_trade_no": "ORDER-1",
        "refund_fee": "100",
        "refund_id": "50000000382019052709732678859",
        "refund_status": "SUCCESS",
        "total_fee": "8888",
        "transaction_id": PAY_TRANSACTION_ID,
    }
    inner.update(changes)
    inner = {k: v for k, v in inner.items() if v != "<absent>"}
    return encrypt_req_info(render_flat_xml(inner, root="root"), API_KEY)


# --- vectors ---


def test_vectors_match_shared_file() -> None:
    """The vectors copied into this module are the ones in shared/vectors/providers.json."""
    if not SHARED_VECTORS.exists():
        pytest.skip("shared/vectors/providers.json is not next to this checkout")
    data = json.loads(SHARED_VECTORS.read_text(encoding="utf-8"))
    example = data["confirmed"]["wx_v2_official_sign_example"]
    assert (example["params"], example["key"]) == (OFFICIAL_PARAMS, OFFICIAL_KEY)
    assert (example["md5_sign"], example["hmac_sha256_sign"]) == (OFFICIAL_MD5, OFFICIAL_HMAC)
    assert data["synthetic"]["wechat_v2_pay_md5"]["xml"].encode() == PAY_MD5_XML
    assert data["synthetic"]["wechat_v2_pay_hmac_sha256"]["xml"].encode() == PAY_HMAC_XML
    sources = {
        "wechatpy": data["confirmed"]["wx_v2_refund_req_info_wechatpy"],
        "gopay": data["confirmed"]["wx_v2_refund_req_info_gopay"],
        "synthetic": data["synthetic"]["wechat_v2_refund_req_info"],
    }
    for name, key, req_info, _ in REFUND_VECTORS:
        assert (sources[name]["api_key"], sources[name]["req_info"]) == (key, req_info)


@pytest.mark.parametrize(
    ("sign_type", "expected"),
    [("MD5", OFFICIAL_MD5), ("HMAC-SHA256", OFFICIAL_HMAC)],
    ids=["md5", "hmac_sha256"],
)
def test_official_sign_example(sign_type: str, expected: str) -> None:
    """The documented example signs to the documented MD5 and HMAC-SHA256 values."""
    assert wechat_v2_sign(OFFICIAL_PARAMS, OFFICIAL_KEY, sign_type) == expected


def test_sign_skips_sign_and_empty_values_but_signs_sign_type() -> None:
    """``sign`` and empty fields are left out; ``sign_type`` is signed like any field."""
    padded = {**OFFICIAL_PARAMS, "sign": "whatever", "attach": ""}
    assert wechat_v2_sign(padded, OFFICIAL_KEY) == OFFICIAL_MD5
    typed = {**OFFICIAL_PARAMS, "sign_type": "MD5"}
    assert wechat_v2_sign(typed, OFFICIAL_KEY) != OFFICIAL_MD5


def test_sign_refuses_unknown_algorithm() -> None:
    """An unknown sign_type is a programming error for the caller."""
    with pytest.raises(ValueError, match="sign_type"):
        wechat_v2_sign(OFFICIAL_PARAMS, OFFICIAL_KEY, "SHA1")


@pytest.mark.parametrize(
    ("body", "sign_type"),
    [(PAY_MD5_XML, "MD5"), (PAY_HMAC_XML, "HMAC-SHA256")],
    ids=["md5", "hmac_sha256"],
)
def test_synthetic_payment_vectors_become_order_paid(body: bytes, sign_type: str) -> None:
    """The signed synthetic payment results verify and become payment.order.paid."""
    parsed = _provider(sign_type=sign_type).verify(_raw(body))
    assert parsed.notification_id is None
    assert parsed.order_id == "PAYHOOK-20240520-0003"
    (draft,) = parsed.events
    assert draft.type is EventType.ORDER_PAID
    assert draft.key == f"wechatpay:{MCH_ID}:{PAY_TRANSACTION_ID}:payment.order.paid"
    assert draft.provider == "wechatpay"
    assert draft.merchant_id == MCH_ID
    assert draft.order_id == "PAYHOOK-20240520-0003"
    assert draft.transaction_id == PAY_TRANSACTION_ID
    assert draft.amount == 8888
    assert draft.currency == "CNY"
    assert draft.paid_at == datetime(2024, 5, 20, 13, 14, 5, tzinfo=BEIJING)
    assert draft.paid_at.utcoffset() == timedelta(hours=8)
    assert draft.payer_id == "oUpF8uMEb4qRXf22hE3X68TekukE"
    assert draft.refund_id is None
    assert draft.raw == {k: v for k, v in parse_flat_xml(body).items() if k != "sign"}


@pytest.mark.parametrize(
    ("name", "api_key", "req_info", "expected"), REFUND_VECTORS, ids=[v[0] for v in REFUND_VECTORS]
)
def test_refund_vectors_become_refund_succeeded(
    name: str, api_key: str, req_info: str, expected: dict[str, str]
) -> None:
    """Each published req_info decrypts and becomes payment.refund.succeeded."""
    provider = _provider(api_key=api_key)
    parsed = provider.verify(_raw(_refund_body(req_info)))
    (draft,) = parsed.events
    assert draft.type is EventType.REFUND_SUCCEEDED
    assert draft.key == f"wechatpay:{MCH_ID}:{expected['refund_id']}:payment.refund.succeeded"
    assert draft.refund_id == expected["out_refund_no"]
    assert draft.refund_amount == int(expected["refund_fee"])
    assert draft.amount == int(expected["total_fee"])
    assert draft.order_id == parsed.order_id == expected["out_trade_no"]
    assert draft.transaction_id == expected["transaction_id"]
    assert draft.merchant_id == MCH_ID
    assert draft.paid_at is None
    assert draft.status is None
    info = draft.raw["req_info"]
    assert isinstance(info, dict)
    assert {k: info[k] for k in expected} == expected
    assert draft.raw["mch_id"] == MCH_ID


# --- payment results ---


def test_sign_type_absent_is_the_channels_sign_type() -> None:
    """Without sign_type, the sign is checked with the channel's algorithm (WxJava#1633)."""
    body = _signed(_pay_fields(), sign_type="HMAC-SHA256", with_type=False)
    assert "sign_type" not in parse_flat_xml(body)
    provider = _provider(sign_type="HMAC-SHA256")
    assert provider.verify(_raw(body)).events[0].type is EventType.ORDER_PAID
    with pytest.raises(SignatureError):
        _provider().verify(_raw(body))


def test_lowercase_sign_is_accepted() -> None:
    """The sign is compared upper-cased."""
    body = PAY_MD5_XML.replace(
        b"EDE5389C3A018A2FA0744E8E5D4FAD89", b"ede5389c3a018a2fa0744e8e5d4fad89"
    )
    assert _provider().verify(_raw(body)).events[0].type is EventType.ORDER_PAID


def test_bare_numbers_and_whitespace_verify() -> None:
    """WeChat's bare numbers (``<total_fee>1</total_fee>``) and pretty-printing verify."""
    fields = _pay_fields()
    fields["sign"] = wechat_v2_sign(fields, API_KEY)
    body = dict_to_xml(fields).encode()  # wechatpy writes digits bare, one field a line
    assert b"<total_fee>8888</total_fee>" in body
    assert _provider().verify(_raw(body)).events[0].amount == 8888


def test_app_id_check_is_optional() -> None:
    """Without a configured app_id, appid is not checked."""
    fields = {**_pay_fields(), "appid": "wx_other"}
    draft = _provider(app_id=None).verify(_raw(_signed(fields))).events[0]
    assert draft.type is EventType.ORDER_PAID


def test_paid_optional_fields() -> None:
    """sub_openid stands in for openid, fee_type defaults to CNY and time_end may be absent."""
    fields = _pay_fields()
    del fields["openid"], fields["fee_type"], fields["time_end"]
    fields["sub_openid"] = "oSub"
    draft = _provider().verify(_raw(_signed(fields))).events[0]
    assert (draft.payer_id, draft.currency, draft.paid_at) == ("oSub", "CNY", None)


def _failed_fields(**changes: str) -> dict[str, str]:
    fields = _pay_fields()
    fields.update(result_code="FAIL", err_code="NOTENOUGH", err_code_des="余额不足")
    fields.update(changes)
    return {k: v for k, v in fields.items() if v != "<absent>"}


def test_result_fail_becomes_order_failed() -> None:
    """result_code=FAIL becomes payment.order.failed keyed by the payment and the error code."""
    draft = _provider().verify(_raw(_signed(_failed_fields()))).events[0]
    assert draft.type is EventType.ORDER_FAILED
    assert draft.key == (f"wechatpay:{MCH_ID}:{PAY_TRANSACTION_ID}:payment.order.failed:NOTENOUGH")
    assert (draft.order_id, draft.transaction_id, draft.amount, draft.paid_at) == (
        "PAYHOOK-20240520-0003",
        PAY_TRANSACTION_ID,
        8888,
        None,
    )


def test_order_failed_key_ignores_the_nonce() -> None:
    """The same failure re-sent with another nonce_str is the same event."""
    provider = _provider()
    first = provider.verify(_raw(_signed(_failed_fields(nonce_str="a1")))).events[0]
    again = provider.verify(_raw(_signed(_failed_fields(nonce_str="b2")))).events[0]
    assert first.key == again.key


def test_order_failed_without_transaction_id_uses_out_trade_no() -> None:
    """A failure without transaction_id is keyed by out_trade_no; amount may be absent."""
    fields = _failed_fields(transaction_id="<absent>", total_fee="<absent>", err_code="<absent>")
    draft = _provider().verify(_raw(_signed(fields))).events[0]
    assert draft.key == f"wechatpay:{MCH_ID}:PAYHOOK-20240520-0003:payment.order.failed:FAIL"
    assert (draft.transaction_id, draft.amount) == (None, None)


def test_unknown_result_code_is_passed_on() -> None:
    """An authentic result of an unknown kind becomes payment.notification.received."""
    fields = {**_pay_fields(), "result_code": "PENDING"}
    draft = _provider().verify(_raw(_signed(fields))).events[0]
    assert draft.type is EventType.NOTIFICATION_RECEIVED
    assert draft.provider_event_type == "PAY.PENDING"
    assert draft.key == (
        f"wechatpay:{MCH_ID}:{PAY_TRANSACTION_ID}:payment.notification.received:PAY.PENDING"
    )


# --- refund results ---


@pytest.mark.parametrize(
    ("refund_status", "status"),
    [("CHANGE", "abnormal"), ("REFUNDCLOSE", "closed")],
    ids=["change", "refundclose"],
)
def test_refund_failures(refund_status: str, status: str) -> None:
    """CHANGE and REFUNDCLOSE become payment.refund.failed with status abnormal / closed."""
    body = _refund_body(_refund_req_info(refund_status=refund_status))
    draft = _provider().verify(_raw(body)).events[0]
    assert draft.type is EventType.REFUND_FAILED
    assert draft.status == status
    assert draft.key == (
        f"wechatpay:{MCH_ID}:50000000382019052709732678859:payment.refund.failed:{status}"
    )
    assert (draft.refund_id, draft.refund_amount, draft.amount) == ("RF-1", 100, 8888)


def test_refund_key_falls_back_to_out_refund_no() -> None:
    """Without WeChat's refund_id the event key uses out_refund_no."""
    body = _refund_body(_refund_req_info(refund_id="<absent>"))
    draft = _provider().verify(_raw(body)).events[0]
    assert draft.key == f"wechatpay:{MCH_ID}:RF-1:payment.refund.succeeded"


def test_unknown_refund_status_is_passed_on() -> None:
    """A decryptable refund result with an unknown status becomes notification.received."""
    body = _refund_body(_refund_req_info(refund_status="PROCESSING"))
    draft = _provider().verify(_raw(body)).events[0]
    assert draft.type is EventType.NOTIFICATION_RECEIVED
    assert draft.provider_event_type == "REFUND.PROCESSING"
    assert draft.order_id == "ORDER-1"


def test_refund_req_info_with_line_breaks_is_accepted() -> None:
    """req_info wrapped over several lines (as some gateways do) still decrypts."""
    wrapped = "\n".join(
        SYNTHETIC_REQ_INFO[i : i + 76] for i in range(0, len(SYNTHETIC_REQ_INFO), 76)
    )
    draft = _provider().verify(_raw(_refund_body(wrapped))).events[0]
    assert draft.type is EventType.REFUND_SUCCEEDED


# --- negative table ---


def _billion_laughs() -> bytes:
    entities = "".join(f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, 10))
    return (
        f'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY lol0 "lol">{entities}]>'
        "<xml><return_code>&lol9;</return_code></xml>"
    ).encode()


def _not_blocks() -> str:
    return base64.b64encode(b"x" * 20).decode()


def _inner(document: bytes) -> str:
    return encrypt_req_info(document, API_KEY)


NEGATIVE: list[tuple[str, bytes, dict[str, Any], type[RefusedError], str]] = [
    (
        "tampered_field",
        PAY_MD5_XML.replace(b"<![CDATA[8888]]></total_fee>", b"<![CDATA[1]]></total_fee>"),
        {},
        SignatureError,
        "bad_signature",
    ),
    ("wrong_key", PAY_MD5_XML, {"api_key": "0" * 32}, SignatureError, "bad_signature"),
    (
        "wrong_key_hmac",
        PAY_HMAC_XML,
        {"api_key": "0" * 32, "sign_type": "HMAC-SHA256"},
        SignatureError,
        "bad_signature",
    ),
    (
        "missing_sign",
        render_flat_xml(_pay_fields()),
        {},
        SignatureError,
        "missing_signature",
    ),
    (
        "empty_sign",
        render_flat_xml({**_pay_fields(), "sign": ""}),
        {},
        SignatureError,
        "missing_signature",
    ),
    (
        "sign_of_odd_length",
        render_flat_xml({**_pay_fields(), "sign": "AB" * 20}),
        {},
        SignatureError,
        "bad_signature",
    ),
    (
        "unknown_sign_type",
        _signed(_pay_fields()).replace(b"<sign>", b"<sign_type>SHA1</sign_type><sign>"),
        {},
        SignatureError,
        "bad_signature",
    ),
    (
        "md5_sign_labelled_hmac",
        render_flat_xml(
            {
                **_pay_fields(),
                "sign_type": "HMAC-SHA256",
                "sign": wechat_v2_sign(_pay_fields(), API_KEY),
            }
        ),
        {"sign_type": "HMAC-SHA256"},
        SignatureError,
        "bad_signature",
    ),
    (
        "wrong_mch_id_channel",
        PAY_MD5_XML,
        {"mch_id": "1900000002"},
        NotificationError,
        "wrong_merchant",
    ),
    (
        "wrong_mch_id_signed",
        _signed({**_pay_fields(), "mch_id": "1900000002"}),
        {},
        NotificationError,
        "wrong_merchant",
    ),
    (
        "missing_mch_id",
        _signed({k: v for k, v in _pay_fields().items() if k != "mch_id"}),
        {},
        NotificationError,
        "wrong_merchant",
    ),
    (
        "wrong_appid",
        PAY_MD5_XML,
        {"app_id": "wx0000000000000002"},
        NotificationError,
        "wrong_merchant",
    ),
    (
        "return_code_fail",
        render_flat_xml({"return_code": "FAIL", "return_msg": "签名失败"}),
        {},
        NotificationError,
        "return_code_fail",
    ),
    (
        "missing_transaction_id",
        _signed({k: v for k, v in _pay_fields().items() if k != "transaction_id"}),
        {},
        NotificationError,
        "missing_field",
    ),
    (
        "bad_total_fee",
        _signed({**_pay_fields(), "total_fee": "88.88"}),
        {},
        NotificationError,
        "bad_amount",
    ),
    (
        "bad_time_end",
        _signed({**_pay_fields(), "time_end": "yesterday"}),
        {},
        NotificationError,
        "bad_time",
    ),
    ("empty_body", b"", {}, NotificationError, "bad_xml"),
    (
        "doctype_local_file",
        b'<!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]><xml><a>&x;</a></xml>',
        {},
        NotificationError,
        "bad_xml",
    ),
    (
        "entity_bomb",
        _billion_laughs(),
        {},
        NotificationError,
        "bad_xml",
    ),
    (
        "deep_nesting",
        b"<xml>" + b"<a>" * 10000 + b"</a>" * 10000 + b"</xml>",
        {},
        NotificationError,
        "bad_xml",
    ),
    (
        "invalid_utf8",
        PAY_MD5_XML.replace(b"OTHERS", b"OTH\xc3\x28RS"),
        {},
        NotificationError,
        "bad_xml",
    ),
    ("not_xml", b"return_code=SUCCESS&mch_id=10000100", {}, NotificationError, "bad_xml"),
    ("json", b'{"return_code":"SUCCESS"}', {}, NotificationError, "bad_xml"),
    ("wrong_root", PAY_MD5_XML.replace(b"xml>", b"root>"), {}, NotificationError, "bad_xml"),
    (
        "duplicate_field",
        PAY_MD5_XML.replace(b"</xml>", b"<mch_id>1</mch_id></xml>"),
        {},
        NotificationError,
        "bad_xml",
    ),
    (
        "undecryptable_req_info",
        _refund_body(base64.b64encode(bytes(range(64))).decode()),
        {},
        NotificationError,
        "bad_req_info",
    ),
    ("req_info_wrong_key", _refund_body(WECHATPY_REQ_INFO), {}, NotificationError, "bad_req_info"),
    (
        "req_info_not_base64",
        _refund_body("not base64 at all!"),
        {},
        NotificationError,
        "bad_req_info",
    ),
    ("req_info_not_blocks", _refund_body(_not_blocks()), {}, NotificationError, "bad_req_info"),
    ("req_info_empty", _refund_body(""), {}, NotificationError, "bad_req_info"),
    ("req_info_plain_text", _refund_body(_inner(b"hello")), {}, NotificationError, "bad_req_info"),
    (
        "req_info_wrong_inner_root",
        _refund_body(_inner(b"<xml><refund_status>SUCCESS</refund_status></xml>")),
        {},
        NotificationError,
        "bad_req_info",
    ),
    (
        "req_info_inner_doctype",
        _refund_body(_inner(b'<!DOCTYPE root [<!ENTITY x SYSTEM "file:///etc/passwd">]><root/>')),
        {},
        NotificationError,
        "bad_req_info",
    ),
    (
        "refund_wrong_mch_id",
        _refund_body(SYNTHETIC_REQ_INFO, mch_id="1"),
        {},
        NotificationError,
        "wrong_merchant",
    ),
    (
        "refund_wrong_appid",
        _refund_body(SYNTHETIC_REQ_INFO, appid="wx1"),
        {},
        NotificationError,
        "wrong_merchant",
    ),
    (
        "refund_return_code_fail",
        _refund_body(SYNTHETIC_REQ_INFO, return_code="FAIL"),
        {},
        NotificationError,
        "return_code_fail",
    ),
    (
        "refund_missing_refund_fee",
        _refund_body(_refund_req_info(refund_fee="<absent>")),
        {},
        NotificationError,
        "missing_field",
    ),
    (
        "refund_bad_refund_fee",
        _refund_body(_refund_req_info(refund_fee="-1")),
        {},
        NotificationError,
        "bad_amount",
    ),
]


@pytest.mark.parametrize(
    ("body", "provider_kwargs", "error", "reason"),
    [case[1:] for case in NEGATIVE],
    ids=[case[0] for case in NEGATIVE],
)
def test_negative_table(
    body: bytes, provider_kwargs: dict[str, Any], error: type[RefusedError], reason: str
) -> None:
    """Each malformed, forged or foreign callback is refused with its class and reason."""
    with pytest.raises(error) as info:
        _provider(**provider_kwargs).verify(_raw(body))
    assert info.value.reason == reason


def test_refusals_never_leak_the_key() -> None:
    """No refusal message carries the API key or the derived refund key."""
    messages = []
    for _, body, provider_kwargs, _, _ in NEGATIVE:
        with pytest.raises(RefusedError) as info:
            _provider(**provider_kwargs).verify(_raw(body))
        messages.append(f"{info.value} {info.value!r} {info.value.__context__!r}")
    assert not any(API_KEY in text for text in messages)
    assert not any("d96eb16afdd491fa1e705096edbc2205" in text for text in messages)


@pytest.mark.parametrize("target", ["tmp_file", "etc_passwd"])
def test_external_entity_content_never_appears(tmp_path: Path, target: str) -> None:
    """A DOCTYPE pointing at a local file is refused and the file's content appears nowhere."""
    if target == "tmp_file":
        path = tmp_path / "passwd"
        path.write_text("root:x:0:0:SECRET-CONTENT-91c2:/root:/bin/bash\n")
    else:
        path = Path("/etc/passwd")
    content = path.read_text().splitlines()[0] if path.exists() else "root:x:0:0:"
    body = (
        f'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x SYSTEM "{path.as_uri()}">]>'
        "<xml><return_code>&x;</return_code></xml>"
    ).encode()
    with pytest.raises(NotificationError) as info:
        _provider().verify(_raw(body))
    assert info.value.reason == "bad_xml"
    reply = _provider().reply(Outcome.REFUSED_MALFORMED, info.value.message)
    texts = [str(info.value), repr(info.value), repr(info.value.__context__), reply.body.decode()]
    assert not any(content in text for text in texts)


def test_entity_bomb_costs_no_more_than_a_normal_callback() -> None:
    """A billion-laughs body is refused at its DOCTYPE, as fast as a real callback verifies."""
    provider, bomb = _provider(), _raw(_billion_laughs())
    start = time.perf_counter()
    for _ in range(20):
        provider.verify(_raw(PAY_MD5_XML))
    normal = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(20):
        with pytest.raises(NotificationError, match="DOCTYPE"):
            provider.verify(bomb)
    refused = time.perf_counter() - start
    # Expanding the bomb would take seconds and gigabytes; refusing it takes microseconds.
    assert refused < max(5 * normal, 0.05)


# --- configuration and secrets ---


@pytest.mark.parametrize(
    "api_key",
    ["0" * 31, "0" * 33, "", "密" * 32],
    ids=["too_short", "too_long", "empty", "non_ascii"],
)
def test_api_key_must_be_32_ascii_chars(api_key: str) -> None:
    """The provider and the simulator refuse an API key that is not 32 ASCII characters."""
    with pytest.raises(ConfigurationError, match="32"):
        _provider(api_key=api_key)
    with pytest.raises(ConfigurationError, match="32"):
        WechatPayV2Simulator(mch_id=MCH_ID, app_id=None, api_key=api_key)


def test_mch_id_is_required() -> None:
    """An empty mch_id is a configuration error."""
    with pytest.raises(ConfigurationError, match="mch_id"):
        _provider(mch_id="")


def test_reprs_hide_the_key() -> None:
    """Neither the provider's nor the simulator's repr shows the API key."""
    simulator = WechatPayV2Simulator(mch_id=MCH_ID, app_id=APP_ID, api_key=API_KEY)
    for text in (repr(_provider()), repr(simulator)):
        assert API_KEY not in text
        assert MCH_ID in text


def test_protocol_conformance() -> None:
    """The adapter and simulator are a Provider and a Simulator (checked by mypy too)."""
    provider: Provider = _provider()
    simulator: Simulator = WechatPayV2Simulator(mch_id=MCH_ID, app_id=APP_ID, api_key=API_KEY)
    assert (provider.kind, provider.channel) == ("wechatpay_v2", "wechat-legacy")
    assert simulator.build(order_id="O", amount=1, event="paid", refund_amount=None, now=NOW).body


# --- replies ---

REPLIES = [
    (Outcome.ACCEPTED, 200, "SUCCESS", "OK"),
    (Outcome.REFUSED_AUTH, 400, "FAIL", "signature verification failed"),
    (Outcome.REFUSED_MALFORMED, 400, "FAIL", "malformed notification"),
    (Outcome.KEY_MISCONFIGURED, 500, "FAIL", "merchant key misconfigured"),
    (Outcome.STORAGE_UNAVAILABLE, 500, "FAIL", "temporarily unavailable, retry later"),
]


@pytest.mark.parametrize(
    ("outcome", "status", "code", "message"), REPLIES, ids=[r[0].value for r in REPLIES]
)
def test_reply_table(outcome: Outcome, status: int, code: str, message: str) -> None:
    """Each outcome renders the XML reply, status and content type of contract §4."""
    reply = _provider().reply(outcome)
    assert reply.status == status
    assert reply.content_type == "text/xml; charset=utf-8"
    assert parse_flat_xml(reply.body) == {"return_code": code, "return_msg": message}


def test_success_reply_is_byte_exact() -> None:
    """The success reply is exactly the documented document."""
    assert _provider().reply(Outcome.ACCEPTED, "ignored").body == (
        b"<xml><return_code><![CDATA[SUCCESS]]></return_code>"
        b"<return_msg><![CDATA[OK]]></return_msg></xml>"
    )


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("bad_signature", "bad_signature"),
        ("a]]>b<c>&", "a]]>b<c>&"),
        ("ctl\x00\x1b\rchars", "ctl???chars"),
        ("x" * 500, "x" * 128),
    ],
    ids=["plain", "cdata_breakout", "control_chars", "too_long"],
)
def test_fail_reply_message_is_escaped(message: str, expected: str) -> None:
    """The FAIL message is escaped (no ``]]>`` breakout), cleaned and kept short."""
    reply = _provider().reply(Outcome.REFUSED_MALFORMED, message)
    assert reply.body.count(b"<return_msg>") == 1
    assert parse_flat_xml(reply.body) == {"return_code": "FAIL", "return_msg": expected}


# --- simulator ---


def _simulator(sign_type: str = "MD5", app_id: str | None = APP_ID) -> WechatPayV2Simulator:
    return WechatPayV2Simulator(mch_id=MCH_ID, app_id=app_id, api_key=API_KEY, sign_type=sign_type)


@pytest.mark.parametrize("sign_type", ["MD5", "HMAC-SHA256"], ids=["md5", "hmac_sha256"])
def test_simulated_payment_round_trips(sign_type: str) -> None:
    """A simulated payment verifies and becomes payment.order.paid with the given facts."""
    callback = _simulator(sign_type).build(
        order_id="ORDER-1001", amount=8888, event="paid", refund_amount=None, now=NOW
    )
    assert callback.headers == {"content-type": "text/xml"}
    fields = parse_flat_xml(callback.body)
    assert fields.get("sign_type", "MD5") == sign_type
    assert len(fields["sign"]) == (32 if sign_type == "MD5" else 64)
    draft = _provider(sign_type=sign_type).verify(_raw(callback.body)).events[0]
    assert draft.type is EventType.ORDER_PAID
    assert (draft.order_id, draft.amount) == ("ORDER-1001", 8888)
    assert draft.paid_at == NOW
    assert draft.paid_at.utcoffset() == timedelta(hours=8)


@pytest.mark.parametrize(
    ("refund_amount", "expected"), [(None, 8888), (1000, 1000)], ids=["full", "partial"]
)
def test_simulated_refund_round_trips(refund_amount: int | None, expected: int) -> None:
    """A simulated refund is encrypted, decrypts, and becomes payment.refund.succeeded."""
    simulator = _simulator(app_id=None)
    callback = simulator.build(
        order_id="ORDER-1001", amount=8888, event="refund", refund_amount=refund_amount, now=NOW
    )
    assert "sign" not in parse_flat_xml(callback.body)
    draft = _provider(app_id=None).verify(_raw(callback.body)).events[0]
    assert draft.type is EventType.REFUND_SUCCEEDED
    assert (draft.order_id, draft.amount, draft.refund_amount) == ("ORDER-1001", 8888, expected)
    paid = _provider(app_id=None).verify(
        _raw(
            simulator.build(
                order_id="ORDER-1001", amount=8888, event="paid", refund_amount=None, now=NOW
            ).body
        )
    )
    assert draft.transaction_id == paid.events[0].transaction_id


def test_simulated_payment_is_one_event_per_order() -> None:
    """Simulating the same order twice, at different times, gives the same event key."""
    simulator, provider = _simulator(), _provider()
    first = simulator.build(order_id="O-1", amount=1, event="paid", refund_amount=None, now=NOW)
    later = simulator.build(
        order_id="O-1", amount=1, event="paid", refund_amount=None, now=NOW + timedelta(hours=1)
    )
    assert first.body != later.body
    assert (
        provider.verify(_raw(first.body)).events[0].key
        == provider.verify(_raw(later.body)).events[0].key
    )
    again = simulator.build(order_id="O-1", amount=1, event="paid", refund_amount=None, now=NOW)
    assert again.body == first.body


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"event": "closed"}, "no notification when an order is closed"),
        ({"event": "shipped"}, "unknown event"),
        ({"event": "paid", "amount": -1}, "negative"),
        ({"event": "refund", "refund_amount": 9000}, "at most the order amount"),
        ({"event": "refund", "refund_amount": 0}, "positive"),
        ({"event": "paid", "now": datetime(2026, 1, 1)}, "timezone-aware"),  # noqa: DTZ001
    ],
    ids=[
        "closed",
        "unknown_event",
        "negative_amount",
        "refund_too_large",
        "zero_refund",
        "naive_now",
    ],
)
def test_simulator_refuses_what_v2_cannot_send(kwargs: dict[str, Any], match: str) -> None:
    """The simulator raises ValueError with a clear message for callbacks v2 has no form for."""
    arguments: dict[str, Any] = {
        "order_id": "O-1",
        "amount": 8888,
        "refund_amount": None,
        "now": NOW,
        **kwargs,
    }
    with pytest.raises(ValueError, match=match):
        _simulator().build(**arguments)


def test_simulator_refuses_unknown_sign_type() -> None:
    """Only MD5 and HMAC-SHA256 can be simulated."""
    with pytest.raises(ConfigurationError, match="sign_type"):
        _simulator("SHA1")


# --- interop with wechatpy (test-only oracle) ---


def test_wechatpy_signs_the_official_example_alike() -> None:
    """wechatpy's MD5 and HMAC-SHA256 signers agree with the documented example."""
    assert calculate_signature(OFFICIAL_PARAMS, OFFICIAL_KEY) == OFFICIAL_MD5
    assert calculate_signature_hmac(OFFICIAL_PARAMS, OFFICIAL_KEY) == OFFICIAL_HMAC


@pytest.mark.parametrize("sign_type", ["MD5", "HMAC-SHA256"], ids=["md5", "hmac_sha256"])
def test_wechatpy_signed_notifications_are_accepted(sign_type: str) -> None:
    """A notification signed and serialized by wechatpy verifies."""
    fields = {**_pay_fields(), "attach": "", "device_info": "WEB"}
    if sign_type == "HMAC-SHA256":
        fields["sign_type"] = sign_type
        sign = calculate_signature_hmac(fields, API_KEY)
    else:
        sign = calculate_signature(fields, API_KEY)
    body = dict_to_xml(fields, sign).encode()
    draft = _provider(sign_type=sign_type).verify(_raw(body)).events[0]
    assert draft.type is EventType.ORDER_PAID
    assert "sign" not in draft.raw
    assert draft.raw["device_info"] == "WEB"


def _wechatpy_decrypt(api_key: str, body: bytes) -> dict[str, str]:
    outer = parse_flat_xml(body)
    decrypted = WeChatRefundCrypto(api_key).decrypt_message(outer, outer["appid"], outer["mch_id"])
    return {str(k): str(v) if v is not None else "" for k, v in decrypted.items()}


@pytest.mark.parametrize(
    ("api_key", "req_info"),
    [(v[1], v[2]) for v in REFUND_VECTORS],
    ids=[v[0] for v in REFUND_VECTORS],
)
def test_wechatpy_refund_decryption_agrees(api_key: str, req_info: str) -> None:
    """wechatpy's WeChatRefundCrypto decrypts each vector to the same fields as payhook."""
    body = _refund_body(req_info)
    draft = _provider(api_key=api_key).verify(_raw(body)).events[0]
    assert draft.raw["req_info"] == _wechatpy_decrypt(api_key, body)


def test_wechatpy_decrypts_simulated_refunds() -> None:
    """wechatpy decrypts payhook's simulated req_info to what payhook decrypts."""
    callback = _simulator().build(
        order_id="O-9", amount=500, event="refund", refund_amount=120, now=NOW
    )
    draft = _provider().verify(_raw(callback.body)).events[0]
    assert draft.raw["req_info"] == _wechatpy_decrypt(API_KEY, callback.body)
    assert draft.raw["req_info"]["refund_fee"] == "120"
