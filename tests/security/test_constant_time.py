"""Secrets and signatures are compared in constant time, everywhere in ``src/``.

Two guards: a scan of the source for ``==``/``!=``/``in`` on anything named like a secret
(signature, sign, secret, token, hmac, mac, digest, password, key material), and spies showing
that each verifier's comparison really goes through ``hmac.compare_digest`` or
``cryptography``'s ``verify`` (which compares in constant time inside OpenSSL).
"""

from __future__ import annotations

import ast
import hmac
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from payhook.errors import SignatureError
from payhook.providers import RawNotification
from payhook.providers.wechatpay_v2 import WechatPayV2Provider, wechat_v2_sign

SRC = Path(__file__).resolve().parents[2] / "src" / "payhook"

# Identifier parts that mark a value as secret or as a signature.
_SENSITIVE = re.compile(
    r"(^|_)(sign|signature|signatures|sig|secret|secrets|token|hmac|mac|digest|expected|"
    r"password|passwd|api_key|api_v3_key|apikey)(_|$)"
)
# Parts that name something public although they contain a sensitive word.
_PUBLIC = re.compile(r"(sign_type|signature_type|token_type|digest_name|_len|count|prefix)")
# Comparisons reviewed by hand: both sides are payhook's own values (configuration against the
# database, a cache lookup), no attacker-controlled input is involved, so timing reveals nothing.
REVIEWED = {
    ("dispatch/sinks/_signing.py", "if secret in self._keys:"),  # parse cache of stored secrets
    ("storage/_subscription_model.py", "if item.secret == new_secret or not item.active(now):"),
    (
        "storage/_subscriptions.py",
        "if primary != spec.secret or current.secrets[0].expires_at is not None:",
    ),  # config file against database at start-up
}


def _name(node: ast.AST) -> str | None:
    """The identifier a comparison operand is about (``x``, ``obj.x``, ``d["x"]``, ``f(x)``)."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        value = node.slice.value
        return value if isinstance(value, str) else None
    if isinstance(node, ast.Call):
        # .get("sign"), .encode() of a secret, etc.
        if node.args and isinstance(node.args[0], ast.Constant):
            value = node.args[0].value
            if isinstance(value, str):
                return value
        return _name(node.func.value) if isinstance(node.func, ast.Attribute) else None
    return None


def _is_sql_expression(node: ast.AST) -> bool:
    """``table.c.claim_token == …`` builds SQL; it compares nothing in Python."""
    while isinstance(node, ast.Attribute):
        if isinstance(node.value, ast.Attribute) and node.value.attr == "c":
            return True
        node = node.value
    return False


def _harmless(node: ast.AST) -> bool:
    """Constants, ``None``, lengths and literals: comparing with them reveals no secret."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return node.func.id in ("len", "type", "isinstance")
    return isinstance(node, ast.Tuple | ast.List | ast.Set)


def sensitive_comparisons(source: str, filename: str) -> Iterator[str]:
    """``file:line: code`` for each Python-level ==/!=/in/not in on a secret-looking value."""
    tree = ast.parse(source, filename)
    lines = source.splitlines()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        for op, left, right in zip(node.ops, operands, operands[1:], strict=False):
            if not isinstance(op, ast.Eq | ast.NotEq | ast.In | ast.NotIn):
                continue
            if _is_sql_expression(left) or _is_sql_expression(right):
                continue
            if _harmless(left) or _harmless(right):
                continue
            for side in (left, right):
                name = _name(side)
                if name and _SENSITIVE.search(name.lower()) and not _PUBLIC.search(name.lower()):
                    code = lines[node.lineno - 1].strip()
                    if (filename, code) not in REVIEWED:
                        yield f"{filename}:{node.lineno}: {code}"
                    break


def test_the_scan_finds_a_plain_comparison() -> None:
    """The scanner is not vacuous: it flags the comparisons it exists to forbid."""
    bad = (
        "def check(given, expected_sign, token):\n"
        "    if given == expected_sign:\n"
        "        return True\n"
        "    return headers['wechatpay-signature'] != token\n"
    )
    assert len(list(sensitive_comparisons(bad, "bad.py"))) == 2
    fine = (
        "import hmac\n"
        "def check(a, b, sign_type):\n"
        "    if sign_type == 'RSA2' or a is None:\n"
        "        return hmac.compare_digest(a, b)\n"
        "    return deliveries.c.claim_token == b\n"
    )
    assert list(sensitive_comparisons(fine, "fine.py")) == []


def test_no_secret_or_signature_is_compared_with_eq_in_src() -> None:
    """No module under src/ compares a secret, token or signature with ==, != or in."""
    found: list[str] = []
    for path in sorted(SRC.rglob("*.py")):
        found.extend(sensitive_comparisons(path.read_text(), str(path.relative_to(SRC))))
    assert found == [], "compare these with hmac.compare_digest:\n" + "\n".join(found)


def _calls(path: Path) -> set[str]:
    """The dotted names a module calls (``hmac.compare_digest``, ``key.verify``...)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute):
                base = func.value.id if isinstance(func.value, ast.Name) else "?"
                names.add(f"{base}.{func.attr}")
            elif isinstance(func, ast.Name):
                names.add(func.id)
    return names


@pytest.mark.parametrize(
    ("module", "needed"),
    [
        ("signing/_rsa.py", ".verify"),  # Alipay RSA2/RSA: cryptography's verify
        ("providers/wechatpay_v3/_sign.py", ".verify"),  # WeChat Pay v3 RSA-SHA256
        ("providers/wechatpay_v2/_adapter.py", "hmac.compare_digest"),  # v2 MD5 / HMAC-SHA256
        ("asgi/_admin.py", "hmac.compare_digest"),  # the admin bearer token
    ],
    ids=["alipay-rsa", "wechat-v3-rsa", "wechat-v2-sign", "admin-token"],
)
def test_each_verifier_uses_a_constant_time_primitive(module: str, needed: str) -> None:
    """Each place that checks a signature or token calls a constant-time comparison."""
    path = SRC / module
    if not path.exists():
        pytest.fail(f"{module} is missing")
    calls = _calls(path)
    assert any(call.endswith(needed) for call in calls), sorted(calls)


def test_wechat_v2_signature_check_goes_through_compare_digest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A v2 payment result's sign is compared by hmac.compare_digest, not by ==."""
    seen: list[tuple[Any, Any]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    api_key = "192006250b4c09247ec02edce69f6a2d"
    provider = WechatPayV2Provider(channel="v2", mch_id="1900000002", app_id=None, api_key=api_key)
    fields = {
        "return_code": "SUCCESS",
        "mch_id": "1900000002",
        "result_code": "SUCCESS",
        "nonce_str": "n",
        "out_trade_no": "1",
        "transaction_id": "42",
        "total_fee": "1",
    }
    sign = wechat_v2_sign(fields, api_key)
    wrong = ("0" if sign[0] != "0" else "1") + sign[1:]
    body = "<xml>" + "".join(f"<{k}>{v}</{k}>" for k, v in fields.items())
    raw = RawNotification(
        channel="v2",
        headers={},
        body=f"{body}<sign>{wrong}</sign></xml>".encode(),
        received_at=datetime.now(UTC),
    )
    with pytest.raises(SignatureError):
        provider.verify(raw)
    assert seen, "the sign was not compared with hmac.compare_digest"
