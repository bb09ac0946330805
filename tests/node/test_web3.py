"""End to end with real clients: web3.py, eth-account and websockets against a dev node.

One node (200 ms slots, on a background uvloop thread) serves the whole module. Every test
sends from its own dev account (``ACCOUNTS``), so nonces and balances never depend on the order
the tests run in, and every test waits for the transactions it sent: a block holds only the
transactions of the test that is running. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import websockets
from eth_account import Account
from eth_account.datastructures import SignedTransaction
from eth_utils import keccak
from hexbytes import HexBytes
from prometheus_client.parser import text_string_to_metric_families
from web3 import Web3
from web3.exceptions import BlockNotFound, TransactionNotFound, Web3RPCError
from web3.providers import HTTPProvider

from alys_fast.chain.spec import DEV_ACCOUNTS, DEV_CHAIN_ID
from tests.node.harness import ThreadNode, rpc, running_node

GWEI = 10**9
BLOCK_GAS_LIMIT = 30_000_000
ZERO_HASH = b"\x00" * 32
ACCOUNTS = [Account.from_key(key) for _, key in DEV_ACCOUNTS]
# Which dev account each test sends from (0 never sends: it is only read).
TRANSFER = {0: ACCOUNTS[1], 1: ACCOUNTS[2], 2: ACCOUNTS[3]}
NONCES, BLOCKS, FEES, PENDING, BATCH, METRICS = ACCOUNTS[4:10]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadNode]:
    with running_node(tmp_path_factory.mktemp("web3-node"), slot_ms=200) as running:
        yield running


@pytest.fixture(scope="module")
def w3(node: ThreadNode) -> Web3:
    return Web3(HTTPProvider(node.url, request_kwargs={"timeout": 10}))


# --- helpers ------------------------------------------------------------------------------------


def address_for(tag: str) -> str:
    """A fresh account nobody else touches (its balance starts at 0)."""
    return Web3.to_checksum_address(keccak(text=tag)[-20:])


def wait_receipt(w3: Web3, tx_hash: Any) -> Any:
    return w3.eth.wait_for_transaction_receipt(tx_hash, timeout=10, poll_latency=0.05)


def wait_block(w3: Web3, number: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while w3.eth.block_number < number:
        assert time.monotonic() < deadline, f"block {number} did not arrive in {timeout} s"
        time.sleep(0.05)


def transfer(w3: Web3, sender: Any, to: str, value: int = 1, **fields: Any) -> SignedTransaction:
    """A signed EIP-1559 transfer at the sender's pending nonce, paying twice the gas price."""
    price = w3.eth.gas_price
    tx = {
        "to": to, "value": value, "gas": 21_000, "chainId": DEV_CHAIN_ID, "type": 2,
        "nonce": w3.eth.get_transaction_count(sender.address, "pending"),
        "maxFeePerGas": 2 * price, "maxPriorityFeePerGas": GWEI,
    }
    tx.update(fields)
    return sender.sign_transaction(tx)


def send_and_wait(w3: Web3, signed: SignedTransaction) -> Any:
    assert w3.eth.send_raw_transaction(signed.raw_transaction) == signed.hash
    return wait_receipt(w3, signed.hash)


def http_get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read()


def access_list_of(items: Any) -> list[tuple[str, list[bytes]]]:
    return [
        (Web3.to_checksum_address(item["address"]),
         [bytes(HexBytes(key)) for key in item["storageKeys"]])
        for item in items
    ]


