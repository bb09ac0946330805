"""The revm engine standalone (``RevmEngine.from_alloc``): transfers of all three types and
their fees, geth's rejection reasons, building that skips, commit and stale executions,
contracts (creation, storage, logs, reverts), calls, state overrides on a view, access lists,
geth's traces, block context, and state roots checked against a reference trie computed
without the engine. Also the EIP-1559 base fee rule."""

from __future__ import annotations

import random

import msgspec
import pytest
import rlp
from eth_utils import keccak

from alys_fast.chain.genesis import genesis_alloc
from alys_fast.chain.spec import DEV_CHAIN_ID, ETHER, dev_spec
from alys_fast.engine import (
    EMPTY_ROOT,
    Account,
    AllocAccount,
    BlockEnv,
    EngineError,
    RevmEngine,
    StorageDiff,
    TransactionRejected,
    UnknownParentState,
    next_base_fee,
)
from alys_fast.engine.interface import AccountOverride, CallRequest, CallResult, StateOverrides
from alys_fast.engine.revm import finish, geth_options
from alys_fast.state import Loaded, Miss, storage_root, word
from alys_fast.validation.receipts import bloom_of, combine_blooms, receipts_root
from tests.engine.conftest import ADDRS, KEYS, sign
from tests.engine.contracts import (
    TRANSFER,
    calldata,
    creation_code,
    decoded,
    hex_address,
    mapping_slot,
    runtime_code,
)
from tests.engine.reference import (
    BadProof,
    proven_value,
    reference_accounts_root,
    reference_state_root,
    reference_storage_root,
)

GWEI = 10**9
HALF = GWEI // 2
COINBASE = b"\xcc" * 20
FRESH = b"\xee" * 20
START = Account(0, 10_000 * ETHER)


def env(base_fee: int = GWEI, gas_limit: int = 30_000_000, number: int = 1) -> BlockEnv:
    return BlockEnv(
        number=number, timestamp=number, fee_recipient=COINBASE, gas_limit=gas_limit,
        base_fee=base_fee,
    )


def _engine(alloc: dict | None = None, **kwargs) -> RevmEngine:
    spec = dev_spec()
    return RevmEngine.from_alloc(
        genesis_alloc(spec) if alloc is None else alloc, chain_id=spec.chain_id, **kwargs
    )


@pytest.fixture
def engine() -> RevmEngine:
    return _engine()


def _created_address(sender: bytes, nonce: int) -> bytes:
    return keccak(rlp.encode([sender, nonce]))[12:]


def test_genesis_state(engine: RevmEngine) -> None:
    assert engine.account(ADDRS[3]) == START
    assert engine.account(FRESH) == Account()
    assert engine.state_root == reference_state_root(genesis_alloc(dev_spec()))
    assert _engine({}).state_root == EMPTY_ROOT


def test_three_types_fees_and_receipts(engine: RevmEngine) -> None:
    start = engine.state_root
    txs = [
        sign(KEYS[0], to=FRESH, value=5, gasPrice=3 * GWEI),  # legacy: tip 2 gwei
        sign(KEYS[0], to=FRESH, value=7, nonce=1, gasPrice=2 * GWEI, accessList=[]),  # type 1
        # type 2: max fee 2.5 gwei, tip 2 gwei -> effective min(2.5, 1 + 2) = 2.5 gwei
        sign(KEYS[1], to=ADDRS[2], value=ETHER, maxFeePerGas=HALF * 5,
             maxPriorityFeePerGas=2 * GWEI, data=b"\x00\x01", gas=30_000),
    ]
    assert [t.type for t in txs] == [0, 1, 2]
    out = engine.execute_block(start, env(), txs)
    assert engine.state_root == start  # nothing moves before commit
    assert engine.account(ADDRS[0]) == START
    gas = [21_000, 21_000, 21_000 + 4 + 16]
    prices = [3 * GWEI, 2 * GWEI, 5 * HALF]
    assert [r.gas_used for r in out.receipts] == gas
    assert [r.cumulative_gas_used for r in out.receipts] == [21_000, 42_000, 63_020]
    assert [r.effective_gas_price for r in out.receipts] == prices
    assert [r.tx_type for r in out.receipts] == [0, 1, 2]
    assert all(r.status == 1 and r.logs == () and r.logs_bloom == bytes(256) for r in out.receipts)
    assert all(r.contract_address is None and r.output == b"" for r in out.receipts)
    assert [r.tx_hash for r in out.receipts] == [t.hash for t in txs]
    assert out.transactions == tuple(txs) and out.skipped == ()
    assert out.gas_used == 63_020
    assert out.burned == GWEI * 63_020
    assert out.receipts_root == receipts_root(out.receipts)
    assert out.logs_bloom == bytes(256)
    tips = 21_000 * 2 * GWEI + 21_000 * GWEI + 21_020 * 3 * HALF
    expected = {
        ADDRS[0]: Account(2, 10_000 * ETHER - 12 - 21_000 * 5 * GWEI),
        FRESH: Account(0, 12),
        ADDRS[1]: Account(1, 9_999 * ETHER - 21_020 * 5 * HALF),
        ADDRS[2]: Account(0, 10_001 * ETHER),
        COINBASE: Account(0, tips),
    }
    assert out.changes.accounts == expected
    assert out.changes.previous == {
        a: (None if a in (FRESH, COINBASE) else START) for a in expected
    }
    assert out.changes.storage == () and out.changes.code == ()
    engine.commit(out)
    for address, account in expected.items():
        assert engine.account(address) == account
    model = {a: START for a in ADDRS} | expected
    assert engine.state_root == out.state_root == reference_accounts_root(model)


