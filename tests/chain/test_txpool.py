"""The transaction pool with real transactions signed by eth-account."""

from __future__ import annotations

import contextlib
from functools import cache

import pytest
import rlp
from eth_account import Account as EthAccount
from eth_utils import to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alys_fast.chain.spec import DEV_ACCOUNTS, DEV_CHAIN_ID
from alys_fast.chain.txpool import (
    ACCOUNT_LIMIT,
    ALREADY_KNOWN,
    GAS_LIMIT,
    INSUFFICIENT_FUNDS,
    INTRINSIC_GAS,
    INVALID_CHAIN_ID,
    INVALID_SENDER,
    NONCE_MAX,
    NONCE_TOO_LOW,
    POOL_FULL,
    REPLACE_UNDERPRICED,
    RPC_TX_REJECTED,
    TIP_ABOVE_FEE_CAP,
    TYPE_NOT_SUPPORTED,
    UNPROTECTED,
    TxPool,
    TxPoolError,
    TxPoolLimits,
    state_reader,
)
from alys_fast.engine import AllocAccount, BlockEnv, RevmEngine
from alys_fast.validation import recover_transaction

GWEI = 10**9
ETHER = 10**18
BLOCK_GAS = 30_000_000
KEYS = [key for _, key in DEV_ACCOUNTS]
ADDRS = [bytes.fromhex(a[2:]) for a, _ in DEV_ACCOUNTS]
TO = to_checksum_address("0x" + "ab" * 20)


@cache
def sign(
    who: int,
    nonce: int,
    tip: int = GWEI,
    fee: int = 10 * GWEI,
    *,
    gas: int = 21_000,
    value: int = 0,
    legacy: bool = False,
    chain_id: int | None = DEV_CHAIN_ID,
) -> bytes:
    """A transfer from dev account ``who``: type 2 unless ``legacy`` (then gas price ``fee``)."""
    tx: dict = {"nonce": nonce, "gas": gas, "to": TO, "value": value}
    if legacy:
        tx["gasPrice"] = fee
    else:
        tx.update(maxFeePerGas=fee, maxPriorityFeePerGas=tip)
    if chain_id is not None:
        tx["chainId"] = chain_id
    return bytes(EthAccount.sign_transaction(tx, KEYS[who]).raw_transaction)


class Head:
    """A mutable head state: address -> (nonce, balance); unknown accounts are empty."""

    def __init__(self, balance: int = 100 * ETHER) -> None:
        self.accounts = {address: (0, balance) for address in ADDRS}

    def __call__(self, address: bytes) -> tuple[int, int]:
        return self.accounts.get(address, (0, 0))


@pytest.fixture
def head() -> Head:
    return Head()


@pytest.fixture
def pool(head: Head) -> TxPool:
    return TxPool(DEV_CHAIN_ID, BLOCK_GAS, head)


def refused(pool: TxPool, raw: bytes) -> TxPoolError:
    with pytest.raises(TxPoolError) as info:
        pool.add(raw)
    assert info.value.code == RPC_TX_REJECTED
    return info.value


def nonces(txs) -> list[tuple[bytes, int]]:
    return [(tx.sender, tx.nonce) for tx in txs]


# --- admission and errors ------------------------------------------------------------------


def test_add_returns_the_recovered_transaction_and_indexes_it(pool: TxPool) -> None:
    tx = pool.add(sign(0, 0))
    assert tx.sender == ADDRS[0] and tx.nonce == 0
    assert pool.get(tx.hash) is tx and tx.hash in pool and len(pool) == 1
    assert pool.pending_nonce(ADDRS[0]) == 1
    assert pool.pending_nonce(ADDRS[1]) == 0
    assert pool.content() == {"pending": {ADDRS[0]: {0: tx}}, "queued": {}}
    assert pool.status() == {"pending": 1, "queued": 0}
    assert pool.counters["accepted"] == 1 and pool.rejected == {}


def _flip_r(raw: bytes) -> bytes:
    """The same type-2 transaction with r zeroed: no sender can be recovered."""
    fields = rlp.decode(raw[1:])
    fields[10] = b""
    return b"\x02" + rlp.encode(fields)


