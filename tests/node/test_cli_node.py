"""``alys-fast dev`` and ``alys-fast run --config FILE`` as a user runs them: the banner, a node
from a TOML config, and every bad input refused with exit code 2 and one line naming it."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account

from alys_fast.chain.spec import DEV_ACCOUNTS, DEV_AUTHORITY_KEY, DEV_CHAIN_ID, dev_spec
from tests.node.harness import rpc, terminate
from tests.node.test_durability import batch, transfer, wait_for

pytestmark = pytest.mark.timeout(60)

CLI = (sys.executable, "-m", "alys_fast")


class Running:
    """A CLI subprocess whose output (stdout and stderr merged) is read line by line on a
    thread, so every wait on it is bounded."""

    def __init__(self, *args: str, cwd: Path | None = None) -> None:
        self.proc = subprocess.Popen(
            [*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            cwd=cwd, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def expect(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        """The first line (from here on) matching ``pattern``; fails at EOF or after timeout."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                raise AssertionError(f"exited ({self.proc.wait(10)}) before printing "
                                     f"{pattern!r}:\n" + "\n".join(self.seen))
            self.seen.append(line)
            match = re.search(pattern, line)
            if match:
                return match
        raise AssertionError(f"no line matching {pattern!r} within {timeout}s:\n"
                             + "\n".join(self.seen))

    def terminate(self) -> int:
        return terminate(self.proc)


@pytest.fixture
def running() -> Iterator[list[Running]]:
    """Processes a test starts; any still running at the end are killed."""
    started: list[Running] = []
    yield started
    for proc in started:
        if proc.proc.poll() is None:
            proc.proc.kill()
            proc.proc.wait(10)


def fails(*args: str, cwd: Path | None = None) -> str:
    """Run the CLI expecting a refusal: exit code 2, nothing on stdout, one line on stderr
    (``alys-fast: error: ...``, no traceback); that line."""
    done = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=30, cwd=cwd)
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("alys-fast: error: "), lines[0]
    return lines[0]


# --- alys-fast dev -------------------------------------------------------------------------------

def test_dev_banner_lists_the_accounts_keys_and_url(running: list[Running]) -> None:
    dev = Running("dev", "--port", "0", "--block-time", "0.2", "--log-level", "WARNING")
    running.append(dev)
    assert dev.expect(r"^chain id\s+(\d+)$").group(1) == str(DEV_CHAIN_ID)
    data_dir = Path(dev.expect(r"^data dir\s+(\S+)$").group(1))
    dev.expect(r"^Available accounts \(10,000 ETH each")
    listed = []
    for i in range(10):
        match = dev.expect(r"^\((\d+)\) (0x[0-9a-fA-F]{40})  (0x[0-9a-f]{64})$", 5)
        assert int(match.group(1)) == i
        listed.append((match.group(2), match.group(3)))
    assert listed == list(DEV_ACCOUNTS)
    for address, key in listed:
        assert Account.from_key(key).address == address
    url = dev.expect(r"^JSON-RPC\s+(http://127\.0\.0\.1:\d+/)$").group(1)
    assert dev.expect(r"^WebSocket\s+(\S+)$").group(1) == url.replace("http://", "ws://")

    # The URL serves this chain, with the listed accounts funded.
    assert int(rpc(url, "eth_chainId"), 16) == DEV_CHAIN_ID
    for address, _ in listed:
        assert int(rpc(url, "eth_getBalance", address, "latest"), 16) == 10_000 * 10**18
    wait_for(lambda: int(rpc(url, "eth_blockNumber"), 16) >= 1, what="a first block")
    assert data_dir.is_dir()
    assert dev.terminate() == 0
    assert not data_dir.exists(), "the temporary data dir of `dev` outlived it"


def test_dev_mine_runs_a_merge_miner_that_finalizes_blocks(running: list[Running]) -> None:
    dev = Running("dev", "--port", "0", "--block-time", "0.5", "--mine")
    running.append(dev)
    url = dev.expect(r"^JSON-RPC\s+(http://127\.0\.0\.1:\d+/)$").group(1)
    dev.expect(r"^Consensus\s+http://127\.0\.0\.1:\d+/")
    miner = int(dev.expect(r"^Miner\s+pid (\d+), paying " + DEV_ACCOUNTS[0][0]).group(1))
    wait_for(lambda: int(rpc(url, "eth_getBlockByNumber", "finalized", False)["number"], 16)
             >= 2, what="blocks finalized by the miner's proofs")
    block = rpc(url, "eth_getBlockByNumber", "safe", False)
    assert int(block["number"], 16) >= 2
    assert dev.terminate() == 0
    with pytest.raises(ProcessLookupError):  # the miner stopped with the node
        os.kill(miner, 0)


