"""Differential tests of the revm engine against anvil (foundry's dev node), block by block.

The same signed raw transactions go to anvil (``eth_sendRawTransaction``, then one
``evm_mine``) and to a fresh :class:`~alys_fast.engine.RevmEngine` holding anvil's genesis,
in the same grouping; each block's state root, receipts root, logs bloom and gas used, and
each receipt's status, gas used, cumulative gas used, effective gas price, logs, bloom,
contract address and return data (anvil's ``callTracer`` output) must agree. See
``driver.py`` for how the environment is taken from anvil's headers and for the one known
divergence of anvil from Ethereum (empty accounts and zero slots in its state root), which
the comparison corrects for only after reproducing anvil's own root from its state dump.

Anvil is found in the cache of ``tools/install_anvil.sh``, on PATH or at ``$ALYS_ANVIL``;
if it is missing the install script runs once, and the tests skip if that fails.
"""

from __future__ import annotations

import gzip
import json

import msgspec
import pytest
from eth_abi import decode
from eth_utils import keccak, to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alys_fast.chain.spec import DEV_CHAIN_ID, ETHER
from alys_fast.engine import RevmEngine, next_base_fee
from alys_fast.validation.trie import EMPTY_TRIE_ROOT
from tests.differential.actions import (
    ANSWER_INIT,
    EF_INIT,
    FRESH,
    INVALID_INIT,
    PRECOMPILES,
    REVERTING_INIT,
    Actions,
    precompile_specs,
)
from tests.differential.anvil import Anvil, AnvilUnavailable, find_anvil
from tests.differential.driver import (
    ADDRS,
    BEACON_ROOTS,
    COINBASE,
    CREATE2_DEPLOYER,
    CREATE2_DEPLOYER_CODE,
    GWEI,
    HISTORY_STORAGE,
    Differential,
    DifferentialMismatch,
    anvil_args,
    anvil_genesis_alloc,
    create2_address,
    create_address,
    creation_code,
    runtime_code,
)

CHAIN_ID = DEV_CHAIN_ID
MAX_UINT = 2**256 - 1


@pytest.fixture(scope="module")
def anvil():
    try:
        binary = find_anvil()
    except AnvilUnavailable as error:
        pytest.skip(str(error))
    node = Anvil(binary, *anvil_args(CHAIN_ID)).start()
    try:
        node.snapshot_genesis()
        yield node
    finally:
        node.stop()


def fresh(anvil: Anvil) -> Differential:
    """Anvil back at its genesis and a new engine holding the same state."""
    anvil.reset_to_genesis()
    return Differential(anvil, CHAIN_ID)


@pytest.fixture
def diff(anvil):
    """A fresh differential run; whatever differed and was not yet reported fails the test
    at teardown (each test also ends with ``diff.assert_agreed()``)."""
    run = fresh(anvil)
    yield run
    run.assert_agreed()


def statuses(outcome) -> list[int]:
    return [int(r["status"], 16) for r in outcome.anvil_receipts]


def probe_and_token(diff: Differential) -> Actions:
    """A first block deploying the Token (by account 0) and the Probe (by account 1)."""
    act = Actions(diff)
    outcome = diff.block([act.deploy_token(0), act.deploy_probe(1)])
    assert statuses(outcome) == [1, 1]
    return act


# ---- genesis ------------------------------------------------------------------------------


