"""Fixed examples for the flat-XML parser and writer, from the mutation run (issue 14): the
exact message of each refusal, the declared encodings accepted, the exact default size limit,
and field names the writer must refuse."""

from __future__ import annotations

import pytest

from payhook.errors import NotificationError
from payhook.providers._safe_xml import parse_flat_xml, render_flat_xml

REFUSED = [
    ("empty", b"", "XML body is empty"),
    ("namespace", b'<xml xmlns:p="urn:x"><p:a>1</p:a></xml>', "XML must not use namespaces"),
    ("wrong_root", b"<root><a>1</a></root>", "XML root must be <xml>"),
    ("duplicate", b"<xml><a>1</a><a>2</a></xml>", "XML has a duplicate field"),
    ("nested", b"<xml><a><b>1</b></a></xml>", "XML must not have nested elements"),
    ("text_outside", b"<xml>oops<a>1</a></xml>", "XML has text outside the fields"),
    ("x_outside", b"<xml>X<a>1</a></xml>", "XML has text outside the fields"),
    ("text_after", b"<xml><a>1</a>\n X</xml>", "XML has text outside the fields"),
    ("comment", b"<xml><!-- c --><a>1</a></xml>", "XML must not contain comments"),
    ("pi", b"<xml><?p x?><a>1</a></xml>", "XML must not contain processing instructions"),
    ("declared_latin1", b'<?xml version="1.0" encoding="ISO-8859-1"?><xml/>', "XML must be UTF-8"),
    ("invalid_utf8", b"<xml><a>\xff</a></xml>", "XML must be UTF-8"),
    ("doctype", b"<!DOCTYPE xml><xml><a>1</a></xml>",
     "XML must not contain a DOCTYPE, entities or external references"),
    ("truncated", b"<xml><a>1</a>", "XML is not well-formed"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "message"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_refusal_messages_exactly(body: bytes, message: str) -> None:
    """Each refusal is bad_xml with its own exact message."""
    with pytest.raises(NotificationError) as caught:
        parse_flat_xml(body)
    assert (caught.value.reason, str(caught.value)) == ("bad_xml", message)


def test_too_large_message_exactly() -> None:
    """An oversize body is refused with its own message."""
    with pytest.raises(NotificationError) as caught:
        parse_flat_xml(b"<xml><a>12</a></xml>", max_bytes=19)
    assert (caught.value.reason, str(caught.value)) == ("bad_xml", "XML body is too large")


@pytest.mark.parametrize("encoding", ["UTF-8", "utf-8", "utf8", "UTF8"])
def test_utf8_declarations_are_accepted(encoding: str) -> None:
    """Both spellings of UTF-8, in either case, may be declared."""
    body = f'<?xml version="1.0" encoding="{encoding}"?><xml><a>1</a></xml>'.encode()
    assert parse_flat_xml(body) == {"a": "1"}


def test_default_size_limit_is_exactly_64_kib() -> None:
    """65536 bytes parse by default; 65537 are refused."""
    head, tail = b"<xml><a>", b"</a></xml>"
    body = head + b"x" * (65536 - len(head) - len(tail)) + tail
    assert len(body) == 65536
    assert parse_flat_xml(body) == {"a": "x" * (65536 - len(head) - len(tail))}
    with pytest.raises(NotificationError) as caught:
        parse_flat_xml(body[: len(head)] + b"x" + body[len(head) :])
    assert str(caught.value) == "XML body is too large"


def test_default_root_is_xml() -> None:
    """Without root=, the root element must be <xml>; the writer writes <xml> by default."""
    assert render_flat_xml({"a": "1"}) == b"<xml><a><![CDATA[1]]></a></xml>"
    assert parse_flat_xml(b"<xml><a>1</a></xml>") == {"a": "1"}


@pytest.mark.parametrize("name", ["a\n", "a b", "a\nb", ""])
def test_render_refuses_names_that_are_not_plain(name: str) -> None:
    """A line break (a trailing one too, which "$" would let through), a space or an empty name
    is not a plain XML name."""
    with pytest.raises(ValueError, match="element name"):
        render_flat_xml({name: "1"})