MNEMONIC = "abandon " * 11 + "about"  # BIP-39's all-zero entropy test phrase


def test_dev_accounts_balance_mnemonic_and_chain_id_flags(
    tmp_path: Path, running: list[Running]
) -> None:
    data_dir = tmp_path / "chain"
    flags = ("--accounts", "3", "--balance", "5", "--mnemonic", MNEMONIC, "--chain-id", "1337")
    dev = Running("dev", "--port", "0", "--data-dir", str(data_dir), "--log-level", "WARNING",
                  *flags)
    running.append(dev)
    assert dev.expect(r"^chain id\s+(\d+)$").group(1) == "1337"
    dev.expect(rf'^Available accounts \(5 ETH each; mnemonic "{MNEMONIC}"\)$')
    Account.enable_unaudited_hdwallet_features()
    listed = []
    for i in range(3):
        match = dev.expect(r"^\((\d+)\) (0x[0-9a-fA-F]{40})  (0x[0-9a-f]{64})$", 5)
        derived = Account.from_mnemonic(MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}")
        assert (match.group(2), match.group(3)) == (
            derived.address, "0x" + derived.key.hex().removeprefix("0x"))
        listed.append(derived.address)
    url = dev.expect(r"^JSON-RPC\s+(http://127\.0\.0\.1:\d+/)$").group(1)

    assert rpc(url, "eth_chainId") == hex(1337)
    assert rpc(url, "eth_accounts") == listed
    for address in listed:
        assert int(rpc(url, "eth_getBalance", address, "latest"), 16) == 5 * 10**18
    assert int(rpc(url, "eth_getBalance", DEV_ACCOUNTS[0][0], "latest"), 16) == 0
    # The unlocked accounts send (signed for chain 1337; automine: the receipt is there).
    tx_hash = rpc(url, "eth_sendTransaction", {"from": listed[0], "to": listed[1], "value": "0x1"})
    assert rpc(url, "eth_getTransactionReceipt", tx_hash)["status"] == "0x1"
    assert rpc(url, "eth_getTransactionByHash", tx_hash)["chainId"] == hex(1337)
    assert dev.terminate() == 0
    # The data dir keeps these rules: another chain id or other accounts are refused.
    reopen = ("dev", "--port", "0", "--data-dir", str(data_dir), "--log-level", "CRITICAL")
    line = fails(*reopen, *flags[:-1], "1338")
    assert "other chain rules" in line and "chain_id 1337 -> 1338" in line, line
    line = fails(*reopen, "--chain-id", "1337")
    assert "holds another chain" in line, line


@pytest.mark.parametrize("args, named", [
    (("--block-time", "-1"), "--block-time"),
    (("--block-time", "0.0001"), "--block-time"),
    (("--block-time", "1", "--no-mining"), "--no-mining"),
    (("--block-time", "nan"), "--block-time"),
    (("--gas-limit", "100"), "--gas-limit"),
    (("--accounts", "-1"), "--accounts"),
    (("--accounts", "1001"), "--accounts"),
    (("--balance", "lots"), "--balance"),
    (("--balance", "-1"), "--balance"),
    (("--balance", "1e-19"), "--balance"),
    (("--balance", "inf"), "--balance"),
    (("--balance", "1e99"), "--balance"),
    (("--chain-id", "0"), "--chain-id"),
    (("--chain-id", str(2**63)), "--chain-id"),
    (("--mnemonic", "not a mnemonic"), "--mnemonic"),
    (("--mnemonic", "abandon " * 12), "--mnemonic"),
])
def test_dev_refuses_bad_arguments(args: tuple[str, ...], named: str) -> None:
    assert named in fails("dev", "--port", "0", *args)


# --- alys-fast run --config ----------------------------------------------------------------------

