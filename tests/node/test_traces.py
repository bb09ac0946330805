"""geth's tracers on a dev chain: ``debug_traceTransaction``, ``debug_traceBlockByNumber`` /
``ByHash`` and ``debug_traceCall`` with the struct logger, ``callTracer`` and
``prestateTracer``, checked against frames worked out by hand from the contracts' sources,
against the receipts, and (when anvil is there) against anvil's output for the same
transactions."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_abi import encode
from eth_account import Account
from eth_utils import keccak, to_checksum_address

from alys_fast.chain.mining import DevMining
from alys_fast.chain.spec import DEV_ACCOUNTS, DEV_CHAIN_ID
from tests.differential.anvil import Anvil, AnvilUnavailable, find_anvil
from tests.engine.contracts import (
    TRANSFER,
    calldata,
    creation_code,
    mapping_slot,
    runtime_code,
)
from tests.node.harness import ThreadNode, rpc, running_node
from tests.node.test_durability import wait_for

GWEI = 10**9
ACCOUNTS = [Account.from_key(key) for _, key in DEV_ACCOUNTS]
SUPPLY = 10**24
CALL_TRACER = {"tracer": "callTracer"}
PRESTATE = {"tracer": "prestateTracer"}
DIFF = {"tracer": "prestateTracer", "tracerConfig": {"diffMode": True}}


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadNode]:
    with running_node(tmp_path_factory.mktemp("traces"), slot_ms=1000, archive=True,
                      dev_mining=DevMining()) as running:
        yield running


def send(url: str, sender: Any, *, gas: int = 1_000_000, value: int = 0, tip: int = GWEI,
         **fields: Any) -> dict[str, Any]:
    """``sender``'s transaction, automined; its receipt (with its hash and gas limit)."""
    nonce = int(rpc(url, "eth_getTransactionCount", sender.address, "pending"), 16)
    tx = {"chainId": DEV_CHAIN_ID, "type": 2, "gas": gas, "maxFeePerGas": 100 * GWEI,
          "maxPriorityFeePerGas": tip, "value": value, "nonce": nonce, **fields}
    raw = sender.sign_transaction(tx).raw_transaction
    tx_hash = rpc(url, "eth_sendRawTransaction", "0x" + raw.hex())
    return rpc(url, "eth_getTransactionReceipt", tx_hash)


def deploy(url: str, sender: Any, code: bytes) -> str:
    receipt = send(url, sender, gas=3_000_000, data=code)
    assert receipt["status"] == "0x1"
    return to_checksum_address(receipt["contractAddress"])


def call_to(url: str, sender: Any, contract: str, name: str, signature: str, *args: Any,
            **fields: Any) -> dict[str, Any]:
    return send(url, sender, to=contract, data=calldata(name, signature, *args), **fields)


def error_of(url: str, method: str, *params: Any) -> dict[str, Any]:
    with pytest.raises(RuntimeError) as raised:
        rpc(url, method, *params)
    return raised.value.args[0]


def hexed(data: bytes) -> str:
    return "0x" + data.hex()


def word(value: int) -> str:
    return "0x" + value.to_bytes(32, "big").hex()


def lower(address: str) -> str:
    return address.lower()


def raw(address: str) -> bytes:
    return bytes.fromhex(address[2:])


def error_data(reason: str) -> bytes:
    """Solidity's ``Error(string)`` revert data."""
    return bytes.fromhex("08c379a0") + encode(["string"], [reason])


@pytest.fixture(scope="module")
def token(node: ThreadNode) -> str:
    return deploy(node.url, ACCOUNTS[0], creation_code("Token", ["uint256"], [SUPPLY]))


@pytest.fixture(scope="module")
def probe(node: ThreadNode) -> str:
    return deploy(node.url, ACCOUNTS[0], creation_code("Probe"))


# ---- callTracer -----------------------------------------------------------------------------


