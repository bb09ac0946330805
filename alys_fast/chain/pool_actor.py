"""The transaction pool actor: the only owner of the node's :class:`TxPool`.

The pool judges transactions against the head state, which the engine owns. It keeps its own
copy of the few accounts it needs (its senders' nonce and balance): fetched from the engine in
one ask when a batch brings new senders, and kept current by the state changes each new block
carries (the chain's :class:`~alys_fast.chain.topics.NewHead`, which the pool follows, with
:class:`~alys_fast.chain.topics.StateEdited`), so admission never waits on another actor for
known senders; a ``NewHead`` without its block (the chain restarted, or reverted) re-reads
every sender.
Accounts whose transactions all left the pool are pruned, so the copy stays the size of the
pool's senders, not of everyone who ever sent.

The pool's limits are the node's (``PoolSettings.limits``, the config's ``[pool]``). Queued
transactions expire on every new head and on a timer (:data:`MAINTAIN_SECONDS`). Every accepted
batch is appended to the journal (:mod:`alys_fast.chain.journal`, unless ``PoolSettings.journal``
turns it off), which is rewritten with the pool's contents every ``rejournal`` seconds, at a
clean stop, after a dev chain's revert or drop, and when it holds more than twice the pool plus
:data:`JOURNAL_SLACK` records. Each start (a node's, or this actor's after a crash) replays it
through admission, so accepted transactions survive a restart unless they left the pool by a
rule (included, replaced, evicted, expired). After a crash, records that left the pool since
the last rewrite come back too if still valid, and take their place (a sender's funds, a slot)
by the same rules, as with geth's journal.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import msgspec

from alys_fast.actors import Actor, ActorError, Directory, MailboxFull
from alys_fast.actors.worker import Worker
from alys_fast.chain.journal import JOURNAL_FILE, JournalSettings, TxJournal
from alys_fast.chain.spec import ChainSpec
from alys_fast.chain.topics import (
    NEW_HEAD,
    NEW_TRANSACTIONS,
    STATE_EDITED,
    NewHead,
    NewTransactions,
    StateEdited,
)
from alys_fast.chain.txpool import RPC_TX_REJECTED, TxPool, TxPoolError, TxPoolLimits
from alys_fast.chain.workflows import child_base_fee
from alys_fast.engine.actor import EngineClient
from alys_fast.paths import TXPOOL
from alys_fast.state import Account
from alys_fast.validation import InvalidTransaction, Transaction, recover_transactions

log = logging.getLogger(__name__)

# Cached accounts beyond twice the pooled senders before a prune (a prune costs O(cache)).
_SPARE_ACCOUNTS = 4096
# How often (at most, seconds) queued transactions are expired and the journal's age checked
# (geth's eviction interval).
MAINTAIN_SECONDS = 60.0
# Journal records beyond twice the pool before it is rewritten: at 10,000 tx/s a rewrite every
# few seconds of a few MB, not a file that grows for the whole rejournal interval.
JOURNAL_SLACK = 65_536


class Submit(msgspec.Struct, frozen=True):
    """-> one result per item: the pooled Transaction or the TxPoolError refusing it."""

    items: Sequence[Transaction | InvalidTransaction]
    gossip: bool = True  # admitted ones are published for the peers (False: from a peer)


class Best(msgspec.Struct, frozen=True):
    """-> the transactions for the next block, in execution order."""

    gas_limit: int
    base_fee: int


class PooledByRaw(msgspec.Struct, frozen=True):
    """-> {raw: the pooled Transaction} for those of ``raws`` in the pool (signatures the
    pool already recovered, reused by a block's validation)."""

    raws: Sequence[bytes]


class PendingNonce(msgspec.Struct, frozen=True):
    """-> the nonce the address's next transaction should use."""

    address: bytes


class GetPooled(msgspec.Struct, frozen=True):
    """-> the pooled transaction with this hash, or None."""

    tx_hash: bytes


class PoolStats(msgspec.Struct, frozen=True):
    """-> {"pending", "queued", counters..., "journal_replayed", "journal_skipped",
    "rejected": {reason: n}, "oldest_pending": the seconds the longest-waiting pending
    transaction has been pooled (0: none)}."""


class Maintain(msgspec.Struct, frozen=True):
    """Told by the actor's own timer: expire queued transactions, rewrite an old journal."""


class Dump(msgspec.Struct, frozen=True):
    """-> every pooled transaction, pending and queued (a dev chain's snapshot)."""


class Replace(msgspec.Struct, frozen=True):
    """-> None: the pool becomes ``transactions`` alone, judged afresh at the head (a dev
    chain's revert)."""

    transactions: Sequence[Transaction]
    base_fee: int


class Drop(msgspec.Struct, frozen=True):
    """-> how many of these transactions were pooled; they are not any more (a dev chain's
    ``anvil_dropTransaction``)."""

    tx_hashes: Sequence[bytes]


PoolMessage = Submit | Best | NewHead | StateEdited | PendingNonce | GetPooled | PoolStats
PoolMessage |= Dump | Replace | Drop | Maintain | PooledByRaw


@dataclass(frozen=True)
class PoolSettings:
    """What the pool actor is built with: the chain's spec (chain id, gas limit, fee rules),
    the directory its journal lives in, its limits and journal settings (the config's
    ``[pool]``), and whether it hands admitted transactions to peers (``gossip``: a node with
    a network)."""

    spec: ChainSpec
    data_dir: Path
    limits: TxPoolLimits = field(default_factory=TxPoolLimits)
    journal: JournalSettings = field(default_factory=JournalSettings)
    gossip: bool = False


class TxPoolActor(Actor):
    """Admits, orders and hands out transactions; see the module docstring."""

    subscribes = (NEW_HEAD, STATE_EDITED)

    def __init__(self, settings: PoolSettings, directory: Directory) -> None:
        self.settings = settings
        self.engine = EngineClient(directory)
        self.accounts: dict[bytes, tuple[int, int]] = {}
        self.worker = Worker("txpool")  # block-sized steps (best, remove_included) off the loop
        self.pool = self._new_pool()
        self.journal = (TxJournal(settings.data_dir / JOURNAL_FILE) if settings.journal.enabled
                        else None)
        self.rejournaled = time.monotonic()
        self.replay_counts = {"journal_replayed": 0, "journal_skipped": 0}
        self.replayed = False  # the journal's transactions are back in the pool
        self.timer: asyncio.Task[None] | None = None

    def _new_pool(self) -> TxPool:
        spec = self.settings.spec
        return TxPool(spec.chain_id, spec.gas_limit, self.accounts.__getitem__,
                      self.settings.limits)

    async def started(self) -> None:
        if self.journal is not None:
            await self._replay(self.journal)
        interval = min(MAINTAIN_SECONDS, self.settings.journal.rejournal)
        self.timer = asyncio.get_running_loop().create_task(
            self._maintain_every(interval), name="txpool-maintain")

    async def _replay(self, journal: TxJournal) -> None:
        """Admit the journal's transactions as if submitted again, then rewrite it with what
        the pool kept (dropping included, replaced and unreadable records)."""
        loaded = journal.load()
        pool = self.pool
        items = await self.worker.run(recover_transactions, loaded.raws, pool.chain_id, pool.fork)
        await self._fetch({i.sender for i in items if isinstance(i, Transaction)})
        pool.admit_many(items)
        # Replayed: back in the pool; skipped: refused, replaced during the replay, or torn.
        # Counted so, not as submissions accepted or refused.
        admitted = len(pool)
        skipped = len(items) - admitted + (1 if loaded.unreadable else 0)
        pool.counters = dict.fromkeys(pool.counters, 0)
        pool.rejected.clear()
        self.replay_counts = {"journal_replayed": admitted, "journal_skipped": skipped}
        if loaded.raws or loaded.unreadable:
            log.info("transaction journal: %d transactions back in the pool, %d skipped "
                     "(included, replaced or unreadable)", admitted, skipped)
        await self._rewrite()
        self.replayed = True

    async def _rewrite(self) -> None:
        if self.journal is not None:
            await self.worker.run(self.journal.rewrite, self.pool.replay_order())
            self.rejournaled = time.monotonic()

    async def _maintain_every(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                self.ref.tell(Maintain())
            except MailboxFull:   # busy: the next round maintains
                log.warning("txpool: mailbox full, maintenance skipped this round")

    async def receive(self, message: PoolMessage) -> object:
        pool = self.pool
        if type(message) is Submit:
            try:
                await self._fetch(
                    {i.sender for i in message.items if isinstance(i, Transaction)}
                )
            except ActorError as exc:  # the engine restarting: refuse, don't crash the pool
                return [TxPoolError(RPC_TX_REJECTED, "state unavailable, retry", str(exc))
                        for _ in message.items]
            results = pool.admit_many(message.items)
            if message.gossip and self.settings.gossip:
                admitted = tuple(r.raw for r in results if isinstance(r, Transaction))
                if admitted:
                    self.system.publish(NEW_TRANSACTIONS, NewTransactions(admitted))
            journal = self.journal
            if journal is not None:
                journal.append([r.raw for r in results if isinstance(r, Transaction)])
                if journal.appended > 2 * len(pool) + JOURNAL_SLACK:
                    await self._rewrite()
            return results
        if type(message) is Best:
            return await self.worker.run(pool.best, message.gas_limit, message.base_fee)
        if type(message) is PooledByRaw:
            return await self.worker.run(pool.pooled_by_raw, message.raws)
        if type(message) is NewHead:
            base_fee = child_base_fee(self.settings.spec, message.header)
            if message.imported is None:
                await self._resync(base_fee)
                return None
            execution = message.imported.execution
            changes = execution.changes.accounts
            # Transactions the builder skipped (they cannot apply at this head) leave too.
            pool.drop(tuple(tx.hash for tx, _ in execution.skipped))
            self._apply(changes)
            if len(self.accounts) > 2 * len(pool.senders()) + _SPARE_ACCOUNTS:
                self._prune()
            await self.worker.run(
                partial(pool.remove_included, base_fee=base_fee, changed=changes.keys()),
                execution.transactions, self.accounts.__getitem__,
            )
            pool.expire()
            return None
        if type(message) is StateEdited:
            self._apply(message.changes)
            await self.worker.run(
                partial(pool.remove_included, base_fee=message.base_fee,
                        changed=message.changes.keys()),
                (), self.accounts.__getitem__,
            )
            pool.expire()
            return None
        if type(message) is Maintain:
            pool.expire()
            if time.monotonic() - self.rejournaled >= self.settings.journal.rejournal:
                await self._rewrite()
            return None
        if type(message) is PendingNonce:
            if pool.has_sender(message.address):
                return pool.pending_nonce(message.address)
            # Not a sender: its account nonce, read without caching (readers are unbounded).
            return (await self.engine.account(message.address)).nonce
        if type(message) is GetPooled:
            return pool.get(message.tx_hash)
        if type(message) is PoolStats:
            oldest = pool.oldest_pending()
            return {**pool.status(), **pool.counters, **self.replay_counts,
                    "rejected": dict(pool.rejected),
                    "oldest_pending": 0.0 if oldest is None else pool.clock() - oldest}
        if type(message) is Drop:
            dropped = pool.drop(message.tx_hashes)
            await self._rewrite()  # or a restart would bring them back
            return dropped
        if type(message) is Dump:
            return [tx for group in pool.content().values()
                    for by_nonce in group.values() for tx in by_nonce.values()]
        if type(message) is Replace:
            self.accounts.clear()
            self.pool = pool = self._new_pool()
            pool.base_fee = message.base_fee
            await self._fetch({tx.sender for tx in message.transactions})
            pool.admit_many(message.transactions)
            await self._rewrite()
            return None
        raise TypeError(f"txpool: unexpected message {message!r}")

    async def _resync(self, base_fee: int) -> None:
        """Re-read every sender from the engine: the head moved without its block."""
        self.accounts.clear()
        senders = self.pool.senders()
        await self._fetch(set(senders))
        self.pool.base_fee = base_fee
        self.pool.resync(senders, self.accounts.__getitem__)

    def pre_restart(self, error: BaseException) -> None:
        self._close()  # the journal stays as appended: the next instance replays it

    def stopped(self) -> None:
        self._close()
        if self.journal is not None and self.replayed:  # not a pool cut short in its replay
            self.journal.rewrite(self.pool.replay_order())

    def _close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.worker.close()
        if self.journal is not None:
            self.journal.close()

    async def _fetch(self, addresses: set[bytes]) -> None:
        missing = [a for a in addresses if a not in self.accounts]
        if missing:
            found = await self.engine.accounts(missing)
            for address, account in zip(missing, found, strict=True):
                self.accounts[address] = (account.nonce, account.balance)

    def _prune(self) -> None:
        """Forget accounts that no longer have pooled transactions (fetched again if needed)."""
        keep = set(self.pool.senders())
        for address in [a for a in self.accounts if a not in keep]:
            del self.accounts[address]

    def _apply(self, changes: Mapping[bytes, Account | None]) -> None:
        accounts = self.accounts
        for address, account in changes.items():
            if address in accounts:
                accounts[address] = (0, 0) if account is None else (account.nonce, account.balance)


class PoolClient:
    """Typed asks to the pool actor."""

    def __init__(self, directory: Directory, timeout: float = 10.0) -> None:
        self.directory = directory
        self.timeout = timeout

    async def submit(
        self, items: Sequence[Transaction | InvalidTransaction], *, gossip: bool = True
    ) -> list[Transaction | TxPoolError]:
        """Admit ``items``; with ``gossip``, the admitted ones go to the peers too."""
        return await self.directory.ref(TXPOOL).ask(Submit(items, gossip), self.timeout)

    async def best(self, gas_limit: int, base_fee: int) -> list[Transaction]:
        return await self.directory.ref(TXPOOL).ask(Best(gas_limit, base_fee), self.timeout)

    async def pooled_by_raw(self, raws: Sequence[bytes]) -> dict[bytes, Transaction]:
        """Those of ``raws`` the pool holds, recovered, by encoding."""
        return await self.directory.ref(TXPOOL).ask(PooledByRaw(raws), self.timeout)

    async def pending_nonce(self, address: bytes) -> int:
        return await self.directory.ref(TXPOOL).ask(PendingNonce(address), self.timeout)

    async def pooled(self, tx_hash: bytes) -> Transaction | None:
        return await self.directory.ref(TXPOOL).ask(GetPooled(tx_hash), self.timeout)

    async def dump(self) -> list[Transaction]:
        return await self.directory.ref(TXPOOL).ask(Dump(), self.timeout)

    async def replace(self, transactions: Sequence[Transaction], base_fee: int) -> None:
        await self.directory.ref(TXPOOL).ask(Replace(transactions, base_fee), self.timeout)

    async def drop(self, tx_hashes: Sequence[bytes]) -> int:
        return await self.directory.ref(TXPOOL).ask(Drop(tx_hashes), self.timeout)

    async def stats(self) -> dict:
        return await self.directory.ref(TXPOOL).ask(PoolStats(), self.timeout)
