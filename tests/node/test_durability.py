"""A dev node's chain survives its process: a graceful restart, ``kill -9`` under load (twice),
and a data directory that belongs to another chain is refused without being touched.

Every check goes through what a user has: the ``alys-fast dev`` process and its JSON-RPC. The
store is only opened directly while no node runs, to read the head the node stopped at.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from alys_fast.chain.spec import DEV_ACCOUNTS, DEV_CHAIN_ID, dev_spec
from alys_fast.storage.store import ChainStore
from tests.node.harness import DevProcess, rpc

pytestmark = pytest.mark.timeout(90)

GWEI = 10**9
BLOCK_TIME = 0.2


# --- helpers -------------------------------------------------------------------------------------

def wait_for(predicate: Any, timeout: float = 15.0, interval: float = 0.05, what: str = "") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate} ({last!r})")


def batch(url: str, calls: list[tuple[str, list[Any]]], timeout: float = 10.0) -> list[dict]:
    """One JSON-RPC batch request; the responses in request order (each a dict with
    ``result`` or ``error``)."""
    body = json.dumps([
        {"jsonrpc": "2.0", "id": i, "method": method, "params": params}
        for i, (method, params) in enumerate(calls)
    ]).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        answers = json.loads(response.read())
    assert isinstance(answers, list) and len(answers) == len(calls), answers
    by_id = {answer["id"]: answer for answer in answers}
    return [by_id[i] for i in range(len(calls))]


def transfer(key: str, nonce: int, to: str, value: int = 1) -> str:
    """A signed EIP-1559 transfer on the dev chain, as 0x-hex."""
    signed = Account.from_key(key).sign_transaction({
        "type": 2, "chainId": DEV_CHAIN_ID, "nonce": nonce, "to": to, "value": value,
        "gas": 21_000, "maxFeePerGas": 100 * GWEI, "maxPriorityFeePerGas": GWEI,
    })
    return "0x" + bytes(signed.raw_transaction).hex()


def head(url: str) -> dict:
    return rpc(url, "eth_getBlockByNumber", "latest", False)


def block_hashes(url: str, upto: int) -> dict[int, str]:
    """Hashes of blocks 0..upto, fetched in one batch."""
    answers = batch(url, [("eth_getBlockByNumber", [hex(n), False]) for n in range(upto + 1)])
    return {n: answer["result"]["hash"] for n, answer in enumerate(answers)}


def accounts_state(url: str, addresses: list[str]) -> dict[str, tuple[str, str]]:
    """{address: (balance, nonce)} at the head, in one batch."""
    calls: list[tuple[str, list[Any]]] = []
    for who in addresses:
        calls += [("eth_getBalance", [who, "latest"]), ("eth_getTransactionCount", [who, "latest"])]
    answers = batch(url, calls)
    return {
        who: (answers[2 * i]["result"], answers[2 * i + 1]["result"])
        for i, who in enumerate(addresses)
    }


def receipt(url: str, tx_hash: str, timeout: float = 15.0) -> dict:
    return wait_for(lambda: rpc(url, "eth_getTransactionReceipt", tx_hash), timeout,
                    what=f"the receipt of {tx_hash}")


def stored_head(data_dir: Path) -> tuple[int, str]:
    """The head written in the store, read while no node runs."""
    with ChainStore(data_dir / "chain") as store:
        found = store.head()
    assert found is not None
    return found[0], "0x" + found[1].hex()


def assert_continues_from(url: str, number: int, block_hash: str) -> None:
    """Block ``number`` is ``block_hash`` and a new block is built on top of it."""
    assert rpc(url, "eth_getBlockByNumber", hex(number), False)["hash"] == block_hash
    child = wait_for(lambda: rpc(url, "eth_getBlockByNumber", hex(number + 1), False),
                     what=f"block {number + 1} after the restart")
    assert child["parentHash"] == block_hash


def send_and_confirm(url: str, key: str, to: str, value: int = 12345) -> dict:
    """Send a transfer with the sender's next nonce; its receipt, once included."""
    sender = Account.from_key(key).address
    nonce = int(rpc(url, "eth_getTransactionCount", sender, "pending"), 16)
    tx_hash = rpc(url, "eth_sendRawTransaction", transfer(key, nonce, to, value))
    found = receipt(url, tx_hash)
    assert found["status"] == "0x1" and found["from"].lower() == sender.lower()
    return found