# --- transfers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("tx_type", [0, 1, 2], ids=["legacy", "eip2930", "eip1559"])
def test_transfer_of_each_type(w3: Web3, tx_type: int) -> None:
    sender = TRANSFER[tx_type]
    to = address_for(f"transfer-{tx_type}")
    value = 12_345 * GWEI + tx_type
    nonce = w3.eth.get_transaction_count(sender.address)
    price = 2 * w3.eth.gas_price  # the next base fee + 1 gwei, twice: enough for any block soon
    tx: dict[str, Any] = {"to": to, "value": value, "nonce": nonce, "chainId": DEV_CHAIN_ID}
    expected_gas = 21_000
    if tx_type == 0:
        tx.update(gas=21_000, gasPrice=price)
    elif tx_type == 1:
        access_list = [
            {"address": address_for("slot-owner"),
             "storageKeys": ["0x" + "00" * 32, "0x" + "00" * 31 + "07"]},
            {"address": to, "storageKeys": []},
        ]
        tx.update(type=1, gas=40_000, gasPrice=price, accessList=access_list)
        expected_gas += 2 * 2_400 + 2 * 1_900  # EIP-2930: per address, per storage key
    else:
        tip = 2 * GWEI
        tx.update(type=2, gas=21_000, maxFeePerGas=price, maxPriorityFeePerGas=tip)
    signed = sender.sign_transaction(tx)
    sender_before = w3.eth.get_balance(sender.address)
    assert w3.eth.get_balance(to) == 0

    receipt = send_and_wait(w3, signed)
    block = w3.eth.get_block(receipt.blockNumber, full_transactions=True)

    assert receipt.status == 1
    assert receipt.type == tx_type
    assert receipt.gasUsed == expected_gas
    assert receipt.transactionHash == signed.hash
    assert receipt["from"] == sender.address and receipt.to == to
    assert receipt.contractAddress is None and receipt.logs == []
    assert receipt.blockHash == block.hash and receipt.blockNumber == block.number
    base_fee = block.baseFeePerGas
    if tx_type == 2:
        assert receipt.effectiveGasPrice == min(price, base_fee + tip)
    else:
        assert receipt.effectiveGasPrice == price
    assert receipt.effectiveGasPrice >= base_fee
    # cumulativeGasUsed: the gas of this and every earlier transaction of the block
    index = receipt.transactionIndex
    assert block.transactions[index].hash == signed.hash
    earlier = [wait_receipt(w3, t.hash).gasUsed for t in block.transactions[:index]]
    assert receipt.cumulativeGasUsed == sum(earlier) + receipt.gasUsed
    if index == len(block.transactions) - 1:
        assert receipt.cumulativeGasUsed == block.gasUsed

    # Balances moved by exactly the value and the fee, nonces by one.
    paid = receipt.gasUsed * receipt.effectiveGasPrice
    assert w3.eth.get_balance(sender.address) == sender_before - value - paid
    assert w3.eth.get_balance(to) == value
    assert w3.eth.get_transaction_count(sender.address) == nonce + 1
    assert w3.eth.get_transaction_count(sender.address, "pending") == nonce + 1

    # The transaction as the node reports it is the one that was signed.
    got = w3.eth.get_transaction(signed.hash)
    assert got == block.transactions[index]
    assert got.hash == signed.hash == keccak(signed.raw_transaction)
    assert got.blockHash == block.hash and got.blockNumber == block.number
    assert got.transactionIndex == index
    assert got.type == tx_type
    assert got["from"] == sender.address and got.to == to
    assert (got.nonce, got.gas, got.value, got.input) == (nonce, tx["gas"], value, b"")
    assert got.chainId == DEV_CHAIN_ID
    assert int.from_bytes(got.r, "big") == signed.r
    assert int.from_bytes(got.s, "big") == signed.s
    assert got.v == signed.v
    if tx_type == 0:
        assert signed.v in (2 * DEV_CHAIN_ID + 35, 2 * DEV_CHAIN_ID + 36)  # EIP-155
        assert got.gasPrice == price
        assert "accessList" not in got and "yParity" not in got
    else:
        assert got.yParity == signed.v in (0, 1)
        assert access_list_of(got.accessList) == access_list_of(tx.get("accessList", []))
    if tx_type == 2:
        assert (got.maxFeePerGas, got.maxPriorityFeePerGas) == (price, tip)
        assert got.gasPrice == receipt.effectiveGasPrice  # the price paid, once included
    elif tx_type == 1:
        assert got.gasPrice == price


