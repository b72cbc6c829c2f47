"""``payhook check-config`` (and ``serve``) as real processes on configurations with the
classic key mistakes, with real key files generated in the test's folder."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from payhook.signing import key_fingerprint
from tests._keyfiles import pem_body_lines, private_pem, public_pem, rsa_key, write
from tests._ports import free_port

MISTAKE = (
    "alipay_public_key is your app's own public key; paste the Alipay public key from the console"
)


def payhook(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "payhook", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("PAYHOOK_")},
    )


def alipay_config(folder: Path, **keys: str) -> Path:
    text = 'database_url = "sqlite+aiosqlite:///./payhook.db"\n\n[[channels]]\n'
    values = {"name": "alipay", "provider": "alipay", "app_id": "2021000000000001", **keys}
    text += "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())
    path = folder / "payhook.toml"
    path.write_text(text)
    return path


def assert_one_clean_line(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr == f"error: {expected}\n"
    assert "Traceback" not in result.stderr
    assert "PRIVATE KEY-----" not in result.stdout + result.stderr
    for line in pem_body_lines(private_pem(rsa_key("app"))):
        assert line not in result.stdout + result.stderr


@pytest.fixture
def pasted_app_key(tmp_path: Path) -> Path:
    """The app's own public key given as alipay_public_key, beside the app private key."""
    app = rsa_key("app")
    return alipay_config(
        tmp_path,
        alipay_public_key_file=write(tmp_path, "alipay_public.pem", public_pem(app)),
        app_private_key_file=write(tmp_path, "app_private.pem", private_pem(app)),
    )


def test_check_config_refuses_the_app_public_key(pasted_app_key: Path) -> None:
    """Exit 1 and one line saying which key is wrong and what to paste instead."""
    result = payhook("check-config", "--config", str(pasted_app_key))
    assert_one_clean_line(result, f"{pasted_app_key}: channels[0] (alipay): {MISTAKE}")


def test_serve_refuses_the_same_configuration(pasted_app_key: Path) -> None:
    """serve checks at load as check-config does: every real callback would be refused."""
    result = payhook("serve", "--config", str(pasted_app_key), "--port", str(free_port()))
    assert_one_clean_line(result, f"{pasted_app_key}: channels[0] (alipay): {MISTAKE}")


def test_check_config_shows_fingerprints_not_keys(tmp_path: Path) -> None:
    """The summary names each key by a fingerprint the user can recompute with openssl."""
    alipay_key, app = rsa_key("alipay"), rsa_key("app")
    public_file = write(tmp_path, "alipay_public.pem", public_pem(alipay_key))
    path = alipay_config(
        tmp_path,
        alipay_public_key_file=public_file,
        app_private_key_file=write(tmp_path, "app_private.pem", private_pem(app)),
    )
    result = payhook("check-config", "--config", str(path))
    assert result.returncode == 0, result.stderr
    fingerprint = key_fingerprint(alipay_key.public_key())
    assert f"alipay_public_key {fingerprint}, app key set {key_fingerprint(app)}" in result.stdout
    assert "configuration OK (database not opened" in result.stdout
    assert "warning" not in result.stdout
    for line in pem_body_lines(private_pem(app)):
        assert line not in result.stdout + result.stderr
    if shutil.which("openssl") is None:
        return
    # The documented way to compute it from the key file (docs/configuration.md).
    der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-in", str(tmp_path / public_file), "-outform", "DER"],
        capture_output=True,
        check=True,
    ).stdout
    digest = subprocess.run(
        ["sha256sum"], input=der, capture_output=True, check=True
    ).stdout.decode()
    assert fingerprint == "SHA256:" + digest[:16]


def test_check_config_warns_about_a_simulator_key_that_cannot_sign(tmp_path: Path) -> None:
    """A simulator key that is not the private half of alipay_public_key: exit 0 (real
    callbacks verify) with a warning that `payhook simulate` would be refused."""
    real, simulator = rsa_key("alipay"), rsa_key("simulator")
    path = alipay_config(
        tmp_path,
        alipay_public_key=public_pem(real),
        simulator_private_key_file=write(tmp_path, "sim.pem", private_pem(simulator)),
    )
    result = payhook("check-config", "--config", str(path))
    assert result.returncode == 0, result.stderr
    assert (
        f"warning: channels[0] (alipay): simulator_private_key ({key_fingerprint(simulator)}) "
        f"is not the private half of alipay_public_key ({key_fingerprint(real.public_key())}): "
        "callbacks sent by `payhook simulate` to this channel will be refused\n"
    ) in result.stdout
    assert "configuration OK with 1 warning" in result.stdout


def test_check_config_suggests_the_key_meant(tmp_path: Path) -> None:
    """A misspelt key: one line with the key it probably meant."""
    path = alipay_config(
        tmp_path,
        alipay_pubic_key_file=write(tmp_path, "alipay_public.pem", public_pem(rsa_key("alipay"))),
    )
    result = payhook("check-config", "--config", str(path))
    assert_one_clean_line(
        result,
        f"{path}: channels[0].alipay_pubic_key_file: unknown key in channel 'alipay'; "
        "did you mean 'alipay_public_key_file'?",
    )


def test_check_config_names_a_garbled_key_file(tmp_path: Path) -> None:
    """A private key given as the public key file: named by path, never shown."""
    path = alipay_config(
        tmp_path,
        alipay_public_key_file=write(tmp_path, "alipay_public.pem", private_pem(rsa_key("app"))),
    )
    result = payhook("check-config", "--config", str(path))
    resolved = (tmp_path / "keys" / "alipay_public.pem").resolve()
    assert_one_clean_line(
        result,
        f"{path}: channels[0] (alipay): alipay_public_key_file keys/alipay_public.pem "
        f"({resolved}): holds a private key (BEGIN PRIVATE KEY), not a public key",
    )


@pytest.fixture
def mismatched_simulator(tmp_path: Path) -> Path:
    return alipay_config(
        tmp_path,
        alipay_public_key=public_pem(rsa_key("alipay")),
        simulator_private_key=private_pem(rsa_key("simulator")),
    )


def test_simulate_warns_before_sending(mismatched_simulator: Path) -> None:
    """`payhook simulate` on such a channel says why its callback will be refused."""
    unused = f"http://127.0.0.1:{free_port()}/notify/alipay"
    result = payhook(
        "simulate", "alipay", "--order", "A-1", "--amount", "1.00",
        "--config", str(mismatched_simulator), "--url", unused,
    )  # fmt: skip
    assert result.returncode == 1
    first, second = result.stderr.splitlines()
    assert first.startswith("warning: channels[0] (alipay): simulator_private_key (SHA256:")
    assert "callbacks sent by `payhook simulate` to this channel will be refused" in first
    assert second.startswith("error: cannot reach")


def test_serve_warns_at_start(mismatched_simulator: Path) -> None:
    """`payhook serve` prints the warning before anything else (here it then stops: its port
    is taken, which ends the test without a server to stop)."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        port = held.getsockname()[1]
        result = payhook("serve", "--config", str(mismatched_simulator), "--port", str(port))
    assert result.returncode == 1
    first, second = result.stderr.splitlines()[:2]
    assert first.startswith("warning: channels[0] (alipay): simulator_private_key (SHA256:")
    assert second.startswith(f"error: cannot listen on 127.0.0.1:{port}")
