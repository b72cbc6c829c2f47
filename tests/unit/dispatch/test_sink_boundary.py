"""Only the sinks know subscription kinds: the dispatcher and the outbox never branch on one.

A new sink (contract §13) must then be one module under ``dispatch/sinks/`` plus its line in
``SINKS``; this scan fails if kind-specific code creeps back into the loop or the claim.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from payhook._types import SubscriptionKind

SRC = Path(__file__).resolve().parents[3] / "src" / "payhook"
KIND_BLIND = sorted(
    [
        *(SRC / "dispatch").glob("*.py"),
        SRC / "storage" / "_outbox.py",
        SRC / "storage" / "_outbox_sql.py",
    ]
)
_VALUES = {kind.value for kind in SubscriptionKind}


def kind_mentions(source: str) -> list[str]:
    """Where ``source`` names a kind: a ``SubscriptionKind.X`` member, a kind value as a
    string, a quoted kind inside SQL text, or an ``aiohttp`` import."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "SubscriptionKind"
        ):
            found.append(f"{node.lineno}: SubscriptionKind.{node.attr}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if node.value in _VALUES or any(f"'{v}'" in node.value for v in _VALUES):
                found.append(f"{node.lineno}: {node.value[:60]!r}")
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [alias.name for alias in node.names]
            if any(name.split(".")[0] == "aiohttp" for name in names):
                found.append(f"{node.lineno}: imports aiohttp")
    return found


def test_the_scan_finds_a_kind_branch() -> None:
    """The scan is not vacuous."""
    bad = (
        "import aiohttp\n"
        "if row.kind == 'handler': pass\n"
        "if row.kind is SubscriptionKind.HTTP: pass\n"
        "SQL = \"WHERE s.kind = 'handler'\"\n"
    )
    assert len(kind_mentions(bad)) == 4
    assert kind_mentions("for kind in SubscriptionKind: pass\nx = sinks[row.kind]\n") == []


@pytest.mark.parametrize("path", KIND_BLIND, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_kind_outside_the_sinks(path: Path) -> None:
    """The dispatcher's modules and the outbox name no subscription kind and no HTTP client."""
    assert kind_mentions(path.read_text()) == []