def test_zero_value_transfer_does_not_create_empty_accounts(engine: RevmEngine) -> None:
    start = engine.state_root
    tx = sign(KEYS[0], to=FRESH, value=0, gasPrice=GWEI)  # no tip either
    out = engine.execute_block(start, env(), [tx])
    assert FRESH not in out.changes.accounts and COINBASE not in out.changes.accounts
    engine.commit(out)
    assert engine.account(FRESH) == Account() and engine.account(COINBASE) == Account()
    assert engine.account(ADDRS[0]) == Account(1, START.balance - 21_000 * GWEI)
    model = {a: START for a in ADDRS} | {ADDRS[0]: engine.account(ADDRS[0])}
    assert engine.state_root == reference_accounts_root(model)


def test_random_transfer_blocks_match_a_model_and_the_reference_root(engine: RevmEngine) -> None:
    """Blocks of random transfers among dev and fresh accounts (zero values, self-sends, tips
    and base fees varying): every account as a plain model predicts it, and the root of the
    model's accounts computed without the engine."""
    rng = random.Random(5)
    fresh = [rng.randbytes(20) for _ in range(20)]
    model = {a: START for a in ADDRS}
    nonces = [0] * len(KEYS)
    base_fee = GWEI
    for number in range(1, 16):
        txs, expected = [], dict(model)
        for _ in range(rng.randrange(0, 12)):
            who = rng.randrange(len(KEYS))
            to = rng.choice([*fresh, *ADDRS])
            value = rng.choice([0, 1, rng.randrange(10**18)])
            tip = rng.choice([0, 1, rng.randrange(3 * GWEI)])
            txs.append(sign(KEYS[who], to=to, value=value, nonce=nonces[who],
                            gasPrice=base_fee + tip))
            nonces[who] += 1
            cost = 21_000 * (base_fee + tip)
            sender = expected[ADDRS[who]]
            expected[ADDRS[who]] = Account(sender.nonce + 1, sender.balance - cost - value)
            receiver = expected.get(to, Account())
            expected[to] = Account(receiver.nonce, receiver.balance + value)
            miner = expected.get(COINBASE, Account())
            expected[COINBASE] = Account(0, miner.balance + 21_000 * tip)
        out = engine.execute_block(engine.state_root, env(base_fee, number=number), txs)
        assert out.gas_used == 21_000 * len(txs) and out.burned == out.gas_used * base_fee
        engine.commit(out)
        model = {a: acct for a, acct in expected.items() if not acct.is_empty()}
        for address in {*fresh, *ADDRS, COINBASE}:
            assert engine.account(address) == model.get(address, Account())
        assert engine.state_root == reference_accounts_root(model)
        base_fee = next_base_fee(base_fee, out.gas_used, 30_000_000) + rng.randrange(GWEI)
    assert len(model) > len(ADDRS) + 5  # fresh accounts were created along the way


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: sign(KEYS[0], to=FRESH, nonce=1), "nonce too high"),
        (lambda: sign(KEYS[1], to=FRESH), "nonce too low"),  # after the block's first
        (lambda: sign(KEYS[0], to=FRESH, gasPrice=GWEI - 1),
         "max fee per gas less than block base fee"),
        (lambda: sign(KEYS[0], to=FRESH, value=10_000 * ETHER),
         "insufficient funds for gas * price + value"),
        (lambda: sign(KEYS[0], to=FRESH, gas=31_000_000), "gas limit reached"),
        (lambda: sign(KEYS[9], to=FRESH), "sender not an eoa"),  # EIP-3607
        (lambda: sign(KEYS[0], to=FRESH, gasPrice=2**128), "field out of range"),  # > u128
    ],
)
def test_import_rejects_with_geth_reason(make, reason: str) -> None:
    alloc = genesis_alloc(dev_spec())
    alloc[ADDRS[9]] = AllocAccount(balance=ETHER, code=b"\x00")
    engine = _engine(alloc)
    good = sign(KEYS[1], to=FRESH, value=1)
    with pytest.raises(TransactionRejected) as info:
        engine.execute_block(engine.state_root, env(), [good, make()])
    assert info.value.index == 1
    assert info.value.reason == reason
    assert str(info.value).startswith(f"transaction 1: {reason}")
    assert engine.account(ADDRS[1]) == START  # nothing applied