def test_nonces_latest_and_pending(w3: Web3) -> None:
    """A transaction after a nonce gap waits (queued) and does not count for ``pending``; once
    the gap is filled both count at once, and both are included."""
    sender = NONCES
    nonce = w3.eth.get_transaction_count(sender.address)
    assert w3.eth.get_transaction_count(sender.address, "pending") == nonce
    later = transfer(w3, sender, address_for("nonces"), nonce=nonce + 1)
    w3.eth.send_raw_transaction(later.raw_transaction)
    assert w3.eth.get_transaction_count(sender.address, "pending") == nonce
    assert w3.eth.get_transaction_count(sender.address, "latest") == nonce
    first = transfer(w3, sender, address_for("nonces"), nonce=nonce)
    w3.eth.send_raw_transaction(first.raw_transaction)
    # Pending now covers both, whether or not a block has taken them yet.
    assert w3.eth.get_transaction_count(sender.address, "pending") == nonce + 2
    receipts = [wait_receipt(w3, first.hash), wait_receipt(w3, later.hash)]
    assert [r.status for r in receipts] == [1, 1]
    assert (receipts[0].blockNumber, receipts[0].transactionIndex) < (
        receipts[1].blockNumber, receipts[1].transactionIndex)
    assert w3.eth.get_transaction_count(sender.address) == nonce + 2
    assert w3.eth.get_transaction_count(sender.address, "pending") == nonce + 2


# --- blocks and transactions --------------------------------------------------------------------


def test_block_queries(w3: Web3, node: ThreadNode) -> None:
    receipt = send_and_wait(w3, transfer(w3, BLOCKS, address_for("blocks")))
    number = receipt.blockNumber

    by_number = w3.eth.get_block(number)
    by_hash = w3.eth.get_block(receipt.blockHash)
    assert by_number == by_hash
    assert by_number.number == number and by_number.hash == receipt.blockHash
    assert by_number.transactions == [receipt.transactionHash]
    assert by_number.gasLimit == BLOCK_GAS_LIMIT and by_number.gasUsed == receipt.gasUsed
    full = w3.eth.get_block(number, full_transactions=True)
    assert [t.hash for t in full.transactions] == by_number.transactions
    assert full.transactions[0] == w3.eth.get_transaction(receipt.transactionHash)
    assert {k: v for k, v in full.items() if k != "transactions"} == {
        k: v for k, v in by_number.items() if k != "transactions"}
    assert w3.eth.get_block_transaction_count(number) == 1
    assert w3.eth.get_block_transaction_count(receipt.blockHash) == 1

    earliest = w3.eth.get_block("earliest")
    assert earliest.number == 0 and earliest == w3.eth.get_block(0)
    assert earliest.parentHash == ZERO_HASH and earliest.transactions == []
    assert w3.eth.get_block_transaction_count("earliest") == 0

    latest = w3.eth.get_block("latest")
    assert latest.number >= number
    pending = w3.eth.get_block("pending")  # this node has no pending block: it is the head
    assert pending.number >= latest.number

    # Each block links to the one before it; numbers go up, times never go back.
    head = w3.eth.block_number
    chain = [w3.eth.get_block(n) for n in range(max(0, head - 20), head + 1)]
    for parent, child in itertools.pairwise(chain):
        assert child.number == parent.number + 1
        assert child.parentHash == parent.hash
        assert child.timestamp >= parent.timestamp  # seconds: 200 ms slots share them
    assert w3.eth.get_block(chain[-1].number) == chain[-1]

    beyond = head + 1_000
    assert rpc(node.url, "eth_getBlockByNumber", hex(beyond), False) is None
    assert rpc(node.url, "eth_getBlockByHash", "0x" + "ab" * 32, True) is None
    assert rpc(node.url, "eth_getBlockTransactionCountByNumber", hex(beyond)) is None
    assert rpc(node.url, "eth_getBlockTransactionCountByHash", "0x" + "ab" * 32) is None
    with pytest.raises(BlockNotFound):
        w3.eth.get_block(beyond)


