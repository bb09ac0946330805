"""The pool under hostile senders: queued limits kept apart from executable ones, the gap-filling
nonce always admissible, queue expiry on an injected clock, eviction queued-first."""

from __future__ import annotations

import random

import pytest

from alys_fast.chain.spec import DEV_CHAIN_ID
from alys_fast.chain.txpool import (
    ACCOUNT_LIMIT,
    INSUFFICIENT_FUNDS,
    POOL_FULL,
    TxPool,
    TxPoolError,
    TxPoolLimits,
)
from alys_fast.validation import recover_transaction
from tests.chain.test_txpool import ADDRS, BLOCK_GAS, ETHER, GWEI, Head, sign


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def head() -> Head:
    return Head()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def new_pool(head: Head, clock: Clock | None = None, **limits: int | float) -> TxPool:
    return TxPool(DEV_CHAIN_ID, BLOCK_GAS, head, TxPoolLimits(**limits),
                  clock=clock or Clock())


def refusal(pool: TxPool, raw: bytes) -> str:
    with pytest.raises(TxPoolError) as info:
        pool.add(raw)
    return info.value.message


def pending_nonces(pool: TxPool, who: int) -> list[int]:
    return list(pool.content()["pending"].get(ADDRS[who], {}))


def queued_nonces(pool: TxPool, who: int) -> list[int]:
    return list(pool.content()["queued"].get(ADDRS[who], {}))


def test_defaults_are_geths_queue_limits_and_lifetime() -> None:
    limits = TxPoolLimits()
    assert (limits.max_queued_per_sender, limits.max_queued, limits.price_bump) == (64, 1024, 10)
    assert limits.queue_lifetime == 3 * 3600
    assert limits.max_executable_per_sender == 1024
    with pytest.raises(ValueError, match="max_queued"):
        TxPoolLimits(max_queued=0)


def test_a_sender_flooding_gapped_nonces_is_never_wedged(head: Head, clock: Clock) -> None:
    """The finding: nonces n+1…n+2048 out of order filled the sender's whole quota, then nonce n
    was refused ("account limit exceeded") at any price, and nothing expired the queue."""
    n = 5
    head.accounts[ADDRS[0]] = (n, 100 * ETHER)
    pool = TxPool(DEV_CHAIN_ID, BLOCK_GAS, head, clock=clock)  # the default limits
    flood = list(range(n + 1, n + 2049))
    random.Random(17).shuffle(flood)
    results = pool.add_many([sign(0, nonce) for nonce in flood])
    refused = [r for r in results if isinstance(r, TxPoolError)]
    assert len(refused) == 2048 - 64 and {r.message for r in refused} == {ACCOUNT_LIMIT}
    assert "64 queued transactions" in str(refused[0]) and "send nonce 5 first" in str(refused[0])
    assert pool.status() == {"pending": 0, "queued": 64}

    # The gap-filling nonce is admitted at an ordinary price, and the queued nonces it makes
    # contiguous are promoted.
    queued = sorted(queued_nonces(pool, 0))
    pool.add(sign(0, n))
    run = [n]
    while run[-1] + 1 in queued:
        run.append(run[-1] + 1)
    assert pending_nonces(pool, 0) == run
    assert pool.status()["queued"] == 64 - (len(run) - 1)
    assert [tx.nonce for tx in pool.best(BLOCK_GAS, 0)] == run

    # Nothing more arrives from the sender: its queue expires; the pending run never does.
    clock.now += TxPoolLimits().queue_lifetime + 1
    assert pool.expire() == 64 - (len(run) - 1)
    assert pool.status() == {"pending": len(run), "queued": 0}
    assert pool.counters["expired"] == 64 - (len(run) - 1)