def test_rejection_details_name_the_values(engine: RevmEngine) -> None:
    first = sign(KEYS[0], to=FRESH, value=1)
    engine.commit(engine.execute_block(engine.state_root, env(), [first]))
    with pytest.raises(TransactionRejected, match=r"nonce too low: tx 0, state 1"):
        engine.execute_block(engine.state_root, env(), [first])
    balance = engine.account(ADDRS[0]).balance
    over = sign(KEYS[0], to=FRESH, nonce=1, value=balance)
    with pytest.raises(TransactionRejected) as info:
        engine.execute_block(engine.state_root, env(), [over])
    assert info.value.detail == f"have {balance} want {balance + 21_000 * GWEI}"


def test_exact_balance_is_enough(engine: RevmEngine) -> None:
    # Balance exactly gas * price + value is enough; one wei more is not.
    balance = START.balance
    exact = sign(KEYS[0], to=FRESH, value=balance - 21_000 * GWEI)
    over = sign(KEYS[0], to=FRESH, value=balance - 21_000 * GWEI + 1)
    with pytest.raises(TransactionRejected, match="insufficient funds"):
        engine.execute_block(engine.state_root, env(), [over])
    engine.commit(engine.execute_block(engine.state_root, env(), [exact]))
    assert engine.account(ADDRS[0]) == Account(1, 0)
    assert engine.account(FRESH) == Account(0, balance - 21_000 * GWEI)


def test_build_mode_skips_and_keeps_going(engine: RevmEngine) -> None:
    txs = [
        sign(KEYS[0], to=FRESH, value=1),
        sign(KEYS[0], to=FRESH, value=1),  # same nonce again
        sign(KEYS[0], to=None, data=b"\x00", gas=60_000, nonce=1),  # creation: runs now
        sign(KEYS[0], to=FRESH, value=1, nonce=2),
        sign(KEYS[1], to=FRESH, gas=29_950_000),  # more than the block has left
        sign(KEYS[2], to=FRESH, gasPrice=GWEI - 1),
        sign(KEYS[3], to=FRESH, value=1),
        sign(KEYS[4], to=FRESH, gasPrice=2**128),  # wider than the EVM's fees
    ]
    out = engine.execute_block(engine.state_root, env(), txs, skip_invalid=True)
    assert out.transactions == (txs[0], txs[2], txs[3], txs[6])
    position = {id(tx): i for i, tx in enumerate(txs)}
    assert [(position[id(tx)], reason) for tx, reason in out.skipped] == [
        (1, "nonce too low: tx 0, state 1"),
        (4, "gas limit reached: tx gas 29950000, block gas left 29904994"),
        (5, "max fee per gas less than block base fee"),
        (7, "field out of range: a value does not fit the EVM's widths"),
    ]
    # Creation with init code STOP: 53,000 + a zero byte (4) + one initcode word (2).
    creation = out.receipts[1]
    assert creation.gas_used == 53_006 and creation.status == 1
    assert creation.contract_address == _created_address(ADDRS[0], 1)
    assert [r.cumulative_gas_used for r in out.receipts] == [21_000, 74_006, 95_006, 116_006]
    engine.commit(out)
    assert engine.account(FRESH).balance == 3
    assert engine.account(ADDRS[0]).nonce == 3
    # A creation with empty runtime code leaves an account with nonce 1 (EIP-161), no code.
    assert engine.account(creation.contract_address) == Account(1, 0)


