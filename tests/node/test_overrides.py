"""geth's state overrides (``eth_call``, ``eth_estimateGas``) and ``eth_createAccessList`` end
to end on a dev node, through web3.py and raw JSON-RPC: balance, nonce, code, ``state`` and
``stateDiff`` at the head and at an older block, none of them leaking into later calls or
blocks; the refusals; a token transfer's access list and its gas. If anvil is installed, the
same access list and overridden calls are compared with anvil's answers.

One node (200 ms slots) serves the module; each test sends from its own dev account.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from eth_abi import decode
from eth_account import Account
from eth_utils import to_checksum_address
from web3 import Web3
from web3.providers import HTTPProvider

from alys_fast.chain.spec import DEV_ACCOUNTS
from tests.differential.anvil import Anvil, AnvilUnavailable, find_anvil
from tests.engine.contracts import calldata, creation_code, mapping_slot, runtime_code
from tests.node.harness import ThreadNode, running_node
from tests.node.test_contracts import answer, created_address, deploy, rpc_error, send

ETHER = 10**18
SUPPLY = 10**24
ACCOUNTS = [Account.from_key(key) for _, key in DEV_ACCOUNTS]
OWNER, HISTORY, LISTS, ESTIMATES, ANVIL_SENDER = ACCOUNTS[1:6]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadNode]:
    with running_node(tmp_path_factory.mktemp("overrides-node"), slot_ms=200) as running:
        yield running


@pytest.fixture(scope="module")
def w3(node: ThreadNode) -> Web3:
    return Web3(HTTPProvider(node.url, request_kwargs={"timeout": 10}))


@pytest.fixture(scope="module")
def token(w3: Web3) -> str:
    """A Token whose whole supply OWNER holds."""
    return deploy(w3, OWNER, "Token", ["uint256"], [SUPPLY]).contractAddress


def word(value: int) -> str:
    return "0x" + value.to_bytes(32, "big").hex()


def slot_of(holder: str) -> str:
    """The Token's balanceOf slot of ``holder``, as a 32-byte key."""
    return word(mapping_slot(bytes.fromhex(holder[2:]), 1))


def hexcall(name: str, signature: str, *args: Any) -> str:
    return "0x" + calldata(name, signature, *args).hex()


def call(url: str, to: str, data: str, overrides: Any = None, block: Any = "latest",
         **fields: Any) -> int:
    """eth_call with ``overrides``, its 32-byte answer as an integer."""
    params: list[Any] = [{"to": to, "data": data, **fields}, block]
    if overrides is not None:
        params.append(overrides)
    got = answer(url, "eth_call", *params)
    assert "result" in got, got
    return int(got["result"], 16)


def rpc_estimate(node: ThreadNode, request: dict[str, Any], overrides: Any = None) -> str:
    """eth_estimateGas with ``overrides``, its hex answer."""
    params = [request, "latest"] + ([] if overrides is None else [overrides])
    got = answer(node.url, "eth_estimateGas", *params)
    assert "result" in got, got
    return got["result"]


# --- overrides ----------------------------------------------------------------------------------


def test_a_balance_override_lets_an_empty_sender_pay(node: ThreadNode, w3: Web3) -> None:
    empty = Account.create().address
    move = {"from": empty, "to": OWNER.address, "value": hex(ETHER), "gasPrice": hex(10**9)}
    refused = rpc_error(node.url, "eth_call", move)
    assert refused["code"] == -32000 and "insufficient funds" in refused["message"]
    assert w3.eth.call(move, "latest", {empty: {"balance": hex(2 * ETHER)}}) == b""
    assert rpc_error(node.url, "eth_call", move) == refused
    assert w3.eth.get_balance(empty) == 0


def test_code_on_an_empty_address(node: ThreadNode, w3: Web3) -> None:
    """Probe's code with its own storage, and Token's code (its constants need no storage)."""
    empty = Account.create().address
    probe = {empty: {"code": "0x" + runtime_code("Probe").hex(), "state": {word(3): word(9)}}}
    assert call(node.url, empty, hexcall("Probe", "getSlot(uint256)", 3), probe) == 9
    # The nonce override moves the address a CREATE from there gets.
    made = call(node.url, empty, hexcall("Probe", "selfDestructNew()"),
                {empty: {**probe[empty], "nonce": hex(5)}})
    assert to_checksum_address(made.to_bytes(20, "big")) == created_address(empty, 5)
    token_code = {empty: {"code": "0x" + runtime_code("Token").hex()}}
    name = answer(node.url, "eth_call", {"to": empty, "data": hexcall("Token", "name()")},
                  "latest", token_code)["result"]
    assert decode(["string"], bytes.fromhex(name[2:])) == ("Test Token",)
    assert w3.eth.get_code(empty) == b""
    assert answer(node.url, "eth_call", {"to": empty, "data": hexcall("Token", "name()")})[
        "result"] == "0x"


