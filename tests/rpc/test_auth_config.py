"""The operator's side of access: the config's ``[rpc]`` fields, the JWT secret file, TLS
contexts (and a real handshake with one), and the ``keys api`` / ``keys jwt`` commands."""

from __future__ import annotations

import asyncio
import os
import ssl
import stat
import tomllib
from pathlib import Path

import pytest

from alys_fast.cli import main
from alys_fast.config import ConfigError, load_config
from alys_fast.config.node import tls_context
from alys_fast.node.keys import load_jwt_secret
from alys_fast.rpc.auth import ALL_NAMESPACES, PUBLIC_NAMESPACES, ApiKey, Authenticator

DATA = Path(__file__).parent / "data"
CERT = DATA / "tls-test.crt"
KEY = DATA / "tls-test.key"
OTHER_KEY = DATA / "tls-other.key"
PEER = "127.0.0.1"


def write_config(tmp_path: Path, rpc: str) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(f'data_dir = "data"\n\n[rpc]\n{rpc}')
    return path


# -- the config ---------------------------------------------------------------------------------


def test_the_defaults_serve_the_public_namespaces_and_a_jwt_everything(tmp_path: Path) -> None:
    rpc = load_config(write_config(tmp_path, "")).rpc
    assert rpc.api == PUBLIC_NAMESPACES and rpc.jwt_namespaces == (ALL_NAMESPACES,)
    assert rpc.api_keys == () and rpc.jwt_secret_file is None and rpc.tls_cert is None


def test_the_config_takes_keys_and_resolves_paths(tmp_path: Path) -> None:
    digest = "ab" * 32
    rpc = load_config(write_config(tmp_path, f'''
api = ["eth", "net"]
jwt_secret_file = "secrets/jwt.hex"
jwt_namespaces = ["admin"]
tls_cert = "rpc.crt"
tls_key = "rpc.key"

[[rpc.api_keys]]
id = "ops"
sha256 = "{digest}"
namespaces = ["admin", "debug"]
''')).rpc
    assert rpc.api == ("eth", "net") and rpc.jwt_namespaces == ("admin",)
    assert rpc.api_keys == (ApiKey("ops", digest, ("admin", "debug")),)
    assert rpc.jwt_secret_file == str(tmp_path / "secrets/jwt.hex")
    assert (rpc.tls_cert, rpc.tls_key) == (str(tmp_path / "rpc.crt"), str(tmp_path / "rpc.key"))


@pytest.mark.parametrize(("rpc", "message"), [
    ('api = ["Eth"]', 'namespace "Eth" must be lowercase letters and digits'),
    ('jwt_namespaces = ["admin_"]', 'namespace "admin_" must be lowercase'),
    ('tls_cert = "rpc.crt"', "tls_cert and tls_key go together"),
    ('[[rpc.api_keys]]\nid = "ops"\nsha256 = "00"\nnamespaces = ["admin"]', "sha256"),
    ('[[rpc.api_keys]]\nid = "ops"\nkey = "afk_00"\nsha256 = "' + "00" * 32
     + '"\nnamespaces = ["admin"]', "key"),
    ('[[rpc.api_keys]]\nid = "jwt"\nsha256 = "' + "00" * 32 + '"\nnamespaces = ["admin"]',
     'API key id "jwt" is reserved'),
])
def test_bad_access_settings_are_config_errors(tmp_path: Path, rpc: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write_config(tmp_path, rpc))


def test_the_example_config_still_loads() -> None:
    from tests.conftest import ROOT

    config = load_config(ROOT / "examples" / "node.toml")
    assert config.rpc.api == PUBLIC_NAMESPACES


# -- the JWT secret file ------------------------------------------------------------------------


def test_the_jwt_secret_is_made_once_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "data" / "jwtsecret"
    secret = load_jwt_secret(path)
    assert len(secret) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == secret.hex() + "\n"
    assert load_jwt_secret(path) == secret  # read back, never replaced


def test_a_jwt_secret_written_by_hand_is_read(tmp_path: Path) -> None:
    path = tmp_path / "jwtsecret"
    path.write_text("0x" + "ab" * 32 + "\n\n")
    assert load_jwt_secret(path) == bytes.fromhex("ab" * 32)


@pytest.mark.parametrize("text", ["", "ab" * 31, "zz" * 32, "ab" * 33])
def test_an_unusable_jwt_secret_is_a_config_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "jwtsecret"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"JWT secret {path}: want 32 bytes as 64 hex digits"):
        load_jwt_secret(path)