def test_unknown_parent_and_stale_commit(engine: RevmEngine) -> None:
    with pytest.raises(UnknownParentState):
        engine.execute_block(b"\x00" * 32, env(), [])
    a = engine.execute_block(engine.state_root, env(), [sign(KEYS[0], to=FRESH, value=1)])
    b = engine.execute_block(engine.state_root, env(), [sign(KEYS[1], to=FRESH, value=1)])
    engine.commit(a)
    with pytest.raises(UnknownParentState):
        engine.commit(b)
    assert engine.account(ADDRS[1]).nonce == 0
    assert engine.state_root == a.state_root
    # The old parent is gone too: only the head can be executed on.
    with pytest.raises(UnknownParentState):
        engine.execute_block(b.parent_state_root, env(), [])


def test_two_executions_on_the_head_either_can_commit(engine: RevmEngine) -> None:
    start = engine.state_root
    a = engine.execute_block(start, env(), [sign(KEYS[0], to=FRESH, value=1)])
    b = engine.execute_block(start, env(), [sign(KEYS[1], to=FRESH, value=2)])
    assert a.state_root != b.state_root
    engine.commit(b)
    assert engine.account(FRESH) == Account(0, 2)
    assert engine.account(ADDRS[0]) == START


# --- contracts ----------------------------------------------------------------------------------

SUPPLY = 10**24


def _deploy_token(engine: RevmEngine):
    tx = sign(KEYS[0], to=None, gas=2_000_000, gasPrice=2 * GWEI,
              data=creation_code("Token", ["uint256"], [SUPPLY]))
    out = engine.execute_block(engine.state_root, env(), [tx])
    engine.commit(out)
    return out


def test_a_contract_creation_stores_code_storage_and_a_log(engine: RevmEngine) -> None:
    out = _deploy_token(engine)
    (receipt,) = out.receipts
    token = _created_address(ADDRS[0], 0)
    assert receipt.status == 1 and receipt.contract_address == token
    (log,) = receipt.logs
    holder = ADDRS[0].rjust(32, b"\0")
    assert log.address == token and log.topics == (TRANSFER, bytes(32), holder)
    assert log.data == SUPPLY.to_bytes(32, "big")
    assert receipt.logs_bloom == bloom_of(receipt.logs) == out.logs_bloom
    assert receipt.logs_bloom != bytes(256)
    code = runtime_code("Token")
    assert out.changes.code == (code,)
    slots = {0: SUPPLY, mapping_slot(ADDRS[0], 1): SUPPLY}
    assert out.changes.storage == (
        StorageDiff(token, True, tuple((k, v, 0) for k, v in sorted(slots.items()))),
    )
    account = Account(1, 0, keccak(code), reference_storage_root(slots))
    assert out.changes.accounts[token] == account and out.changes.previous[token] is None
    assert engine.account(token) == account
    assert finish(engine.code_steps(token), engine.source) == code
    assert finish(engine.storage_steps(token, 0), engine.source) == SUPPLY
    assert finish(engine.storage_steps(token, 12345), engine.source) == 0
    # The deployer paid for all the gas at 2 gwei (1 gwei burned, 1 gwei to the coinbase).
    assert engine.account(ADDRS[0]).balance == START.balance - receipt.gas_used * 2 * GWEI
    assert engine.account(COINBASE).balance == receipt.gas_used * GWEI


