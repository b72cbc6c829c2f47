"""Strict parser and writer for the flat XML documents WeChat Pay v2 exchanges.

A v2 document is one root element whose children are text-only fields
(``<xml><appid><![CDATA[wx…]]></appid>…</xml>``). Anything else is refused: WeChat warned
every merchant about XXE in 2018 (providers.md §3.1), so a DOCTYPE is refused the moment the
parser meets it, before any entity can be declared or expanded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import NoReturn
from xml.etree.ElementTree import ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from payhook.errors import NotificationError

__all__ = ["parse_flat_xml", "render_flat_xml"]

# XML 1.0 §2.2 Char, minus the surrogate block (a Python str may hold lone surrogates).
_INVALID_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# An XML name without a namespace prefix (no colon), the only kind of field name we write.
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*\Z")
_UTF8_NAMES = frozenset({"utf-8", "utf8"})


def _refuse(message: str) -> NoReturn:
    raise NotificationError(message, reason="bad_xml")


class _FlatTarget:
    """ElementTree parser target that builds ``{tag: text}`` and refuses anything else."""

    def __init__(self, root: str) -> None:
        self._root = root
        self._depth = 0
        self._tag: str | None = None
        self._text: list[str] = []
        self.fields: dict[str, str] = {}

    def start(self, tag: str, attrib: Mapping[str, str]) -> None:
        # Attributes are neither signed nor used by WeChat Pay; they are ignored.
        if "{" in tag:
            _refuse("XML must not use namespaces")
        if self._depth == 0:
            if tag != self._root:
                _refuse(f"XML root must be <{self._root}>")
        elif self._depth == 1:
            if tag in self.fields:
                _refuse("XML has a duplicate field")
            self._tag = tag
            self._text = []
        else:
            _refuse("XML must not have nested elements")
        self._depth += 1

    def end(self, tag: str) -> None:
        self._depth -= 1
        if self._depth == 1 and self._tag is not None:
            self.fields[self._tag] = "".join(self._text)
            self._tag = None

    def data(self, text: str) -> None:
        if self._depth == 2:
            self._text.append(text)
        elif text.strip(" \t\r\n"):
            _refuse("XML has text outside the fields")

    def comment(self, text: str) -> None:
        _refuse("XML must not contain comments")

    def pi(self, target: str, text: str) -> None:
        _refuse("XML must not contain processing instructions")

    def close(self) -> None:
        return None


def _check_declaration(version: str | None, encoding: str | None, standalone: int) -> None:
    if encoding is not None and encoding.lower() not in _UTF8_NAMES:
        _refuse("XML must be UTF-8")


def parse_flat_xml(body: bytes, *, root: str = "xml", max_bytes: int = 65536) -> dict[str, str]:
    """Parse a flat WeChat Pay v2 XML document into ``{field: text}``.

    Text may be bare or CDATA (or both); an empty element gives ``""``. Attributes are ignored.

    Args:
        body: the raw bytes, which must be UTF-8.
        root: the required name of the root element (``xml`` outside, ``root`` in ``req_info``).
        max_bytes: larger bodies are refused before parsing.

    Raises:
        NotificationError: (reason ``bad_xml``) empty, oversize, not UTF-8, not well-formed,
            wrong root, a DOCTYPE (hence any entity or external reference), a comment, a
            processing instruction, a namespace, a nested element, text beside the fields or a
            duplicate field.
    """
    data = bytes(body)
    if not data:
        _refuse("XML body is empty")
    if len(data) > max_bytes:
        _refuse("XML body is too large")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        _refuse("XML must be UTF-8")
    target = _FlatTarget(root)
    try:
        # forbid_dtd makes expat stop at the start of a DOCTYPE, before its internal subset
        # (and so any entity definition) is read: an entity bomb costs as much as a tiny body.
        parser = DefusedXMLParser(
            target=target,
            encoding="utf-8",
            forbid_dtd=True,
            forbid_entities=True,
            forbid_external=True,
        )
        parser.parser.XmlDeclHandler = _check_declaration
        parser.feed(data)
        parser.close()
    except NotificationError:
        raise
    except DefusedXmlException:
        _refuse("XML must not contain a DOCTYPE, entities or external references")
    except (ParseError, ValueError, LookupError, UnicodeError):
        _refuse("XML is not well-formed")
    return target.fields


def _cdata(value: str) -> str:
    # "]]>" cannot appear inside CDATA, and a CR inside CDATA would be normalized to LF:
    # close the section around them and write them as markup instead.
    body = value.replace("]]>", "]]]]><![CDATA[>").replace("\r", "]]>&#13;<![CDATA[")
    return f"<![CDATA[{body}]]>"


def render_flat_xml(fields: Mapping[str, str], *, root: str = "xml") -> bytes:
    """Write ``fields`` as a flat XML document, in the mapping's order, every value in CDATA.

    ``parse_flat_xml(render_flat_xml(d)) == d`` for every mapping this accepts.

    Raises:
        ValueError: a field name is not a plain XML name, or a value holds a character XML
            cannot carry (control characters other than tab, LF and CR; lone surrogates).
    """
    parts = [f"<{root}>"]
    for name, value in fields.items():
        if not _FIELD_NAME.match(name):
            raise ValueError(f"{name!r} is not a plain XML element name")
        if _INVALID_XML_CHAR.search(value):
            raise ValueError(f"the value of {name} holds a character XML cannot carry")
        parts.append(f"<{name}>{_cdata(value)}</{name}>")
    parts.append(f"</{root}>")
    return "".join(parts).encode("utf-8")
