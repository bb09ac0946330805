"""A crash of any one actor of a running node is repaired by its supervisor while the node keeps
serving: the actor is restarted (its restart count goes up), blocks keep coming, a new transfer
is included, and nothing already served changes.

The crash is real: the test hands the actor a message its ``receive`` does not accept, on the
node's own loop, and the actor raises TypeError as it does for any unexpected message.
"""

from __future__ import annotations

import http.client
import urllib.error
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from alys_fast.chain.spec import DEV_ACCOUNTS, dev_spec
from alys_fast.paths import CHAIN, ENGINE, RPC, STORAGE, TXPOOL
from tests.node.harness import ThreadNode, rpc
from tests.node.test_durability import Load, block_hashes, check_survived, transfer, wait_for

pytestmark = pytest.mark.timeout(60)

SLOT_MS = 200
SENDER_KEY = DEV_ACCOUNTS[1][1]
SENDER = Account.from_key(SENDER_KEY).address
RECIPIENT = DEV_ACCOUNTS[7][0]
# Tips go to the spec's fee recipient (the zero address on the dev chain), which
# eth_getBlockBy* report as "miner"; the Aura author who signs is not paid.
FEE_RECIPIENT = dev_spec().fee_recipient


class Poison:
    """A message no actor of the node accepts."""


@pytest.fixture
def node(tmp_path: Path) -> Iterator[ThreadNode]:
    running = ThreadNode(tmp_path / "node", slot_ms=SLOT_MS).start()
    try:
        yield running
    finally:
        running.stop()


def try_rpc(url: str, method: str, *params: Any) -> Any:
    """``rpc``, or None while the port is not answering (the RPC actor restarting)."""
    try:
        return rpc(url, method, *params)
    except (urllib.error.URLError, http.client.HTTPException, OSError):
        return None


def restarts(node: ThreadNode, path: str) -> tuple[int, str]:
    """(restart count, state) of the actor at ``path``, read on the node's loop, both from its
    supervisor and from the health tree (which must agree)."""

    async def read() -> tuple[int, str, dict]:
        system = node.node.system
        assert system is not None
        cell = system.node(path)
        return cell.parent.restart_count(cell), cell.state, system.health()

    count, state, health = node.call(read())
    entry = find(health, path)
    assert entry["restarts"] == count
    return count, state


def find(tree: dict, path: str) -> dict:
    if tree.get("path", "").endswith("/" + path):
        return tree
    for child in tree.get("children", ()):
        found = find(child, path)
        if found:
            return found
    return {}


def crash(node: ThreadNode, path: str, *, ask: bool = True) -> None:
    """Hand the actor a message its ``receive`` refuses; with ``ask`` the asker gets the
    TypeError it crashed with."""

    async def inject() -> BaseException | None:
        ref = node.node.directory.ref(path)
        if not ask:
            ref.tell(Poison())
            return None
        try:
            await ref.ask(Poison(), 5.0)
        except Exception as exc:
            return exc
        return None

    error = node.call(inject())
    if ask:
        assert isinstance(error, TypeError) and "unexpected message" in str(error), error


def balances(url: str, *addresses: str) -> list[int]:
    return [int(rpc(url, "eth_getBalance", who, "latest"), 16) for who in addresses]


def send_and_confirm(url: str, value: int) -> dict:
    """A transfer from SENDER to RECIPIENT with the next nonce; its receipt once included."""
    nonce = int(rpc(url, "eth_getTransactionCount", SENDER, "latest"), 16)
    tx_hash = rpc(url, "eth_sendRawTransaction", transfer(SENDER_KEY, nonce, RECIPIENT, value))
    found = wait_for(lambda: try_rpc(url, "eth_getTransactionReceipt", tx_hash),
                     what=f"the receipt of {tx_hash}")
    assert found["status"] == "0x1"
    return found


def assert_transfer_accounted(url: str, before: list[int], found: dict, value: int) -> None:
    """Sender, recipient and fee recipient balances moved exactly by the transfer."""
    block = rpc(url, "eth_getBlockByHash", found["blockHash"], False)
    gas, price = int(found["gasUsed"], 16), int(found["effectiveGasPrice"], 16)
    tip = price - int(block["baseFeePerGas"], 16)
    sender, recipient, fees = balances(url, SENDER, RECIPIENT, FEE_RECIPIENT)
    assert sender == before[0] - value - gas * price
    assert recipient == before[1] + value
    assert fees == before[2] + gas * tip