def test_contract_calls_change_slots_and_a_revert_pays_but_changes_nothing(
    engine: RevmEngine,
) -> None:
    _deploy_token(engine)
    token = _created_address(ADDRS[0], 0)
    send = "transfer(address,uint256)"
    txs = [
        sign(KEYS[0], to=token, gas=100_000, nonce=1,
             data=calldata("Token", send, hex_address(ADDRS[1]), 5)),
        # ADDRS[2] holds no tokens: InsufficientBalance(0, 50)
        sign(KEYS[2], to=token, gas=100_000, data=calldata("Token", send, hex_address(FRESH), 50)),
    ]
    out = engine.execute_block(engine.state_root, env(number=2), txs)
    ok, reverted = out.receipts
    assert ok.status == 1 and ok.output == (1).to_bytes(32, "big") and len(ok.logs) == 1
    assert reverted.status == 0 and reverted.logs == () and reverted.logs_bloom == bytes(256)
    selector = keccak(b"InsufficientBalance(uint256,uint256)")[:4]
    assert reverted.output == selector + (0).to_bytes(32, "big") + (50).to_bytes(32, "big")
    assert out.logs_bloom == combine_blooms([ok.logs_bloom, reverted.logs_bloom])
    deployer, receiver = mapping_slot(ADDRS[0], 1), mapping_slot(ADDRS[1], 1)
    assert out.changes.storage == (StorageDiff(token, False, tuple(sorted(
        [(deployer, SUPPLY - 5, SUPPLY), (receiver, 5, 0)]))),)
    engine.commit(out)
    # The reverted sender paid its gas and used its nonce.
    assert engine.account(ADDRS[2]) == Account(1, START.balance - reverted.gas_used * GWEI)
    slots = {0: SUPPLY, deployer: SUPPLY - 5, receiver: 5}
    token_account = Account(1, 0, keccak(runtime_code("Token")), reference_storage_root(slots))
    assert out.changes.accounts[token] == engine.account(token) == token_account
    assert storage_root(slots) == reference_storage_root(slots)


def test_a_block_that_only_calls_a_contract_has_no_new_code(engine: RevmEngine) -> None:
    _deploy_token(engine)
    token = _created_address(ADDRS[0], 0)
    tx = sign(KEYS[0], to=token, gas=100_000, nonce=1,
              data=calldata("Token", "balanceOf(address)", hex_address(FRESH)))
    out = engine.execute_block(engine.state_root, env(number=2), [tx])
    assert out.receipts[0].status == 1 and out.changes.storage == ()
    assert out.changes.code == ()  # StateDiff: "new code"


def test_eth_call_runs_on_the_head_and_commits_nothing(engine: RevmEngine) -> None:
    _deploy_token(engine)
    token = _created_address(ADDRS[0], 0)
    root = engine.state_root

    def call(gas: int = 1_000_000, **fields):
        request = CallRequest(sender=ADDRS[0], gas=gas, **fields)
        return finish(engine.call_steps(env(number=2), request), engine.source)

    balance_of = calldata("Token", "balanceOf(address)", hex_address(ADDRS[0]))
    result = call(to=token, data=balance_of)
    assert result.success and result.error is None
    assert decoded(["uint256"], result.output) == (SUPPLY,)
    moved = call(to=token, data=calldata("Token", "transfer(address,uint256)",
                                         hex_address(FRESH), 7))
    assert moved.success and len(moved.logs) == 1 and moved.logs[0].topics[0] == TRANSFER
    assert engine.state_root == root  # a call commits nothing
    assert decoded(["uint256"], call(to=token, data=balance_of).output) == (SUPPLY,)
    # A creation's call returns the runtime code it would deploy.
    created = call(to=None, data=creation_code("Token", ["uint256"], [1]))
    assert created.success and created.output == runtime_code("Token")
    # A revert: geth's reason, with the revert data.
    short = call(to=token, data=calldata("Token", "transferFrom(address,address,uint256)",
                                         hex_address(FRESH), hex_address(ADDRS[0]), 1))
    assert not short.success and short.error == "execution reverted"
    assert decoded(["string"], short.output[4:]) == ("ERC20: insufficient allowance",)
    assert short.output[:4] == keccak(b"Error(string)")[:4]
    # Out of gas.
    starved = call(to=token, data=balance_of, gas=22_000)  # the cold SLOAD alone is 2,100
    assert not starved.success and starved.error == "out of gas"
    assert starved.gas_used == 22_000
    # Paying more than the sender has cannot start.
    with pytest.raises(TransactionRejected, match="insufficient funds"):
        call(to=FRESH, value=START.balance * 2)