def test_the_call_tracer_of_a_token_transfer(node: ThreadNode, token: str) -> None:
    url, sender, to = node.url, ACCOUNTS[0], ACCOUNTS[1].address
    receipt = call_to(url, sender, token, "Token", "transfer(address,uint256)", raw(to), 5,
                      gas=90_000)
    tx_hash = receipt["transactionHash"]
    frame = rpc(url, "debug_traceTransaction", tx_hash, {**CALL_TRACER,
                                                          "tracerConfig": {"withLog": True}})
    log = frame.pop("logs")
    assert frame == {
        "from": lower(sender.address), "to": lower(token), "type": "CALL", "value": "0x0",
        "gas": hex(90_000), "gasUsed": receipt["gasUsed"],
        "input": hexed(calldata("Token", "transfer(address,uint256)", raw(to), 5)),
        "output": word(1),
    }
    (entry,) = log
    assert (entry["address"], entry["topics"], entry["data"], entry["position"]) == (
        lower(token),
        [hexed(TRANSFER), word(int(sender.address, 16)), word(int(to, 16))],
        word(5),
        "0x0",
    )
    # Without withLog the logs are not shown; onlyTopCall is the same frame here.
    plain = rpc(url, "debug_traceTransaction", tx_hash, CALL_TRACER)
    assert plain == frame
    assert rpc(url, "debug_traceTransaction", tx_hash,
               {**CALL_TRACER, "tracerConfig": {"onlyTopCall": True}}) == frame


def test_the_call_tracer_of_a_nested_call_that_reverts(node: ThreadNode, probe: str) -> None:
    """Probe STATICCALLs itself into ``revertWithReason("no")``: the inner frame reverts with
    ``Error("no")``, the outer one returns ``(false, that data)``."""
    url, sender = node.url, ACCOUNTS[0]
    inner_input = calldata("Probe", "revertWithReason(string)", "no")
    receipt = call_to(url, sender, probe, "Probe", "rawStaticcall(address,bytes)", raw(probe),
                      inner_input, gas=200_000)
    tx_hash = receipt["transactionHash"]
    frame = rpc(url, "debug_traceTransaction", tx_hash, CALL_TRACER)
    (inner,) = frame.pop("calls")
    assert frame == {
        "from": lower(sender.address), "to": lower(probe), "type": "CALL", "value": "0x0",
        "gas": hex(200_000), "gasUsed": receipt["gasUsed"],
        "input": hexed(calldata("Probe", "rawStaticcall(address,bytes)", raw(probe),
                                inner_input)),
        "output": hexed(encode(["bool", "bytes"], [False, error_data("no")])),
    }
    inner_gas, inner_used = int(inner.pop("gas"), 16), int(inner.pop("gasUsed"), 16)
    assert inner == {
        "from": lower(probe), "to": lower(probe), "type": "STATICCALL",
        "input": hexed(inner_input), "output": hexed(error_data("no")),
        "error": "execution reverted", "revertReason": "no",
    }
    # The struct logger agrees on the inner frame's gas: what its first step had, and what
    # its last (the REVERT) left.
    steps = rpc(url, "debug_traceTransaction", tx_hash, {"disableStack": True})["structLogs"]
    deeper = [s for s in steps if s["depth"] == 2]
    assert deeper[0]["gas"] == inner_gas
    assert deeper[-1]["op"] == "REVERT"
    assert inner_gas - (deeper[-1]["gas"] - deeper[-1]["gasCost"]) == inner_used
    # EIP-150: the call passes all but a 64th of what is left after its own cost (the step's
    # gasCost is that cost plus the gas passed, as geth counts it).
    (call_step,) = [s for s in steps if s["op"] == "STATICCALL"]
    left = call_step["gas"] - (call_step["gasCost"] - inner_gas)
    assert inner_gas == left - left // 64
    # enableReturnData: the data the last call returned, on each step after it.
    returned = rpc(url, "debug_traceTransaction", tx_hash, {"enableReturnData": True,
                                                            "disableStack": True})["structLogs"]
    after = steps.index(call_step) + 1 + len(deeper)
    assert all("returnData" not in s for s in returned[:after])
    assert returned[after]["returnData"] == hexed(error_data("no"))
    # onlyTopCall leaves the inner frame out.
    top = rpc(url, "debug_traceTransaction", tx_hash,
              {**CALL_TRACER, "tracerConfig": {"onlyTopCall": True}})
    assert "calls" not in top and top["output"] == frame["output"]