def test_state_diff_and_state_on_a_token(node: ThreadNode, w3: Web3, token: str) -> None:
    holder = Account.create().address
    balance_of = hexcall("Token", "balanceOf(address)", holder)
    owners = hexcall("Token", "balanceOf(address)", OWNER.address)
    supply = hexcall("Token", "totalSupply()")
    diff = {token: {"stateDiff": {slot_of(holder): word(1234)}}}
    assert call(node.url, token, balance_of, diff) == 1234
    assert call(node.url, token, owners, diff) == SUPPLY  # the other slots read through
    assert call(node.url, token, supply, diff) == SUPPLY
    whole = {token: {"state": {slot_of(holder): word(5)}}}
    assert call(node.url, token, balance_of, whole) == 5
    assert call(node.url, token, owners, whole) == 0
    assert call(node.url, token, supply, whole) == 0
    # Nothing stays behind: calls, storage reads and the next block see the real state.
    assert call(node.url, token, balance_of) == 0
    assert call(node.url, token, owners) == SUPPLY
    assert w3.eth.get_storage_at(token, int(slot_of(holder), 16)) == bytes(32)
    move = calldata("Token", "transfer(address,uint256)", holder, 10)
    assert send(w3, OWNER, to=token, data=move, gas=100_000).status == 1
    assert call(node.url, token, balance_of) == 10
    assert call(node.url, token, owners) == SUPPLY - 10


def test_an_override_at_an_older_block(node: ThreadNode, w3: Web3) -> None:
    made = deploy(w3, HISTORY, "Token", ["uint256"], [SUPPLY])
    address = made.contractAddress
    receiver = Account.create().address
    move = calldata("Token", "transfer(address,uint256)", receiver, 777)
    sent = send(w3, HISTORY, to=address, data=move, gas=100_000)
    before = hex(sent.blockNumber - 1)
    owners = hexcall("Token", "balanceOf(address)", HISTORY.address)
    receivers = hexcall("Token", "balanceOf(address)", receiver)
    diff = {address: {"stateDiff": {slot_of(receiver): word(3)}}}
    assert call(node.url, address, receivers, diff, before) == 3
    assert call(node.url, address, owners, diff, before) == SUPPLY  # that block's value
    assert call(node.url, address, owners, diff) == SUPPLY - 777
    assert call(node.url, address, receivers, diff) == 3
    assert call(node.url, address, receivers, None, before) == 0
    # Code at an address that had none then.
    probe = {receiver: {"code": "0x" + runtime_code("Probe").hex(), "state": {word(1): word(2)}}}
    assert call(node.url, receiver, hexcall("Probe", "getSlot(uint256)", 1), probe, before) == 2
    # A block before the token existed: its code given, the storage as given.
    earlier = hex(made.blockNumber - 1)
    token_state = {address: {"code": "0x" + runtime_code("Token").hex(),
                             "state": {slot_of(receiver): word(8)}}}
    assert call(node.url, address, receivers, token_state, earlier) == 8


def test_refused_overrides(node: ThreadNode, token: str) -> None:
    read = {"to": token, "data": hexcall("Token", "totalSupply()")}
    empty = Account.create().address.lower()
    for method in ("eth_call", "eth_estimateGas", "eth_createAccessList"):
        both = rpc_error(node.url, method, read, "latest",
                         {token: {"state": {}, "stateDiff": {}}})
        assert both == {"code": -32000,
                        "message": f"account {token} has both 'state' and 'stateDiff'"}
    refusals = [
        ("0x1", "state overrides must be an object of account overrides by address"),
        ([], "state overrides must be an object of account overrides by address"),
        ({empty: "0x1"}, f"the state override of {empty} must be an object"),
        ({empty: {"balance": "0x1", "storage": {}}},
         f'the state override of {empty}: unknown field "storage" (known: balance, nonce, '
         "code, state, stateDiff)"),
        ({empty: {"movePrecompileToAddress": empty}},
         f"the state override of {empty}: movePrecompileToAddress is not supported by this "
         "node"),
        ({empty: {"balance": "0x01"}}, f"the state override of {empty}: invalid balance "),
        ({empty: {"nonce": hex(2**64)}}, f"the state override of {empty}: invalid nonce "),
        ({empty: {"code": "0x123"}}, f"the state override of {empty}: invalid code "),
        ({empty: {"state": []}}, f"the state override of {empty}: state must be an object of "
                                 "32-byte slots to 32-byte values"),
        ({empty: {"stateDiff": {"0x1": word(1)}}},
         f"the state override of {empty}: invalid stateDiff slot "),
        ({empty: {"stateDiff": {word(1): "0x1"}}},
         f"the state override of {empty}: invalid stateDiff value "),
        ({"0x12": {}}, "invalid address "),
    ]
    for overrides, message in refusals:
        error = rpc_error(node.url, "eth_call", read, "latest", overrides)
        assert error["code"] == -32602 and error["message"].startswith(message), error
    # Null means none, as in geth.
    assert call(node.url, token, read["data"], {empty: {"balance": None, "state": None}}) == (
        SUPPLY)