class HeadSource:
    """Answers a view's misses from a standalone engine's head, as storage answers a node's."""

    def __init__(self, head: RevmEngine) -> None:
        self.head = head

    def load(self, misses: list[Miss]) -> Loaded:
        loaded = Loaded()
        for kind, key, *slot in misses:
            if kind == "account":
                account = self.head.account(key)
                loaded.accounts.append((key, None if account.is_empty() else account))
            elif kind == "storage":
                value = finish(self.head.storage_steps(key, int.from_bytes(slot[0], "big")),
                               self.head.source)
                loaded.storage.append((key, [(int.from_bytes(slot[0], "big"), value)], False))
            else:
                assert kind == "code", kind
                loaded.code.append(self.head._evm.code(key))
        return loaded


def _overridden_call(head: RevmEngine, overrides: StateOverrides, **fields) -> CallResult:
    """A call on a view of ``head`` with ``overrides``, as the engine actor runs one."""
    view = RevmEngine.view(chain_id=head.chain_id)
    view.override([(a, head.account(a)) for a in overrides], overrides)
    request = CallRequest(gas=1_000_000, **{"sender": ADDRS[0], **fields})
    return finish(view.call_steps(env(number=2), request), HeadSource(head))


def test_state_overrides_apply_on_a_view_and_never_reach_the_head(engine: RevmEngine) -> None:
    _deploy_token(engine)
    token = _created_address(ADDRS[0], 0)
    root = engine.state_root
    balance_of = calldata("Token", "balanceOf(address)", hex_address(FRESH))
    supply = calldata("Token", "totalSupply()")
    # A balance for an empty sender: it can pay what it could not.
    with pytest.raises(TransactionRejected, match="insufficient funds"):
        finish(engine.call_steps(env(number=2), CallRequest(FRESH, ADDRS[1], value=ETHER,
                                                            gas=21_000)), engine.source)
    rich = {FRESH: AccountOverride(balance=2 * ETHER)}
    assert _overridden_call(engine, rich, sender=FRESH, to=ADDRS[1], value=ETHER).success
    # stateDiff: one balance slot changes, the others (and totalSupply) are read through.
    slot = mapping_slot(FRESH, 1)
    diff = {token: AccountOverride(state_diff={slot: 77})}
    assert _overridden_call(engine, diff, to=token, data=balance_of).output == word(77)
    holder = calldata("Token", "balanceOf(address)", hex_address(ADDRS[0]))
    assert _overridden_call(engine, diff, to=token, data=holder).output == word(SUPPLY)
    assert _overridden_call(engine, diff, to=token, data=supply).output == word(SUPPLY)
    # state: the whole storage is replaced; what it does not name is zero.
    whole = {token: AccountOverride(state={slot: 5})}
    assert _overridden_call(engine, whole, to=token, data=balance_of).output == word(5)
    assert _overridden_call(engine, whole, to=token, data=holder).output == word(0)
    assert _overridden_call(engine, whole, to=token, data=supply).output == word(0)
    # code (with state and nonce) on an empty address: the Probe answers from its slots, and
    # its CREATE address follows the nonce given.
    probe = {FRESH: AccountOverride(code=runtime_code("Probe"), nonce=7, state={3: 9})}
    get = calldata("Probe", "getSlot(uint256)", 3)
    assert _overridden_call(engine, probe, to=FRESH, data=get).output == word(9)
    made = _overridden_call(engine, probe, to=FRESH, data=calldata("Probe", "selfDestructNew()"))
    assert made.success and made.output[12:] == _created_address(FRESH, 7)
    # Nothing reached the head: its root, accounts, storage and calls are as before.
    assert engine.state_root == root and engine.account(FRESH) == Account()
    plain = finish(engine.call_steps(env(number=2), CallRequest(ADDRS[0], token, data=balance_of,
                                                                gas=100_000)), engine.source)
    assert plain.output == word(0)
    assert finish(engine.storage_steps(token, slot), engine.source) == 0
    # ... and the next block runs on the state without them.
    tx = sign(KEYS[0], to=token, gas=100_000, nonce=1,
              data=calldata("Token", "transfer(address,uint256)", hex_address(FRESH), 3))
    out = engine.execute_block(root, env(number=2), [tx])
    assert out.changes.storage == (StorageDiff(token, False, tuple(sorted(
        [(mapping_slot(ADDRS[0], 1), SUPPLY - 3, SUPPLY), (slot, 3, 0)]))),)
    with pytest.raises(EngineError, match="never on the head"):
        engine.override([(FRESH, None)], rich)