def test_unknown_transaction_and_receipt(w3: Web3, node: ThreadNode) -> None:
    unknown = "0x" + "cd" * 32
    assert rpc(node.url, "eth_getTransactionByHash", unknown) is None
    assert rpc(node.url, "eth_getTransactionReceipt", unknown) is None
    with pytest.raises(TransactionNotFound):
        w3.eth.get_transaction(unknown)
    with pytest.raises(TransactionNotFound):
        w3.eth.get_transaction_receipt(unknown)


def test_fee_history(w3: Web3) -> None:
    tip = 3 * GWEI
    # a fee cap far above the base fee (below 1 gwei here), so the whole tip is paid
    signed = transfer(w3, FEES, address_for("fees"), maxFeePerGas=50 * GWEI,
                      maxPriorityFeePerGas=tip)
    receipt = send_and_wait(w3, signed)
    newest = receipt.blockNumber
    wait_block(w3, newest + 1)  # so the next base fee can be checked against a real block
    count = min(4, newest + 1)

    history = w3.eth.fee_history(count, newest, [10, 50, 90])
    first = newest - count + 1
    assert history.oldestBlock == first
    assert len(history.baseFeePerGas) == count + 1
    assert len(history.gasUsedRatio) == count
    assert len(history.reward) == count and all(len(r) == 3 for r in history.reward)
    for i, number in enumerate(range(first, newest + 1)):
        block = w3.eth.get_block(number)
        assert history.baseFeePerGas[i] == block.baseFeePerGas
        assert history.gasUsedRatio[i] == block.gasUsed / block.gasLimit
        if not block.transactions:
            assert history.reward[i] == [0, 0, 0]
    assert history.baseFeePerGas[-1] == w3.eth.get_block(newest + 1).baseFeePerGas
    ours = w3.eth.get_block(newest)
    assert ours.transactions == [signed.hash]  # alone in its block: every percentile is its tip
    effective_tip = receipt.effectiveGasPrice - ours.baseFeePerGas
    assert effective_tip == tip
    assert history.reward[-1] == [effective_tip] * 3
    assert history.gasUsedRatio[-1] == 21_000 / BLOCK_GAS_LIMIT

    latest = w3.eth.fee_history(3, "latest", [50])
    assert len(latest.baseFeePerGas) == 4 and len(latest.gasUsedRatio) == 3
    assert len(latest.reward) == 3 and all(len(r) == 1 for r in latest.reward)
    assert latest.oldestBlock >= newest - 1
    no_rewards = w3.eth.fee_history(2, newest)
    assert "reward" not in no_rewards
    assert no_rewards.baseFeePerGas == history.baseFeePerGas[-3:]


# --- calls, estimates and plain answers ---------------------------------------------------------


def test_estimate_call_and_code(w3: Web3) -> None:
    sender = ACCOUNTS[0].address
    to = address_for("estimates")
    assert w3.eth.estimate_gas({"from": sender, "to": to, "value": 1}) == 21_000
    assert w3.eth.estimate_gas({"to": to}) == 21_000
    # calldata: 16 gas per non-zero byte, 4 per zero byte
    assert w3.eth.estimate_gas({"from": sender, "to": to, "data": "0x01000200"}) == 21_000 + 40
    with_list = {"from": sender, "to": to, "type": 1, "accessList": [
        {"address": to, "storageKeys": ["0x" + "00" * 32]}]}
    assert w3.eth.estimate_gas(with_list) == 21_000 + 2_400 + 1_900

    assert w3.eth.call({"to": to}) == b""
    assert w3.eth.call({"from": sender, "to": to, "value": 5, "data": "0xabcdef"}) == b""
    assert w3.eth.get_code(to) == b""
    assert w3.eth.get_code(sender) == b""
    assert w3.eth.get_storage_at(to, 0) == ZERO_HASH


def test_gas_price_follows_the_next_base_fee(w3: Web3) -> None:
    tip = w3.eth.max_priority_fee
    assert tip == GWEI
    for _ in range(50):  # retry if a block lands between the reads
        head = w3.eth.block_number
        price = w3.eth.gas_price
        next_base_fee = w3.eth.fee_history(1, head).baseFeePerGas[-1]
        if w3.eth.block_number == head:
            assert price == next_base_fee + tip
            return
    pytest.fail("the head moved during every attempt")