def test_genesis_is_the_dev_accounts_and_the_create2_deployer(anvil, diff):
    """Anvil's genesis (with ``anvil_args``): the 10 dev accounts with 10,000 ether each and
    the CREATE2 deployer, nothing else; our engine's state root for that alloc is the root
    anvil reports for an empty block on it (its block 0 header says the empty trie root)."""
    dump = json.loads(gzip.decompress(bytes.fromhex(anvil.call("anvil_dumpState")[2:])))
    accounts = {bytes.fromhex(a[2:]): v for a, v in dump["accounts"].items()}
    alloc = anvil_genesis_alloc()
    assert set(accounts) == set(alloc)
    for address, ours in alloc.items():
        theirs = accounts[address]
        assert (theirs["nonce"], int(theirs["balance"], 16), bytes.fromhex(theirs["code"][2:]),
                theirs["storage"]) == (ours.nonce, ours.balance, ours.code, {})
    assert set(ADDRS) | {CREATE2_DEPLOYER} == set(alloc)
    assert anvil.call("eth_getCode", to_checksum_address(CREATE2_DEPLOYER), "0x0") == (
        "0x" + CREATE2_DEPLOYER_CODE.hex())
    # Cancun's beacon-roots contract (EIP-4788) and Prague's history contract are absent.
    for system in (BEACON_ROOTS, HISTORY_STORAGE):
        assert anvil.call("eth_getCode", to_checksum_address(system), "0x0") == "0x"
    genesis = anvil.call("eth_getBlockByNumber", "0x0", False)
    assert genesis["stateRoot"] == "0x" + EMPTY_TRIE_ROOT.hex()  # anvil does not fill it in
    assert (int(genesis["gasLimit"], 16), int(genesis["baseFeePerGas"], 16)) == (30_000_000, GWEI)
    root = RevmEngine.from_alloc(alloc, fork="cancun", chain_id=CHAIN_ID).state_root
    assert diff.engine.state_root == root
    outcome = diff.block([])
    assert outcome.header["stateRoot"] == "0x" + root.hex()
    assert outcome.header["miner"] == "0x" + COINBASE.hex()
    diff.assert_agreed()


def test_the_harness_notices_a_wrong_environment(diff):
    """The comparison is live: our engine run with another coinbase (so the tip lands
    elsewhere) must differ in the state root."""
    act = Actions(diff)
    with pytest.raises(DifferentialMismatch, match="stateRoot"):
        diff.block([act.transfer(0, ADDRS[1])], tamper=lambda env: msgspec.structs.replace(
            env, fee_recipient=bytes(19) + b"\x77"))


# ---- transfers ------------------------------------------------------------------------------


def test_transfers_of_every_type_from_several_senders(diff):
    act = Actions(diff)
    diff.block([
        act.transfer(0, ADDRS[1], ETHER, kind=0),
        act.transfer(1, ADDRS[2], 12345, kind=1),
        act.transfer(2, ADDRS[3], 7, kind=2, tip=3 * GWEI),
        act.transfer(3, ADDRS[4], 1, kind="legacy-unprotected"),
        act.transfer(0, ADDRS[0], 5, kind=2),  # to itself
        act.transfer(0, FRESH, 10**18, kind=0),  # a new account
        act.transfer(4, COINBASE, 3 * ETHER, kind=2),  # to the block's coinbase
        act.transfer(5, PRECOMPILES[3], 100, kind=1),  # value to the identity precompile
        act.transfer(6, ADDRS[7], 0, kind=1, gas=40_000,
                     access_list=[(ADDRS[7], [0, 1]), (FRESH, [])]),
        act.transfer(6, ADDRS[8], 2, kind=2, max_fee=GWEI, tip=GWEI),  # fee cap == base fee
    ])
    diff.block([act.transfer(i, ADDRS[(i + 1) % 10], 10**9 * i) for i in range(10)], dt=1)
    diff.block([act.transfer(1, FRESH, 1, kind=0), act.transfer(1, FRESH, 2, kind=1),
                act.transfer(1, FRESH, 3, kind=2)], dt=1000)
    diff.assert_agreed()


def test_zero_value_transfer_to_a_new_account(diff):
    """EIP-161: the touched empty account does not come to exist. Anvil keeps it as an empty
    leaf of its state root; the comparison (see AnvilState) shows ours is Ethereum's root of
    anvil's state, and the deviation is recorded."""
    act = Actions(diff)
    outcome = diff.block([act.transfer(0, FRESH, 0, kind=2)])
    assert any("empty account" in note for note in outcome.anvil_deviations)
    assert diff.engine.account(FRESH).is_empty()
    diff.block([act.transfer(1, FRESH, 0, kind=0), act.transfer(2, ADDRS[3], 1)])
    diff.assert_agreed()


# ---- the ERC-20 -------------------------------------------------------------------------