STATELESS = [
    ("intrinsic gas", lambda: sign(0, 0, gas=20_999), INTRINSIC_GAS),
    ("bad signature", lambda: _flip_r(sign(0, 0)), INVALID_SENDER),
    ("wrong chain", lambda: sign(0, 0, chain_id=1), INVALID_SENDER),
    ("type 3", lambda: b"\x03" + rlp.encode([1, 2, 3]), TYPE_NOT_SUPPORTED),
    ("tip above fee", lambda: sign(0, 0, tip=3 * GWEI, fee=2 * GWEI), TIP_ABOVE_FEE_CAP),
    ("max nonce", lambda: sign(0, 2**64 - 1), NONCE_MAX),
    ("unprotected", lambda: sign(0, 0, legacy=True, chain_id=None), UNPROTECTED),
    ("block gas", lambda: sign(0, 0, gas=BLOCK_GAS + 1), GAS_LIMIT),
]


@pytest.mark.parametrize(
    ("make", "message"), [c[1:] for c in STATELESS], ids=[c[0] for c in STATELESS]
)
def test_stateless_errors_use_geths_messages(pool: TxPool, make, message: str) -> None:
    error = refused(pool, make())
    assert error.message == message
    assert str(error).startswith(message)
    assert pool.rejected == {message: 1} and len(pool) == 0


def test_chain_id_and_intrinsic_gas_refusals_are_geths_text(pool: TxPool) -> None:
    """geth's txpool wraps its signer's error; wallets and libraries match on the text."""
    wrong_chain = f"invalid sender: invalid chain id for signer: have 1 want {DEV_CHAIN_ID}"
    assert str(refused(pool, sign(0, 0, chain_id=1))) == wrong_chain
    assert str(refused(pool, sign(0, 0, legacy=True, chain_id=1))) == wrong_chain  # from v
    unsigned = rlp.decode(sign(0, 0, legacy=True, chain_id=None))
    unsigned[6] = 29  # a legacy v that is neither 27/28 nor EIP-155's: no signer takes it
    assert str(refused(pool, rlp.encode(unsigned))) == (
        "invalid sender: invalid transaction v, r, s values (v=29)")
    assert str(refused(pool, sign(0, 0, gas=20_999))) == (
        "intrinsic gas too low: gas 20999, minimum needed 21000")
    assert pool.rejected == {INVALID_SENDER: 3, INTRINSIC_GAS: 1}


def test_oldest_pending_passes_over_queued_transactions(pool: TxPool) -> None:
    assert pool.oldest_pending() is None
    pool.add(sign(0, 1))  # queued behind nonce 0
    assert pool.oldest_pending() is None
    pool.add(sign(1, 0))
    second = pool.oldest_pending()
    assert second is not None
    pool.add(sign(0, 0))  # fills the gap: account 0's nonce 1 is the oldest pending now
    first = pool.oldest_pending()
    assert first is not None and first <= second


def test_undecodable_bytes_are_an_rlp_error(pool: TxPool) -> None:
    assert refused(pool, b"\x02\xc0").message.startswith("rlp: ")


def test_unprotected_legacy_is_a_policy(head: Head) -> None:
    pool = TxPool(DEV_CHAIN_ID, BLOCK_GAS, head, allow_unprotected=True)
    assert pool.add(sign(0, 0, legacy=True, chain_id=None)).chain_id is None


def test_a_pre_recovered_transaction_must_match_the_chain(pool: TxPool) -> None:
    with pytest.raises(TxPoolError, match=f"{INVALID_SENDER}: {INVALID_CHAIN_ID}: have 1 want"):
        pool.add(recover_transaction(sign(0, 0, chain_id=1), 1))


def test_already_known(pool: TxPool) -> None:
    raw = sign(0, 0)
    tx = pool.add(raw)
    assert refused(pool, raw).message == ALREADY_KNOWN
    with pytest.raises(TxPoolError, match=ALREADY_KNOWN):
        pool.add(tx)


def test_pooled_by_raw_finds_pooled_encodings_only(pool: TxPool) -> None:
    pooled, other = pool.add(sign(0, 0)), sign(1, 0)
    found = pool.pooled_by_raw([other, pooled.raw, b"\x02junk"])
    assert found == {pooled.raw: pooled} and found[pooled.raw] is pooled
    pool.drop([pooled.hash])
    assert pool.pooled_by_raw([pooled.raw]) == {}