@pytest.mark.parametrize("path", [CHAIN, TXPOOL, ENGINE, STORAGE, RPC])
def test_actor_crash_is_repaired_while_the_node_serves(node: ThreadNode, path: str) -> None:
    url = node.url
    first = send_and_confirm(url, 10**15)
    at_crash = int(rpc(url, "eth_blockNumber"), 16)
    seen = block_hashes(url, at_crash)
    before = balances(url, SENDER, RECIPIENT, FEE_RECIPIENT)
    count, _ = restarts(node, path)
    assert count == 0

    crash(node, path)

    wait_for(lambda: restarts(node, path) == (count + 1, "running"), 15,
             what=f"{path} restarted and running")
    assert node.node.system is not None and node.node.system.exit_code is None
    # The same URL answers (for rpc/rpc: its restart re-bound the same port).
    assert node.url == url
    wait_for(lambda: int(try_rpc(url, "eth_blockNumber") or "0x0", 16) >= at_crash + 2, 15,
             what="two new blocks after the crash")
    # Nothing already served changed, and the state is the state (for chain/engine: rebuilt
    # from storage on its restart).
    assert block_hashes(url, at_crash) == seen
    assert rpc(url, "eth_getTransactionReceipt", first["transactionHash"]) == first
    assert balances(url, SENDER, RECIPIENT, FEE_RECIPIENT) == before
    # A new transfer goes through, and every balance it touches moves exactly by it.
    second = send_and_confirm(url, 777)
    assert int(second["blockNumber"], 16) > at_crash
    assert_transfer_accounted(url, before, second, 777)
    assert rpc(url, "eth_getTransactionReceipt", first["transactionHash"]) == first
    assert restarts(node, path) == (count + 1, "running"), "it crashed again"
    alerts = node.node.system.health()["alerts"]
    assert not alerts, alerts


def test_every_actor_crashes_in_turn_and_the_node_serves_throughout(node: ThreadNode) -> None:
    """Told (not asked) a poison message, one actor after the other, on one node."""
    url = node.url
    receipts = [send_and_confirm(url, 1)]
    for path in (STORAGE, ENGINE, TXPOOL, CHAIN, RPC):
        count, _ = restarts(node, path)
        at_crash = int(rpc(url, "eth_blockNumber"), 16)
        crash(node, path, ask=False)
        wait_for(lambda p=path, c=count: restarts(node, p) == (c + 1, "running"), 15,
                 what=f"{path} restarted")
        wait_for(lambda h=at_crash: int(try_rpc(url, "eth_blockNumber") or "0x0", 16) > h, 15,
                 what=f"a block after {path} crashed")
        receipts.append(send_and_confirm(url, len(receipts) + 1))
        for found in receipts:
            assert rpc(url, "eth_getTransactionReceipt", found["transactionHash"]) == found
    assert node.node.system is not None and node.node.system.exit_code is None
    assert int(rpc(url, "eth_getTransactionCount", SENDER, "latest"), 16) == len(receipts)


@pytest.mark.parametrize("path", [STORAGE, ENGINE, CHAIN])
def test_crash_under_load_loses_nothing_and_the_load_goes_on(node: ThreadNode, path: str) -> None:
    """A crash while batches of transfers stream in: blocks being written, executed, authored.

    (A crash of chain/txpool drops the pending transactions by design, and one of rpc/rpc drops
    the client's connections, so those two are covered above without a load.)"""
    load = Load(node.url)
    load.start()
    try:
        wait_for(lambda: load.blocks_with_receipts() >= 2 or not load.is_alive(), 20,
                 what="the load under way")
        crash(node, path, ask=False)
        wait_for(lambda: restarts(node, path) == (1, "running"), 15, what=f"{path} restarted")
        before = len(load.receipts)
        wait_for(lambda: len(load.receipts) >= before + 100 or not load.is_alive(), 20,
                 what="100 more receipts after the crash")
        assert load.is_alive(), f"the load stopped: {load.failure!r}"
    finally:
        load.halt.set()
        load.join(15)
    assert load.failure is None, load.failure
    assert not load.rejected, load.rejected[:5]
    assert all(found["status"] == "0x1" for found in load.receipts.values())
    check_survived(node.url, load)
    assert restarts(node, path) == (1, "running"), "it crashed again"
