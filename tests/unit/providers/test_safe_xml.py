"""The strict flat-XML parser and writer used by the WeChat Pay v2 adapter."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from payhook.errors import NotificationError
from payhook.providers._safe_xml import parse_flat_xml, render_flat_xml


def _billion_laughs(levels: int = 10) -> bytes:
    entities = ['<!ENTITY lol0 "lol">']
    for level in range(1, levels):
        entities.append(f'<!ENTITY lol{level} "{f"&lol{level - 1};" * 10}">')
    return (
        '<?xml version="1.0"?><!DOCTYPE xml [' + "".join(entities) + "]>"
        f"<xml><a>&lol{levels - 1};</a></xml>"
    ).encode()


ACCEPTED = [
    ("cdata", b"<xml><a><![CDATA[x y]]></a></xml>", {"a": "x y"}),
    ("bare_number", b"<xml><total_fee>1</total_fee></xml>", {"total_fee": "1"}),
    ("mixed_text_and_cdata", b"<xml><a>x<![CDATA[<y>]]>z</a></xml>", {"a": "x<y>z"}),
    ("empty_element", b"<xml><a/><b></b></xml>", {"a": "", "b": ""}),
    (
        "utf8_declaration_and_whitespace",
        b'<?xml version="1.0" encoding="UTF-8"?>\n<xml>\n  <a>1</a>\n  <b>2</b>\n</xml>\n',
        {"a": "1", "b": "2"},
    ),
    ("predefined_and_char_entities", b"<xml><a>&amp;&lt;&#13;&#x4e2d;</a></xml>", {"a": "&<\r中"}),
    ("utf8_bom", b"\xef\xbb\xbf<xml><a>1</a></xml>", {"a": "1"}),
    ("attributes_ignored", b'<xml id="1"><a k="v">1</a></xml>', {"a": "1"}),
    ("chinese_text", "<xml><a>招商银行信用卡8915</a></xml>".encode(), {"a": "招商银行信用卡8915"}),
    ("field_whitespace_kept", b"<xml><a><![CDATA[ x ]]></a></xml>", {"a": " x "}),
]


@pytest.mark.parametrize(
    ("body", "expected"), [c[1:] for c in ACCEPTED], ids=[c[0] for c in ACCEPTED]
)
def test_accepts_flat_documents(body: bytes, expected: dict[str, str]) -> None:
    """Flat documents parse to {tag: text}, whether text is CDATA, bare or both."""
    assert parse_flat_xml(body) == expected


def test_custom_root() -> None:
    """The root name is a parameter (``root`` inside a decrypted ``req_info``)."""
    assert parse_flat_xml(b"<root><a>1</a></root>", root="root") == {"a": "1"}
    with pytest.raises(NotificationError, match="root"):
        parse_flat_xml(b"<xml><a>1</a></xml>", root="root")


REFUSED = [
    ("empty", b"", "empty"),
    ("whitespace_only", b"  \n", "well-formed"),
    ("not_xml", b'{"return_code": "SUCCESS"}', "well-formed"),
    ("truncated", b"<xml><a>1</a>", "well-formed"),
    ("wrong_root", b"<root><a>1</a></root>", "root"),
    ("invalid_utf8", b"<xml><a>\xff\xfe</a></xml>", "UTF-8"),
    ("utf16", "<xml><a>1</a></xml>".encode("utf-16"), "UTF-8"),
    ("declared_latin1", b'<?xml version="1.0" encoding="ISO-8859-1"?><xml/>', "UTF-8"),
    ("doctype", b"<!DOCTYPE xml><xml><a>1</a></xml>", "DOCTYPE"),
    (
        "external_entity",
        b'<!DOCTYPE xml [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><a>&e;</a></xml>',
        "DOCTYPE",
    ),
    (
        "parameter_entity",
        b'<!DOCTYPE xml [<!ENTITY % p SYSTEM "http://127.0.0.1:1/x.dtd"> %p;]><xml/>',
        "DOCTYPE",
    ),
    ("billion_laughs", _billion_laughs(), "DOCTYPE"),
    ("nested", b"<xml><a><b>1</b></a></xml>", "nested"),
    ("deep_nesting", b"<xml>" + b"<a>" * 5000 + b"</a>" * 5000 + b"</xml>", "nested"),
    ("duplicate_field", b"<xml><a>1</a><a>1</a></xml>", "duplicate"),
    ("comment", b"<xml><!-- c --><a>1</a></xml>", "comment"),
    ("comment_in_value", b"<xml><a>1<!-- c -->2</a></xml>", "comment"),
    ("processing_instruction", b"<?php echo 1; ?><xml/>", "processing"),
    ("namespace", b'<xml xmlns:p="urn:x"><p:a>1</p:a></xml>', "namespace"),
    ("default_namespace", b'<xml xmlns="urn:x"><a>1</a></xml>', "namespace"),
    ("text_beside_fields", b"<xml>oops<a>1</a></xml>", "outside"),
    ("undefined_entity", b"<xml><a>&e;</a></xml>", "well-formed"),
    ("two_roots", b"<xml/><xml/>", "well-formed"),
    ("nul_char_ref", b"<xml><a>&#0;</a></xml>", "well-formed"),
]


@pytest.mark.parametrize(("body", "match"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_refuses_anything_but_flat_utf8_xml(body: bytes, match: str) -> None:
    """Everything outside the flat, DTD-free, UTF-8 subset is refused as bad_xml."""
    with pytest.raises(NotificationError, match=match) as info:
        parse_flat_xml(body)
    assert info.value.reason == "bad_xml"


def test_size_limit_is_inclusive() -> None:
    """A body of exactly max_bytes parses; one byte more is refused before parsing."""
    body = b"<xml><a>" + b"x" * 100 + b"</a></xml>"
    assert parse_flat_xml(body, max_bytes=len(body)) == {"a": "x" * 100}
    with pytest.raises(NotificationError, match="too large"):
        parse_flat_xml(body, max_bytes=len(body) - 1)


def test_default_size_limit_is_64_kib() -> None:
    """The default limit is 64 KiB."""
    body = b"<xml><a>" + b"x" * 65536 + b"</a></xml>"
    with pytest.raises(NotificationError, match="too large"):
        parse_flat_xml(body)


def test_external_entity_never_reads_the_file(tmp_path: Path) -> None:
    """An external entity pointing at a local file is refused without its content leaking."""
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-MARKER-7f3a")
    body = (
        f'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x SYSTEM "{secret.as_uri()}">]>'
        "<xml><a>&x;</a></xml>"
    ).encode()
    with pytest.raises(NotificationError) as info:
        parse_flat_xml(body)
    seen = [str(info.value), repr(info.value), str(info.value.__context__)]
    assert not any("TOP-SECRET-MARKER" in text for text in seen)


def test_entity_bomb_is_refused_before_expansion() -> None:
    """A billion-laughs bomb costs no more than a small request: refused at the DOCTYPE."""
    bomb = _billion_laughs(levels=12)
    start = time.perf_counter()
    for _ in range(10):
        with pytest.raises(NotificationError, match="DOCTYPE"):
            parse_flat_xml(bomb)
    assert (time.perf_counter() - start) / 10 < 0.05


def test_render_keeps_order_and_uses_cdata() -> None:
    """The writer keeps field order and wraps every value in CDATA (the reply format)."""
    body = render_flat_xml({"return_code": "SUCCESS", "return_msg": "OK"})
    assert body == (
        b"<xml><return_code><![CDATA[SUCCESS]]></return_code>"
        b"<return_msg><![CDATA[OK]]></return_msg></xml>"
    )


@pytest.mark.parametrize(
    "value",
    ["a]]>b", "]]>", "]]]]>", "x\r\ny\rz", "<&>'\"", "", "中文 \t\n"],
    ids=[
        "cdata_end",
        "only_cdata_end",
        "double_bracket",
        "carriage_returns",
        "markup",
        "empty",
        "cjk",
    ],
)
def test_render_round_trips_awkward_values(value: str) -> None:
    """Values that break naive CDATA (``]]>``, CR) survive a write/parse round trip."""
    assert parse_flat_xml(render_flat_xml({"a": value})) == {"a": value}


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"a b": "1"}, "element name"),
        ({"p:a": "1"}, "element name"),
        ({"1a": "1"}, "element name"),
        ({"a": "x\x00y"}, "cannot carry"),
        ({"a": "\ud800"}, "cannot carry"),
    ],
    ids=["space_in_name", "prefixed_name", "digit_first", "nul_value", "lone_surrogate"],
)
def test_render_refuses_what_xml_cannot_carry(fields: dict[str, str], match: str) -> None:
    """The writer raises ValueError instead of producing a document the parser would refuse."""
    with pytest.raises(ValueError, match=match):
        render_flat_xml(fields)
