"""The embedded engine: transfers of all three types, fee accounting, rejections, base fee rule."""

from __future__ import annotations

import pytest

from alys_fast.chain.spec import ETHER, dev_spec
from alys_fast.engine import (
    NOT_SUPPORTED,
    BlockEnv,
    EmbeddedEngine,
    TransactionRejected,
    UnknownParentState,
    next_base_fee,
)
from alys_fast.engine.state import Account, reference_root
from tests.engine.conftest import ADDRS, KEYS, sign

GWEI = 10**9
HALF = GWEI // 2
COINBASE = b"\xcc" * 20
FRESH = b"\xee" * 20


def env(base_fee: int = GWEI, gas_limit: int = 30_000_000) -> BlockEnv:
    return BlockEnv(
        number=1, timestamp=1, fee_recipient=COINBASE, gas_limit=gas_limit, base_fee=base_fee
    )


@pytest.fixture
def engine() -> EmbeddedEngine:
    return EmbeddedEngine.from_spec(dev_spec())


def test_genesis_state(engine: EmbeddedEngine) -> None:
    assert len(engine.state) == 10
    assert engine.state.get(ADDRS[3]) == Account(0, 10_000 * ETHER)
    assert engine.state_root == reference_root(dict(engine.state.items()))


def test_three_types_fees_and_receipts(engine: EmbeddedEngine) -> None:
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
    gas = [21_000, 21_000, 21_000 + 4 + 16]
    prices = [3 * GWEI, 2 * GWEI, 5 * HALF]
    assert [r.gas_used for r in out.receipts] == gas
    assert [r.cumulative_gas_used for r in out.receipts] == [21_000, 42_000, 63_020]
    assert [r.effective_gas_price for r in out.receipts] == prices
    assert all(r.status == 1 and r.logs == () and r.logs_bloom == bytes(256) for r in out.receipts)
    assert [r.tx_hash for r in out.receipts] == [t.hash for t in txs]
    assert out.gas_used == 63_020
    assert out.burned == GWEI * 63_020
    engine.commit(out)
    assert engine.state_root == out.state_root == reference_root(dict(engine.state.items()))
    s = engine.state
    assert s.get(ADDRS[0]) == Account(2, 10_000 * ETHER - 12 - 21_000 * 5 * GWEI)
    assert s.get(FRESH) == Account(0, 12)
    assert s.get(ADDRS[1]) == Account(1, 9_999 * ETHER - 21_020 * 5 * HALF)
    assert s.get(ADDRS[2]) == Account(0, 10_001 * ETHER)
    tips = 21_000 * 2 * GWEI + 21_000 * GWEI + 21_020 * 3 * HALF
    assert s.get(COINBASE) == Account(0, tips)
    assert set(out.changes) == {ADDRS[0], ADDRS[1], ADDRS[2], FRESH, COINBASE}


def test_zero_value_transfer_does_not_create_empty_accounts(engine: EmbeddedEngine) -> None:
    tx = sign(KEYS[0], to=FRESH, value=0, gasPrice=GWEI)  # no tip either
    out = engine.execute_block(engine.state_root, env(), [tx])
    engine.commit(out)
    assert FRESH not in dict(engine.state.items())
    assert COINBASE not in dict(engine.state.items())
    assert engine.state.get(ADDRS[0]).nonce == 1


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: sign(KEYS[0], to=FRESH, nonce=1), "nonce too high"),
        (lambda: sign(KEYS[0], to=FRESH, gasPrice=GWEI - 1), "max fee per gas less than"),
        (lambda: sign(KEYS[0], to=FRESH, value=10_000 * ETHER), "insufficient funds for gas"),
        (lambda: sign(KEYS[0], to=FRESH, gas=31_000_000), "gas limit reached"),
        (lambda: sign(KEYS[0], data=b"\x60\x00", gas=60_000), NOT_SUPPORTED),
    ],
)
def test_import_rejects_with_geth_reason(engine: EmbeddedEngine, make, reason: str) -> None:
    good = sign(KEYS[1], to=FRESH, value=1)
    with pytest.raises(TransactionRejected, match=reason) as info:
        engine.execute_block(engine.state_root, env(), [good, make()])
    assert info.value.index == 1
    assert info.value.reason.startswith(reason)


def test_nonce_too_low_and_exact_balance(engine: EmbeddedEngine) -> None:
    first = sign(KEYS[0], to=FRESH, value=1)
    engine.commit(engine.execute_block(engine.state_root, env(), [first]))
    with pytest.raises(TransactionRejected, match=r"nonce too low: .* tx: 0 state: 1"):
        engine.execute_block(engine.state_root, env(), [first])
    # Balance exactly gas * price + value is enough; one wei more is not.
    balance = engine.state.get(ADDRS[0]).balance
    exact = sign(KEYS[0], to=FRESH, nonce=1, value=balance - 21_000 * GWEI)
    over = sign(KEYS[0], to=FRESH, nonce=1, value=balance - 21_000 * GWEI + 1)
    with pytest.raises(TransactionRejected, match="insufficient funds"):
        engine.execute_block(engine.state_root, env(), [over])
    engine.commit(engine.execute_block(engine.state_root, env(), [exact]))
    assert engine.state.get(ADDRS[0]) == Account(2, 0)


def test_build_mode_skips_and_keeps_going(engine: EmbeddedEngine) -> None:
    txs = [
        sign(KEYS[0], to=FRESH, value=1),
        sign(KEYS[0], to=FRESH, value=1),  # same nonce again
        sign(KEYS[0], to=None, data=b"\x00", gas=60_000, nonce=1),  # creation
        sign(KEYS[0], to=FRESH, value=1, nonce=1),
    ]
    out = engine.execute_block(engine.state_root, env(), txs, skip_invalid=True)
    assert out.transactions == (txs[0], txs[3])
    assert [reason for _, reason in out.skipped] == ["nonce too low", NOT_SUPPORTED]
    engine.commit(out)
    assert engine.state.get(FRESH).balance == 2


def test_unknown_parent_and_stale_commit(engine: EmbeddedEngine) -> None:
    with pytest.raises(UnknownParentState):
        engine.execute_block(b"\x00" * 32, env(), [])
    a = engine.execute_block(engine.state_root, env(), [sign(KEYS[0], to=FRESH, value=1)])
    b = engine.execute_block(engine.state_root, env(), [sign(KEYS[1], to=FRESH, value=1)])
    engine.commit(a)
    with pytest.raises(UnknownParentState):
        engine.commit(b)
    assert engine.state.get(ADDRS[1]).nonce == 0


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
