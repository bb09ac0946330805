"""What an operator runs: ``alys-fast keys new``, the examples under ``examples/`` as they are,
a node without an authority key saying it will not author, and ``--cors`` / ``[rpc] cors``."""

from __future__ import annotations

import re
import shutil
import stat
import subprocess
import urllib.request
from pathlib import Path

import msgspec
import pytest

from alys_fast.chain.spec import spec_from_dict
from alys_fast.config import load_config
from alys_fast.config.node import parse_key
from alys_fast.consensus import SecretKey
from tests.conftest import ROOT
from tests.node.harness import rpc
from tests.node.test_cli_node import CLI, GOOD, Running, fails, running, write_config
from tests.node.test_durability import wait_for

pytestmark = pytest.mark.timeout(60)
__all__ = ["running"]  # the fixture, imported for these tests

EXAMPLES = ROOT / "examples"


def origin_header(url: str, origin: str) -> str | None:
    """The Access-Control-Allow-Origin a page at ``origin`` gets for a JSON-RPC call."""
    body = msgspec.json.encode({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"})
    request = urllib.request.Request(url, body, {"Content-Type": "application/json",
                                                 "Origin": origin})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.headers.get("Access-Control-Allow-Origin")


# --- alys-fast keys new --------------------------------------------------------------------------

def test_keys_new_writes_a_bls_key_file_and_never_overwrites(tmp_path: Path) -> None:
    out = tmp_path / "authority.key"
    done = subprocess.run([*CLI, "keys", "new", "--out", str(out)], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    key = parse_key(out.read_text().strip(), str(out))  # what authority_key_file reads
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    printed = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in done.stdout.splitlines())
    public = "0x" + SecretKey.from_bytes(key).public_key().to_bytes().hex()
    assert printed["public key"].split()[0] == public and len(public) == 2 + 96
    # What a spec's authorities lists: a spec naming it loads and decodes it.
    spec = spec_from_dict({"name": "k", "chain_id": 1, "slot_ms": 1000, "gas_limit": 30_000_000,
                           "authorities": [public]})
    assert spec.authority_keys() == (SecretKey.from_bytes(key).public_key(),)
    assert printed["key file"] == str(out)

    before = out.read_bytes()
    assert str(out) in fails("keys", "new", "--out", str(out))
    assert out.read_bytes() == before
    # The default is ./authority.key.
    (tmp_path / "cwd").mkdir()
    done = subprocess.run([*CLI, "keys", "new"], capture_output=True, text=True, timeout=30,
                          cwd=tmp_path / "cwd")
    assert done.returncode == 0 and (tmp_path / "cwd" / "authority.key").exists()


# --- examples/ -----------------------------------------------------------------------------------

def test_the_examples_start_as_they_are(tmp_path: Path, running: list[Running]) -> None:
    """examples/node.toml with its chain spec and key, copied (so the data dir lands in
    tmp_path: it is relative to the config) and started unchanged but for the port."""
    config = load_config(EXAMPLES / "node.toml")
    assert config.data_dir == str(EXAMPLES / "data")
    copy = shutil.copytree(EXAMPLES, tmp_path / "examples", ignore=shutil.ignore_patterns("data"))
    node = Running("run", "--config", str(copy / "node.toml"), "--port", "0", cwd=tmp_path)
    running.append(node)
    url = node.expect(r"JSON-RPC\s+(http://127\.0\.0\.1:\d+/)").group(1)
    assert not any("full node" in line for line in node.seen)  # it is the spec's authority
    assert int(rpc(url, "eth_chainId"), 16) == config.spec().chain_id
    funded = next(iter(config.spec().alloc))
    assert int(rpc(url, "eth_getBalance", funded, "latest"), 16) == 1000 * 10**18
    wait_for(lambda: int(rpc(url, "eth_blockNumber"), 16) >= 1, 20, what="an example block")
    assert (copy / "data" / "chain").is_dir()
    request = urllib.request.Request(url, headers={"Accept": "text/html"})
    with urllib.request.urlopen(request, timeout=10) as page:
        assert b"alys-fast node" in page.read()  # the status page
    assert origin_header(url, "http://localhost:3000") is None  # cors = [] in the example
    assert node.terminate() == 0


# --- a full node ---------------------------------------------------------------------------------

def test_a_node_without_an_authority_key_says_it_will_not_author(
    tmp_path: Path, running: list[Running]
) -> None:
    text = GOOD.replace('authority_key_file = "authority.key"\n', "") + (
        'cors = ["http://app.example"]\n')  # in [rpc]
    config = write_config(tmp_path, text, key=None)
    node = Running("run", "--config", str(config), "--log-level", "WARNING")
    running.append(node)
    node.expect(r"^full node: no authority key .* will not author blocks$")
    url = node.expect(r"JSON-RPC\s+(http://\S+)").group(1)
    assert origin_header(url, "http://app.example") == "http://app.example"
    assert origin_header(url, "http://other.example") is None
    assert node.terminate() == 0

    # --cors replaces the config's list.
    node = Running("run", "--config", str(config), "--cors", "http://other.example",
                   "--log-level", "WARNING")
    running.append(node)
    url = node.expect(r"JSON-RPC\s+(http://\S+)").group(1)
    assert origin_header(url, "http://other.example") == "http://other.example"
    assert origin_header(url, "http://app.example") is None
    assert node.terminate() == 0


# --- CORS options --------------------------------------------------------------------------------

def test_dev_allows_any_origin_by_default(running: list[Running]) -> None:
    dev = Running("dev", "--port", "0", "--log-level", "WARNING")
    running.append(dev)
    url = dev.expect(r"^JSON-RPC\s+(http://\S+)$").group(1)
    assert origin_header(url, "http://localhost:5173") == "*"
    assert dev.terminate() == 0


def test_bad_origins_are_refused_with_one_line(tmp_path: Path) -> None:
    assert "--cors" in fails("dev", "--port", "0", "--cors", "localhost:3000")
    config = write_config(tmp_path, GOOD + 'cors = ["http://ok.example", "ftp//no"]\n')
    message = fails("run", "--config", str(config))
    assert "not a browser origin" in message and "ftp//no" in message
