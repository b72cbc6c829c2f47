"""The configuration checks that catch the classic key mistakes (issue 17, item 4).

Real keys and certificates are generated into the test's folder; the configuration is read
by :func:`load_settings`, as ``payhook check-config`` and ``payhook serve`` read it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from payhook.config import load_settings
from payhook.errors import ConfigurationError
from payhook.providers import key_summary
from payhook.signing import key_fingerprint
from tests._keyfiles import (
    API_V3_KEY,
    bare_base64,
    certificate,
    pem_body_lines,
    private_pem,
    public_pem,
    rsa_key,
    write,
)

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
ALIPAY_MISTAKE = (
    "alipay_public_key is your app's own public key; paste the Alipay public key from the console"
)
WECHAT_MISTAKE = (
    "wechatpay_public_key is your merchant API key's public half; download the WeChat Pay "
    "public key (公钥ID PUB_KEY_ID_…) from the merchant platform"
)
PUB_KEY_ID = "PUB_KEY_ID_0119000000012026112800000000000000"


def toml_table(header: str, **values: object) -> str:
    lines = [header] + [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n\n"


def alipay(name: str = "alipay", **keys: object) -> str:
    return toml_table(
        "[[channels]]", name=name, provider="alipay", app_id="2021000000000001", **keys
    )


def wechat(name: str = "wechat", **keys: object) -> str:
    return toml_table(
        "[[channels]]",
        name=name,
        provider="wechatpay_v3",
        mch_id="1900000001",
        api_v3_key=API_V3_KEY,
        **keys,
    )


def config(folder: Path, *channels: str) -> Path:
    path = folder / "payhook.toml"
    path.write_text('database_url = "sqlite+aiosqlite:///./payhook.db"\n\n' + "".join(channels))
    return path


def refused(path: Path) -> str:
    with pytest.raises(ConfigurationError) as info:
        load_settings(path)
    message = info.value.message
    assert "\n" not in message
    return message


def assert_no_key_material(text: str, *pems: str) -> None:
    for pem in pems:
        for line in pem_body_lines(pem):
            assert line not in text
    assert "PRIVATE KEY-----" not in text


# -- our own key pasted where the provider's belongs -----------------------------------------


@pytest.mark.parametrize("form", ["files", "inline-pem", "inline-base64"])
def test_app_public_key_pasted_as_alipay_public_key(tmp_path: Path, form: str) -> None:
    """The classic mistake: the app's own public key (the public half of app_private_key)
    given as alipay_public_key. Every callback would be refused; the load says why."""
    app = rsa_key("app")
    if form == "files":
        keys = {
            "alipay_public_key_file": write(tmp_path, "alipay_public.pem", public_pem(app)),
            "app_private_key_file": write(tmp_path, "app_private.pem", private_pem(app)),
        }
    elif form == "inline-pem":
        keys = {"alipay_public_key": public_pem(app), "app_private_key": private_pem(app)}
    else:
        keys = {
            "alipay_public_key": bare_base64(public_pem(app)),
            "app_private_key": bare_base64(private_pem(app)),
        }
    path = config(tmp_path, alipay(**keys))
    message = refused(path)
    assert message == f"{path}: channels[0] (alipay): {ALIPAY_MISTAKE}"
    assert_no_key_material(message, private_pem(app))


def test_right_alipay_key_beside_the_app_key_loads(tmp_path: Path) -> None:
    """app_private_key is accepted (contract §11); check-config shows only fingerprints."""
    alipay_key, app = rsa_key("alipay"), rsa_key("app")
    path = config(
        tmp_path,
        alipay(
            alipay_public_key_file=write(tmp_path, "alipay_public.pem", public_pem(alipay_key)),
            app_private_key_file=write(tmp_path, "app_private.pem", private_pem(app)),
        ),
    )
    settings = load_settings(path)
    assert settings.key_warnings() == ()
    summary = key_summary(settings.channels[0])
    assert summary == (
        f"alipay_public_key {key_fingerprint(alipay_key.public_key())}, "
        f"app key set {key_fingerprint(app)}"
    )
    for text in (summary, repr(settings), str(settings), settings.model_dump_json()):
        assert_no_key_material(text, private_pem(app))


def test_app_certificate_given_as_alipay_public_cert(tmp_path: Path) -> None:
    """Certificate mode: the app's own certificate (appCertPublicKey_….crt) chains to the
    Alipay root as the Alipay certificate does; its key gives it away."""
    root, app = rsa_key("alipay-root"), rsa_key("app")
    root_pem = certificate(root, subject="Alipay Root", ca=True, serial=1)
    app_cert = certificate(app, issuer_key=root, subject="app", issuer="Alipay Root", serial=7)
    path = config(
        tmp_path,
        alipay(
            alipay_public_cert_file=write(tmp_path, "appCertPublicKey.crt", app_cert),
            alipay_root_cert_file=write(tmp_path, "alipayRootCert.crt", root_pem),
            app_private_key_file=write(tmp_path, "app_private.pem", private_pem(app)),
        ),
    )
    assert refused(path) == (
        f"{path}: channels[0] (alipay): alipay_public_cert is your app's own certificate "
        "(appCertPublicKey_<app_id>.crt); give the Alipay public certificate "
        "(alipayCertPublicKey_RSA2.crt) from the console"
    )


def test_merchant_public_half_as_wechatpay_public_key(tmp_path: Path) -> None:
    """WeChat Pay: the merchant API key's public half given as the WeChat Pay public key."""
    merchant = rsa_key("merchant")
    path = config(
        tmp_path,
        wechat(
            wechatpay_public_key_id=PUB_KEY_ID,
            wechatpay_public_key_file=write(tmp_path, "wechatpay_public.pem", public_pem(merchant)),
            merchant_serial_no="3775B6A45ACD588826D15E583A95F5DD3A5F5D8A",
            merchant_private_key_file=write(tmp_path, "apiclient_key.pem", private_pem(merchant)),
        ),
    )
    message = refused(path)
    assert message == f"{path}: channels[0] (wechat): {WECHAT_MISTAKE}"
    assert_no_key_material(message, private_pem(merchant))


