"""Contracts end to end on a dev node, through web3.py: deploy, call, estimate, send, logs,
receipts, code, storage and EIP-1186 proofs, the block context a contract sees, reverts as
geth reports them, and contract state surviving a restart (read back from RocksDB).

One node (200 ms slots) serves the module; each test sends from its own dev account and waits
for what it sent, so no test depends on another's order.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import rlp
from eth_account import Account
from eth_utils import keccak
from web3 import Web3
from web3.exceptions import Web3RPCError
from web3.providers import HTTPProvider

from alys_fast.chain.spec import DEV_ACCOUNTS, DEV_CHAIN_ID, ZERO_ADDRESS
from alys_fast.validation.receipts import Log, bloom_of
from tests.engine.contracts import (
    TRANSFER,
    artifact,
    calldata,
    creation_code,
    mapping_slot,
    runtime_code,
)
from tests.engine.reference import BadProof, proven_value
from tests.node.harness import ThreadNode, rpc, running_node

GWEI = 10**9
SUPPLY = 10**24
ACCOUNTS = [Account.from_key(key) for _, key in DEV_ACCOUNTS]
TOKEN_OWNER, RECEIVER, REVERTS, PROBE_OWNER, PROOFS, RESTART, HISTORY = ACCOUNTS[1:8]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadNode]:
    with running_node(tmp_path_factory.mktemp("contracts-node"), slot_ms=200) as running:
        yield running


@pytest.fixture(scope="module")
def w3(node: ThreadNode) -> Web3:
    return Web3(HTTPProvider(node.url, request_kwargs={"timeout": 10}))


# --- helpers ------------------------------------------------------------------------------------


def send(w3: Web3, sender: Any, **fields: Any) -> Any:
    """Sign ``fields`` (EIP-1559, the sender's pending nonce), send, wait for the receipt."""
    price = w3.eth.gas_price
    tx = {
        "chainId": DEV_CHAIN_ID, "type": 2, "value": 0, "maxFeePerGas": 2 * price,
        "maxPriorityFeePerGas": GWEI,
        "nonce": w3.eth.get_transaction_count(sender.address, "pending"), **fields,
    }
    signed = sender.sign_transaction(tx)
    assert w3.eth.send_raw_transaction(signed.raw_transaction) == signed.hash
    return w3.eth.wait_for_transaction_receipt(signed.hash, timeout=10, poll_latency=0.05)


def deploy(w3: Web3, sender: Any, name: str, types: list[str] | None = None,
           args: list[Any] | None = None) -> Any:
    receipt = send(w3, sender, data=creation_code(name, types, args), gas=3_000_000)
    assert receipt.status == 1, receipt
    return receipt


def created_address(sender: str, nonce: int) -> str:
    return Web3.to_checksum_address(keccak(rlp.encode([bytes.fromhex(sender[2:]), nonce]))[12:])


def contract(w3: Web3, name: str, address: str) -> Any:
    return w3.eth.contract(address=address, abi=artifact(name)["abi"])


def answer(url: str, method: str, *params: Any) -> dict[str, Any]:
    """One JSON-RPC request, the whole answer (web3.py reshapes errors and proofs)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
    request = urllib.request.Request(url, body.encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def rpc_error(url: str, method: str, *params: Any) -> dict[str, Any]:
    got = answer(url, method, *params)
    assert "error" in got and "result" not in got, got
    return got["error"]


def at_a_steady_head(w3: Web3, read: Any) -> tuple[Any, Any]:
    """``read(block)`` against the head block, retried if a block lands in between."""
    for _ in range(50):
        block = w3.eth.get_block("latest")
        try:
            answer = read(block)
        except (Web3RPCError, RuntimeError) as exc:  # the head moved: no proof there
            assert "tries of older blocks are not kept" in str(exc), exc
            continue
        if w3.eth.block_number == block.number:
            return block, answer
    pytest.fail("the head moved during every attempt")


# --- a token ------------------------------------------------------------------------------------


def test_deploy_a_token_and_use_it(w3: Web3) -> None:
    owner = TOKEN_OWNER.address
    nonce = w3.eth.get_transaction_count(owner)
    receipt = deploy(w3, TOKEN_OWNER, "Token", ["uint256"], [SUPPLY])
    address = created_address(owner, nonce)
    assert receipt.contractAddress == address and receipt.to is None
    # The constructor's Transfer(0, owner, supply), in the receipt and its bloom.
    (log,) = receipt.logs
    assert log.address == address and log.logIndex == 0
    assert [bytes(t) for t in log.topics] == [
        TRANSFER, bytes(32), bytes.fromhex(owner[2:]).rjust(32, b"\0")]
    assert int.from_bytes(log.data, "big") == SUPPLY
    entry = Log(bytes.fromhex(address[2:]), tuple(bytes(t) for t in log.topics), bytes(log.data))
    assert bytes(receipt.logsBloom) == bloom_of([entry])
    block = w3.eth.get_block(receipt.blockNumber)
    assert int.from_bytes(block.logsBloom, "big") & int.from_bytes(bloom_of([entry]), "big") == (
        int.from_bytes(bloom_of([entry]), "big"))
    # Code and storage as the constructor left them.
    assert w3.eth.get_code(address) == runtime_code("Token")
    assert int.from_bytes(w3.eth.get_storage_at(address, 0), "big") == SUPPLY
    holder_slot = mapping_slot(bytes.fromhex(owner[2:]), 1)
    assert int.from_bytes(w3.eth.get_storage_at(address, holder_slot), "big") == SUPPLY
    assert w3.eth.get_storage_at(address, 2) == bytes(32)

    token = contract(w3, "Token", address)
    assert token.functions.name().call() == "Test Token"
    assert token.functions.balanceOf(owner).call() == SUPPLY
    # The estimate is enough, and the transfer does what the call said it would.
    move = token.functions.transfer(RECEIVER.address, 1234)
    assert move.call({"from": owner}) is True
    estimate = move.estimate_gas({"from": owner})
    sent = send(w3, TOKEN_OWNER, to=address, data=move._encode_transaction_data(), gas=estimate)
    assert sent.status == 1 and sent.gasUsed <= estimate
    assert sent.contractAddress is None and sent.to == address
    assert token.functions.balanceOf(RECEIVER.address).call() == 1234
    assert token.functions.balanceOf(owner).call() == SUPPLY - 1234
    # getLogs by address and topic finds both transfers, with their positions.
    logs = w3.eth.get_logs({"fromBlock": receipt.blockNumber, "address": address,
                            "topics": [TRANSFER]})
    assert [(x.transactionHash, x.blockNumber) for x in logs] == [
        (receipt.transactionHash, receipt.blockNumber), (sent.transactionHash, sent.blockNumber)]
    assert logs[0] == receipt.logs[0] and logs[1] == sent.logs[0]
    to_receiver = w3.eth.get_logs({
        "fromBlock": receipt.blockNumber, "address": address,
        "topics": [None, None, "0x" + RECEIVER.address[2:].lower().rjust(64, "0")]})
    assert [x.transactionHash for x in to_receiver] == [sent.transactionHash]
    assert w3.eth.get_logs({"fromBlock": receipt.blockNumber, "address": owner}) == []
    # eth_getBlockReceipts has the same receipts.
    receipts = w3.eth.get_block_receipts(sent.blockNumber)
    assert receipts[sent.transactionIndex] == sent


def test_reverts_as_geth_reports_them(w3: Web3, node: ThreadNode) -> None:
    sender = REVERTS.address
    token = contract(w3, "Token", deploy(w3, REVERTS, "Token", ["uint256"], [10]).contractAddress)
    # require(..., "ERC20: insufficient allowance"): code 3, the reason, the revert data.
    short = token.functions.transferFrom(RECEIVER.address, sender, 1)
    error = rpc_error(node.url, "eth_call", {"from": sender, "to": token.address,
                                             "data": short._encode_transaction_data()})
    assert error["code"] == 3
    assert error["message"] == "execution reverted: ERC20: insufficient allowance"
    assert bytes.fromhex(error["data"][2:])[:4] == keccak(b"Error(string)")[:4]
    # A custom error: no reason geth can read, so the data alone.
    too_much = token.functions.transfer(RECEIVER.address, 11)._encode_transaction_data()
    call = {"from": sender, "to": token.address, "data": too_much}
    expected = {
        "code": 3, "message": "execution reverted",
        "data": "0x" + (keccak(b"InsufficientBalance(uint256,uint256)")[:4]
                        + (10).to_bytes(32, "big") + (11).to_bytes(32, "big")).hex(),
    }
    assert rpc_error(node.url, "eth_call", call) == expected
    assert rpc_error(node.url, "eth_estimateGas", call) == expected
    # Mined anyway (a gas limit given): status 0, gas paid, nothing logged, state unchanged.
    before = w3.eth.get_balance(sender)
    failed = send(w3, REVERTS, to=token.address, data=too_much, gas=100_000)
    assert failed.status == 0 and failed.logs == [] and 21_000 < failed.gasUsed < 100_000
    assert w3.eth.get_balance(sender) == before - failed.gasUsed * failed.effectiveGasPrice
    assert token.functions.balanceOf(sender).call() == 10
    # Out of gas below the estimate of a call that would succeed.
    fine = {"from": sender, "to": token.address,
            "data": token.functions.transfer(RECEIVER.address, 1)._encode_transaction_data()}
    estimate = w3.eth.estimate_gas(fine)
    assert w3.eth.call({**fine, "gas": estimate}) == (1).to_bytes(32, "big")
    starved = rpc_error(node.url, "eth_call", {**fine, "gas": hex(estimate - 1)})
    assert starved["code"] == -32000 and "out of gas" in starved["message"]
    capped = rpc_error(node.url, "eth_estimateGas", {**fine, "gas": hex(25_000)})
    assert capped == {"code": -32000, "message": "gas required exceeds allowance (25000)"}


def test_a_panic_is_named_as_geth_names_it(w3: Web3, node: ThreadNode) -> None:
    probe = deploy(w3, PROBE_OWNER, "Probe").contractAddress
    data = calldata("Probe", "panicDivZero(uint256)", 0)
    error = rpc_error(node.url, "eth_call", {"to": probe, "data": "0x" + data.hex()})
    assert error == {
        "code": 3, "message": "execution reverted: division or modulo by zero",
        "data": "0x" + (keccak(b"Panic(uint256)")[:4] + (0x12).to_bytes(32, "big")).hex(),
    }


def test_a_revert_without_data_is_a_plain_error(node: ThreadNode) -> None:
    bare = {"from": REVERTS.address, "data": "0x60006000fd"}  # init code: REVERT(0, 0)
    for method in ("eth_call", "eth_estimateGas"):
        assert rpc_error(node.url, method, bare) == {
            "code": -32000, "message": "execution reverted"}


# --- what a contract sees -----------------------------------------------------------------------


def test_block_context_of_a_call(w3: Web3) -> None:
    """A call at ``latest`` runs in the next block's context, as geth's does; BLOCKHASH of the
    head is the head's hash."""
    probe = contract(w3, "Probe", deploy(w3, PROBE_OWNER, "Probe").contractAddress)
    block, info = at_a_steady_head(w3, lambda block: probe.functions.blockInfo().call())
    number, timestamp, coinbase, gas_limit, base_fee, chain_id, randao, previous = info
    assert number == block.number + 1 and timestamp > block.timestamp
    assert coinbase == ZERO_ADDRESS and gas_limit == block.gasLimit
    assert chain_id == DEV_CHAIN_ID and randao == 0
    assert base_fee == w3.eth.fee_history(1, block.number).baseFeePerGas[-1]
    assert previous == block.hash
    # Storage written by a transaction, read by a call and by eth_getStorageAt.
    receipt = send(w3, PROBE_OWNER, to=probe.address, gas=100_000,
                   data=calldata("Probe", "setSlot(uint256,uint256)", 7, 2**255 + 1))
    assert receipt.status == 1 and len(receipt.logs) == 1
    assert probe.functions.getSlot(7).call() == 2**255 + 1
    assert int.from_bytes(w3.eth.get_storage_at(probe.address, 7), "big") == 2**255 + 1


def test_get_proof_checks_against_the_state_root(w3: Web3, node: ThreadNode) -> None:
    owner = PROOFS.address
    address = deploy(w3, PROOFS, "Token", ["uint256"], [SUPPLY]).contractAddress
    holder = mapping_slot(bytes.fromhex(owner[2:]), 1)
    slots = [0, holder, 5]

    def proof_of(who: str, keys: list[int]) -> Any:
        return lambda block: rpc(node.url, "eth_getProof", who, [hex(k) for k in keys],
                                 hex(block.number))

    block, proof = at_a_steady_head(w3, proof_of(address, slots))
    storage_hash = bytes.fromhex(proof["storageHash"][2:])
    code_hash = bytes.fromhex(proof["codeHash"][2:])
    nonce, balance = int(proof["nonce"], 16), int(proof["balance"], 16)
    assert (nonce, balance, code_hash) == (1, 0, keccak(runtime_code("Token")))
    leaf = rlp.encode([nonce, balance, storage_hash, code_hash])
    nodes = [bytes.fromhex(n[2:]) for n in proof["accountProof"]]
    assert proven_value(bytes(block.stateRoot), bytes.fromhex(address[2:]), nodes) == leaf
    values = {}
    for entry in proof["storageProof"]:
        key, value = int(entry["key"], 16), int(entry["value"], 16)
        nodes = [bytes.fromhex(n[2:]) for n in entry["proof"]]
        stored = proven_value(storage_hash, key.to_bytes(32, "big"), nodes)
        assert stored == (rlp.encode(value) if value else b"")
        values[key] = value
    assert values == {0: SUPPLY, holder: SUPPLY, 5: 0}
    # An account without code or storage: its leaf names the empty roots.
    block, eoa = at_a_steady_head(w3, proof_of(owner, []))
    nodes = [bytes.fromhex(n[2:]) for n in eoa["accountProof"]]
    leaf = rlp.encode([int(eoa["nonce"], 16), int(eoa["balance"], 16),
                       bytes.fromhex(eoa["storageHash"][2:]), keccak(b"")])
    assert proven_value(bytes(block.stateRoot), bytes.fromhex(owner[2:]), nodes) == leaf
    assert eoa["codeHash"] == "0x" + keccak(b"").hex() and eoa["storageProof"] == []
    # A wrong root proves nothing.
    with pytest.raises(BadProof):
        proven_value(bytes(32), bytes.fromhex(owner[2:]), nodes)


# --- history ------------------------------------------------------------------------------------


def test_reads_and_calls_at_older_blocks(w3: Web3, node: ThreadNode) -> None:
    """State reads and calls at an older block see that block's state: before the deploy,
    after it, before and after a transfer; proofs are refused there."""
    owner = HISTORY.address
    receiver = Account.create().address
    deployed = deploy(w3, HISTORY, "Token", ["uint256"], [SUPPLY])
    address = deployed.contractAddress
    token = contract(w3, "Token", address)
    move = token.functions.transfer(receiver, 777)
    sent = send(w3, HISTORY, to=address, data=move._encode_transaction_data(), gas=100_000)
    assert sent.status == 1 and sent.blockNumber > deployed.blockNumber
    before, after = sent.blockNumber - 1, sent.blockNumber
    balance_of = token.functions.balanceOf(receiver)
    assert balance_of.call(block_identifier=before) == 0
    assert balance_of.call(block_identifier=after) == 777
    assert balance_of.call(block_identifier=sent.blockHash) == 777
    holder = mapping_slot(bytes.fromhex(receiver[2:]), 1)
    assert w3.eth.get_storage_at(address, holder, before) == bytes(32)
    assert int.from_bytes(w3.eth.get_storage_at(address, holder, after), "big") == 777
    assert w3.eth.get_code(address, deployed.blockNumber - 1) == b""
    assert w3.eth.get_code(address, deployed.blockNumber) == runtime_code("Token")
    nonce = w3.eth.get_transaction_count(owner, after)
    assert w3.eth.get_transaction_count(owner, before) == nonce - 1
    paid = sent.gasUsed * sent.effectiveGasPrice
    assert w3.eth.get_balance(owner, before) - w3.eth.get_balance(owner, after) == paid
    # A call at an older block runs in that block's context (as geth's).
    made = deploy(w3, HISTORY, "Probe")
    probe = contract(w3, "Probe", made.contractAddress)
    at = w3.eth.get_block(made.blockNumber)
    number, timestamp, _, gas_limit, base_fee, *_ = (
        probe.functions.blockInfo().call(block_identifier=at.number))
    assert (number, timestamp, gas_limit, base_fee) == (
        at.number, at.timestamp, at.gasLimit, at.baseFeePerGas)
    assert w3.eth.call({"to": made.contractAddress}, made.blockNumber - 1) == b""
    error = rpc_error(node.url, "eth_getProof", address, [], hex(before))
    assert error["code"] == -32000 and "tries of older blocks are not kept" in error["message"]


# --- restart ------------------------------------------------------------------------------------


def test_contract_state_survives_a_restart(tmp_path: Path) -> None:
    """After a restart the engine has only the accounts; the token's code and storage come
    back from RocksDB the first time a call or a block touches them."""
    with running_node(tmp_path / "db", slot_ms=200) as first:
        w3 = Web3(HTTPProvider(first.url, request_kwargs={"timeout": 10}))
        address = deploy(w3, RESTART, "Token", ["uint256"], [SUPPLY]).contractAddress
        token = contract(w3, "Token", address)
        move = token.functions.transfer(RECEIVER.address, 77)._encode_transaction_data()
        assert send(w3, RESTART, to=address, data=move, gas=100_000).status == 1
        root = w3.eth.get_block("latest").stateRoot
        head = w3.eth.block_number
    with running_node(tmp_path / "db", slot_ms=200) as second:
        w3 = Web3(HTTPProvider(second.url, request_kwargs={"timeout": 10}))
        assert w3.eth.get_block(head).stateRoot == root
        token = contract(w3, "Token", address)
        assert w3.eth.get_code(address) == runtime_code("Token")
        assert token.functions.balanceOf(RECEIVER.address).call() == 77
        assert int.from_bytes(w3.eth.get_storage_at(address, 0), "big") == SUPPLY
        # And blocks keep executing on it.
        assert send(w3, RESTART, to=address, data=move, gas=100_000).status == 1
        assert token.functions.balanceOf(RECEIVER.address).call() == 154
        assert token.functions.balanceOf(RESTART.address).call() == SUPPLY - 154
        deadline = time.monotonic() + 10
        while w3.eth.block_number < head + 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
