"""A Hypothesis state machine for the pool and its journal: random submit / replace / mine /
fund / expire / restart sequences across a few senders, with small limits so that every limit,
eviction and expiry path is reached.

Invariants, checked after every step:
- limits are never exceeded (all, queued, per sender executable and queued), and the pending
  runs are what the module docstring says (contiguous from the account nonce, affordable);
- nothing leaves the pool silently: every departure is counted by the rule that made it
  (replaced, evicted, included, dropped, expired);
- the sender's next executable nonce is admissible unless a named limit says otherwise;
- a restart from the journal keeps everything pooled (a clean one: exactly the pool; after a
  crash, whatever the replay itself does not turn away by a limit).
"""

from __future__ import annotations

import shutil
import tempfile
from functools import cache
from pathlib import Path

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from alys_fast.chain.journal import TxJournal
from alys_fast.chain.spec import DEV_CHAIN_ID
from alys_fast.chain.txpool import (
    ACCOUNT_LIMIT,
    INSUFFICIENT_FUNDS,
    POOL_FULL,
    TxPool,
    TxPoolError,
    TxPoolLimits,
)
from alys_fast.validation import Transaction, recover_transaction
from tests.chain.test_txpool import ADDRS, BLOCK_GAS, GWEI, Head, sign

SENDERS = 3
NONCES = 8
LEVELS = [(GWEI, 10 * GWEI), (2 * GWEI, 20 * GWEI), (4 * GWEI, 40 * GWEI)]  # (tip, fee cap)
VALUE = 10**15
LIMITS = TxPoolLimits(max_txs=8, max_executable_per_sender=3, max_queued_per_sender=2,
                      max_queued=3, queue_lifetime=100.0)
DEPARTURES = ("replaced", "evicted", "included", "dropped", "expired")


@cache
def signed(who: int, nonce: int, level: int) -> Transaction:
    tip, fee = LEVELS[level]
    return recover_transaction(sign(who, nonce, tip, fee, value=VALUE), DEV_CHAIN_ID)


def cost(tx: Transaction) -> int:
    return tx.gas_limit * tx.fee_cap + tx.value


class PoolMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.head = Head(balance=0)
        for address in ADDRS[:SENDERS]:
            self.head.accounts[address] = (0, 3 * cost(signed(0, 0, 2)))
        self.now = 0.0
        self.directory = Path(tempfile.mkdtemp(prefix="pool-machine-"))
        self.journal = TxJournal(self.directory / "transactions.rlp")
        self.pool = self._new_pool()
        self.live: set[bytes] = set()
        self.departed = dict.fromkeys(DEPARTURES, 0)  # the pool's departure counters last seen

    def teardown(self) -> None:
        self.journal.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _new_pool(self) -> TxPool:
        return TxPool(DEV_CHAIN_ID, BLOCK_GAS, self.head, LIMITS, clock=lambda: self.now)

    def _pooled(self) -> dict[bytes, Transaction]:
        return {tx.hash: tx for group in self.pool.content().values()
                for by_nonce in group.values() for tx in by_nonce.values()}

    def _settle(self, admitted: Transaction | None = None) -> None:
        """Every departure since the last step is counted by its rule; nothing else arrived."""
        pooled = set(self._pooled())
        gone = self.live - pooled
        counters = {k: self.pool.counters[k] for k in DEPARTURES}
        assert len(gone) == sum(counters.values()) - sum(self.departed.values()), (gone, counters)
        assert pooled - self.live <= ({admitted.hash} if admitted else set())
        if gone:
            event("departed: " + ", ".join(k for k in DEPARTURES if counters[k] > self.departed[k]))
        self.live, self.departed = pooled, counters

    def _submit(self, tx: Transaction) -> TxPoolError | None:
        try:
            self.pool.add(tx.raw)
        except TxPoolError as exc:
            self._settle()
            return exc
        self.journal.append([tx.raw])
        self._settle(tx)
        return None

    # --- rules ----------------------------------------------------------------------------

    @rule(who=st.integers(0, SENDERS - 1), ahead=st.integers(0, 5),
          level=st.integers(0, len(LEVELS) - 1))
    def submit(self, who: int, ahead: int, level: int) -> None:
        nonce = self.head(ADDRS[who])[0] + ahead
        if nonce < NONCES:
            self._submit(signed(who, nonce, level))

    @rule(who=st.integers(0, SENDERS - 1), level=st.integers(0, len(LEVELS) - 1))
    def submit_next_executable(self, who: int, level: int) -> None:
        """The sender's next executable nonce is refused only by a named limit that holds."""
        address = ADDRS[who]
        nonce = self.pool.pending_nonce(address)
        if nonce >= NONCES:
            return
        content = self.pool.content()
        pending = content["pending"].get(address, {})
        held_back = nonce in content["queued"].get(address, {})  # a replacement, not a newcomer
        tx = signed(who, nonce, level)
        status = self.pool.status()
        error = self._submit(tx)
        event(f"next executable nonce: {error.message if error else 'admitted'}")
        if error is None or held_back:
            return
        if error.message == ACCOUNT_LIMIT:
            assert len(pending) >= LIMITS.max_executable_per_sender
        elif error.message == INSUFFICIENT_FUNDS:
            assert sum(map(cost, pending.values())) + cost(tx) > self.head(address)[1]
        else:
            assert error.message == POOL_FULL, error
            assert status["queued"] == 0 and len(self.pool) >= LIMITS.max_txs
            tip = min(tx.max_priority_fee_per_gas, tx.fee_cap - self.pool.base_fee)
            for sender, by_nonce in content["pending"].items():
                last = by_nonce[max(by_nonce)]
                if sender != address:
                    assert min(last.max_priority_fee_per_gas, last.fee_cap) >= tip

    @rule(data=st.data(), bump=st.integers(1, len(LEVELS) - 1))
    def replace(self, data: st.DataObject, bump: int) -> None:
        pooled = sorted(self._pooled().values(), key=lambda tx: tx.hash)
        if not pooled:
            return
        old = data.draw(st.sampled_from(pooled))
        level = next(i for i in range(len(LEVELS)) if signed(ADDRS.index(old.sender),
                                                              old.nonce, i).hash == old.hash)
        if level + bump < len(LEVELS):
            new = signed(ADDRS.index(old.sender), old.nonce, level + bump)
            error = self._submit(new)  # a replacement needs no room, only the funds
            assert error is None or error.message == INSUFFICIENT_FUNDS, error
            assert old.hash not in self.pool or new.hash not in self.pool

    @rule()
    def mine(self) -> None:
        block = self.pool.best(BLOCK_GAS, 0)
        for tx in block:
            nonce, balance = self.head(tx.sender)
            assert tx.nonce == nonce
            price = min(tx.max_priority_fee_per_gas, tx.fee_cap)
            self.head.accounts[tx.sender] = (nonce + 1, balance - 21_000 * price - tx.value)
        self.pool.remove_included(block, self.head)
        self._settle()

    @rule(who=st.integers(0, SENDERS - 1), amount=st.sampled_from([cost(signed(0, 0, 0)),
                                                                   -cost(signed(0, 0, 1))]))
    def fund(self, who: int, amount: int) -> None:
        """Funds arrive at (or leave, as a contract would take them) a sender."""
        nonce, balance = self.head(ADDRS[who])
        self.head.accounts[ADDRS[who]] = (nonce, max(0, balance + amount))
        self.pool.remove_included([], self.head, changed=[ADDRS[who]])
        self._settle()

    @rule(seconds=st.sampled_from([10.0, 60.0, 101.0]))
    def expire(self, seconds: float) -> None:
        self.now += seconds
        self.pool.expire()
        self._settle()

    @rule()
    def rejournal(self) -> None:
        self.journal.rewrite(self.pool.replay_order())

    @rule()
    def restart_clean(self) -> None:
        """A clean stop rewrites the journal; the restarted pool is the same pool."""
        before = self.pool.content()
        self.journal.rewrite(self.pool.replay_order())
        self._restart()
        assert self.pool.content() == before

    @precondition(lambda self: len(self.live) > 0)
    @rule()
    def restart_crash(self) -> None:
        """After a crash the appended journal is replayed: everything pooled comes back unless
        the replay turns it away by a limit or evicts it, or a record that had left the pool
        since the last rewrite (evicted, expired...) comes back first and takes the sender's
        funds (an append-only journal's price, as geth's)."""
        before = self._pooled()
        results = self._restart()
        returned = {results_tx.sender for tx_hash, results_tx in results.items()
                    if isinstance(results_tx, Transaction) and tx_hash not in before}
        evicted = 0
        for tx_hash in set(before) - self.live:
            result = results[tx_hash]
            if isinstance(result, Transaction):
                evicted += 1  # admitted, then pushed out during the replay
            elif result.message == INSUFFICIENT_FUNDS:
                assert before[tx_hash].sender in returned, result
            else:
                assert result.message in (POOL_FULL, ACCOUNT_LIMIT), result
        assert evicted <= self.pool.counters["evicted"] + self.pool.counters["dropped"]

    def _restart(self) -> dict[bytes, Transaction | TxPoolError]:
        self.journal.close()
        raws = TxJournal(self.journal.path).load().raws
        self.pool = self._new_pool()
        results = self.pool.add_many(raws)
        hashes = [recover_transaction(raw, DEV_CHAIN_ID).hash for raw in raws]
        self.live = set(self._pooled())
        self.departed = {k: self.pool.counters[k] for k in DEPARTURES}
        return dict(zip(hashes, results, strict=True))

    # --- invariants ------------------------------------------------------------------------

    @invariant()
    def limits_hold_and_runs_are_executable(self) -> None:
        pool = self.pool
        content = pool.content()
        status = pool.status()
        assert len(pool) <= LIMITS.max_txs and status["queued"] <= LIMITS.max_queued
        assert status["pending"] == sum(map(len, content["pending"].values()))
        assert status["queued"] == sum(map(len, content["queued"].values()))
        for address, by_nonce in content["queued"].items():
            assert len(by_nonce) <= LIMITS.max_queued_per_sender
            assert min(by_nonce) >= pool.pending_nonce(address)
        for address, by_nonce in content["pending"].items():
            nonce, balance = self.head(address)
            assert list(by_nonce) == list(range(nonce, nonce + len(by_nonce)))
            assert len(by_nonce) <= LIMITS.max_executable_per_sender
            assert sum(map(cost, by_nonce.values())) <= balance


TestPoolMachine = PoolMachine.TestCase
TestPoolMachine.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
