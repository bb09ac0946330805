"""Filters and log subscriptions end to end on a dev node: web3.py's ``w3.eth.filter`` and
``get_filter_changes`` for a Token's Transfer logs, new blocks and pending transactions;
``eth_getFilterLogs``, uninstalling and geth's errors; and a WebSocket ``logs`` subscription
(the ``websockets`` client) receiving a Transfer with the fields eth_getLogs gives.

One node (200 ms slots) serves the module; each test sends from its own dev account and every
wait is bounded.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import websockets
from eth_account import Account
from web3 import Web3
from web3.exceptions import Web3RPCError
from web3.providers import HTTPProvider

from alys_fast.chain.spec import DEV_ACCOUNTS
from tests.engine.contracts import TRANSFER, calldata
from tests.node.harness import ThreadNode, rpc, running_node
from tests.node.test_contracts import answer, deploy, rpc_error, send

ACCOUNTS = [Account.from_key(key) for _, key in DEV_ACCOUNTS]
LOG_OWNER, PENDING, SUBSCRIBER, RECEIVER = ACCOUNTS[1:5]
SUPPLY = 10**24
WAIT = 10.0
TRANSFER_TOPIC = "0x" + TRANSFER.hex()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadNode]:
    with running_node(tmp_path_factory.mktemp("filters-node"), slot_ms=200) as running:
        yield running


@pytest.fixture(scope="module")
def w3(node: ThreadNode) -> Web3:
    return Web3(HTTPProvider(node.url, request_kwargs={"timeout": 10}))


def poll(w3: Web3, filter_id: str, done: Callable[[list[Any]], bool]) -> list[Any]:
    """get_filter_changes until ``done`` holds for everything seen (bounded)."""
    seen: list[Any] = []
    deadline = time.monotonic() + WAIT
    while not done(seen):
        assert time.monotonic() < deadline, f"filter {filter_id}: only {seen} in {WAIT} s"
        seen += w3.eth.get_filter_changes(filter_id)
        time.sleep(0.05)
    return seen


def topic(account: Any) -> str:
    return "0x" + account.address[2:].lower().rjust(64, "0")


def transfer_data(to: Any, value: int) -> bytes:
    return calldata("Token", "transfer(address,uint256)", to.address, value)


def test_log_filter_sees_a_token_transfer(w3: Web3, node: ThreadNode) -> None:
    created = deploy(w3, LOG_OWNER, "Token", ["uint256"], [SUPPLY])
    token = created.contractAddress
    transfers = w3.eth.filter({"address": token, "topics": [TRANSFER_TOPIC]})
    to_receiver = w3.eth.filter({"address": [token], "topics": [None, None, topic(RECEIVER)]})
    elsewhere = w3.eth.filter({"address": RECEIVER.address})
    ranged = w3.eth.filter({"fromBlock": created.blockNumber, "address": token})
    assert transfers.filter_id.startswith("0x") and len(transfers.filter_id) <= 34

    sent = send(w3, LOG_OWNER, to=token, data=transfer_data(RECEIVER, 1234), gas=100_000)
    assert sent.status == 1 and len(sent.logs) == 1
    (got,) = poll(w3, transfers.filter_id, bool)
    assert got == sent.logs[0]  # every field, as the receipt has it
    assert got.removed is False and got.blockHash == sent.blockHash
    assert got.address == token and int.from_bytes(got.data, "big") == 1234
    assert [bytes(t) for t in got.topics] == [
        TRANSFER, bytes(12) + bytes.fromhex(LOG_OWNER.address[2:]),
        bytes(12) + bytes.fromhex(RECEIVER.address[2:])]
    assert poll(w3, to_receiver.filter_id, bool) == [got]
    assert w3.eth.get_filter_changes(transfers.filter_id) == []  # drained by the last poll
    assert w3.eth.get_filter_changes(elsewhere.filter_id) == []
    # Installed after the deployment: changes hold only what came later, but getFilterLogs
    # runs the whole range (fromBlock = the deployment's block), as eth_getLogs would.
    assert poll(w3, ranged.filter_id, bool) == [got]
    whole = w3.eth.get_filter_logs(ranged.filter_id)
    assert whole == [created.logs[0], got]
    assert whole == w3.eth.get_logs({"fromBlock": created.blockNumber, "address": token})

    for made in (transfers, to_receiver, elsewhere, ranged):
        assert w3.eth.uninstall_filter(made.filter_id) is True
    assert w3.eth.uninstall_filter(transfers.filter_id) is False
    with pytest.raises(Web3RPCError) as gone:
        w3.eth.get_filter_changes(transfers.filter_id)
    assert gone.value.rpc_response["error"] == {"code": -32000, "message": "filter not found"}


def test_block_filter_gets_each_new_head_once(w3: Web3) -> None:
    blocks = w3.eth.filter("latest")
    hashes = poll(w3, blocks.filter_id, lambda seen: len(seen) >= 3)
    heads = [w3.eth.get_block(h) for h in hashes]
    numbers = [b.number for b in heads]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    for parent, child in itertools.pairwise(heads):
        assert child.parentHash == parent.hash
    assert w3.eth.uninstall_filter(blocks.filter_id) is True


def test_pending_transaction_filter_gets_the_hash(w3: Web3) -> None:
    pending = w3.eth.filter("pending")
    signed = PENDING.sign_transaction({
        "to": RECEIVER.address, "value": 1, "gas": 21_000, "chainId": w3.eth.chain_id,
        "type": 2, "nonce": w3.eth.get_transaction_count(PENDING.address, "pending"),
        "maxFeePerGas": 2 * w3.eth.gas_price, "maxPriorityFeePerGas": 10**9,
    })
    w3.eth.send_raw_transaction(signed.raw_transaction)
    seen = poll(w3, pending.filter_id, lambda seen: signed.hash in seen)
    assert seen.count(signed.hash) == 1
    assert w3.eth.wait_for_transaction_receipt(signed.hash, timeout=WAIT).status == 1
    assert w3.eth.get_filter_changes(pending.filter_id) == []  # included: not pending again
    assert w3.eth.uninstall_filter(pending.filter_id) is True


def test_geths_errors(node: ThreadNode) -> None:
    url = node.url
    assert rpc_error(url, "eth_getFilterChanges", "0x1234") == {
        "code": -32000, "message": "filter not found"}
    assert rpc_error(url, "eth_getFilterLogs", "0x1234")["message"] == "filter not found"
    assert rpc(url, "eth_uninstallFilter", "0x1234") is False
    blocks = rpc(url, "eth_newBlockFilter")
    assert rpc_error(url, "eth_getFilterLogs", blocks)["message"] == "filter not found"
    assert rpc(url, "eth_uninstallFilter", blocks) is True
    assert rpc_error(url, "eth_newFilter", {"blockHash": "0x" + "00" * 32})["code"] == -32602
    assert rpc_error(url, "eth_newFilter", {"fromBlock": "pending"}) == {
        "code": -32000, "message": "pending logs are not supported"}
    assert rpc_error(url, "eth_newFilter", {"fromBlock": "0x5", "toBlock": "0x4"}) == {
        "code": -32000, "message": "invalid block range params"}
    assert rpc_error(url, "eth_newFilter", {"topics": ["0x12"]})["code"] == -32602
    # A log filter on an empty range answers getFilterLogs like eth_getLogs does.
    empty = rpc(url, "eth_newFilter", {"fromBlock": "0x1", "toBlock": "0x1"})
    assert answer(url, "eth_getFilterLogs", empty)["result"] == []
    assert rpc(url, "eth_getFilterChanges", empty) == []


def test_websocket_logs_subscription(w3: Web3, node: ThreadNode) -> None:
    token = deploy(w3, SUBSCRIBER, "Token", ["uint256"], [SUPPLY]).contractAddress
    nonce = w3.eth.get_transaction_count(SUBSCRIBER.address, "pending")
    signed = SUBSCRIBER.sign_transaction({
        "to": token, "data": transfer_data(RECEIVER, 77), "gas": 100_000, "value": 0,
        "chainId": w3.eth.chain_id, "type": 2, "nonce": nonce,
        "maxFeePerGas": 2 * w3.eth.gas_price, "maxPriorityFeePerGas": 10**9,
    })

    async def main() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        async with asyncio.timeout(WAIT), websockets.connect(node.ws_url) as ws:
            criteria = {"address": token, "topics": [TRANSFER_TOPIC, topic(SUBSCRIBER)]}
            wanted = await call(ws, 1, "eth_subscribe", "logs", criteria)
            unrelated = await call(ws, 2, "eth_subscribe", "logs", {"address": RECEIVER.address})
            refused = await call(ws, 3, "eth_subscribe", "logs", {"blockHash": "0x" + "00" * 32})
            assert refused["error"]["code"] == -32602
            await asyncio.to_thread(rpc, node.url, "eth_sendRawTransaction",
                                    signed.raw_transaction.to_0x_hex())
            note = json.loads(await ws.recv())
            assert note["method"] == "eth_subscription"
            assert note["params"]["subscription"] == wanted["result"]
            # Anything the other subscription got would have been sent in the same publish.
            others = []
            for id_, sid in ((4, wanted["result"]), (5, unrelated["result"])):
                done = await call(ws, id_, "eth_unsubscribe", sid, notes=others)
                assert done["result"] is True
            return note["params"]["result"], others

    log, others = asyncio.run(main())
    assert others == []
    receipt = w3.eth.wait_for_transaction_receipt(signed.hash, timeout=WAIT)
    expected = answer(node.url, "eth_getTransactionReceipt", signed.hash.to_0x_hex())["result"]
    assert log == expected["logs"][0]  # the very JSON eth_getTransactionReceipt gives
    assert log["removed"] is False and log["transactionHash"] == signed.hash.to_0x_hex()
    assert int(log["data"], 16) == 77 and int(log["blockNumber"], 16) == receipt.blockNumber
    assert log == answer(node.url, "eth_getLogs", {
        "blockHash": log["blockHash"], "address": token})["result"][0]


async def call(ws: Any, id_: int, method: str, *params: Any,
               notes: list[Any] | None = None) -> dict[str, Any]:
    """Send a request; notifications before its answer go to ``notes`` (if given)."""
    await ws.send(json.dumps({"jsonrpc": "2.0", "id": id_, "method": method, "params": params}))
    while True:
        message = json.loads(await ws.recv())
        if message.get("id") == id_:
            return message
        if notes is not None:
            notes.append(message)