def test_a_failed_creation_inside_a_reverted_call(node: ThreadNode, probe: str) -> None:
    """``create2Child`` twice with one salt: the second CREATE2 collides, and Probe reverts."""
    url, sender, salt = node.url, ACCOUNTS[0], b"\x07" * 32
    assert call_to(url, sender, probe, "Probe", "create2Child(bytes32)", salt)["status"] == "0x1"
    receipt = call_to(url, sender, probe, "Probe", "create2Child(bytes32)", salt, gas=500_000)
    assert receipt["status"] == "0x0"
    frame = rpc(url, "debug_traceTransaction", receipt["transactionHash"], CALL_TRACER)
    (create,) = frame.pop("calls")
    assert frame == {
        "from": lower(sender.address), "to": lower(probe), "type": "CALL", "value": "0x0",
        "gas": hex(500_000), "gasUsed": receipt["gasUsed"],
        "input": hexed(calldata("Probe", "create2Child(bytes32)", salt)),
        "error": "execution reverted",
    }
    # geth's failed creation: no address, all its gas used.
    assert create.pop("gas") == create.pop("gasUsed")
    assert create == {
        "from": lower(probe), "type": "CREATE2", "value": "0x0",
        "input": hexed(creation_code("Child")), "error": "contract address collision",
    }


# ---- prestateTracer -------------------------------------------------------------------------


def test_the_prestate_tracer_of_a_token_transfer(node: ThreadNode, token: str) -> None:
    url, sender, to = node.url, ACCOUNTS[0], ACCOUNTS[2].address
    before = int(rpc(url, "eth_call", {"to": token, "data": hexed(calldata(
        "Token", "balanceOf(address)", raw(sender.address)))}), 16)
    balance = int(rpc(url, "eth_getBalance", sender.address, "latest"), 16)
    nonce = int(rpc(url, "eth_getTransactionCount", sender.address, "latest"), 16)
    receipt = call_to(url, sender, token, "Token", "transfer(address,uint256)", raw(to), 7)
    tx_hash = receipt["transactionHash"]
    from_slot, to_slot = (word(mapping_slot(raw(a), 1)) for a in (sender.address, to))

    pre = rpc(url, "debug_traceTransaction", tx_hash, PRESTATE)
    assert pre[lower(sender.address)] == {"balance": hex(balance), "nonce": nonce}
    assert pre[lower(token)] == {
        "balance": "0x0", "nonce": 1, "code": hexed(runtime_code("Token")),
        "storage": {from_slot: word(before), to_slot: word(0)},
    }
    diff = rpc(url, "debug_traceTransaction", tx_hash, DIFF)
    fee = int(receipt["gasUsed"], 16) * int(receipt["effectiveGasPrice"], 16)
    assert diff["pre"][lower(sender.address)] == {"balance": hex(balance), "nonce": nonce}
    assert diff["post"][lower(sender.address)] == {"balance": hex(balance - fee),
                                                   "nonce": nonce + 1}
    # The slots that changed only (a zero slot is left out of pre), and no unchanged code.
    assert diff["pre"][lower(token)] == {
        "balance": "0x0", "nonce": 1, "code": hexed(runtime_code("Token")),
        "storage": {from_slot: word(before)},
    }
    assert diff["post"][lower(token)] == {"storage": {from_slot: word(before - 7),
                                                      to_slot: word(7)}}
    # disableCode / disableStorage.
    bare = rpc(url, "debug_traceTransaction", tx_hash,
               {**PRESTATE, "tracerConfig": {"disableCode": True, "disableStorage": True}})
    assert bare[lower(token)] == {"balance": "0x0", "nonce": 1}


# ---- the struct logger ----------------------------------------------------------------------