def test_a_jwt_secret_that_cannot_be_made_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match=r"JWT secret .*file/jwtsecret: Not a directory"):
        load_jwt_secret(tmp_path / "file" / "jwtsecret")


# -- TLS ----------------------------------------------------------------------------------------


def test_a_certificate_and_its_key_make_a_server_context() -> None:
    context = tls_context(CERT, KEY)
    assert isinstance(context, ssl.SSLContext)
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2


def test_a_client_that_trusts_the_certificate_completes_a_handshake() -> None:
    async def main() -> bytes:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.readline())
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=tls_context(CERT, KEY))
        port = server.sockets[0].getsockname()[1]
        client = ssl.create_default_context(cafile=str(CERT))
        async with asyncio.timeout(10):
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
            writer.write(b"over tls\n")
            answer = await reader.readline()
            writer.close()
        server.close()
        await server.wait_closed()
        return answer

    assert asyncio.run(main()) == b"over tls\n"


@pytest.mark.parametrize(("cert", "key", "message"), [
    (DATA / "missing.crt", KEY, r"tls_cert .*missing.crt: No such file or directory"),
    (CERT, DATA / "missing.key", r"tls_key .*missing.key: No such file or directory"),
    (KEY, KEY, r"tls_cert .*tls-test.key: not a PEM file with a CERTIFICATE"),
    (CERT, CERT, r"tls_key .*tls-test.crt: not a PEM file with a PRIVATE KEY"),
    (CERT, OTHER_KEY, r"tls_key .*tls-other.key is not the key of the certificate .*tls-test.crt"),
])
def test_unusable_tls_files_are_config_errors(cert: Path, key: Path, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        tls_context(cert, key)
    assert "b'" not in str(caught.value) and "None" not in str(caught.value)


def test_a_damaged_certificate_is_a_config_error(tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.crt"
    damaged.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    with pytest.raises(ConfigError, match=r"tls_cert .*damaged.crt / tls_key .* cannot be loaded"):
        tls_context(damaged, KEY)


# -- keys api / keys jwt ------------------------------------------------------------------------


def test_keys_api_prints_a_key_and_the_stanza_that_lets_it_in(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "api", "--id", "ops", "--namespaces", "admin, debug"]) == 0
    out = capsys.readouterr().out
    key = out.split()[2]
    stanza = out[out.index("[[rpc.api_keys]]"):]
    assert key.startswith("afk_") and key not in stanza
    config = load_config(write_config(tmp_path, stanza))
    (record,) = config.rpc.api_keys
    assert record.id == "ops" and record.namespaces == ("admin", "debug")
    grant = Authenticator(api_keys=config.rpc.api_keys).authorize(f"Bearer {key}".encode(), PEER)
    assert grant.who == "ops" and grant.allows("admin_nodeInfo")
    assert tomllib.loads(stanza)["rpc"]["api_keys"][0]["sha256"] == record.sha256


def test_keys_api_refuses_a_bad_namespace(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "api", "--id", "ops", "--namespaces", "admin,Debug"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert 'namespace "Debug" must be lowercase letters and digits' in captured.err


def test_keys_jwt_prints_a_token_the_node_takes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "jwtsecret"
    secret = load_jwt_secret(path)
    assert main(["keys", "jwt", "--secret", str(path)]) == 0
    token = capsys.readouterr().out.strip()
    grant = Authenticator(jwt_secret=secret).authorize(f"Bearer {token}".encode(), PEER)
    assert grant.who == "jwt"


def test_keys_jwt_does_not_make_a_secret(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "jwt", "--secret", str(tmp_path / "jwtsecret")]) == 2
    assert "no such file (a node writes it on its first start)" in capsys.readouterr().err
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize(("args", "message"), [
    (["--http-api", "eth,Admin"], '--http-api: namespace "Admin" must be lowercase letters'),
    (["--tls-cert", str(CERT)], "--tls-cert and --tls-key go together"),
    (["--tls-cert", str(CERT), "--tls-key", str(OTHER_KEY)],
     "tls-other.key is not the key of the certificate"),
])
def test_dev_refuses_bad_access_options_before_starting(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    assert main(["dev", "--port", "0", "--data-dir", str(tmp_path / "dev"), *args]) == 2
    assert message in capsys.readouterr().err