def test_an_access_list_is_what_geth_gives(engine: RevmEngine) -> None:
    """A token transfer's list is the token with the sender's and receiver's balance slots
    (the sender and the token itself are left out as addresses, as geth leaves them)."""
    _deploy_token(engine)
    token = _created_address(ADDRS[0], 0)
    send = calldata("Token", "transfer(address,uint256)", hex_address(FRESH), 7)
    request = CallRequest(ADDRS[0], token, data=send, gas=1_000_000)
    found, result = finish(engine.access_list_steps(env(number=2), request), engine.source)
    slots = tuple(sorted(word(mapping_slot(a, 1)) for a in (ADDRS[0], FRESH)))
    assert found == ((token, slots),)
    assert result.success and result.output == word(1)
    # gasUsed is the call's with that list: two warm slots instead of two cold ones.
    listed = msgspec.structs.replace(request, access_list=found)
    with_list = finish(engine.call_steps(env(number=2), listed), engine.source)
    without = finish(engine.call_steps(env(number=2), request), engine.source)
    assert result.gas_used == with_list.gas_used == without.gas_used + 2_400 + 2 * 1_900 - 2 * 2_000
    # An entry of the caller's own list stays; a failing call says why.
    extra = msgspec.structs.replace(request, access_list=((FRESH, ()),))
    found, _ = finish(engine.access_list_steps(env(number=2), extra), engine.source)
    assert found == tuple(sorted([(token, slots), (FRESH, ())]))
    short = calldata("Token", "transfer(address,uint256)", hex_address(FRESH), SUPPLY + 1)
    failing = msgspec.structs.replace(request, data=short)
    found, result = finish(engine.access_list_steps(env(number=2), failing), engine.source)
    assert found == ((token, (word(mapping_slot(ADDRS[0], 1)),)),)
    assert not result.success and result.error == "execution reverted"


def test_geth_traces_replay_a_block_up_to_the_traced_transaction(engine: RevmEngine) -> None:
    """As debug_traceTransaction replays a block: the transactions before the traced one run
    untraced (ADDRS[1] passes on tokens the first transfer gave it), and nothing is committed;
    debug_traceCall traces a call."""
    _deploy_token(engine)
    token = _created_address(ADDRS[0], 0)
    send = "transfer(address,uint256)"
    txs = [
        sign(KEYS[0], to=token, gas=100_000, nonce=1,
             data=calldata("Token", send, hex_address(ADDRS[1]), 5)),
        sign(KEYS[1], to=token, gas=100_000, data=calldata("Token", send, hex_address(FRESH), 5)),
    ]
    root, calls = engine.state_root, geth_options({"tracer": "callTracer"})
    (second,) = finish(engine.trace_steps(env(number=2), txs, 1, calls), engine.source)
    assert (second["from"], second["to"], second["output"]) == (
        hex_address(ADDRS[1]), hex_address(token), "0x" + word(1).hex())
    assert finish(engine.trace_steps(env(number=2), txs, 0, calls), engine.source)[1] == second
    (alone,) = finish(engine.trace_steps(env(number=2), txs[1:], 0, calls), engine.source)
    assert alone["error"] == "execution reverted"
    assert engine.state_root == root
    balance = calldata("Token", "balanceOf(address)", hex_address(ADDRS[0]))
    request = CallRequest(ADDRS[0], token, data=balance, gas=100_000)
    trace = finish(engine.trace_call_steps(env(number=2), request, geth_options(None)),
                   engine.source)
    assert (trace["failed"], trace["returnValue"]) == (False, "0x" + word(SUPPLY).hex())
    assert trace["structLogs"][0]["op"] == "PUSH1"
    with pytest.raises(ValueError, match="not offered"):
        geth_options({"tracer": "4byteTracer"})


def test_proofs_lead_from_the_state_root_to_accounts_and_slots(engine: RevmEngine) -> None:
    _deploy_token(engine)
    token = _created_address(ADDRS[0], 0)
    holder = mapping_slot(ADDRS[0], 1)
    for address in (token, ADDRS[0], FRESH):
        account = engine.account(address)
        nodes, storage = finish(engine.proof_steps(address, [0, holder, 77]), engine.source)
        leaf = rlp.encode([account.nonce, account.balance, account.storage_root,
                           account.code_hash])
        absent = address == FRESH
        assert proven_value(engine.state_root, address, nodes) == (b"" if absent else leaf)
        expected = {0: SUPPLY, holder: SUPPLY, 77: 0} if address == token else {}
        for slot, value, proof in storage:
            assert value == expected.get(slot, 0)
            stored = proven_value(account.storage_root, slot.to_bytes(32, "big"), proof)
            assert stored == (rlp.encode(value) if value else b"")
    with pytest.raises(BadProof):
        proven_value(engine.state_root, token, [])