def test_the_struct_logger_of_a_token_transfer(node: ThreadNode, token: str) -> None:
    url, sender, to = node.url, ACCOUNTS[0], ACCOUNTS[3].address
    receipt = call_to(url, sender, token, "Token", "transfer(address,uint256)", raw(to), 1)
    tx_hash = receipt["transactionHash"]
    trace = rpc(url, "debug_traceTransaction", tx_hash)
    assert (trace["gas"], trace["failed"], trace["returnValue"]) == (
        int(receipt["gasUsed"], 16), False, word(1))
    logs = trace["structLogs"]
    # Solidity's prologue: PUSH1 0x80 PUSH1 0x40 MSTORE (the free memory pointer).
    assert [(s["pc"], s["op"], s["stack"]) for s in logs[:3]] == [
        (0, "PUSH1", []), (2, "PUSH1", ["0x80"]), (4, "MSTORE", ["0x80", "0x40"])]
    assert all(s["depth"] == 1 for s in logs) and logs[-1]["op"] == "RETURN"
    # The transfer makes no call: each step's gas is the one before less its cost; the first
    # has the gas limit less the intrinsic gas.
    for step, following in itertools.pairwise(logs):
        assert following["gas"] == step["gas"] - step["gasCost"]
    data = calldata("Token", "transfer(address,uint256)", raw(to), 1)
    nonzero = sum(1 for b in data if b)
    intrinsic = 21_000 + 16 * nonzero + 4 * (len(data) - nonzero)
    assert logs[0]["gas"] == 1_000_000 - intrinsic
    refund = 1_000_000 - logs[-1]["gas"] + logs[-1]["gasCost"]
    assert int(receipt["gasUsed"], 16) <= refund  # gas used, less the refunds
    # geth's words: storage as bare hex at SLOAD/SSTORE, memory with enableMemory.
    sload = next(s for s in logs if s["op"] == "SLOAD")
    slot = mapping_slot(raw(sender.address), 1).to_bytes(32, "big").hex()
    assert slot in sload["storage"]
    full = rpc(url, "debug_traceTransaction", tx_hash, {"enableMemory": True,
                                                         "disableStack": True,
                                                         "disableStorage": True})
    assert "memory" not in full["structLogs"][2]
    assert full["structLogs"][3]["memory"] == ["00" * 32, "00" * 32, "00" * 31 + "80"]
    assert all("stack" not in s and "storage" not in s for s in full["structLogs"])
    limited = rpc(url, "debug_traceTransaction", tx_hash, {"limit": 5})
    assert limited["structLogs"] == logs[:5]


def test_the_struct_logger_of_a_revert(node: ThreadNode, token: str) -> None:
    """A transfer beyond the balance reverts with ``InsufficientBalance(0, 1)``."""
    url, poor = node.url, ACCOUNTS[4]
    receipt = call_to(url, poor, token, "Token", "transfer(address,uint256)",
                      raw(ACCOUNTS[0].address), 1)
    assert receipt["status"] == "0x0"
    trace = rpc(url, "debug_traceTransaction", receipt["transactionHash"])
    error = keccak(b"InsufficientBalance(uint256,uint256)")[:4] + encode(
        ["uint256", "uint256"], [0, 1])
    assert (trace["failed"], trace["returnValue"]) == (True, hexed(error))
    assert trace["gas"] == int(receipt["gasUsed"], 16)
    assert trace["structLogs"][-1]["op"] == "REVERT"


# ---- blocks and calls -----------------------------------------------------------------------


def test_trace_a_block_one_result_per_transaction(node: ThreadNode, probe: str) -> None:
    """Two transactions in one block, the second reading what the first wrote: the block's
    trace and the second transaction's agree (the first ran before it, untraced)."""
    url = node.url
    rpc(url, "evm_setAutomine", False)
    try:
        first = call_data_tx(url, ACCOUNTS[5], probe, "setSlot(uint256,uint256)", 11, 42)
        second = call_data_tx(url, ACCOUNTS[6], probe, "getSlot(uint256)", 11)
        rpc(url, "evm_mine")
    finally:
        rpc(url, "evm_setAutomine", True)
    receipt = rpc(url, "eth_getTransactionReceipt", second)
    block = rpc(url, "eth_getBlockByNumber", receipt["blockNumber"], False)
    assert block["transactions"] == [first, second]
    traces = rpc(url, "debug_traceBlockByNumber", block["number"], CALL_TRACER)
    assert [t["txHash"] for t in traces] == [first, second]
    assert traces[1]["result"]["output"] == word(42)
    assert traces[1]["result"] == rpc(url, "debug_traceTransaction", second, CALL_TRACER)
    assert rpc(url, "debug_traceBlockByHash", block["hash"], CALL_TRACER) == traces
    # Each with its own tracer's frame: the struct logger too.
    logged = rpc(url, "debug_traceBlockByNumber", block["number"])
    assert [t["result"]["gas"] for t in logged] == [
        int(rpc(url, "eth_getTransactionReceipt", h)["gasUsed"], 16) for h in (first, second)]