def test_plain_answers(w3: Web3, node: ThreadNode) -> None:
    assert w3.eth.chain_id == DEV_CHAIN_ID
    assert w3.eth.syncing is False
    assert w3.net.version == "121212"
    assert w3.net.listening is True
    assert w3.net.peer_count == 0
    assert w3.client_version.startswith("alys-fast/")
    assert w3.eth.accounts == []
    assert rpc(node.url, "eth_accounts") == []
    assert rpc(node.url, "net_peerCount") == "0x0"


def test_get_logs(w3: Web3, node: ThreadNode) -> None:
    wait_block(w3, 2)
    assert w3.eth.get_logs({"fromBlock": 0, "toBlock": "latest"}) == []
    assert w3.eth.get_logs({"blockHash": w3.eth.get_block(1).hash}) == []
    assert w3.eth.get_logs({"fromBlock": 1, "address": address_for("logs"),
                            "topics": [None, ["0x" + "11" * 32]]}) == []
    with pytest.raises(Web3RPCError) as caught:
        w3.eth.get_logs({"fromBlock": 2, "toBlock": 1})
    assert caught.value.rpc_response["error"] == {
        "code": -32000, "message": "invalid block range params"}


# --- WebSocket subscriptions --------------------------------------------------------------------


async def ws_call(ws: Any, id_: int, method: str, *params: Any) -> dict[str, Any]:
    """Send a request; skip notifications until its answer arrives."""
    await ws.send(json.dumps({"jsonrpc": "2.0", "id": id_, "method": method, "params": params}))
    while True:
        message = json.loads(await ws.recv())
        if message.get("id") == id_:
            return message


async def ws_notification(ws: Any, sid: str) -> Any:
    message = json.loads(await ws.recv())
    assert message["method"] == "eth_subscription"
    assert message["params"]["subscription"] == sid
    return message["params"]["result"]


def test_websocket_new_heads(w3: Web3, node: ThreadNode) -> None:
    async def main() -> list[dict[str, Any]]:
        async with asyncio.timeout(10), websockets.connect(node.ws_url) as ws:
            answer = await ws_call(ws, 1, "eth_subscribe", "newHeads")
            sid = answer["result"]
            heads = [await ws_notification(ws, sid) for _ in range(3)]
            assert (await ws_call(ws, 2, "eth_unsubscribe", sid))["result"] is True
            assert (await ws_call(ws, 3, "eth_unsubscribe", sid))["result"] is False
            return heads

    heads = asyncio.run(main())
    numbers = [int(h["number"], 16) for h in heads]
    assert numbers == list(range(numbers[0], numbers[0] + 3))
    for parent, child in itertools.pairwise(heads):
        assert child["parentHash"] == parent["hash"]
    for head in heads:  # the same blocks HTTP serves
        block = w3.eth.get_block(int(head["number"], 16))
        assert head["hash"] == block.hash.to_0x_hex()
        assert int(head["timestamp"], 16) == block.timestamp
        assert int(head["baseFeePerGas"], 16) == block.baseFeePerGas
        assert int(head["gasUsed"], 16) == block.gasUsed


def test_websocket_pending_transactions(w3: Web3, node: ThreadNode) -> None:
    signed = transfer(w3, PENDING, address_for("pending"))
    raw = signed.raw_transaction.to_0x_hex()

    async def main() -> str:
        async with asyncio.timeout(10), websockets.connect(node.ws_url) as ws:
            sid = (await ws_call(ws, 1, "eth_subscribe", "newPendingTransactions"))["result"]
            sent = await asyncio.to_thread(rpc, node.url, "eth_sendRawTransaction", raw)
            while (seen := await ws_notification(ws, sid)) != sent:
                pass
            assert (await ws_call(ws, 2, "eth_unsubscribe", sid))["result"] is True
            return seen

    assert asyncio.run(main()) == signed.hash.to_0x_hex()
    assert wait_receipt(w3, signed.hash).status == 1


