"""Bad input against a running dev node: each gets the right JSON-RPC error (geth's message for
refused transactions) and the node keeps serving afterwards.

One node (200 ms slots) serves the module, plus a second with tiny transport limits for the
body and batch bounds. After every test an autouse fixture checks that ``eth_blockNumber``
still answers. Each test that sends transactions uses its own dev account and fills every
nonce gap it opens, so no test leaves anything in the pool for the next.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import rlp
from eth_account import Account
from eth_account.datastructures import SignedTransaction
from eth_utils import keccak
from web3 import Web3
from web3.providers import HTTPProvider

from alys_fast.chain.spec import DEV_ACCOUNTS, DEV_CHAIN_ID
from alys_fast.rpc import Limits
from tests.node.harness import ThreadNode, rpc, running_node

GWEI = 10**9
BLOCK_GAS_LIMIT = 30_000_000
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
ACCOUNTS = [Account.from_key(key) for _, key in DEV_ACCOUNTS]
(CHAIN_ID_ACCT, SIGNATURE, NONCE_LOW, GAP, FUNDS, GAS_LIMIT, INTRINSIC, REPLACE,
 UNPROTECTED, OLD_STATE) = ACCOUNTS
SMALL_BODY = 2_048
SMALL_BATCH = 4


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadNode]:
    with running_node(tmp_path_factory.mktemp("bad-input-node"), slot_ms=200) as running:
        yield running


@pytest.fixture(scope="module")
def small_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadNode]:
    with running_node(
        tmp_path_factory.mktemp("small-limits-node"), slot_ms=200,
        rpc_limits=Limits(max_body=SMALL_BODY, max_batch=SMALL_BATCH),
    ) as running:
        yield running


@pytest.fixture(scope="module")
def w3(node: ThreadNode) -> Web3:
    return Web3(HTTPProvider(node.url, request_kwargs={"timeout": 10}))


@pytest.fixture(autouse=True)
def still_serving(node: ThreadNode) -> Iterator[None]:
    yield
    assert_serving(node)


# --- helpers ------------------------------------------------------------------------------------


def assert_serving(node: ThreadNode) -> None:
    assert int(rpc(node.url, "eth_blockNumber"), 16) >= 0


def post(url: str, body: bytes) -> tuple[int, Any]:
    """POST a raw body; the HTTP status and the decoded JSON answer (None for no body)."""
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    return status, json.loads(raw) if raw else None


def call(url: str, method: str, *params: Any) -> dict[str, Any]:
    """One request; the whole answer object."""
    body = json.dumps({"jsonrpc": "2.0", "id": 7, "method": method, "params": params})
    status, answer = post(url, body.encode())
    assert status == 200 and answer["id"] == 7, answer
    return answer


def error_of(url: str, method: str, *params: Any) -> dict[str, Any]:
    answer = call(url, method, *params)
    assert "error" in answer and "result" not in answer, answer
    return answer["error"]


def send(node: ThreadNode, raw: bytes) -> str:
    """eth_sendRawTransaction that must succeed; the hash."""
    return rpc(node.url, "eth_sendRawTransaction", "0x" + raw.hex())


def refused(node: ThreadNode, raw: bytes) -> str:
    """eth_sendRawTransaction that must fail with -32000; the message."""
    error = error_of(node.url, "eth_sendRawTransaction", "0x" + raw.hex())
    assert error["code"] == -32000, error
    return error["message"]


def address_for(tag: str) -> str:
    return Web3.to_checksum_address(keccak(text=tag)[-20:])


def sign(w3: Web3, sender: Any, **fields: Any) -> SignedTransaction:
    """An EIP-1559 transfer from ``sender`` at its account nonce unless ``nonce`` is given."""
    tx = {
        "to": address_for("bad-input"), "value": 1, "gas": 21_000, "chainId": DEV_CHAIN_ID,
        "type": 2, "maxFeePerGas": 10 * GWEI, "maxPriorityFeePerGas": GWEI,
        "nonce": w3.eth.get_transaction_count(sender.address),
    }
    tx.update(fields)
    return sender.sign_transaction(tx)


def wait_receipt(w3: Web3, tx_hash: Any) -> Any:
    return w3.eth.wait_for_transaction_receipt(tx_hash, timeout=10, poll_latency=0.05)


def wait_blocks(w3: Web3, count: int, timeout: float = 10.0) -> None:
    target = w3.eth.block_number + count
    deadline = time.monotonic() + timeout
    while w3.eth.block_number < target:
        assert time.monotonic() < deadline, f"{count} blocks did not arrive in {timeout} s"
        time.sleep(0.05)


def resign(signed: SignedTransaction, **changes: int) -> bytes:
    """The EIP-1559 transaction re-encoded with its signature fields changed (yParity, r, s)."""
    fields = rlp.decode(bytes(signed.raw_transaction)[1:])
    names = {"y_parity": 9, "r": 10, "s": 11}
    for name, value in changes.items():
        fields[names[name]] = value.to_bytes(32, "big").lstrip(b"\x00")
    return b"\x02" + rlp.encode(fields)


# --- the JSON-RPC envelope ----------------------------------------------------------------------


@pytest.mark.parametrize("body", [
    b'{"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber"',
    b"not json at all",
    b'{"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber",}',
    b"",
    b"[" * 100_000,
], ids=["truncated", "garbage", "trailing-comma", "empty", "deep-nesting"])
def test_malformed_json(node: ThreadNode, body: bytes) -> None:
    status, answer = post(node.url, body)
    assert status == 200
    assert answer["id"] is None
    assert answer["error"]["code"] == -32700
    assert answer["error"]["message"].startswith("parse error")


@pytest.mark.parametrize(("body", "message"), [
    (b"1", "invalid request: not an object"),
    (b'"eth_blockNumber"', "invalid request: not an object"),
    (b"null", "invalid request: not an object"),
    (b'{"id": 1, "method": "eth_blockNumber"}',
     'invalid request: jsonrpc must be "2.0" and method a string'),
    (b'{"jsonrpc": "2.0", "id": 1, "method": 5}',
     'invalid request: jsonrpc must be "2.0" and method a string'),
    (b'{"jsonrpc": "2.0", "id": [1], "method": "eth_blockNumber"}',
     "invalid request: bad id type"),
    (b"[]", "empty batch"),
], ids=["number", "string", "null", "no-version", "method-not-string", "bad-id", "empty-batch"])
def test_not_a_request_object(node: ThreadNode, body: bytes, message: str) -> None:
    status, answer = post(node.url, body)
    assert status == 200
    assert answer["error"] == {"code": -32600, "message": message}
    assert answer["id"] == (1 if b'"id": 1' in body else None)


def test_batch_of_non_requests_answers_each(node: ThreadNode) -> None:
    status, answer = post(node.url, b'[1, {"jsonrpc": "2.0", "id": 2, "method": "eth_chainId"}]')
    assert status == 200
    assert answer == [
        {"jsonrpc": "2.0", "id": None,
         "error": {"code": -32600, "message": "invalid request: not an object"}},
        {"jsonrpc": "2.0", "id": 2, "result": hex(DEV_CHAIN_ID)},
    ]


def test_oversized_body(small_node: ThreadNode) -> None:
    padding = "x" * (2 * SMALL_BODY)
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber",
                       "params": [], "padding": padding}).encode()
    status, answer = post(small_node.url, body)
    assert status == 413
    assert answer["error"] == {
        "code": -32600,
        "message": f"request body of {len(body)} bytes exceeds the limit of {SMALL_BODY} bytes"}
    assert_serving(small_node)


def test_batch_over_max_batch(small_node: ThreadNode) -> None:
    def batch(n: int) -> bytes:
        return json.dumps([{"jsonrpc": "2.0", "id": i, "method": "eth_chainId"}
                           for i in range(n)]).encode()

    status, answer = post(small_node.url, batch(SMALL_BATCH + 1))
    assert status == 200
    assert answer["error"] == {
        "code": -32600,
        "message": f"batch of {SMALL_BATCH + 1} requests exceeds the limit of {SMALL_BATCH}"}
    status, answer = post(small_node.url, batch(SMALL_BATCH))
    assert [a["result"] for a in answer] == [hex(DEV_CHAIN_ID)] * SMALL_BATCH
    assert_serving(small_node)


def test_unknown_method(node: ThreadNode) -> None:
    assert error_of(node.url, "eth_mine") == {
        "code": -32601, "message": "the method eth_mine does not exist/is not available"}
    # A notification (no id) of an unknown method gets no answer at all.
    body = json.dumps({"jsonrpc": "2.0", "method": "eth_mine"}).encode()
    assert post(node.url, body) == (204, None)


ADDRESS = DEV_ACCOUNTS[0][0]


@pytest.mark.parametrize(("method", "params", "message"), [
    ("eth_getBalance", [], "missing value for required argument 0"),
    ("eth_getBalance", [123, "latest"], "invalid address 123: not a hex string"),
    ("eth_getBalance", ["0x1234", "latest"],
     'invalid address "0x1234": hex string has length 4, want 40'),
    ("eth_getBalance", [ADDRESS[2:], "latest"], "hex string without 0x prefix"),
    ("eth_getBalance", [ADDRESS, "0x01"], "hex number with leading zero digits"),
    ("eth_getBalance", [ADDRESS, "newest"], "hex string without 0x prefix"),
    ("eth_getBalance", [ADDRESS, "0xlatest"], "invalid hex digit"),
    ("eth_getBalance", [ADDRESS, "latest", "extra"], "too many arguments, want at most 2"),
    ("eth_blockNumber", [1], "too many arguments, want at most 0"),
    ("eth_getBlockByNumber", ["latest", "yes"], 'invalid fullTransactions "yes": not a boolean'),
    ("eth_getBlockByNumber", [{"nothing": 1}, False], "want blockHash or blockNumber"),
    ("eth_getTransactionByHash", ["0x12"], "hex string has length 2, want 64"),
    ("eth_sendRawTransaction", [], "missing value for required argument 0"),
    ("eth_sendRawTransaction", ["0xzz"], "invalid hex digit"),
    ("eth_sendRawTransaction", ["0x123"], "hex string of odd length"),
    ("eth_feeHistory", ["-0x1", "latest", []], "not a hex or decimal integer"),
    ("eth_feeHistory", ["0x2", "latest", ["10"]], "want a list of numbers"),
    ("eth_getLogs", ["latest"], "the filter must be an object"),
    ("eth_call", ["0x00"], "the call must be an object"),
    ("eth_estimateGas", [{"to": ADDRESS, "gas": 21_000}], "not a hex string"),
])
def test_invalid_params(node: ThreadNode, method: str, params: list[Any], message: str) -> None:
    error = error_of(node.url, method, *params)
    assert error["code"] == -32602
    assert message in error["message"]


def test_params_neither_array_nor_object(node: ThreadNode) -> None:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_getBalance", "params": "0x"})
    status, answer = post(node.url, body.encode())
    assert status == 200
    assert answer["error"] == {"code": -32602, "message": "params must be an array or an object"}


# --- refused transactions -----------------------------------------------------------------------


def test_wrong_chain_id(w3: Web3, node: ThreadNode) -> None:
    sender = CHAIN_ID_ACCT
    # geth's words: its signer refuses the sender (ethers and viem match on them).
    message = "invalid sender: invalid chain id for signer: have 1 want 121212"
    assert refused(node, sign(w3, sender, chainId=1).raw_transaction) == message
    legacy = sender.sign_transaction({
        "to": address_for("bad-input"), "value": 1, "gas": 21_000, "gasPrice": 10 * GWEI,
        "nonce": 0, "chainId": 1})
    assert legacy.v == 37  # EIP-155 for chain 1: the chain id is read from v, as geth does
    assert refused(node, legacy.raw_transaction) == message
    assert w3.eth.get_transaction_count(sender.address, "pending") == 0


def test_bad_signature(w3: Web3, node: ThreadNode) -> None:
    sender = SIGNATURE
    signed = sign(w3, sender)
    assert refused(node, resign(signed, r=0)) == "invalid sender: invalid signature r (r=0)"
    assert refused(node, resign(signed, r=SECP256K1_N)) == (
        f"invalid sender: invalid signature r (r={SECP256K1_N})")
    # The malleable twin (s' = n - s, parity flipped) is valid ECDSA but refused (EIP-2).
    high_s = SECP256K1_N - signed.s
    assert refused(node, resign(signed, s=high_s, y_parity=1 - signed.v)) == (
        f"invalid sender: signature s too high (s={high_s})")
    # Another s recovers someone else: a stranger with nothing, not the signer.
    message = refused(node, resign(signed, s=signed.s - 1))
    stranger = re.fullmatch(
        r"insufficient funds for gas \* price \+ value: address (0x[0-9a-f]{40}) have 0 want "
        + str(21_000 * 10 * GWEI + 1), message)
    assert stranger is not None, message
    assert stranger.group(1) != sender.address.lower()
    # None of it touched the signer; the untampered transaction still goes through.
    assert w3.eth.get_transaction_count(sender.address, "pending") == 0
    assert wait_receipt(w3, send(node, signed.raw_transaction)).status == 1


def test_nonce_too_low(w3: Web3, node: ThreadNode) -> None:
    sender = NONCE_LOW
    nonce = w3.eth.get_transaction_count(sender.address)
    first = sign(w3, sender, nonce=nonce)
    assert wait_receipt(w3, send(node, first.raw_transaction)).status == 1
    again = sign(w3, sender, nonce=nonce, value=2)
    assert refused(node, again.raw_transaction) == (
        f"nonce too low: address {sender.address.lower()}, tx: {nonce} state: {nonce + 1}")
    # The same bytes again: no longer in the pool, so also just too low.
    assert refused(node, first.raw_transaction).startswith("nonce too low: ")


def test_nonce_gap_is_queued_until_filled(w3: Web3, node: ThreadNode) -> None:
    sender = GAP
    nonce = w3.eth.get_transaction_count(sender.address)
    later = sign(w3, sender, nonce=nonce + 1)
    assert send(node, later.raw_transaction) == later.hash.to_0x_hex()
    assert rpc(node.url, "txpool_status") == {"pending": "0x0", "queued": "0x1"}
    assert w3.eth.get_transaction_count(sender.address, "pending") == nonce
    pooled = w3.eth.get_transaction(later.hash)  # known, but not in a block
    assert pooled.blockHash is None and pooled.blockNumber is None
    assert pooled.nonce == nonce + 1
    wait_blocks(w3, 3)
    assert rpc(node.url, "eth_getTransactionReceipt", later.hash.to_0x_hex()) is None
    assert w3.eth.get_transaction_count(sender.address) == nonce

    first = sign(w3, sender, nonce=nonce)
    send(node, first.raw_transaction)
    receipts = [wait_receipt(w3, first.hash), wait_receipt(w3, later.hash)]
    assert [r.status for r in receipts] == [1, 1]
    assert (receipts[0].blockNumber, receipts[0].transactionIndex) < (
        receipts[1].blockNumber, receipts[1].transactionIndex)
    assert w3.eth.get_transaction_count(sender.address) == nonce + 2
    assert rpc(node.url, "txpool_status") == {"pending": "0x0", "queued": "0x0"}


def test_insufficient_funds(w3: Web3, node: ThreadNode) -> None:
    sender = FUNDS
    balance = w3.eth.get_balance(sender.address)
    fee = 21_000 * 10 * GWEI
    too_much = sign(w3, sender, value=balance - fee + 1)
    assert refused(node, too_much.raw_transaction) == (
        f"insufficient funds for gas * price + value: address {sender.address.lower()} "
        f"have {balance} want {balance + 1}")
    # Someone with nothing at all.
    nobody = Account.from_key(keccak(text="nobody"))
    assert refused(node, sign(w3, nobody, value=0).raw_transaction) == (
        f"insufficient funds for gas * price + value: address {nobody.address.lower()} "
        f"have 0 want {fee}")
    # Exactly affordable is accepted (and, at a base fee far below the cap, included).
    exact = sign(w3, sender, value=balance - fee)
    receipt = wait_receipt(w3, send(node, exact.raw_transaction))
    assert receipt.status == 1
    assert w3.eth.get_balance(sender.address) == fee - 21_000 * receipt.effectiveGasPrice


def test_gas_limit_above_block_gas_limit(w3: Web3, node: ThreadNode) -> None:
    signed = sign(w3, GAS_LIMIT, gas=BLOCK_GAS_LIMIT + 1)
    assert refused(node, signed.raw_transaction) == (
        f"exceeds block gas limit: tx gas {BLOCK_GAS_LIMIT + 1}, block gas {BLOCK_GAS_LIMIT}")


def test_intrinsic_gas_too_low(w3: Web3, node: ThreadNode) -> None:
    sender = INTRINSIC
    # geth's txpool words (core/txpool/validation.go).
    assert refused(node, sign(w3, sender, gas=20_999).raw_transaction) == (
        "intrinsic gas too low: gas 20999, minimum needed 21000")
    with_data = sign(w3, sender, gas=21_000, data="0x0100")  # 16 + 4 more
    assert refused(node, with_data.raw_transaction) == (
        "intrinsic gas too low: gas 21000, minimum needed 21020")
    access = sign(w3, sender, gas=21_000, accessList=[
        {"address": address_for("listed"), "storageKeys": []}])
    assert refused(node, access.raw_transaction) == (
        "intrinsic gas too low: gas 21000, minimum needed 23400")


def test_replacement_underpriced_then_bumped(w3: Web3, node: ThreadNode) -> None:
    """Behind a nonce gap, so the replaced transaction cannot be included meanwhile."""
    sender = REPLACE
    nonce = w3.eth.get_transaction_count(sender.address)
    fee_cap, tip = 10 * GWEI, 2 * GWEI

    def at(cap: int, tip_: int, value: int) -> SignedTransaction:
        return sign(w3, sender, nonce=nonce + 1, maxFeePerGas=cap, maxPriorityFeePerGas=tip_,
                    value=value)

    original = at(fee_cap, tip, 1)
    send(node, original.raw_transaction)
    for cap, tip_ in [(fee_cap, tip), (fee_cap * 109 // 100, tip * 109 // 100),
                      (fee_cap * 110 // 100, tip), (fee_cap, tip * 2)]:
        message = refused(node, at(cap, tip_, 2).raw_transaction)
        assert message == (
            f"replacement transaction underpriced: old fee cap {fee_cap} tip {tip}, "
            f"new fee cap {cap} tip {tip_}, need +10%")
    bumped = at(fee_cap * 110 // 100, tip * 110 // 100, 3)
    assert send(node, bumped.raw_transaction) == bumped.hash.to_0x_hex()
    assert rpc(node.url, "eth_getTransactionByHash", original.hash.to_0x_hex()) is None
    assert w3.eth.get_transaction(bumped.hash).maxFeePerGas == fee_cap * 110 // 100

    first = sign(w3, sender, nonce=nonce)
    send(node, first.raw_transaction)
    assert wait_receipt(w3, first.hash).status == 1
    assert wait_receipt(w3, bumped.hash).status == 1
    assert rpc(node.url, "eth_getTransactionReceipt", original.hash.to_0x_hex()) is None
    assert w3.eth.get_transaction_count(sender.address) == nonce + 2


def test_unprotected_legacy_refused(w3: Web3, node: ThreadNode) -> None:
    sender = UNPROTECTED
    signed = sender.sign_transaction({
        "to": address_for("bad-input"), "value": 1, "gas": 21_000, "gasPrice": 10 * GWEI,
        "nonce": 0})
    assert signed.v in (27, 28)  # no chain id in the signature
    assert refused(node, signed.raw_transaction) == (
        "only replay-protected (EIP-155) transactions allowed over RPC: "
        + signed.hash.to_0x_hex())
    assert w3.eth.get_transaction_count(sender.address, "pending") == 0


def test_state_at_blocks_not_on_the_chain_or_no_longer_kept(
    w3: Web3, node: ThreadNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    import alys_fast.storage.store as store_module

    address = OLD_STATE.address
    beyond = hex(w3.eth.block_number + 1000)
    for method, params in [("eth_getBalance", [address, beyond]),
                           ("eth_getCode", [address, beyond]),
                           ("eth_call", [{"to": address}, beyond])]:
        assert error_of(node.url, method, *params) == {
            "code": -32000, "message": "header not found"}
    unknown = "0x" + "ab" * 32
    assert error_of(node.url, "eth_getBalance", address, {"blockHash": unknown}) == {
        "code": -32000, "message": f"header for hash {unknown} not found"}
    # Genesis state is readable while it is in the window, by number, tag or hash.
    genesis = w3.eth.get_block(0).hash.to_0x_hex()
    for block in ("0x0", "earliest", {"blockHash": genesis}):
        assert int(rpc(node.url, "eth_getBalance", address, block), 16) == 10_000 * 10**18
    # Shrink the window: the next blocks prune history, and old reads name the oldest kept.
    monkeypatch.setattr(store_module, "HISTORY_BLOCKS", 2)
    wait_blocks(w3, 3)
    pattern = (r"the state at block 0 is not kept: the oldest block with state is (\d+) "
               r"\(an archive node, --archive, keeps all\)")
    for method, params in [("eth_getBalance", [address, "0x0"]),
                           ("eth_getTransactionCount", [address, "earliest"]),
                           ("eth_getStorageAt", [address, "0x0", "0x0"]),
                           ("eth_getCode", [address, {"blockHash": genesis}]),
                           ("eth_call", [{"to": address}, "0x0"])]:
        error = error_of(node.url, method, *params)
        assert error["code"] == -32000
        match = re.fullmatch(pattern, error["message"])
        assert match and int(match[1]) > 0, error
    # The head's state is served.
    assert int(rpc(node.url, "eth_getBalance", address, "latest"), 16) == 10_000 * 10**18


def test_call_and_estimate_of_a_contract_creation(node: ThreadNode) -> None:
    # Init code that returns 32 bytes (0x..2a) as the runtime code:
    # PUSH1 0x2a PUSH1 0 MSTORE PUSH1 0x20 PUSH1 0 RETURN.
    creation = {"from": ADDRESS, "data": "0x602a60005260206000f3"}
    # 53,000 + calldata (8 non-zero bytes x 16 + 2 zero bytes x 4) + one initcode word (2),
    # 18 for the code run (5 pushes, MSTORE and its one memory word), 32 x 200 to deposit.
    cost = 53_000 + 136 + 2 + 18 + 32 * 200
    for call in (creation, {**creation, "to": None}):
        assert rpc(node.url, "eth_call", call) == "0x" + "00" * 31 + "2a"
        assert int(rpc(node.url, "eth_estimateGas", call), 16) == cost
    # The estimate is the least gas that succeeds: one less runs out while depositing.
    assert rpc(node.url, "eth_call", {**creation, "gas": hex(cost)}) == "0x" + "00" * 31 + "2a"
    # (geth says "contract creation code storage out of gas", revm "out of gas".)
    error = error_of(node.url, "eth_call", {**creation, "gas": hex(cost - 1)})
    assert error["code"] == -32000 and error["message"].endswith("out of gas"), error
    # Init code that reverts with data: geth's code 3 with the data.
    reverting = {"from": ADDRESS, "data": "0x60ff6000526001601ffd"}  # REVERT with 0xff
    for method in ("eth_call", "eth_estimateGas"):
        assert error_of(node.url, method, reverting) == {
            "code": 3, "message": "execution reverted", "data": "0xff"}
