"""A development chain driven as anvil and hardhat are: automine, mining on demand and by
interval, the dev clock, snapshots that restore chain, state, pool and time; a node that is not
a dev chain does not know these methods."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from web3 import Web3
from web3.exceptions import BlockNotFound, TransactionNotFound
from web3.providers import HTTPProvider

from alys_fast.chain.mining import DevMining
from alys_fast.chain.spec import DEV_ACCOUNTS, DEV_CHAIN_ID
from tests.engine.contracts import calldata, creation_code, runtime_code
from tests.node.harness import ThreadNode, rpc, running_node

GWEI = 10**9
ACCOUNTS = [Account.from_key(key) for _, key in DEV_ACCOUNTS]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadNode]:
    with running_node(tmp_path_factory.mktemp("dev-node"), slot_ms=1000, archive=True,
                      dev_mining=DevMining()) as running:
        yield running


@pytest.fixture(scope="module")
def w3(node: ThreadNode) -> Web3:
    return Web3(HTTPProvider(node.url, request_kwargs={"timeout": 30}))


def signed(w3: Web3, sender: Any, nonce: int | None = None, **fields: Any) -> Any:
    tx = {
        "chainId": DEV_CHAIN_ID, "type": 2, "to": Account.create().address, "value": 1,
        "gas": 21_000, "maxFeePerGas": 100 * GWEI, "maxPriorityFeePerGas": GWEI,
        "nonce": w3.eth.get_transaction_count(sender.address, "pending") if nonce is None
        else nonce,
        **fields,
    }
    return sender.sign_transaction(tx)


def error_of(url: str, method: str, *params: Any) -> dict[str, Any]:
    with pytest.raises(RuntimeError) as raised:
        rpc(url, method, *params)
    return raised.value.args[0]


@pytest.fixture(autouse=True)
def automine_after(node: ThreadNode) -> Iterator[None]:
    """Each test starts and ends automining, whatever it switched to."""
    yield
    rpc(node.url, "evm_setAutomine", True)


def test_automine_has_the_receipt_when_the_send_returns(w3: Web3) -> None:
    before = w3.eth.block_number
    tx = signed(w3, ACCOUNTS[1])
    w3.eth.send_raw_transaction(tx.raw_transaction)
    receipt = w3.eth.get_transaction_receipt(tx.hash)  # no wait: it is already mined
    assert receipt.status == 1 and receipt.blockNumber == before + 1
    assert w3.eth.block_number == before + 1
    # A deploy too; and nothing is mined without a transaction.
    deploy = signed(w3, ACCOUNTS[1], to=None, value=0, gas=3_000_000,
                    data=creation_code("Token", ["uint256"], [10**24]))
    w3.eth.send_raw_transaction(deploy.raw_transaction)
    assert w3.eth.get_transaction_receipt(deploy.hash).contractAddress is not None
    time.sleep(1.2)
    assert w3.eth.block_number == before + 2
    assert rpc(w3.provider.endpoint_uri, "anvil_getAutomine") is True


def test_mining_on_demand_and_by_interval(w3: Web3, node: ThreadNode) -> None:
    url = node.url
    rpc(url, "evm_setAutomine", False)
    assert rpc(url, "hardhat_getAutomine") is False
    tx = signed(w3, ACCOUNTS[2])
    w3.eth.send_raw_transaction(tx.raw_transaction)
    number = w3.eth.block_number
    assert w3.eth.get_transaction(tx.hash).blockNumber is None  # pending
    assert rpc(url, "evm_mine") == "0x0"
    assert w3.eth.get_transaction_receipt(tx.hash).blockNumber == number + 1
    # anvil_mine: several blocks, spaced as asked.
    head = w3.eth.get_block("latest")
    assert rpc(url, "anvil_mine", "0x5", "0x3c") is None
    blocks = [w3.eth.get_block(head.number + i) for i in range(1, 6)]
    assert [b.timestamp - head.timestamp for b in blocks] == [60, 120, 180, 240, 300]
    assert w3.eth.block_number == head.number + 5
    # Interval mining (hardhat's milliseconds), then off again.
    rpc(url, "evm_setIntervalMining", 300)
    start = w3.eth.block_number
    deadline = time.monotonic() + 10
    while w3.eth.block_number < start + 2:
        assert time.monotonic() < deadline, "interval mining made no blocks"
        time.sleep(0.05)
    rpc(url, "evm_setIntervalMining", 0)
    time.sleep(0.4)  # a tick already under way may still land
    stopped = w3.eth.block_number
    time.sleep(0.8)
    assert w3.eth.block_number == stopped


def test_the_dev_clock(w3: Web3, node: ThreadNode) -> None:
    url = node.url
    head = w3.eth.get_block("latest")
    target = head.timestamp + 1000
    assert rpc(url, "evm_setNextBlockTimestamp", target) is None
    rpc(url, "evm_mine")
    assert w3.eth.get_block("latest").timestamp == target
    # Time goes on from there: the next block is not earlier.
    rpc(url, "evm_mine")
    assert w3.eth.get_block("latest").timestamp > target
    total = int(rpc(url, "evm_increaseTime", 3600), 16)
    assert total >= 3600
    rpc(url, "evm_mine")
    assert w3.eth.get_block("latest").timestamp >= int(time.time()) + 3600
    # evm_mine with a timestamp (hardhat) and with anvil's options.
    later = w3.eth.get_block("latest").timestamp + 50
    rpc(url, "evm_mine", later)
    assert w3.eth.get_block("latest").timestamp == later
    rpc(url, "evm_mine", {"timestamp": later + 10, "blocks": 2})
    last = w3.eth.block_number
    assert [w3.eth.get_block(n).timestamp for n in (last - 1, last)] == [later + 10, later + 11]
    # The past is refused, with the head's timestamp named.
    now = w3.eth.get_block("latest").timestamp
    error = error_of(url, "evm_setNextBlockTimestamp", now)
    assert error["code"] == -32000
    assert error["message"] == (f"timestamp {now} is lower than or equal to the previous "
                                f"block's timestamp {now}")
    assert error_of(url, "evm_mine", now - 5)["code"] == -32000
    assert error_of(url, "evm_increaseTime", -5)["code"] == -32602


def test_snapshot_and_revert_restore_chain_state_pool_and_time(w3: Web3, node: ThreadNode
                                                               ) -> None:
    url = node.url
    sender, other = ACCOUNTS[3], ACCOUNTS[4]
    # A pending transaction in the pool when the snapshot is taken.
    rpc(url, "evm_setAutomine", False)
    waiting = signed(w3, other)
    w3.eth.send_raw_transaction(waiting.raw_transaction)
    head = w3.eth.get_block("latest")
    balance = w3.eth.get_balance(sender.address)
    nonce = w3.eth.get_transaction_count(sender.address)
    snapshot = rpc(url, "evm_snapshot")
    # After it: blocks, a transfer, an empty pool, time moved on.
    rpc(url, "evm_setAutomine", True)
    sent = signed(w3, sender)
    w3.eth.send_raw_transaction(sent.raw_transaction)
    assert w3.eth.get_transaction_receipt(waiting.hash).status == 1
    rpc(url, "evm_increaseTime", 10_000)
    rpc(url, "anvil_mine", "0x3")
    assert w3.eth.get_balance(sender.address) < balance
    # Back.
    rpc(url, "evm_setAutomine", False)
    assert rpc(url, "evm_revert", snapshot) is True
    assert w3.eth.get_block("latest") == head
    with pytest.raises(BlockNotFound):
        w3.eth.get_block(head.number + 1)
    assert w3.eth.get_balance(sender.address) == balance
    assert w3.eth.get_transaction_count(sender.address) == nonce
    with pytest.raises(TransactionNotFound):
        w3.eth.get_transaction_receipt(sent.hash)
    assert w3.eth.get_transaction(waiting.hash).blockNumber is None  # pending again
    rpc(url, "evm_mine")
    mined = w3.eth.get_block("latest")
    assert mined.timestamp < head.timestamp + 10_000  # the clock went back too
    assert w3.eth.get_transaction_receipt(waiting.hash).blockNumber == mined.number
    # A snapshot is used up by its revert; unknown ids are False.
    assert rpc(url, "evm_revert", snapshot) is False
    assert rpc(url, "evm_revert", "0x999") is False


def test_an_aura_node_has_no_dev_methods(tmp_path: Path) -> None:
    with running_node(tmp_path / "aura", slot_ms=200) as aura:
        for method in ("evm_mine", "evm_snapshot", "anvil_setAutomine"):
            assert error_of(aura.url, method)["code"] == -32601


def test_drop_a_pooled_transaction(w3: Web3, node: ThreadNode) -> None:
    rpc(node.url, "evm_setAutomine", False)
    tx = signed(w3, ACCOUNTS[5])
    w3.eth.send_raw_transaction(tx.raw_transaction)
    assert rpc(node.url, "anvil_dropTransaction", tx.hash.to_0x_hex()) == tx.hash.to_0x_hex()
    assert rpc(node.url, "anvil_dropTransaction", tx.hash.to_0x_hex()) is None
    rpc(node.url, "evm_mine")
    with pytest.raises(TransactionNotFound):
        w3.eth.get_transaction(tx.hash)


def test_the_next_blocks_base_fee_can_be_set(w3: Web3, node: ThreadNode) -> None:
    rpc(node.url, "anvil_setNextBlockBaseFeePerGas", hex(7 * GWEI))
    tx = signed(w3, ACCOUNTS[6])
    w3.eth.send_raw_transaction(tx.raw_transaction)
    block = w3.eth.get_block(w3.eth.get_transaction_receipt(tx.hash).blockNumber)
    assert block.baseFeePerGas == 7 * GWEI
    assert w3.eth.get_transaction_receipt(tx.hash).effectiveGasPrice == 8 * GWEI
    rpc(node.url, "evm_mine")  # then EIP-1559 again, from this block's: a nearly empty block
    assert w3.eth.get_block("latest").baseFeePerGas < 7 * GWEI


def test_state_edits_are_seen_at_once_and_kept_by_the_next_block(w3: Web3, node: ThreadNode
                                                                  ) -> None:
    url = node.url
    rich = Account.create().address
    before = w3.eth.block_number
    assert rpc(url, "anvil_setBalance", rich, hex(123 * 10**18)) is True
    assert w3.eth.get_balance(rich) == 123 * 10**18
    assert w3.eth.block_number == before  # no block for an edit
    # Code at an empty address answers calls; a slot set directly is read by it.
    probe = Account.create().address
    rpc(url, "hardhat_setCode", probe, "0x" + runtime_code("Probe").hex())
    rpc(url, "anvil_setStorageAt", probe, "0x7", "0x" + (42).to_bytes(32, "big").hex())
    get_slot = {"to": probe, "data": "0x" + calldata("Probe", "getSlot(uint256)", 7).hex()}
    assert int.from_bytes(w3.eth.call(get_slot), "big") == 42
    # A call with overrides runs on a view of the head: it sees the edits too.
    spend = {"from": rich, "to": Account.create().address, "value": hex(100 * 10**18)}
    other = {Account.create().address: {"balance": "0x1"}}
    assert rpc(url, "eth_call", spend, "latest", other) == "0x"
    assert rpc(url, "eth_call", get_slot, "latest", other) == "0x" + (42).to_bytes(32, "big").hex()
    assert w3.eth.get_code(probe) == runtime_code("Probe")
    # A nonce set ahead: the pool takes the sender's next transaction at it.
    sender = ACCOUNTS[7]
    rpc(url, "anvil_setNonce", sender.address, "0x20")
    assert w3.eth.get_transaction_count(sender.address) == 0x20
    tx = signed(w3, sender)
    w3.eth.send_raw_transaction(tx.raw_transaction)
    receipt = w3.eth.get_transaction_receipt(tx.hash)
    assert receipt.status == 1
    block = w3.eth.get_block(receipt.blockNumber)
    # The block after the edits holds them in its state, and older state does not.
    assert w3.eth.get_balance(rich, block.number) == 123 * 10**18
    assert w3.eth.get_balance(rich, before) == 0
    assert w3.eth.get_code(probe, before) == b""
    assert int.from_bytes(w3.eth.call(get_slot, block.number), "big") == 42
    # Edits since a snapshot go with a revert; the edit's errors are the client's.
    snapshot = rpc(url, "evm_snapshot")
    rpc(url, "hardhat_setBalance", rich, "0x1")
    assert w3.eth.get_balance(rich) == 1
    assert rpc(url, "evm_revert", snapshot) is True
    assert w3.eth.get_balance(rich) == 123 * 10**18
    assert error_of(url, "anvil_setBalance", "0x1234", "0x1")["code"] == -32602