# --- a JSON-RPC batch of raw transactions -------------------------------------------------------


def test_batch_of_raw_transactions(w3: Web3, node: ThreadNode) -> None:
    sender = BATCH
    to = address_for("batch")
    first = send_and_wait(w3, transfer(w3, sender, to))
    nonce = w3.eth.get_transaction_count(sender.address)
    valid = [transfer(w3, sender, to, value=10 + i, nonce=nonce + i) for i in range(3)]
    too_low = transfer(w3, sender, to, value=99, nonce=nonce - 1)

    def call(id_: int, signed: SignedTransaction) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "id": id_, "method": "eth_sendRawTransaction",
                "params": [signed.raw_transaction.to_0x_hex()]}

    batch = [call(1, valid[0]), call(2, valid[1]), call(3, valid[1]), call(4, too_low),
             {"jsonrpc": "2.0", "id": 5, "method": "eth_blockNumber"}, call(6, valid[2])]
    request = urllib.request.Request(node.url, json.dumps(batch).encode(),
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        answers = json.loads(response.read())

    assert [a["id"] for a in answers] == [1, 2, 3, 4, 5, 6]
    assert answers[0]["result"] == valid[0].hash.to_0x_hex()
    assert answers[1]["result"] == valid[1].hash.to_0x_hex()
    assert answers[2]["error"] == {
        "code": -32000, "message": f"already known: {valid[1].hash.to_0x_hex()}"}
    assert answers[3]["error"] == {
        "code": -32000,
        "message": f"nonce too low: address {sender.address.lower()}, tx: {nonce - 1} "
                   f"state: {nonce}"}
    assert int(answers[4]["result"], 16) >= first.blockNumber
    assert answers[5]["result"] == valid[2].hash.to_0x_hex()
    receipts = [wait_receipt(w3, s.hash) for s in valid]
    assert [r.status for r in receipts] == [1, 1, 1]
    assert w3.eth.get_transaction_count(sender.address) == nonce + 3
    assert w3.eth.get_balance(to) == 1 + 10 + 11 + 12


# --- /metrics and /health -----------------------------------------------------------------------


def scrape(node: ThreadNode) -> dict[str, list[Any]]:
    status, body = http_get(node.url + "metrics")
    assert status == 200
    samples: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def test_metrics_and_health(w3: Web3, node: ThreadNode) -> None:
    sender = METRICS
    send_and_wait(w3, transfer(w3, sender, address_for("metrics")))
    with pytest.raises(Web3RPCError, match="intrinsic gas too low"):
        w3.eth.send_raw_transaction(transfer(w3, sender, address_for("metrics"),
                                             gas=20_999).raw_transaction)
    head = w3.eth.block_number

    # The pool's counters are sampled into the metrics about once a second: poll, bounded.
    deadline = time.monotonic() + 5
    while True:
        samples = scrape(node)
        rejected = {s.labels["reason"]: s.value
                    for s in samples.get("alys_txpool_rejected_total", [])}
        accepted = samples["alys_txpool_accepted_total"][0].value
        if rejected.get("intrinsic gas too low", 0) >= 1 and accepted >= 1:
            break
        assert time.monotonic() < deadline, f"pool counters not exported: {rejected}, {accepted}"
        time.sleep(0.1)
    assert samples["alys_chain_head"][0].value >= head
    depths = {s.labels["actor"]: s.value for s in samples["alys_actor_mailbox_depth"]}
    assert {"alys/chain/chain", "alys/chain/txpool", "alys/rpc/rpc"} <= set(depths)
    assert all(depth >= 0 for depth in depths.values())

    status, body = http_get(node.url + "health")
    assert status == 200
    health = json.loads(body)
    assert health["status"] == "ok"
    assert health["head"] >= head
    assert health["head_hash"] == w3.eth.get_block(health["head"]).hash.to_0x_hex()