def call_data_tx(url: str, sender: Any, contract: str, signature: str, *args: Any) -> str:
    """Pool ``sender``'s call of Probe's ``signature`` (not mined); its hash."""
    nonce = int(rpc(url, "eth_getTransactionCount", sender.address, "pending"), 16)
    tx = {"chainId": DEV_CHAIN_ID, "type": 2, "gas": 200_000, "maxFeePerGas": 100 * GWEI,
          "maxPriorityFeePerGas": GWEI, "value": 0, "nonce": nonce, "to": contract,
          "data": calldata("Probe", signature, *args)}
    return rpc(url, "eth_sendRawTransaction",
               "0x" + sender.sign_transaction(tx).raw_transaction.hex())


def test_trace_call_at_the_head_an_older_block_and_with_overrides(node: ThreadNode,
                                                                  token: str) -> None:
    url, holder = node.url, ACCOUNTS[7].address
    query = {"from": ACCOUNTS[0].address, "to": token,
             "data": hexed(calldata("Token", "balanceOf(address)", raw(holder)))}
    before = rpc(url, "eth_blockNumber")
    call_to(url, ACCOUNTS[0], token, "Token", "transfer(address,uint256)", raw(holder), 3)
    frame = rpc(url, "debug_traceCall", query, "latest", CALL_TRACER)
    assert (frame["from"], frame["to"], frame["type"], frame["output"]) == (
        lower(ACCOUNTS[0].address), lower(token), "CALL", word(3))
    assert frame["input"] == query["data"] and int(frame["gasUsed"], 16) > 21_000
    assert rpc(url, "debug_traceCall", query, before, CALL_TRACER)["output"] == word(0)
    slot = word(mapping_slot(raw(holder), 1))
    overridden = rpc(url, "debug_traceCall", query, "latest",
                     {**CALL_TRACER, "stateOverrides": {token: {"stateDiff": {slot: word(99)}}}})
    assert overridden["output"] == word(99)
    logged = rpc(url, "debug_traceCall", query, "latest")
    assert (logged["failed"], logged["returnValue"]) == (False, word(3))
    assert logged["structLogs"][0]["op"] == "PUSH1"
    error = error_of(url, "debug_traceCall", query, "latest", {"blockOverrides": {}})
    assert error["code"] == -32602 and "blockOverrides" in error["message"]


# ---- refusals -------------------------------------------------------------------------------


def test_what_cannot_be_traced_is_refused_as_geth_refuses_it(node: ThreadNode,
                                                             token: str) -> None:
    url = node.url
    unknown = "0x" + "ab" * 32
    assert error_of(url, "debug_traceTransaction", unknown) == {
        "code": -32000, "message": "transaction not found"}
    receipt = call_to(url, ACCOUNTS[0], token, "Token", "transfer(address,uint256)",
                      raw(ACCOUNTS[8].address), 1)
    tx_hash = receipt["transactionHash"]
    for options in ({"tracer": "4byteTracer"}, {"tracer": "{result: function() {}}"}):
        error = error_of(url, "debug_traceTransaction", tx_hash, options)
        assert error["code"] == -32602 and "is not offered" in error["message"], error
    error = error_of(url, "debug_traceTransaction", tx_hash,
                     {**CALL_TRACER, "tracerConfig": {"onlyTopCall": "yes"}})
    assert error["code"] == -32602 and error["message"].startswith("invalid tracerConfig")
    error = error_of(url, "debug_traceTransaction", tx_hash, {"disableStack": 1})
    assert error["code"] == -32602 and error["message"].startswith("invalid tracing options")
    assert error_of(url, "debug_traceTransaction", tx_hash, [])["code"] == -32602
    assert error_of(url, "debug_traceBlockByNumber", "0x0")["message"] == (
        "genesis is not traceable")
    assert error_of(url, "debug_traceBlockByNumber", "0xffffff")["message"] == (
        f"block #{0xffffff} not found")
    assert error_of(url, "debug_traceBlockByHash", unknown)["message"] == (
        f"block {unknown} not found")