def test_the_overall_queue_is_bounded_and_yields_to_higher_tips(head: Head) -> None:
    pool = new_pool(head, max_queued=6, max_queued_per_sender=3)
    for who in range(2):
        for nonce in (1, 2, 3):
            pool.add(sign(who, nonce, tip=GWEI))
    assert pool.status() == {"pending": 0, "queued": 6}
    assert refusal(pool, sign(2, 1, tip=GWEI)) == POOL_FULL  # no cheaper queued one to take
    pool.add(sign(2, 1, tip=2 * GWEI))  # evicts the cheapest, oldest highest queued nonce
    assert queued_nonces(pool, 0) == [1, 2] and pool.counters["evicted"] == 1
    assert pool.status()["queued"] == 6
    # The gap fillers are executable: the full queue never refuses them.
    pool.add(sign(0, 0))
    pool.add(sign(1, 0))
    assert pending_nonces(pool, 0) == [0, 1, 2] and pending_nonces(pool, 1) == [0, 1, 2, 3]


def test_expiry_counts_from_the_senders_last_admission(head: Head, clock: Clock) -> None:
    lifetime = 600.0
    pool = new_pool(head, clock, queue_lifetime=lifetime)
    pool.add(sign(0, 2))
    pool.add(sign(1, 2))
    clock.now += lifetime / 2
    pool.add(sign(0, 5))  # sender 0's heartbeat: its whole queue lives on
    clock.now += lifetime / 2 + 1
    assert pool.expire() == 1
    assert queued_nonces(pool, 0) == [2, 5] and queued_nonces(pool, 1) == []
    assert pool.expire(clock.now + lifetime / 2) == 2
    assert len(pool) == 0


def test_a_full_pool_evicts_queued_first_for_an_executable_newcomer(head: Head) -> None:
    pool = new_pool(head, max_txs=3)
    rich_queued = pool.add(sign(0, 1, tip=50 * GWEI, fee=60 * GWEI))
    cheap_pending = pool.add(sign(1, 0, tip=1))
    pool.add(sign(2, 0, tip=1))
    # A queued newcomer never evicts a pending transaction, however little that pays.
    assert refusal(pool, sign(3, 1, tip=9 * GWEI)) == POOL_FULL
    # An executable one takes the queue's slot first, whatever the queued transaction pays.
    newcomer = pool.add(sign(3, 0, tip=2))
    assert pool.get(rich_queued.hash) is None and pool.get(cheap_pending.hash) is cheap_pending
    assert pool.counters["evicted"] == 1 and pool.get(newcomer.hash) is newcomer
    # With nothing queued, the cheapest last pending transaction of another sender goes.
    pool.add(sign(4, 0, tip=3))
    assert pool.get(cheap_pending.hash) is None and pool.counters["evicted"] == 2


def test_queued_transactions_do_not_count_against_the_gap_fillers_balance(head: Head) -> None:
    cost = 21_000 * 10 * GWEI + ETHER
    head.accounts[ADDRS[0]] = (0, 2 * cost)
    pool = new_pool(head)
    for nonce in (1, 2, 3):  # each affordable alone; together more than the balance
        pool.add(sign(0, nonce, value=ETHER))
    pool.add(sign(0, 0, value=ETHER))  # still admissible: only the run is charged
    assert pending_nonces(pool, 0) == [0, 1] and queued_nonces(pool, 0) == [2, 3]
    assert refusal(pool, sign(0, 1, 2 * GWEI, 20 * GWEI, value=ETHER)) == INSUFFICIENT_FUNDS


def test_the_executable_limit_leaves_the_rest_queued_until_the_run_moves(head: Head) -> None:
    pool = new_pool(head, max_executable_per_sender=3, max_queued_per_sender=2)
    for nonce in (4, 3, 0, 1, 2):
        pool.add(sign(0, nonce))
    assert pending_nonces(pool, 0) == [0, 1, 2] and queued_nonces(pool, 0) == [3, 4]
    message = refusal(pool, sign(0, 5))
    assert message == ACCOUNT_LIMIT
    block = pool.best(BLOCK_GAS, 0)
    head.accounts[ADDRS[0]] = (3, head.accounts[ADDRS[0]][1])
    pool.remove_included(block, head)
    assert pending_nonces(pool, 0) == [3, 4] and pool.status()["queued"] == 0