def test_erc20_transfers_approvals_and_their_reverts(diff):
    act = probe_and_token(diff)
    token = "transfer(address,uint256)"
    outcome = diff.block([
        act.token_call(0, token, ADDRS[1], 1000 * ETHER, kind=0),
        act.token_call(0, token, ADDRS[2], 5 * ETHER, kind=1),
        act.token_call(1, token, ADDRS[3], 1 * ETHER, kind=2),
        act.token_call(4, token, ADDRS[3], 1),  # no balance: InsufficientBalance
        act.token_call(1, "approve(address,uint256)", ADDRS[5], 10 * ETHER),
        act.token_call(2, "approve(address,uint256)", ADDRS[5], MAX_UINT, kind=0),
    ])
    assert statuses(outcome) == [1, 1, 1, 0, 1, 1]
    from_ = "transferFrom(address,address,uint256)"
    outcome = diff.block([
        act.token_call(5, from_, ADDRS[1], ADDRS[6], 4 * ETHER),
        act.token_call(5, from_, ADDRS[1], ADDRS[6], 7 * ETHER),  # allowance short: reason
        act.token_call(5, from_, ADDRS[2], ADDRS[7], 5 * ETHER, kind=1),  # max allowance
        act.token_call(5, from_, ADDRS[2], ADDRS[7], 1, kind=2),  # balance now 0: custom
        act.token_call(6, token, ADDRS[8], 4 * ETHER),  # all of it: the slot goes to zero
        act.token_call(1, "approve(address,uint256)", ADDRS[5], 0),  # allowance cleared
        act.token_call(9, token, ADDRS[9], 0),  # zero to itself
    ])
    assert statuses(outcome) == [1, 0, 1, 0, 1, 1, 1]
    diff.assert_agreed()


# ---- reverts, out of gas, failed creations ---------------------------------------------


def test_reverts_out_of_gas_and_failed_creations(diff):
    act = probe_and_token(diff)
    outcome = diff.block([
        act.probe_call(2, "revertWithReason(string)", "no luck here"),
        act.probe_call(2, "revertWithReason(string)", "x" * 100, kind=0),
        act.probe_call(3, "revertWithCustom(uint256)", 0xBEEF, kind=1),
        act.probe_call(3, "panicDivZero(uint256)", 0),
        act.probe_call(3, "panicDivZero(uint256)", 7),
        act.probe_call(4, "gasLeftBurn(uint256)", 1000, gas=30_000),  # out of gas
        act.probe_call(4, "emitMany(uint256)", 100, gas=60_000),  # out of gas
        act.probe_call(4, "gasLeftBurn(uint256)", 20, gas=100_000),
        act.transfer(5, act.probe, 1, gas=21_000),  # no receive(): reverts
        act.wallet.sign(5, act.probe, data=b"\x12\x34\x56\x78", gas=50_000),  # no such function
    ])
    assert statuses(outcome) == [0, 0, 0, 0, 1, 0, 0, 1, 0, 0]
    # Creations failing in each way; anvil (like geth) names the address a failed creation
    # would have had as the receipt's contractAddress.
    outcome = diff.block([
        act.create(6, REVERTING_INIT),
        act.create(6, EF_INIT, kind=0),
        act.create(6, INVALID_INIT, kind=1),
        act.create(7, ANSWER_INIT, value=5),
        act.create(7, ANSWER_INIT, gas=54_000),  # out of gas at the code deposit
    ])
    assert statuses(outcome) == [0, 0, 0, 1, 0]
    diff.assert_agreed()


def test_code_deposit_out_of_gas(diff):
    """A creation with one gas less than it needs fails at the code deposit (200 gas a byte),
    spending all its gas; with exactly what it needs it succeeds."""
    act = Actions(diff)
    outcome = diff.block([act.deploy_token(0)])
    needed = int(outcome.anvil_receipts[0]["gasUsed"], 16)
    assert needed > 200 * len(runtime_code("Token"))
    outcome = diff.block([act.deploy_token(0, gas=needed - 1), act.deploy_token(0, gas=needed),
                          act.deploy_token(1, gas=needed - 200 * len(runtime_code("Token")))])
    assert statuses(outcome) == [0, 1, 0]
    diff.assert_agreed()


# ---- CREATE2, self-destruct, transient storage --------------------------------------------