def test_call_fields_checked_as_geth_checks_them(node: ThreadNode, token: str) -> None:
    """Zero fees run as no fees (an empty account can call); offered fees, chainId and what
    this chain cannot run are refused alike by the three methods, in geth's words."""
    empty = Account.create().address
    read = {"from": empty, "to": token, "data": hexcall("Token", "totalSupply()")}
    assert call(node.url, token, read["data"], **{"from": empty, "gasPrice": "0x0"}) == SUPPLY
    assert int(rpc_estimate(node, {**read, "maxFeePerGas": "0x0"}), 16) > 21_000
    base_fee = int(answer(node.url, "eth_getBlockByNumber", "latest", False)["result"][
        "baseFeePerGas"], 16)
    refusals = [
        ({"chainId": "0x1"}, -32000, "chainId does not match node's (have=1, want=121212)"),
        ({"gasPrice": "0x1"}, -32000, f"max fee per gas less than block base fee: address "
         f"{empty}, maxFeePerGas: 1, baseFee: "),
        ({"maxFeePerGas": hex(base_fee * 4), "maxPriorityFeePerGas": hex(base_fee * 5)}, -32000,
         "max priority fee per gas higher than max fee per gas"),
        ({"nonce": "junk"}, -32602, 'invalid nonce "junk": hex string without 0x prefix'),
        ({"blobVersionedHashes": []}, -32602, "blobVersionedHashes: blob transactions are not "
         "supported by this node"),
    ]
    for method in ("eth_call", "eth_estimateGas", "eth_createAccessList"):
        for fields, code, message in refusals:
            error = rpc_error(node.url, method, {**read, **fields}, "latest")
            assert error["code"] == code and error["message"].startswith(message), (
                method, error)


# --- access lists and estimates -----------------------------------------------------------------


def test_the_access_list_of_a_token_transfer(node: ThreadNode, w3: Web3) -> None:
    address = deploy(w3, LISTS, "Token", ["uint256"], [SUPPLY]).contractAddress
    receiver = Account.create().address
    move = calldata("Token", "transfer(address,uint256)", receiver, 5)
    request = {"from": LISTS.address, "to": address, "data": "0x" + move.hex()}
    got = w3.eth.create_access_list(request)
    slots = sorted([slot_of(LISTS.address), slot_of(receiver)])
    assert [(entry["address"], entry["storageKeys"]) for entry in got["accessList"]] == [
        (address, slots)]
    raw = answer(node.url, "eth_createAccessList", request)["result"]
    assert list(raw) == ["accessList", "gasUsed"]
    assert raw["accessList"] == [{"address": address.lower(), "storageKeys": slots}]
    # A transaction sent with that list uses exactly the gas the answer said.
    access_list = [{"address": address, "storageKeys": slots}]
    sent = send(w3, LISTS, to=address, data=move, gas=200_000, accessList=access_list)
    assert sent.status == 1 and sent.gasUsed == got["gasUsed"]
    # A sender holding no tokens: the transfer reverts (with its list so far) unless a
    # stateDiff gives it some.
    spender = Account.create().address
    poor = {"from": spender, "to": address, "data": request["data"]}
    failed = answer(node.url, "eth_createAccessList", poor)["result"]
    assert failed["error"] == "execution reverted"
    assert failed["accessList"] == [{"address": address.lower(),
                                     "storageKeys": [slot_of(spender)]}]
    given = {address: {"stateDiff": {slot_of(spender): word(100)}}}
    funded = answer(node.url, "eth_createAccessList", poor, "latest", given)["result"]
    assert "error" not in funded
    assert funded["accessList"] == [{"address": address.lower(),
                                     "storageKeys": sorted([slot_of(spender), slot_of(receiver)])}]