def test_nonce_too_low(pool: TxPool, head: Head) -> None:
    head.accounts[ADDRS[0]] = (5, ETHER)
    error = refused(pool, sign(0, 4))
    assert error.message == NONCE_TOO_LOW
    assert error.detail.endswith("tx: 4 state: 5")


def test_insufficient_funds_counts_the_senders_pooled_transactions(head: Head) -> None:
    cost = 21_000 * 10 * GWEI + ETHER  # gas x fee cap + value
    head.accounts[ADDRS[0]] = (0, 2 * cost - 1)
    pool = TxPool(DEV_CHAIN_ID, BLOCK_GAS, head)
    pool.add(sign(0, 0, value=ETHER))
    error = refused(pool, sign(0, 1, value=ETHER))
    assert error.message == INSUFFICIENT_FUNDS
    assert error.detail.endswith(f"have {2 * cost - 1} want {2 * cost}")
    head.accounts[ADDRS[1]] = (0, cost - 1)
    assert refused(pool, sign(1, 0, value=ETHER)).message == INSUFFICIENT_FUNDS


# --- nonces: pending, queued, promotion ------------------------------------------------------


def test_future_nonces_wait_in_the_queue_until_the_gap_fills(pool: TxPool) -> None:
    pool.add(sign(0, 2))
    pool.add(sign(0, 3))
    assert pool.status() == {"pending": 0, "queued": 2}
    assert pool.pending_nonce(ADDRS[0]) == 0
    assert pool.best(BLOCK_GAS, 0) == []
    pool.add(sign(0, 0))
    assert pool.status() == {"pending": 1, "queued": 2}
    pool.add(sign(0, 1))
    assert pool.status() == {"pending": 4, "queued": 0}
    assert pool.pending_nonce(ADDRS[0]) == 4
    assert [n for _, n in nonces(pool.best(BLOCK_GAS, 0))] == [0, 1, 2, 3]
    assert list(pool.content()["pending"][ADDRS[0]]) == [0, 1, 2, 3]