def test_create2_and_selfdestruct(diff):
    act = probe_and_token(diff)
    salt_a, salt_b = keccak(b"a"), bytes(31) + b"\x01"
    outcome = diff.block([
        act.create2_child(2, salt_a),
        act.create2_child(3, salt_b, kind=0),
        act.create2_child(2, salt_a),  # the same salt again: collision, reverts
        act.probe_call(4, "selfDestructNew()", value=3 * ETHER),  # created and destroyed
        act.probe_call(4, "selfDestructNew()", value=0, kind=1),
    ])
    assert statuses(outcome) == [1, 1, 0, 1, 1]
    child_a, child_b = act.children[salt_a], act.children[salt_b]
    assert outcome.anvil_receipts[0]["logs"][0]["topics"][1] == "0x" + bytes(12).hex() + (
        child_a.hex())
    outcome = diff.block([
        act.transfer(5, child_a, 2 * ETHER, gas=50_000),  # Child has receive()
        act.child_call(5, child_a, "ping()"),
        act.child_call(6, child_a, "kill(address)", ADDRS[9]),  # existing: only the balance
        act.child_call(6, child_b, "kill(address)", child_b, kind=0),  # to itself
        act.child_call(7, child_a, "ping()"),  # the code is still there (EIP-6780)
        act.transfer(7, child_a, 1, gas=50_000),
    ])
    assert statuses(outcome) == [1, 1, 1, 1, 1, 1]
    raw, created = act.deployer_create2(8, keccak(b"salt"))
    raw_again, _ = act.deployer_create2(8, keccak(b"salt"))
    outcome = diff.block([
        raw,
        act.wallet.sign(9, created, data=b"", gas=50_000),  # answers 42
        raw_again,  # the deployer reverts on the collision
        act.create2_child(2, salt_a),  # still a collision: the killed child kept its code
        act.child_call(3, child_a, "kill(address)", child_a),
    ])
    assert statuses(outcome) == [1, 1, 0, 0, 1]
    assert diff.engine.account(created).code_hash == keccak(bytes.fromhex("602a60005260206000f3"))
    diff.assert_agreed()


def test_transient_storage(diff):
    act = probe_and_token(diff)
    outcome = diff.block([
        act.probe_call(2, "transientRoundTrip(uint256)", 77),
        act.probe_call(2, "transientLoad(uint256)", 0),  # a new transaction: 0
        act.probe_call(3, "transientRoundTrip(uint256)", MAX_UINT, kind=0),
        act.probe_call(3, "transientLoad(uint256)", 5, kind=1),
    ])
    outputs = [r.output for r in outcome.execution.receipts]
    assert [int.from_bytes(o, "big") for o in outputs] == [77, 0, MAX_UINT, 0]
    diff.assert_agreed()


# ---- precompiles ----------------------------------------------------------------------------


def test_every_precompile_through_the_probe(diff):
    act = probe_and_token(diff)
    outcome = diff.block(act.precompile_calls(2))
    assert statuses(outcome) == [1] * len(precompile_specs())
    results = [r.output for r in outcome.execution.receipts]
    ok = [decode(["bool", "bytes"], out)[0] for out in results[2:]]
    # valid, invalid... as listed in precompile_specs (ecrecover returns an address)
    assert ok == [True, True, True, True, True, True, True, False, True, False, True, True,
                  False, True, True, False, True, False, False, True, True, False]
    assert decode(["bool", "bytes"], results[13])[1] == (1).to_bytes(32, "big")  # pairing
    assert decode(["address"], results[0])[0].lower() == "0x" + ADDRS[0].hex()
    outcome = diff.block(act.direct_precompile_calls(3))
    assert statuses(outcome) == [1, 1, 1, 1, 0, 1, 0]
    diff.assert_agreed()


# ---- block context, BLOCKHASH, events, storage, fees ----------------------------------------


def test_block_info_and_blockhash_over_several_blocks(diff):
    """blockInfo() returns number, timestamp, coinbase, gas limit, base fee, chain id,
    PREVRANDAO and BLOCKHASH(number - 1): compared through the return data."""
    act = probe_and_token(diff)
    for dt in (1, 12, 3600):
        outcome = diff.block([act.probe_call(i, "blockInfo()", kind=k)
                              for i, k in ((2, 0), (3, 1), (4, 2))]
                             + [act.probe_call(5, "blobInfo(uint256)", 0)], dt=dt)
        number, timestamp, coinbase, _, basefee, chain_id, randao, prev = decode(
            ["uint256", "uint256", "address", "uint256", "uint256", "uint256", "uint256",
             "bytes32"], outcome.execution.receipts[0].output)
        header = outcome.header
        assert (number, timestamp, chain_id) == (outcome.number, diff.timestamp, CHAIN_ID)
        assert coinbase.lower() == header["miner"] and basefee == int(header["baseFeePerGas"], 16)
        assert randao == int(header["mixHash"], 16) and "0x" + prev.hex() == header["parentHash"]
    diff.assert_agreed()


