"""Import direction of the edges: no circles between the CLI modules or between PayHook and
asgi, and the admin API and the CLI reach storage only through the operator service."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "payhook"

# The notify endpoint feeds the intake store directly (not an operator path).
EDGES = [
    "asgi/_app.py",
    "asgi/_admin.py",
    "asgi/_admin_common.py",
    "asgi/_admin_subscriptions.py",
    "asgi/_openapi.py",
    "cli.py",
    "_cli_common.py",
    "_cli_format.py",
    "_cli_ops.py",
    "_cli_subscriptions.py",
]


def imports_of(relative: str) -> set[str]:
    """Every module ``relative`` imports, at any level (also under TYPE_CHECKING)."""
    tree = ast.parse((SRC / relative).read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


@pytest.mark.parametrize("module", EDGES)
def test_edges_reach_storage_through_operations(module: str) -> None:
    """No storage (or SQLAlchemy) import in the admin API and the CLI modules."""
    bad = {m for m in imports_of(module) if m.startswith(("payhook.storage", "sqlalchemy.exc"))}
    assert not bad


@pytest.mark.parametrize("module", [m for m in EDGES if m.startswith("asgi/")])
def test_asgi_does_not_import_the_hook(module: str) -> None:
    """asgi receives what it needs; it never calls back into PayHook."""
    assert not {m for m in imports_of(module) if m.startswith("payhook._hook")}


@pytest.mark.parametrize(
    "module", ["_cli_common.py", "_cli_format.py", "_cli_ops.py", "_cli_subscriptions.py"]
)
def test_cli_modules_do_not_import_the_group(module: str) -> None:
    """cli.py registers the command groups; the command modules never import it back."""
    assert not {m for m in imports_of(module) if m == "payhook.cli" or m.startswith("payhook.cli.")}


def test_hook_runs_no_sql() -> None:
    """The facade wires things; the queries live in storage."""
    assert not {m for m in imports_of("_hook.py") if m.startswith("sqlalchemy")}