def write_config(folder: Path, text: str, key: str | None = DEV_AUTHORITY_KEY) -> Path:
    """``node.toml`` with ``text`` in ``folder``, beside ``authority.key`` holding ``key``."""
    folder.mkdir(parents=True, exist_ok=True)
    if key is not None:
        (folder / "authority.key").write_text(key + "\n")
    path = folder / "node.toml"
    path.write_text(text)
    return path


GOOD = '''\
data_dir = "chaindata"
chain = "dev"
authority_key_file = "authority.key"

[rpc]
port = 0
max_batch = 50
'''


def test_run_from_a_config_file_produces_blocks_and_serves(
    tmp_path: Path, running: list[Running]
) -> None:
    config = write_config(tmp_path / "conf", GOOD)
    # From another directory: the config's relative paths are relative to the file.
    node = Running("run", "--config", str(config), "--log-level", "INFO", cwd=tmp_path)
    running.append(node)
    # `run` prints one line with the bound URL (the port is 0 here).
    url = node.expect(r"JSON-RPC\s+(http://127\.0\.0\.1:\d+/)").group(1)
    assert (tmp_path / "conf" / "chaindata" / "chain").is_dir()
    assert int(rpc(url, "eth_chainId"), 16) == DEV_CHAIN_ID
    first = int(rpc(url, "eth_blockNumber"), 16)
    wait_for(lambda: int(rpc(url, "eth_blockNumber"), 16) >= first + 1, 20,
             what="a block from the configured authority")
    block = rpc(url, "eth_getBlockByNumber", "latest", False)
    assert block["miner"] == dev_spec().fee_recipient  # the coinbase: who receives the tips
    # It serves transactions too.
    key = DEV_ACCOUNTS[3][1]
    tx_hash = rpc(url, "eth_sendRawTransaction", transfer(key, 0, DEV_ACCOUNTS[4][0], 5))
    found = wait_for(lambda: rpc(url, "eth_getTransactionReceipt", tx_hash), 20,
                     what="the transfer's receipt")
    assert found["status"] == "0x1"
    # The [rpc] limits are the configured ones (max_batch) and the defaults (the rest).
    assert len(batch(url, [("eth_chainId", [])] * 50)) == 50
    with pytest.raises(AssertionError, match="exceeds the limit of 50"):
        batch(url, [("eth_chainId", [])] * 51)
    assert node.terminate() == 0


@pytest.mark.parametrize("text, key, named", [
    pytest.param('chian = "dev"\n' + GOOD, DEV_AUTHORITY_KEY, "chian", id="unknown-key"),
    pytest.param(GOOD + "prot = 8545\n", DEV_AUTHORITY_KEY, "prot", id="unknown-rpc-key"),
    pytest.param(GOOD.replace('"chaindata"', "5"), DEV_AUTHORITY_KEY, "data_dir",
                 id="wrong-type"),
    pytest.param(GOOD.replace("port = 0", "port = 70000"), DEV_AUTHORITY_KEY, "port",
                 id="port-out-of-range"),
    pytest.param(GOOD + "[rpc\n", DEV_AUTHORITY_KEY, "not valid TOML", id="not-toml"),
    pytest.param(GOOD.replace('"dev"', '"nowhere.toml"'), DEV_AUTHORITY_KEY, "nowhere.toml",
                 id="missing-chain-spec"),
    pytest.param(GOOD, "not a key", "authority.key", id="key-not-hex"),
    pytest.param(GOOD, "0x1234", "32 bytes", id="key-too-short"),
    pytest.param(GOOD, None, "authority.key", id="key-file-missing"),
    pytest.param(GOOD, "0x" + "11" * 32, "not in the spec", id="key-of-no-authority"),
    pytest.param(GOOD, "0x" + "ff" * 32, "below the curve order", id="key-not-a-bls-scalar"),
    pytest.param(GOOD, "0x" + "00" * 32, "above 0", id="key-zero"),
])
def test_run_refuses_a_bad_config_with_one_line(
    tmp_path: Path, text: str, key: str | None, named: str
) -> None:
    config = write_config(tmp_path, text, key)
    message = fails("run", "--config", str(config), "--log-level", "CRITICAL")
    assert named in message, message
    assert "Error(" not in message, f"an exception's repr in: {message}"


def test_run_refuses_a_missing_config_file(tmp_path: Path) -> None:
    missing = tmp_path / "absent.toml"
    message = fails("run", "--config", str(missing))
    assert str(missing) in message and "cannot read" in message