# --- graceful restart ----------------------------------------------------------------------------

def test_graceful_restart_keeps_the_chain_and_continues(tmp_path: Path) -> None:
    data_dir = tmp_path / "node"
    addresses = [address for address, _ in DEV_ACCOUNTS]
    node = DevProcess(data_dir, BLOCK_TIME).start()
    try:
        # A few transfers from two senders, all included.
        hashes = []
        for sender in (1, 2):
            key = DEV_ACCOUNTS[sender][1]
            raws = [transfer(key, nonce, addresses[5 + sender], 10**15 + nonce)
                    for nonce in range(3)]
            answers = batch(node.url, [("eth_sendRawTransaction", [raw]) for raw in raws])
            hashes += [answer["result"] for answer in answers]
        receipts = {h: receipt(node.url, h) for h in hashes}
        # The block's author ("miner") and the fee recipient, which earns the tips.
        watched = [*addresses, head(node.url)["miner"], dev_spec().fee_recipient]
        state_before = accounts_state(node.url, watched)
        last_seen = int(rpc(node.url, "eth_blockNumber"), 16)
        seen = block_hashes(node.url, last_seen)
    finally:
        code = node.stop()
    assert code == 0, f"SIGTERM should stop the node cleanly, exit code {code}"

    number, head_hash = stored_head(data_dir)
    assert number >= last_seen, "the store lost blocks the node had served"

    node = DevProcess(data_dir, BLOCK_TIME).start()
    try:
        # Every block seen before, and the head it stopped at, are there with the same hash.
        after = block_hashes(node.url, number)
        assert {n: after[n] for n in seen} == seen
        assert after[number] == head_hash
        for tx_hash, before in receipts.items():
            assert rpc(node.url, "eth_getTransactionReceipt", tx_hash) == before
        assert accounts_state(node.url, watched) == state_before
        # The chain goes on from that head.
        assert_continues_from(node.url, number, head_hash)
        # A transaction with the next nonce is included on top of the old chain.
        key = DEV_ACCOUNTS[1][1]
        sender = Account.from_key(key).address
        assert int(rpc(node.url, "eth_getTransactionCount", sender, "latest"), 16) == 3
        included = send_and_confirm(node.url, key, addresses[9])
        assert int(included["blockNumber"], 16) > number
        assert int(rpc(node.url, "eth_getTransactionCount", sender, "latest"), 16) == 4
    finally:
        assert node.stop() == 0


# --- kill -9 under load --------------------------------------------------------------------------