def test_merchant_certificate_as_platform_certificate(tmp_path: Path) -> None:
    """apiclient_cert.pem (the merchant's own certificate) given as a platform certificate."""
    merchant, platform = rsa_key("merchant"), rsa_key("platform")
    path = config(
        tmp_path,
        wechat(
            platform_certificate_files=[
                write(tmp_path, "platform.pem", certificate(platform, serial=0xABC)),
                write(tmp_path, "apiclient_cert.pem", certificate(merchant, serial=0xDEF)),
            ],
            merchant_serial_no="3775B6A45ACD588826D15E583A95F5DD3A5F5D8A",
            merchant_private_key_file=write(tmp_path, "apiclient_key.pem", private_pem(merchant)),
        ),
    )
    assert refused(path).startswith(
        f"{path}: channels[0] (wechat): platform_certificate_files holds your merchant API "
        "certificate (apiclient_cert.pem), not a WeChat Pay platform certificate"
    )


def test_own_key_of_another_channel(tmp_path: Path) -> None:
    """A provider key that is the public half of a private key of *another* channel is
    refused too, naming that channel."""
    merchant = rsa_key("merchant")
    path = config(
        tmp_path,
        alipay(alipay_public_key=public_pem(merchant)),
        wechat(
            wechatpay_public_key_id=PUB_KEY_ID,
            wechatpay_public_key=public_pem(rsa_key("wechatpay")),
            merchant_serial_no="3775B6A45ACD588826D15E583A95F5DD3A5F5D8A",
            merchant_private_key=private_pem(merchant),
        ),
    )
    assert refused(path) == (
        f"{path}: channels[0] (alipay): {ALIPAY_MISTAKE} "
        "(it is the public half of merchant_private_key of channel 'wechat')"
    )


# -- the simulator key: it plays the provider ------------------------------------------------


def test_simulator_key_matching_the_provider_key_is_right() -> None:
    """In the sandbox alipay_public_key *is* the public half of simulator_private_key:
    no error and no warning (the shipped sample)."""
    settings = load_settings(SAMPLES / "payhook.toml")
    assert settings.key_warnings() == ()


@pytest.mark.parametrize("provider", ["alipay", "wechatpay_v3"])
def test_simulator_key_not_matching_is_a_warning(tmp_path: Path, provider: str) -> None:
    """A simulator key that is not the private half of the channel's provider key: the
    configuration loads (real callbacks verify), with a warning that simulate is refused."""
    real, simulator = rsa_key("provider"), rsa_key("simulator")
    if provider == "alipay":
        channel = alipay(
            alipay_public_key=public_pem(real), simulator_private_key=private_pem(simulator)
        )
        target = "alipay_public_key"
    else:
        channel = wechat(
            wechatpay_public_key_id=PUB_KEY_ID,
            wechatpay_public_key=public_pem(real),
            simulator_private_key=private_pem(simulator),
        )
        target = "wechatpay_public_key"
    settings = load_settings(config(tmp_path, channel))
    name = settings.channels[0].name
    assert settings.key_warnings() == (
        f"channels[0] ({name}): simulator_private_key ({key_fingerprint(simulator)}) is not the "
        f"private half of {target} ({key_fingerprint(real.public_key())}): callbacks sent by "
        "`payhook simulate` to this channel will be refused",
    )