# --- replacement -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tip", "fee", "ok"),
    [
        (11 * GWEI // 10, 11 * GWEI, True),  # exactly +10% on both
        (GWEI, 20 * GWEI, False),  # fee cap bumped, tip not
        (2 * GWEI, 10 * GWEI, False),  # tip bumped, fee cap not
        (11 * GWEI // 10 - 1, 11 * GWEI, False),  # tip 1 wei short
    ],
)
def test_replacement_needs_ten_percent_more_fee_cap_and_tip(
    pool: TxPool, tip: int, fee: int, ok: bool
) -> None:
    old = pool.add(sign(0, 0, GWEI, 10 * GWEI))
    if ok:
        new = pool.add(sign(0, 0, tip, fee))
        assert pool.get(old.hash) is None and pool.get(new.hash) is new and len(pool) == 1
        assert pool.counters["replaced"] == 1 and pool.best(BLOCK_GAS, 0) == [new]
    else:
        assert refused(pool, sign(0, 0, tip, fee)).message == REPLACE_UNDERPRICED
        assert pool.get(old.hash) is old


def test_replacing_a_queued_transaction_keeps_it_queued(pool: TxPool) -> None:
    pool.add(sign(0, 3))
    new = pool.add(sign(0, 3, 2 * GWEI, 20 * GWEI))
    assert pool.content()["queued"] == {ADDRS[0]: {3: new}}


def test_replacement_balance_check_refunds_the_old_cost(head: Head) -> None:
    head.accounts[ADDRS[0]] = (0, 21_000 * 11 * GWEI)
    pool = TxPool(DEV_CHAIN_ID, BLOCK_GAS, head)
    pool.add(sign(0, 0, GWEI, 10 * GWEI))
    pool.add(sign(0, 0, 11 * GWEI // 10, 11 * GWEI))  # affordable alone, not on top of the old
    assert len(pool) == 1


# --- limits and eviction -------------------------------------------------------------------


def test_per_sender_limit(head: Head) -> None:
    pool = TxPool(DEV_CHAIN_ID, BLOCK_GAS, head, TxPoolLimits(max_executable_per_sender=2))
    pool.add(sign(0, 0))
    pool.add(sign(0, 1))
    assert refused(pool, sign(0, 2)).message == ACCOUNT_LIMIT
    pool.add(sign(0, 1, 2 * GWEI, 20 * GWEI))  # a replacement is not a new slot
    pool.add(sign(1, 0))


def test_full_pool_evicts_the_cheapest_last_transaction_of_another_sender(head: Head) -> None:
    pool = TxPool(DEV_CHAIN_ID, BLOCK_GAS, head, TxPoolLimits(max_txs=4))
    a0 = pool.add(sign(0, 0, tip=1))  # cheapest, but not its sender's last
    a1 = pool.add(sign(0, 1, tip=5))
    b0 = pool.add(sign(1, 0, tip=3))
    c0 = pool.add(sign(2, 0, tip=4))
    # Same tip as the cheapest tail (b0's 3): not more, refused.
    assert refused(pool, sign(3, 0, tip=3)).message == POOL_FULL
    d0 = pool.add(sign(3, 0, tip=4))
    assert pool.get(b0.hash) is None and pool.counters["evicted"] == 1
    assert {a0.hash, a1.hash, c0.hash, d0.hash} == {tx.hash for tx in pool.best(BLOCK_GAS, 0)}
    # The cheapest tail is now c0 or d0 (tip 4) or a1 (tip 5): a sender never evicts itself.
    pool.add(sign(2, 1, tip=6))
    assert pool.get(c0.hash) is c0 and pool.get(d0.hash) is None


def test_eviction_prices_at_the_pools_base_fee(head: Head) -> None:
    pool = TxPool(DEV_CHAIN_ID, BLOCK_GAS, head, TxPoolLimits(max_txs=2))
    rich_cap = pool.add(sign(0, 0, tip=5 * GWEI, fee=10 * GWEI))
    low_cap = pool.add(sign(1, 0, tip=3 * GWEI, fee=6 * GWEI))
    pool.remove_included([], head, base_fee=4 * GWEI)  # low_cap's tip is now 2 gwei
    pool.add(sign(2, 0, tip=3 * GWEI, fee=20 * GWEI))
    assert pool.get(low_cap.hash) is None and pool.get(rich_cap.hash) is rich_cap


# --- block building ----------------------------------------------------------------------------


def test_best_orders_by_effective_tip_and_nonce(pool: TxPool) -> None:
    pool.add(sign(0, 0, tip=1 * GWEI))
    pool.add(sign(0, 1, tip=9 * GWEI))  # rich, but waits for its cheap nonce 0
    pool.add(sign(1, 0, tip=3 * GWEI))
    pool.add(sign(2, 0, tip=8 * GWEI, fee=8 * GWEI + 2 * GWEI))  # effective tip 2 at base 8
    order = nonces(pool.best(BLOCK_GAS, 8 * GWEI))
    assert order == [(ADDRS[1], 0), (ADDRS[2], 0), (ADDRS[0], 0), (ADDRS[0], 1)]
    # At base fee 0 sender 2's full tip counts.
    assert nonces(pool.best(BLOCK_GAS, 0))[0] == (ADDRS[2], 0)


def test_best_skips_senders_below_the_base_fee(pool: TxPool) -> None:
    pool.add(sign(0, 0, tip=GWEI, fee=5 * GWEI))
    pool.add(sign(1, 0, tip=GWEI, fee=20 * GWEI))
    pool.add(sign(1, 1, tip=GWEI, fee=5 * GWEI))  # ends sender 1's run
    pool.add(sign(1, 2, tip=GWEI, fee=20 * GWEI))
    assert nonces(pool.best(BLOCK_GAS, 6 * GWEI)) == [(ADDRS[1], 0)]


def test_best_stops_at_the_gas_limit_and_skips_what_does_not_fit(pool: TxPool) -> None:
    pool.add(sign(0, 0, tip=9 * GWEI, gas=50_000))
    pool.add(sign(1, 0, tip=8 * GWEI, gas=60_000))  # does not fit after the first: skipped
    pool.add(sign(1, 1, tip=8 * GWEI))
    pool.add(sign(2, 0, tip=1 * GWEI, gas=30_000))
    assert nonces(pool.best(100_000, 0)) == [(ADDRS[0], 0), (ADDRS[2], 0)]
    assert pool.best(20_999, 0) == []


def test_best_breaks_ties_by_arrival(pool: TxPool) -> None:
    for who in (3, 1, 2):
        pool.add(sign(who, 0))
    assert [s for s, _ in nonces(pool.best(BLOCK_GAS, 0))] == [ADDRS[3], ADDRS[1], ADDRS[2]]


# --- after a block -----------------------------------------------------------------------------


def test_remove_included_drops_included_and_stale_and_promotes(pool: TxPool, head: Head) -> None:
    block = [pool.add(sign(0, 0)), pool.add(sign(0, 1))]
    queued = pool.add(sign(0, 3))  # behind a gap at nonce 2
    other = pool.add(sign(1, 0))
    stale = pool.add(sign(2, 0))
    # The block also holds transactions the pool never saw: sender 0's nonce 2 and another
    # nonce-0 transaction of sender 2, which makes ours stale.
    block += [
        recover_transaction(sign(0, 2), DEV_CHAIN_ID),
        recover_transaction(sign(2, 0, tip=2 * GWEI), DEV_CHAIN_ID),
    ]
    head.accounts[ADDRS[0]] = (3, ETHER)
    head.accounts[ADDRS[2]] = (1, ETHER)
    pool.remove_included(block, head)
    assert pool.get(stale.hash) is None and len(pool) == 2
    assert pool.content() == {
        "pending": {ADDRS[0]: {3: queued}, ADDRS[1]: {0: other}},
        "queued": {},
    }
    assert pool.pending_nonce(ADDRS[0]) == 4 and pool.pending_nonce(ADDRS[2]) == 1
    assert pool.counters["included"] == 2 and pool.counters["dropped"] == 1


def test_remove_included_drops_what_the_new_balance_cannot_cover(pool: TxPool, head: Head) -> None:
    first = pool.add(sign(0, 0, value=ETHER))
    kept = pool.add(sign(0, 1, value=ETHER))
    pool.add(sign(0, 2, value=ETHER))
    waiting = pool.add(sign(0, 3, value=ETHER // 2))
    pool.add(sign(0, 4, value=2 * ETHER))
    head.accounts[ADDRS[0]] = (1, ETHER + 21_000 * 10 * GWEI)  # covers nonce 1 only
    pool.remove_included([first], head)
    assert pool.best(BLOCK_GAS, 0) == [kept]
    # The run stops at nonce 2 (dropped); nonce 3 waits behind the gap it leaves; nonce 4
    # costs more than the whole balance (dropped).
    assert pool.content()["queued"] == {ADDRS[0]: {3: waiting}}
    assert len(pool) == 2 and pool.counters["dropped"] == 2


def test_funds_arriving_extend_a_run_the_balance_held_back(head: Head) -> None:
    cost = 21_000 * 10 * GWEI + ETHER
    head.accounts[ADDRS[0]] = (0, cost)
    pool = TxPool(DEV_CHAIN_ID, BLOCK_GAS, head)
    second = pool.add(sign(0, 1, value=ETHER))  # queued: affordable alone
    first = pool.add(sign(0, 0, value=ETHER))  # fills the gap; the run cannot pay for both
    assert pool.best(BLOCK_GAS, 0) == [first] and pool.status() == {"pending": 1, "queued": 1}
    head.accounts[ADDRS[0]] = (0, 2 * cost)  # funds arrive; the sender sent nothing
    pool.remove_included([], head, changed=[ADDRS[0]])
    assert pool.best(BLOCK_GAS, 0) == [first, second]


def test_a_missed_block_is_caught_up_on_the_next_add(pool: TxPool, head: Head) -> None:
    pool.add(sign(0, 0))
    pool.add(sign(0, 2))
    head.accounts[ADDRS[0]] = (1, ETHER)
    pool.add(sign(0, 1))
    assert [n for _, n in nonces(pool.best(BLOCK_GAS, 0))] == [1, 2]


def test_state_reader_reads_the_engine_head_as_it_moves() -> None:
    engine = RevmEngine.from_alloc(
        {ADDRS[0]: AllocAccount(nonce=7, balance=ETHER)}, chain_id=DEV_CHAIN_ID
    )
    read = state_reader(engine)
    assert read(ADDRS[0]) == (7, ETHER) and read(ADDRS[1]) == (0, 0)
    tx = recover_transaction(sign(0, 7, tip=0, fee=GWEI, value=5), DEV_CHAIN_ID)
    env = BlockEnv(number=1, timestamp=1, fee_recipient=bytes(20), gas_limit=BLOCK_GAS,
                   base_fee=GWEI)
    engine.commit(engine.execute_block(engine.state_root, env, [tx]))
    # The same reader sees the committed head: one more nonce, value and gas paid.
    assert read(ADDRS[0]) == (8, ETHER - 5 - 21_000 * GWEI)
    assert read(bytes.fromhex(TO[2:])) == (0, 5)


# --- batches -------------------------------------------------------------------------------------


def test_add_many_answers_each_input_in_order(pool: TxPool) -> None:
    resend = sign(0, 0)
    pool.add(resend)
    batch = [sign(1, 0), resend, sign(1, 0), sign(0, 1, gas=100), b"\x02\xc0", sign(2, 0)]
    results = pool.add_many(batch)
    assert [r.message if isinstance(r, TxPoolError) else r.sender for r in results] == [
        ADDRS[1],
        ALREADY_KNOWN,
        ALREADY_KNOWN,
        INTRINSIC_GAS,
        results[4].message,
        ADDRS[2],
    ]
    assert results[4].message.startswith("rlp: ")
    assert len(pool) == 3 and pool.counters["accepted"] == 3
    assert pool.rejected[ALREADY_KNOWN] == 2


# --- property: best() respects nonces and the gas limit -------------------------------------------

SENDERS = 4
NONCES = 5
LEVELS = [(GWEI, 3 * GWEI, 21_000), (2 * GWEI, 2 * GWEI, 40_000), (3 * GWEI, 5 * GWEI, 30_000)]


@cache
def grid() -> dict[tuple[int, int, int], bytes]:
    return {
        (who, nonce, level): sign(who, nonce, tip, fee, gas=gas)
        for who in range(SENDERS)
        for nonce in range(NONCES)
        for level, (tip, fee, gas) in enumerate(LEVELS)
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    adds=st.lists(
        st.tuples(
            st.integers(0, SENDERS - 1), st.integers(0, NONCES - 1), st.integers(0, len(LEVELS) - 1)
        ),
        max_size=40,
    ),
    start=st.lists(st.integers(0, 2), min_size=SENDERS, max_size=SENDERS),
    gas_limit=st.integers(0, 400_000),
    base_fee=st.sampled_from([0, GWEI, 2 * GWEI + 1, 4 * GWEI]),
)
def test_best_never_reorders_a_senders_nonces_nor_exceeds_the_gas(
    adds, start, gas_limit: int, base_fee: int
) -> None:
    head = Head()
    for who, nonce in enumerate(start):
        head.accounts[ADDRS[who]] = (nonce, ETHER)
    limits = TxPoolLimits(max_txs=12, max_executable_per_sender=4)
    pool = TxPool(DEV_CHAIN_ID, BLOCK_GAS, head, limits)
    for key in adds:
        with contextlib.suppress(TxPoolError):
            pool.add(grid()[key])
    chosen = pool.best(gas_limit, base_fee)
    assert sum(tx.gas_limit for tx in chosen) <= gas_limit
    assert all(tx.fee_cap >= base_fee for tx in chosen)
    expected = {ADDRS[who]: nonce for who, nonce in enumerate(start)}
    for tx in chosen:
        assert tx.nonce == expected[tx.sender]  # the account nonce, then one more each time
        expected[tx.sender] += 1
    assert len(pool) <= 12
    pending = pool.content()["pending"]
    assert sum(map(len, pending.values())) + sum(
        map(len, pool.content()["queued"].values())
    ) == len(pool)
    for address, by_nonce in pending.items():
        assert list(by_nonce) == list(range(head(address)[0], head(address)[0] + len(by_nonce)))


def test_eviction_heap_stays_bounded_when_the_pool_never_fills(pool: TxPool, head: Head) -> None:
    # Every admission pushes an eviction candidate; included ones go stale. A pool that is never
    # full never evicts, so without a bound the heap would keep every transaction ever admitted.
    for nonce in range(300):
        tx = pool.add(sign(0, nonce))
        head.accounts[ADDRS[0]] = (nonce + 1, head.accounts[ADDRS[0]][1])
        pool.remove_included([tx], head)
    assert len(pool) == 0
    assert len(pool._tails) <= 2 * len(pool._senders) + 65
