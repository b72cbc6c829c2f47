"""Subscription targets through the real CLI (`python -m payhook …`): URLs are printed with
their credentials masked, and refused targets are one clear line with exit code 1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.admin._helpers import ORDERS_SECRET
from tests.integration.cli.test_ops import one_line_error, payhook

PASSWORD = "pw-Qm27-not-for-eyes"
TOKEN = "tok-8812-not-for-eyes"
URL = f"http://orders:{PASSWORD}@127.0.0.1:9/webhooks?token={TOKEN}&v=2"
SHOWN = "http://orders:***@127.0.0.1:9/webhooks?token=***&v=2"


def config_file(folder: Path, database_url: str, url: str, *, strict: bool = False) -> Path:
    """A config with one subscription at ``url`` (and the switch on when ``strict``)."""
    path = folder / "payhook.toml"
    dispatcher = "[dispatcher]\nrefuse_private_targets = true\n\n" if strict else ""
    path.write_text(
        f'database_url = "{database_url}"\n\n{dispatcher}[[subscriptions]]\nname = "orders"\n'
        f'url = "{url}"\nevents = ["*"]\nsecret = "{ORDERS_SECRET}"\n'
    )
    return path


def test_check_config_masks_credentials(tmp_path: Path, sqlite_database_url: str) -> None:
    """The summary shows the subscription URL masked."""
    result = payhook(config_file(tmp_path, sqlite_database_url, URL), "check-config")
    assert result.returncode == 0, result.stderr
    assert f"subscription orders: {SHOWN} events=*" in result.stdout
    for secret in (PASSWORD, TOKEN):
        assert secret not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("url", "strict", "problem"),
    [
        ("http://169.254.169.254/latest/meta-data/", False, "169.254.169.254 is a link-local"),
        ("http://[::ffff:169.254.169.254]/", False, "(169.254.169.254) is a link-local"),
        ("http://metadata.google.internal/v1/", False, "is a cloud metadata service"),
        ("http://127.0.0.1:9000/hook", True, "127.0.0.1 is a loopback address"),
        ("http://192.168.1.20/hook", True, "192.168.1.20 is a private (RFC 1918) address"),
    ],
)
def test_check_config_refuses_targets(
    tmp_path: Path, sqlite_database_url: str, url: str, strict: bool, problem: str
) -> None:
    """One line naming the key and why; exit code 1."""
    config = config_file(tmp_path, sqlite_database_url, url, strict=strict)
    line = one_line_error(payhook(config, "check-config"))
    assert line.startswith(f"error: {config}: subscriptions")
    assert ".url: refused target: " in line
    assert problem in line


def test_private_targets_are_fine_by_default(tmp_path: Path, sqlite_database_url: str) -> None:
    """Internal subscribers on private addresses (and the samples on 127.0.0.1) keep working;
    the summary says when the switch is on."""
    config = config_file(tmp_path, sqlite_database_url, "http://192.168.1.20/hook")
    result = payhook(config, "check-config")
    assert result.returncode == 0
    assert "private targets refused" not in result.stdout
    config = config_file(tmp_path, sqlite_database_url, "https://crm.example/h", strict=True)
    result = payhook(config, "check-config")
    assert result.returncode == 0
    assert "per subscription), private targets refused" in result.stdout


def test_subscriptions_list_masks_credentials(tmp_path: Path, sqlite_database_url: str) -> None:
    """`subscriptions add` takes the URL whole; `list` and `list --json` show it masked."""
    config = config_file(tmp_path, sqlite_database_url, "http://127.0.0.1:9/orders")
    crm = f"https://crm:{PASSWORD}@crm.example/h?api_key={TOKEN}"
    added = payhook(config, "subscriptions", "add", "crm", "--url", crm, "--json")
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["url"] == "https://crm:***@crm.example/h?api_key=***"
    table = payhook(config, "subscriptions", "list")
    as_json = payhook(config, "subscriptions", "list", "--json")
    assert "https://crm:***@crm.example/h?api_key=***" in table.stdout
    urls = {s["name"]: s["url"] for s in json.loads(as_json.stdout)["items"]}
    assert urls["crm"] == "https://crm:***@crm.example/h?api_key=***"
    for result in (added, table, as_json):
        assert PASSWORD not in result.stdout + result.stderr
        assert TOKEN not in result.stdout + result.stderr


def test_subscriptions_add_refuses_targets(tmp_path: Path, sqlite_database_url: str) -> None:
    """Link-local always; private targets when the config file turns the switch on."""
    lenient = tmp_path / "lenient"
    lenient.mkdir()
    config = config_file(lenient, sqlite_database_url, "http://127.0.0.1:9/orders")
    imds = "http://169.254.169.254/latest/meta-data/"
    line = one_line_error(payhook(config, "subscriptions", "add", "x", "--url", imds))
    assert "url: refused target: 169.254.169.254 is a link-local address" in line
    local = "http://10.0.0.8/hook"
    assert payhook(config, "subscriptions", "add", "inside", "--url", local).returncode == 0

    strict = tmp_path / "strict"
    strict.mkdir()
    config = config_file(strict, sqlite_database_url, "https://crm.example/h", strict=True)
    line = one_line_error(payhook(config, "subscriptions", "add", "y", "--url", local))
    assert "url: refused target: 10.0.0.8 is a private (RFC 1918) address" in line