def test_estimate_gas_with_overrides(node: ThreadNode, w3: Web3, token: str) -> None:
    spender = Account.create().address
    move = {"from": spender, "to": token,
            "data": hexcall("Token", "transfer(address,uint256)", ESTIMATES.address, 3)}
    refused = rpc_error(node.url, "eth_estimateGas", move)
    assert refused["code"] == 3 and refused["message"] == "execution reverted"
    given = {token: {"stateDiff": {slot_of(spender): word(3)}}}
    estimate = int(rpc_estimate(node, move, given), 16)
    assert 21_000 < estimate < 100_000
    assert call(node.url, token, move["data"], given, gas=hex(estimate), **{"from": spender}) == 1
    starved = rpc_error(node.url, "eth_call", {**move, "gas": hex(estimate - 1)}, "latest", given)
    assert "out of gas" in starved["message"]
    # Code at an empty address: estimating a call to it.
    empty = Account.create().address
    code = {empty: {"code": "0x" + runtime_code("Probe").hex()}}
    burn = {"to": empty, "data": hexcall("Probe", "gasLeftBurn(uint256)", 50)}
    assert int(rpc_estimate(node, burn, code), 16) > int(rpc_estimate(node, {"to": empty}), 16)


# --- against anvil ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def anvil() -> Iterator[Anvil]:
    try:
        binary = find_anvil(install=False)
    except AnvilUnavailable as why:
        pytest.skip(str(why))
    with Anvil(binary) as running:
        yield running


def test_access_lists_and_overridden_calls_agree_with_anvil(
    node: ThreadNode, w3: Web3, anvil: Anvil
) -> None:
    """The same token (same deployer, same nonce, so the same address) on both nodes."""
    ours = deploy(w3, ANVIL_SENDER, "Token", ["uint256"], [SUPPLY]).contractAddress
    chain_id = int(anvil.call("eth_chainId"), 16)
    nonce = int(anvil.call("eth_getTransactionCount", ANVIL_SENDER.address, "latest"), 16)
    assert nonce == 0, "the deployer must be fresh on anvil too"
    signed = ANVIL_SENDER.sign_transaction({
        "chainId": chain_id, "type": 2, "nonce": nonce, "gas": 3_000_000, "value": 0,
        "maxFeePerGas": 10**11, "maxPriorityFeePerGas": 10**9,
        "data": creation_code("Token", ["uint256"], [SUPPLY]),
    })
    sent = anvil.call("eth_sendRawTransaction", signed.raw_transaction.to_0x_hex())
    deadline = time.monotonic() + 10
    while (theirs := anvil.call("eth_getTransactionReceipt", sent)) is None:
        assert time.monotonic() < deadline, "anvil did not mine the deployment"
        time.sleep(0.05)
    assert to_checksum_address(theirs["contractAddress"]) == ours
    receiver = Account.create().address
    move = {"from": ANVIL_SENDER.address, "to": ours,
            "data": hexcall("Token", "transfer(address,uint256)", receiver, 5)}
    # Anvil takes no overrides here, and answers a reverting call with an error (geth as we do).
    mine = answer(node.url, "eth_createAccessList", move)["result"]
    assert mine == _lower(anvil.call("eth_createAccessList", move))
    given = {ours: {"stateDiff": {slot_of(receiver): word(100)}}}
    probe = Account.create().address
    calls = [
        ({"to": ours, "data": hexcall("Token", "balanceOf(address)", receiver)}, given),
        ({"to": ours, "data": hexcall("Token", "totalSupply()")},
         {ours: {"state": {slot_of(receiver): word(1)}}}),
        ({"to": probe, "data": hexcall("Probe", "getSlot(uint256)", 4)},
         {probe: {"code": "0x" + runtime_code("Probe").hex(), "state": {word(4): word(6)}}}),
        ({"from": receiver, "to": ANVIL_SENDER.address, "value": hex(ETHER)},
         {receiver: {"balance": hex(2 * ETHER)}}),
    ]
    for request, overrides in calls:
        mine = answer(node.url, "eth_call", request, "latest", overrides)["result"]
        assert mine == anvil.call("eth_call", request, "latest", overrides), request


def _lower(value: Any) -> Any:
    """anvil's answer with hex in lower case (it checksums addresses; geth does not)."""
    if isinstance(value, dict):
        return {k: _lower(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_lower(v) for v in value]
    return value.lower() if isinstance(value, str) else value