def test_a_pruned_block_is_refused_with_its_message(tmp_path: Path) -> None:
    with running_node(tmp_path / "pruned", slot_ms=1000, dev_mining=DevMining()) as pruned:
        url = pruned.url
        receipt = send(url, ACCOUNTS[0], to=ACCOUNTS[1].address, gas=21_000, value=1)
        rpc(url, "anvil_mine", hex(200))
        error = error_of(url, "debug_traceTransaction", receipt["transactionHash"])
        assert error["code"] == -32000
        assert error["message"].startswith(
            f"the state at block {int(receipt['blockNumber'], 16) - 1} is not kept")


def test_an_aura_node_has_no_tracing(tmp_path: Path) -> None:
    with running_node(tmp_path / "aura", slot_ms=200) as aura:
        for method in ("debug_traceTransaction", "debug_traceBlockByNumber",
                       "debug_traceBlockByHash", "debug_traceCall"):
            assert error_of(aura.url, method)["code"] == -32601


# ---- against anvil --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def anvil() -> Iterator[Anvil]:
    try:
        binary = find_anvil(install=False)
    except AnvilUnavailable as error:
        pytest.skip(str(error))
    with Anvil(binary, "--hardfork", "cancun", "--chain-id", str(DEV_CHAIN_ID)) as running:
        yield running


def test_the_call_and_prestate_tracers_agree_with_anvils(node: ThreadNode,
                                                         anvil: Anvil) -> None:
    """The same signed transactions, from a fresh account funded alike and paying the same
    price per gas (fee cap = tip: the base fee each chain picks does not matter, and anvil does
    not always honour anvil_setNextBlockBaseFeePerGas before an automined block), on both
    chains: every callTracer frame and prestate (both modes) must be
    anvil's, but where anvil is not geth: the top call frame's gas (anvil shows what is left
    after the intrinsic gas, geth and this node the transaction's gas limit), some frames'
    errors (anvil's are revm's names, :data:`ANVIL_ERRORS`) and accounts that were empty before
    the transaction (a contract it creates), which anvil shows in a prestate and geth leaves
    out; and but for the block's fee recipient, each chain's own."""
    ours = node.url
    key = Account.create()
    # Funded alike on both chains (ours by a transfer, anvil by its state edit).
    send(ours, ACCOUNTS[9], to=key.address, gas=21_000, value=10**20)
    anvil.call("anvil_setBalance", key.address, hex(10**20))
    nonce = 0

    def both(**fields: Any) -> tuple[str, str]:
        nonlocal nonce
        # Fee cap = tip: the sender pays 50 gwei a gas whatever each chain's base fee is.
        tx = {"chainId": DEV_CHAIN_ID, "type": 2, "gas": 2_000_000, "maxFeePerGas": 50 * GWEI,
              "maxPriorityFeePerGas": 50 * GWEI, "value": 0, "nonce": nonce, **fields}
        nonce += 1
        raw_tx = "0x" + key.sign_transaction(tx).raw_transaction.hex()
        hashes = []
        for call in (lambda *a: rpc(ours, *a), anvil.call):
            hashes.append(call("eth_sendRawTransaction", raw_tx))
        # anvil automines after it answers: its block can lag on a busy machine
        wait_for(lambda: anvil.call("eth_getTransactionReceipt", hashes[1]),
                 what="anvil's receipt")
        return hashes[0], hashes[1]

    token_tx = both(data=creation_code("Token", ["uint256"], [SUPPLY]))
    probe_tx = both(data=creation_code("Probe"))
    created = [rpc(ours, "eth_getTransactionReceipt", h[0])["contractAddress"]
               for h in (token_tx, probe_tx)]
    assert created == [anvil.call("eth_getTransactionReceipt", h[1])["contractAddress"]
                       for h in (token_tx, probe_tx)]
    token, probe = (to_checksum_address(a) for a in created)
    salt = b"\x05" * 32
    sent = [token_tx, probe_tx]
    sent.append(both(to=token, data=calldata("Token", "transfer(address,uint256)",
                                             raw(ACCOUNTS[1].address), 5)))
    sent.append(both(to=token, data=calldata("Token", "transfer(address,uint256)",
                                             raw(ACCOUNTS[1].address), 2 * SUPPLY)))
    sent.append(both(to=probe, data=calldata(
        "Probe", "rawStaticcall(address,bytes)", raw(probe),
        calldata("Probe", "revertWithReason(string)", "no"))))
    sent.append(both(to=probe, data=calldata("Probe", "create2Child(bytes32)", salt)))
    sent.append(both(to=probe, data=calldata("Probe", "create2Child(bytes32)", salt)))
    sent.append(both(to=probe, value=1000, data=calldata("Probe", "selfDestructNew()")))
    sent.append(both(to=probe, data=calldata("Probe", "setSlot(uint256,uint256)", 3, 9)))
    sent.append(both(to=probe, data=calldata("Probe", "emitMany(uint256)", 2)))
    miners = {
        rpc(ours, "eth_getBlockByNumber", "latest", False)["miner"].lower(),
        anvil.call("eth_getBlockByNumber", "latest", False)["miner"].lower(),
    }
    tracers = (
        {**CALL_TRACER, "tracerConfig": {"withLog": True}}, PRESTATE, DIFF,
    )
    for our_hash, anvil_hash in sent:
        assert our_hash == anvil_hash
        for options in tracers:
            theirs = anvil.call("debug_traceTransaction", anvil_hash, options)
            mine = rpc(ours, "debug_traceTransaction", our_hash, options)
            if "type" in mine:  # a call frame
                assert mine.pop("gas") == hex(2_000_000)
                theirs.pop("gas")
                _geths_errors(theirs)
            assert _comparable(mine, miners) == _comparable(theirs, miners), (our_hash, options)