def test_events_and_storage_from_several_senders(diff):
    act = probe_and_token(diff)
    diff.block([
        act.probe_call(0, "emitMany(uint256)", 3),
        act.probe_call(1, "emitMany(uint256)", 0, kind=0),
        act.probe_call(2, "emitMany(uint256)", 25, kind=1),
        act.probe_call(3, "setSlot(uint256,uint256)", 1, 11),
        act.probe_call(4, "setSlot(uint256,uint256)", 2, MAX_UINT, kind=0),
        act.probe_call(3, "setSlot(uint256,uint256)", 1, 12),
        act.probe_call(5, "getSlot(uint256)", 1, kind=1,
                       access_list=[(act.probe, [1, 2]), (ADDRS[9], [])]),
    ])
    # Slots set back to zero (refunds); anvil keeps them as zero leaves (see AnvilState).
    outcome = diff.block([
        act.probe_call(6, "setSlot(uint256,uint256)", 1, 0),
        act.probe_call(6, "setSlot(uint256,uint256)", 2, 0, kind=0),
        act.probe_call(7, "setSlot(uint256,uint256)", 3, 0),  # zero to zero
        act.probe_call(7, "setSlot(uint256,uint256)", 3, 4),
        act.probe_call(7, "setSlot(uint256,uint256)", 3, 0),  # set and cleared in one block
    ])
    assert any("zero slot" in note for note in outcome.anvil_deviations)
    diff.assert_agreed()


def test_base_fee_moves_with_full_blocks(diff):
    """Three ~6M-gas transactions fill the block past its target, so the next base fee
    rises; then transactions paying exactly that base fee (no tip) and base fee + 1 wei."""
    act = probe_and_token(diff)
    outcome = diff.block([act.probe_call(i, "emitMany(uint256)", 2500, gas=7_000_000)
                          for i in (2, 3, 4)])
    used = int(outcome.header["gasUsed"], 16)
    assert used > 15_000_000
    base = next_base_fee(int(outcome.header["baseFeePerGas"], 16), used, 30_000_000)
    assert base > int(outcome.header["baseFeePerGas"], 16)
    outcome = diff.block([act.transfer(5, ADDRS[6], 1, max_fee=base, tip=base),  # tip 0
                          act.transfer(6, ADDRS[7], 1, kind=0, gas_price=base),
                          act.probe_call(7, "blockInfo()", max_fee=base + 1, tip=base + 1)])
    assert int(outcome.header["baseFeePerGas"], 16) == base
    diff.block([act.transfer(8, ADDRS[9], 1)], dt=2)
    diff.assert_agreed()


# ---- random mixes ---------------------------------------------------------------------------

SENDERS = st.integers(0, 9)
KINDS = st.sampled_from([0, 1, 2, "legacy-unprotected"])
SALTS = st.sampled_from([bytes(32), keccak(b"1"), keccak(b"2")])
AMOUNTS = st.sampled_from([0, 1, 10**18, 10**24, MAX_UINT])
OPERATIONS = st.one_of(
    st.tuples(st.just("transfer"), SENDERS, KINDS, st.integers(0, 12),
              st.sampled_from([0, 1, 10**18])),
    st.tuples(st.just("token"), SENDERS, KINDS, st.integers(0, 9), AMOUNTS),
    st.tuples(st.just("approve"), SENDERS, KINDS, st.integers(0, 9), AMOUNTS),
    st.tuples(st.just("transferFrom"), SENDERS, KINDS, st.integers(0, 9), st.integers(0, 9),
              AMOUNTS),
    st.tuples(st.just("revert"), SENDERS, KINDS, st.sampled_from(["reason", "custom", "panic"])),
    st.tuples(st.just("oog"), SENDERS, KINDS, st.sampled_from(["burn", "emit", "create"])),
    st.tuples(st.just("create2"), SENDERS, KINDS, SALTS),
    st.tuples(st.just("kill"), SENDERS, KINDS, SALTS, st.integers(0, 9)),
    st.tuples(st.just("selfDestructNew"), SENDERS, KINDS, st.sampled_from([0, 1, ETHER])),
    st.tuples(st.just("transient"), SENDERS, KINDS, st.integers(0, MAX_UINT)),
    st.tuples(st.just("precompile"), SENDERS, KINDS, st.integers(0, len(precompile_specs()) - 1)),
    st.tuples(st.just("blockInfo"), SENDERS, KINDS),
    st.tuples(st.just("emitMany"), SENDERS, KINDS, st.integers(0, 6)),
    st.tuples(st.just("setSlot"), SENDERS, KINDS, st.integers(0, 3),
              st.sampled_from([0, 1, MAX_UINT])),
    st.tuples(st.just("create"), SENDERS, KINDS,
              st.sampled_from(["answer", "revert", "ef", "invalid"])),
    st.tuples(st.just("deployer"), SENDERS, KINDS, SALTS),
)
BLOCKS = st.lists(
    st.tuples(st.integers(1, 100), st.lists(OPERATIONS, max_size=7)), min_size=1, max_size=4
)


