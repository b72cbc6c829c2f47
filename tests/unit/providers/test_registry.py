"""The provider registry: the built-in specs, and the layer rule that providers import no
storage, web, dispatch or configuration code."""

from __future__ import annotations

import ast
import typing
from pathlib import Path

import pytest

import payhook.providers
from payhook.errors import ConfigurationError
from payhook.providers import (
    ChannelSettings,
    event_providers,
    provider_kinds,
    provider_spec,
    simulated_events,
)
from payhook.providers._registry import BUILTIN

PROVIDERS_DIR = Path(payhook.providers.__file__).parent
FORBIDDEN = ("sqlalchemy", "starlette", "payhook.storage", "payhook.asgi", "payhook.dispatch",
             "payhook.config", "payhook._hook", "payhook.cli")  # fmt: skip


def test_builtin_providers() -> None:
    """The three built-in providers, in the order the error message lists them."""
    assert provider_kinds()[:3] == ("alipay", "wechatpay_v3", "wechatpay_v2")
    assert [spec.kind for spec in BUILTIN] == ["alipay", "wechatpay_v3", "wechatpay_v2"]
    assert event_providers() == ("alipay", "wechatpay")
    assert simulated_events() == ("paid", "closed", "refund", "combined")


@pytest.mark.parametrize("spec", BUILTIN, ids=lambda spec: spec.kind)
def test_settings_model_names_its_provider(
    spec: payhook.providers.ProviderSpec[ChannelSettings],
) -> None:
    """Each spec's settings model accepts exactly ``provider = "<kind>"``."""
    assert issubclass(spec.settings, ChannelSettings)
    annotation = spec.settings.model_fields["provider"].annotation
    assert typing.get_args(annotation) == (spec.kind,)
    assert provider_spec(spec.kind) is spec


def test_unknown_provider() -> None:
    """An unknown kind names the known ones."""
    with pytest.raises(ConfigurationError, match="provider must be one of alipay, wechatpay_v3"):
        provider_spec("paypal")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize(
    "path", sorted(PROVIDERS_DIR.rglob("*.py")), ids=lambda p: str(p.relative_to(PROVIDERS_DIR))
)
def test_providers_import_no_higher_layer(path: Path) -> None:
    """Providers are handed stores and settings; they never import storage, the web edge,
    the dispatcher or the configuration loader (import-linter will enforce this later)."""
    bad = {
        name
        for name in _imports(path)
        if any(name == f or name.startswith(f"{f}.") for f in FORBIDDEN)
    }
    assert not bad, f"{path.name} imports {sorted(bad)}"