# Call frame errors anvil (its older revm-inspectors) words as revm names them: geth's words.
ANVIL_ERRORS = {"CreateCollision": "contract address collision"}


def _geths_errors(frame: dict[str, Any]) -> None:
    if "error" in frame:
        frame["error"] = ANVIL_ERRORS.get(frame["error"], frame["error"])
    for call in frame.get("calls", ()):
        _geths_errors(call)


def _comparable(trace: Any, miners: set[str]) -> Any:
    """A prestate (either mode) without the fee recipients' accounts and, before the
    transaction, the empty ones; a call frame as it is."""
    if "type" in trace:
        return trace
    if "pre" in trace and "post" in trace:
        post = {a: state for a, state in trace["post"].items() if a not in miners}
        return {"pre": _comparable(trace["pre"], miners), "post": post}
    return {address: state for address, state in trace.items()
            if address not in miners and (state.get("balance", "0x0"), state.get("nonce"),
                                          state.get("code")) != ("0x0", None, None)}


def test_a_block_after_state_edits_replays_with_them(node: ThreadNode) -> None:
    url = node.url
    fresh = Account.create()
    rpc(url, "anvil_setBalance", fresh.address, hex(10**18))
    rpc(url, "anvil_setNonce", fresh.address, "0x7")
    receiver = Account.create().address
    tx_hash = send(url, fresh, to=receiver, value=1234, gas=21_000)["transactionHash"]
    trace = rpc(url, "debug_traceTransaction", tx_hash, CALL_TRACER)
    assert (trace["from"], trace["to"], trace["value"]) == (
        lower(fresh.address), lower(receiver), hex(1234))
    assert "error" not in trace
    pre = rpc(url, "debug_traceTransaction", tx_hash, PRESTATE)
    assert pre[lower(fresh.address)]["balance"] == hex(10**18)
    assert pre[lower(fresh.address)]["nonce"] == 7