def test_wechat_simulator_must_match_the_key_it_signs_under(tmp_path: Path) -> None:
    """Without a public key the simulator signs under the first platform certificate's
    serial: a simulator key matching only a later certificate is still warned about."""
    first, simulator = rsa_key("platform"), rsa_key("simulator")
    settings = load_settings(
        config(
            tmp_path,
            wechat(
                platform_certificates=[
                    certificate(first, serial=0xABC),
                    certificate(simulator, serial=0xDEF),
                ],
                simulator_private_key=private_pem(simulator),
            ),
        )
    )
    (warning,) = settings.key_warnings()
    assert f"not the private half of platform certificate ABC ({key_fingerprint(first)})" in (
        warning
    )


# -- a garbled key names the file it came from -----------------------------------------------


def _garbled_cases() -> list[tuple[str, str, str, str]]:
    app, alipay_key = rsa_key("app"), rsa_key("alipay")
    return [
        ("alipay_public_key_file", "not a key!", "alipay_public_key", "neither PEM nor base64"),
        ("alipay_public_key_file", private_pem(alipay_key), "alipay_public_key",
         "holds a private key (BEGIN PRIVATE KEY), not a public key"),
        ("alipay_public_key_file", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
         "alipay_public_key", "not a PEM public key (a BEGIN PUBLIC KEY block that cannot be parsed)"),
        ("app_private_key_file", public_pem(app), "app_private_key",
         "holds a public key (BEGIN PUBLIC KEY), not a private key"),
        ("app_private_key_file", certificate(app), "app_private_key",
         "holds a certificate (BEGIN CERTIFICATE), not a private key"),
        ("app_private_key_file", bare_base64(public_pem(app)), "app_private_key",
         "holds a public key (bare base64), not a private key"),
        ("simulator_private_key_file", "MIIB", "simulator_private_key",
         "not a private key (base64 that cannot be parsed)"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("file_key", "text", "key", "problem"),
    _garbled_cases(),
    ids=["not-a-key", "private-for-public", "damaged-pem", "public-for-private",
         "cert-for-private", "bare-public-for-private", "bad-base64-der"],
)  # fmt: skip
def test_garbled_key_file_is_named(
    tmp_path: Path, file_key: str, text: str, key: str, problem: str
) -> None:
    """The error names the setting, the file as written and as resolved, and what is wrong,
    never the file's content."""
    keys: dict[str, object] = {"alipay_public_key": public_pem(rsa_key("alipay"))}
    keys.pop(file_key.removesuffix("_file"), None)
    keys[file_key] = write(tmp_path, "garbled.pem", text)
    path = config(tmp_path, alipay(**keys))
    message = refused(path)
    resolved = (tmp_path / "keys" / "garbled.pem").resolve()
    assert message == (
        f"{path}: channels[0] (alipay): {file_key} keys/garbled.pem ({resolved}): {problem}"
    )
    assert key in message
    assert_no_key_material(message, text)


def test_garbled_platform_certificate_names_its_list_entry(tmp_path: Path) -> None:
    """The second file of platform_certificate_files is named by its position and path."""
    good = write(tmp_path, "platform.pem", certificate(rsa_key("platform")))
    bad = write(
        tmp_path, "broken.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"
    )
    path = config(tmp_path, wechat(platform_certificate_files=[good, bad]))
    resolved = (tmp_path / "keys" / "broken.pem").resolve()
    assert refused(path) == (
        f"{path}: channels[0] (wechat): platform_certificate_files[1] keys/broken.pem "
        f"({resolved}): not a PEM certificate (a BEGIN CERTIFICATE block that cannot be parsed)"
    )


def test_garbled_root_certificate_names_its_file(tmp_path: Path) -> None:
    """Certificate mode: a root file holding no certificate is named by its path too."""
    alipay_key = rsa_key("alipay")
    path = config(
        tmp_path,
        alipay(
            alipay_public_cert_file=write(tmp_path, "alipay.crt", certificate(alipay_key)),
            alipay_root_cert_file=write(tmp_path, "root.crt", public_pem(alipay_key)),
        ),
    )
    resolved = (tmp_path / "keys" / "root.crt").resolve()
    assert refused(path).startswith(
        f"{path}: channels[0] (alipay): alipay_root_cert_file keys/root.crt ({resolved})"
    )


def test_garbled_inline_key_names_config_and_key(tmp_path: Path) -> None:
    """An inline value is named by the configuration file and its key."""
    path = config(tmp_path, alipay(alipay_public_key="not a key"))
    assert refused(path) == (
        f"{path}: channels[0] (alipay): alipay_public_key: neither PEM nor base64"
    )


def test_absolute_key_path_is_shown_once(tmp_path: Path) -> None:
    """A path written absolute is not repeated as its own resolution."""
    file = tmp_path / "garbled.pem"
    file.write_text("not a key")
    path = config(tmp_path, alipay(alipay_public_key_file=str(file)))
    assert refused(path) == (
        f"{path}: channels[0] (alipay): alipay_public_key_file {file}: neither PEM nor base64"
    )


# -- unknown keys: did you mean … ------------------------------------------------------------


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    shutil.copytree(SAMPLES / "keys", tmp_path / "keys")
    shutil.copy(SAMPLES / "payhook.toml", tmp_path / "payhook.toml")
    return tmp_path / "payhook.toml"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("alipay_public_key_file", "alipay_pubic_key_file",
         "channels[0].alipay_pubic_key_file: unknown key in channel 'alipay'; "
         "did you mean 'alipay_public_key_file'?"),
        ('app_id   = "2021000000000001"', 'app_idd = "2021000000000001"',
         "channels[0].app_idd: unknown key in channel 'alipay'; did you mean 'app_id'?"),
        ("platform_certificate_files", "platform_certificate_file",
         "channels[1].platform_certificate_file: unknown key in channel 'wechat'; "
         "did you mean 'platform_certificate_files'?"),
        ("max_body_bytes = 65536", "max_body_byte = 65536",
         "max_body_byte: unknown key; did you mean 'max_body_bytes'?"),
        ("concurrency     = 64", "concurency = 64",
         "dispatcher.concurency: unknown key; did you mean 'concurrency'?"),
        ("[dispatcher]", "[dispatch]", "dispatch: unknown key; did you mean 'dispatcher'?"),
        ('secret = "whsec_', 'secrte = "whsec_',
         "subscriptions[0].secrte: unknown key in subscription 'orders'; did you mean 'secret'?"),
        ("max_body_bytes = 65536", 'max_body_bytes = 65536\nretry_schedule = ["1s"]',
         "retry_schedule: unknown key here; it belongs under [dispatcher]"),
        ("max_body_bytes = 65536", 'max_body_bytes = 65536\nmch_id = "1"',
         "mch_id: unknown key here; it belongs under [[channels]]"),
        ('seller_id = "2088000000000001"', 'api_v3_key = "x"',
         "channels[0].api_v3_key: unknown key in channel 'alipay'; "
         "it is a key of wechatpay_v3 channels"),
        ('seller_id = "2088000000000001"', 'zzzz = "x"',
         "channels[0].zzzz: unknown key in channel 'alipay'"),
    ],
    ids=["channel-file-key", "channel-required-key", "channel-list-key", "top-level",
         "dispatcher", "section", "subscription", "dispatcher-key-at-top",
         "channel-key-at-top", "other-providers-key", "nothing-close"],
)  # fmt: skip
def test_unknown_key_suggests(sample: Path, old: str, new: str, expected: str) -> None:
    """An unknown key is one line naming it, where it is, and the key it probably meant."""
    text = sample.read_text()
    assert old in text
    sample.write_text(text.replace(old, new, 1))
    assert refused(sample) == f"{sample}: {expected}"