def build(act: Actions, op: tuple) -> bytes:
    """The signed transaction for one generated operation."""
    name, sender, kind, *args = op
    recipients = [*ADDRS, FRESH, COINBASE, PRECOMPILES[1]]
    if name == "transfer":
        return act.transfer(sender, recipients[args[0]], args[1], kind=kind)
    if name == "token":
        return act.token_call(sender, "transfer(address,uint256)", ADDRS[args[0]], args[1],
                              kind=kind)
    if name == "approve":
        return act.token_call(sender, "approve(address,uint256)", ADDRS[args[0]], args[1],
                              kind=kind)
    if name == "transferFrom":
        return act.token_call(sender, "transferFrom(address,address,uint256)", ADDRS[args[0]],
                              ADDRS[args[1]], args[2], kind=kind)
    if name == "revert":
        call = {"reason": ("revertWithReason(string)", "random"),
                "custom": ("revertWithCustom(uint256)", 9), "panic": ("panicDivZero(uint256)", 0)}
        return act.probe_call(sender, *call[args[0]], kind=kind)
    if name == "oog":
        if args[0] == "create":
            return act.create(sender, ANSWER_INIT, gas=53_500, kind=kind)
        call = {"burn": ("gasLeftBurn(uint256)", 1000), "emit": ("emitMany(uint256)", 100)}
        return act.probe_call(sender, *call[args[0]], gas=40_000, kind=kind)
    if name == "create2":
        return act.create2_child(sender, args[0], kind=kind)
    if name == "kill":
        assert act.probe is not None
        child = create2_address(act.probe, args[0], creation_code("Child"))
        return act.child_call(sender, child, "kill(address)", ADDRS[args[1]], kind=kind)
    if name == "selfDestructNew":
        return act.probe_call(sender, "selfDestructNew()", value=args[0], kind=kind)
    if name == "transient":
        return act.probe_call(sender, "transientRoundTrip(uint256)", args[0], kind=kind)
    if name == "precompile":
        signature, call_args = precompile_specs()[args[0]]
        return act.probe_call(sender, signature, *call_args, kind=kind)
    if name == "blockInfo":
        return act.probe_call(sender, "blockInfo()", kind=kind)
    if name == "emitMany":
        return act.probe_call(sender, "emitMany(uint256)", args[0], kind=kind)
    if name == "setSlot":
        return act.probe_call(sender, "setSlot(uint256,uint256)", args[0], args[1], kind=kind)
    if name == "create":
        init = {"answer": ANSWER_INIT, "revert": REVERTING_INIT, "ef": EF_INIT,
                "invalid": INVALID_INIT}[args[0]]
        return act.create(sender, init, kind=kind)
    if name == "deployer":
        raw, _ = act.deployer_create2(sender, args[0])
        return raw
    raise AssertionError(f"unknown operation {name}")


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(blocks=BLOCKS)
def test_random_mixes(anvil, blocks):
    """Random blocks of the operations above, after a block deploying the Token and the
    Probe and handing out tokens; each example on a fresh anvil state and a fresh engine."""
    diff = fresh(anvil)
    act = probe_and_token(diff)
    diff.block([act.token_call(0, "transfer(address,uint256)", ADDRS[i], 1000 * ETHER)
                for i in range(1, 10)])
    for dt, ops in blocks:
        diff.block([build(act, op) for op in ops], dt=dt)
    diff.assert_agreed()


def test_contract_addresses_are_those_of_create(diff):
    """The harness's own bookkeeping: the Token and the Probe are where CREATE puts them."""
    act = probe_and_token(diff)
    assert act.token == create_address(ADDRS[0], 0)
    assert act.probe == create_address(ADDRS[1], 0)
    assert diff.engine.account(act.probe).code_hash == keccak(runtime_code("Probe"))
    assert diff.engine.account(act.token).code_hash == keccak(runtime_code("Token"))
    diff.assert_agreed()