def test_dropping_from_a_run_requeues_within_the_queue_limit(head: Head) -> None:
    pool = new_pool(head, max_queued_per_sender=2)
    txs = [pool.add(sign(0, nonce)) for nonce in range(6)]
    assert pool.drop([txs[1].hash]) == 1
    # Nonces 2..5 lost their predecessor: the lowest two stay queued, the rest are dropped.
    assert pending_nonces(pool, 0) == [0] and queued_nonces(pool, 0) == [2, 3]
    assert pool.counters["dropped"] == 3
    pool.add(sign(0, 1))
    assert pending_nonces(pool, 0) == [0, 1, 2, 3]


def test_replay_order_rebuilds_the_pool(head: Head) -> None:
    cost = 21_000 * 10 * GWEI + ETHER
    head.accounts[ADDRS[0]] = (0, 2 * cost + 1)
    pool = new_pool(head, max_executable_per_sender=2)
    # Sender 0's nonce 2 waits for funds, sender 1's nonce 2 for room in the run; each has a
    # gapped one too, and sender 1 replaced its nonce 0.
    for raw in (sign(0, 4, value=ETHER), sign(0, 2, value=ETHER), sign(0, 0, value=ETHER),
                sign(0, 1, value=ETHER), sign(1, 2), sign(1, 4), sign(1, 0), sign(1, 1),
                sign(1, 0, 2 * GWEI, 20 * GWEI)):
        pool.add(raw)
    assert queued_nonces(pool, 0) == [2, 4] and queued_nonces(pool, 1) == [2, 4]
    again = new_pool(head, max_executable_per_sender=2)
    assert all(not isinstance(r, TxPoolError) for r in again.add_many(pool.replay_order()))
    assert again.content() == pool.content() and again.status() == pool.status()


def test_a_resync_with_a_lower_balance_keeps_the_queue_bounded(head: Head) -> None:
    pool = new_pool(head, max_queued=3)
    for who in range(2):
        for nonce in range(4):
            pool.add(sign(who, nonce, tip=GWEI + who))
    head.accounts[ADDRS[0]] = (0, 21_000 * 10 * GWEI)  # one transaction's worth now
    head.accounts[ADDRS[1]] = (0, 21_000 * 10 * GWEI)
    pool.resync([ADDRS[0], ADDRS[1]], head)
    # Both runs shrink to nonce 0 and the nonce 1 the balance stops them at is dropped; four
    # would wait queued behind it, above the overall three: the cheapest goes.
    assert pool.status() == {"pending": 2, "queued": 3}
    assert queued_nonces(pool, 0) == [2] and queued_nonces(pool, 1) == [2, 3]
    assert pool.counters["dropped"] == 3
    assert recover_transaction(sign(0, 0), DEV_CHAIN_ID).hash in pool


def test_the_node_config_pool_table_sets_every_limit(tmp_path) -> None:
    from alys_fast.config import ConfigError, load_config

    path = tmp_path / "node.toml"
    path.write_text('data_dir = "data"\n[pool]\nmax_txs = 100\nmax_executable_per_sender = 9\n'
                    'max_queued_per_sender = 3\nmax_queued = 7\nqueue_lifetime = 60\n'
                    'price_bump = 25\njournal = false\nrejournal = 5\n')
    pool = load_config(path).pool
    assert pool.limits() == TxPoolLimits(max_txs=100, max_executable_per_sender=9,
                                         max_queued_per_sender=3, max_queued=7,
                                         queue_lifetime=60.0, price_bump=25)
    settings = pool.journal_settings()
    assert (settings.enabled, settings.rejournal) == (False, 5.0)
    path.write_text('data_dir = "data"\n[pool]\nmax_queued = 0\n')
    with pytest.raises(ConfigError, match="max_queued"):
        load_config(path)