def test_non_path_in_a_file_list_is_one_line(tmp_path: Path) -> None:
    """A list of files holding something else than a path: one line, no traceback."""
    path = config(tmp_path, wechat(platform_certificate_files=[1]))
    assert (
        refused(path) == f"{path}: channels[0].platform_certificate_files[0]: must be a file path"
    )


def test_summary_names_a_certificate_file_by_its_first_certificate(tmp_path: Path) -> None:
    """Certificate mode: the Alipay certificate file (leaf + intermediate) is shown once, by
    the leaf's key, the one callbacks verify with; platform certificates one by one."""
    root, intermediate, alipay_key = rsa_key("alipay-root"), rsa_key("inter"), rsa_key("alipay")
    root_pem = certificate(root, subject="Alipay Root", ca=True, serial=1)
    inter_pem = certificate(
        intermediate, issuer_key=root, subject="Inter", issuer="Alipay Root", ca=True, serial=2
    )
    leaf = certificate(alipay_key, issuer_key=intermediate, subject="leaf", issuer="Inter")
    settings = load_settings(
        config(
            tmp_path,
            alipay(
                alipay_public_cert=leaf + inter_pem,
                alipay_root_cert=root_pem,
                app_private_key=private_pem(rsa_key("app")),
            ),
            wechat(
                platform_certificates=[
                    certificate(rsa_key("platform"), serial=0xABC)
                    + certificate(rsa_key("wechatpay"), serial=0xDEF)
                ]
            ),
        )
    )
    assert key_summary(settings.channels[0]) == (
        f"alipay_public_cert {key_fingerprint(alipay_key)}, "
        f"app key set {key_fingerprint(rsa_key('app'))}"
    )
    assert key_summary(settings.channels[1]) == (
        f"platform certificate ABC {key_fingerprint(rsa_key('platform'))}, "
        f"platform certificate DEF {key_fingerprint(rsa_key('wechatpay'))}"
    )