def test_block_context_and_block_hashes() -> None:
    asked: list[int] = []

    def block_hash(number: int) -> bytes:
        asked.append(number)
        return keccak(b"block %d" % number)

    probe = b"\x9e" * 20
    alloc = {ADDRS[0]: AllocAccount(balance=ETHER), probe: AllocAccount(code=runtime_code("Probe"))}
    engine = _engine(alloc, block_hash=block_hash)
    block = BlockEnv(number=7, timestamp=1234, fee_recipient=COINBASE, gas_limit=25_000_000,
                     base_fee=3, prev_randao=b"\x05" * 32)
    request = CallRequest(sender=ADDRS[0], to=probe, data=calldata("Probe", "blockInfo()"),
                          gas=100_000)
    result = finish(engine.call_steps(block, request), engine.source)
    assert result.success
    types = ["uint256", "uint256", "address", "uint256", "uint256", "uint256", "uint256",
             "bytes32"]
    assert decoded(types, result.output) == (
        7, 1234, hex_address(COINBASE), 25_000_000, 3, DEV_CHAIN_ID,
        int.from_bytes(b"\x05" * 32, "big"), keccak(b"block 6"),
    )
    assert asked == [6]


def test_a_standalone_engine_without_block_hashes_says_so() -> None:
    probe = b"\x9e" * 20
    engine = _engine({ADDRS[0]: AllocAccount(balance=ETHER),
                      probe: AllocAccount(code=runtime_code("Probe"))})
    request = CallRequest(sender=ADDRS[0], to=probe, data=calldata("Probe", "blockInfo()"),
                          gas=100_000)
    with pytest.raises(EngineError, match="block hash 0 is unknown"):
        finish(engine.call_steps(env(), request), engine.source)


def test_storage_roots() -> None:
    assert storage_root({}) == EMPTY_ROOT == reference_storage_root({})
    assert storage_root({1: 0}) == EMPTY_ROOT  # zero is absent
    slots = {0: 1, 1: 2**255, 2**256 - 1: 7}
    assert storage_root(slots) == reference_storage_root(slots)
    assert storage_root({**slots, 5: 0}) == storage_root(slots)
    assert storage_root({**slots, 0: 2}) != storage_root(slots)


def test_the_state_root_depends_on_every_field_and_not_on_order() -> None:
    a, b = b"\x01" * 20, b"\x02" * 20
    base = _engine({a: AllocAccount(1, 5), b: AllocAccount(7)}).state_root
    assert base == reference_state_root({a: AllocAccount(1, 5), b: AllocAccount(7)})
    assert _engine({b: AllocAccount(7), a: AllocAccount(1, 5)}).state_root == base
    for other in (
        {a: AllocAccount(1, 6), b: AllocAccount(7)},  # nonce
        {a: AllocAccount(2, 5), b: AllocAccount(7)},  # balance
        {a: AllocAccount(1, 5, b"\x00"), b: AllocAccount(7)},  # code
        {a: AllocAccount(1, 5, storage={1: 1}), b: AllocAccount(7)},  # storage
        {a: AllocAccount(1, 5)},
    ):
        root = _engine(other).state_root
        assert root != base and root == reference_state_root(other)


# --- the EIP-1559 base fee --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("used", "expected"),
    [
        (15_000_000, 1_000_000_000),  # at target: unchanged
        (30_000_000, 1_125_000_000),  # full: +12.5%
        (0, 875_000_000),  # empty: -12.5%
        (22_500_000, 1_062_500_000),
        (7_500_000, 937_500_000),
    ],
)
def test_next_base_fee(used: int, expected: int) -> None:
    assert next_base_fee(GWEI, used, 30_000_000) == expected


def test_base_fee_rises_by_at_least_one_wei() -> None:
    assert next_base_fee(7, 15_000_001, 30_000_000) == 8
    assert next_base_fee(1, 0, 30_000_000) == 1  # 1 - 1*15M/15M//8 = 1 - 0