class Load(threading.Thread):
    """Keeps sending signed transfers from several senders in JSON-RPC batches and records
    every block (number -> hash) and every receipt the node returned, until stopped or the node
    goes away (a refused or reset connection ends the thread quietly)."""

    SENDERS = (1, 2, 3, 4)
    PER_SENDER = 5

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.blocks: dict[int, str] = {}
        self.receipts: dict[str, dict] = {}
        self.rounds = 0
        self.sent = 0
        self.rejected: list[dict] = []
        self.failure: BaseException | None = None
        self.halt = threading.Event()
        self.keys = [DEV_ACCOUNTS[i][1] for i in self.SENDERS]
        self.to = [DEV_ACCOUNTS[i][0] for i in (6, 7, 8, 9)]

    def run(self) -> None:
        try:
            self._run()
        except (urllib.error.URLError, http.client.HTTPException, OSError):
            pass  # the node was killed under us: that is the point
        except BaseException as exc:  # reported by the test
            self.failure = exc

    def _nonces(self) -> list[int]:
        answers = batch(self.url, [
            ("eth_getTransactionCount", [Account.from_key(key).address, "pending"])
            for key in self.keys
        ])
        return [int(answer["result"], 16) for answer in answers]

    def _record_block(self, number: int, block_hash: str) -> None:
        known = self.blocks.setdefault(number, block_hash)
        assert known == block_hash, f"block {number} changed from {known} to {block_hash}"

    def _run(self) -> None:
        nonces = self._nonces()
        outstanding: list[str] = []
        while not self.halt.is_set():
            raws = []
            for s, key in enumerate(self.keys):
                for _ in range(self.PER_SENDER):
                    raws.append(transfer(key, nonces[s], self.to[s], 1 + self.sent % 1000))
                    nonces[s] += 1
            answers = batch(self.url, [("eth_sendRawTransaction", [raw]) for raw in raws])
            self.sent += len(raws)
            for answer in answers:
                if "result" in answer:
                    outstanding.append(answer["result"])
                else:
                    self.rejected.append(answer["error"])
            if any("error" in answer for answer in answers):
                nonces = self._nonces()
            calls = [("eth_getBlockByNumber", ["latest", False])]
            calls += [("eth_getTransactionReceipt", [h]) for h in outstanding]
            answers = batch(self.url, calls)
            latest = answers[0]["result"]
            self._record_block(int(latest["number"], 16), latest["hash"])
            still = []
            for tx_hash, answer in zip(outstanding, answers[1:], strict=True):
                found = answer.get("result")
                if found is None:
                    still.append(tx_hash)
                    continue
                self.receipts[tx_hash] = found
                self._record_block(int(found["blockNumber"], 16), found["blockHash"])
            outstanding = still
            self.rounds += 1
            # Keep the pool a few batches ahead of the chain, not thousands.
            if len(outstanding) > 100:
                time.sleep(BLOCK_TIME / 4)

    def blocks_with_receipts(self) -> int:
        return len({found["blockNumber"] for found in list(self.receipts.values())})


def check_survived(url: str, load: Load) -> None:
    """Every block and receipt the load recorded is served again, unchanged."""
    top = max(load.blocks)
    assert int(rpc(url, "eth_blockNumber"), 16) >= top
    hashes = block_hashes(url, top)
    lost = {n: h for n, h in load.blocks.items() if hashes[n] != h}
    assert not lost, f"blocks changed or lost after kill -9: {lost}"
    tx_hashes = list(load.receipts)
    for start in range(0, len(tx_hashes), 200):
        chunk = tx_hashes[start:start + 200]
        answers = batch(url, [("eth_getTransactionReceipt", [h]) for h in chunk])
        for tx_hash, answer in zip(chunk, answers, strict=True):
            assert answer.get("result") == load.receipts[tx_hash], tx_hash


def load_then_kill(node: DevProcess, blocks: int) -> Load:
    """Run the load until its receipts span ``blocks`` blocks, then SIGKILL the node while the
    load is still sending; the stopped load with what it recorded."""
    load = Load(node.url)
    load.start()
    wait_for(lambda: load.blocks_with_receipts() >= blocks or load.failure
             or not load.is_alive(), 30, what=f"receipts in {blocks} blocks")
    assert load.failure is None, load.failure
    assert load.is_alive(), "the load stopped before the kill"
    node.kill()
    assert node.proc is not None and node.proc.returncode == -9
    load.halt.set()
    load.join(15)
    assert not load.is_alive()
    assert load.failure is None, load.failure
    assert load.receipts, "no transaction was included before the kill"
    assert all(r["status"] == "0x1" for r in load.receipts.values())
    unexpected = [e for e in load.rejected if "nonce" not in e.get("message", "")]
    assert not unexpected, unexpected
    return load


def test_kill_9_under_load_loses_nothing_that_was_served(tmp_path: Path) -> None:
    data_dir = tmp_path / "node"
    all_blocks: dict[int, str] = {}
    all_receipts: dict[str, dict] = {}
    node = DevProcess(data_dir, BLOCK_TIME).start()
    try:
        # Two kills at different moments: early in a load, then deeper into a longer one.
        for blocks in (3, 8):
            load = load_then_kill(node, blocks)
            number, head_hash = stored_head(data_dir)
            assert number >= max(load.blocks)

            node = DevProcess(data_dir, BLOCK_TIME).start()
            check_survived(node.url, load)
            assert_continues_from(node.url, number, head_hash)
            # What survived the earlier kill survived this one too.
            if all_blocks:
                hashes = block_hashes(node.url, max(all_blocks))
                assert all(hashes[n] == h for n, h in all_blocks.items())
            for tx_hash, before in all_receipts.items():
                assert rpc(node.url, "eth_getTransactionReceipt", tx_hash) == before
            all_blocks.update(load.blocks)
            all_receipts.update(load.receipts)

        # After both kills the chain still takes transactions with the next nonces.
        for s in Load.SENDERS:
            send_and_confirm(node.url, DEV_ACCOUNTS[s][1], DEV_ACCOUNTS[0][0])
    finally:
        node.kill()


# --- a data directory from another chain ---------------------------------------------------------

def snapshot(data_dir: Path) -> dict[str, Any]:
    """What the directory holds: its head, genesis and the blocks up to the head."""
    with ChainStore(data_dir / "chain") as store:
        top = store.head()
        assert top is not None
        return {
            "head": top,
            "hashes": [store.block_hash(n) for n in range(top[0] + 1)],
            "state": store.load_state(),
        }


# A node refusing a directory should give up in well under a second; this bound only keeps a
# hanging node from stalling the suite.
REFUSAL_BOUND = 10.0


@pytest.fixture(scope="module")
def foreign_start(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A data dir written by a dev chain with another gas limit (another genesis), then
    ``alys-fast dev`` started on it with the default spec: what it did, and the dir before."""
    data_dir = tmp_path_factory.mktemp("foreign") / "node"
    other = DevProcess(data_dir, BLOCK_TIME, "--gas-limit", "20000000").start()
    try:
        wait_for(lambda: int(rpc(other.url, "eth_blockNumber"), 16) >= 2, what="two blocks")
    finally:
        assert other.stop() == 0
    before = snapshot(data_dir)
    proc = subprocess.Popen(
        [sys.executable, "-m", "alys_fast", "dev", "--port", "0", "--data-dir", str(data_dir),
         "--block-time", str(BLOCK_TIME), "--log-level", "CRITICAL"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        stdout, stderr = proc.communicate(timeout=REFUSAL_BOUND)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate(timeout=10)
        code = None  # still running: it neither served nor gave up
    return {"data_dir": data_dir, "before": before,
            "code": code, "stdout": stdout, "stderr": stderr}


def test_data_dir_of_another_chain_is_never_served_and_left_intact(
    foreign_start: dict[str, Any],
) -> None:
    data_dir = foreign_start["data_dir"]
    assert "JSON-RPC" not in foreign_start["stdout"], "a node on the wrong chain served"
    assert foreign_start["code"] != 0
    # Nothing was removed or rewritten (RocksDB's own WAL and OPTIONS files rotate on every
    # open, so the contents are compared): same blocks, same state, the same chain goes on.
    assert snapshot(data_dir) == foreign_start["before"]
    again = DevProcess(data_dir, BLOCK_TIME, "--gas-limit", "20000000").start()
    try:
        number, block_hash = foreign_start["before"]["head"]
        assert_continues_from(again.url, number, "0x" + block_hash.hex())
    finally:
        assert again.stop() == 0


def test_data_dir_of_another_chain_fails_at_once_with_a_clear_error(
    foreign_start: dict[str, Any],
) -> None:
    assert foreign_start["code"] is not None, (
        f"still running after {REFUSAL_BOUND}s instead of refusing the directory")
    assert foreign_start["code"] == 2, foreign_start["stderr"]
    message = foreign_start["stderr"].strip()
    assert len(message.splitlines()) == 1, message
    assert message.startswith("alys-fast: error:"), message
    assert "another chain" in message and str(foreign_start["data_dir"]) in message, message
