"""The transaction pool actor: the only owner of the node's :class:`TxPool`.

The pool judges transactions against the head state, which the engine owns. It keeps its own
copy of the few accounts it needs (its senders' nonce and balance): fetched from the engine in
one ask when a batch brings new senders, and kept current by the state changes each new block
carries (:class:`BlockIncluded`), so admission never waits on another actor for known senders.
Accounts whose transactions all left the pool are pruned, so the copy stays the size of the
pool's senders, not of everyone who ever sent.
After a restart the pool is empty (pending transactions are not persisted, as in geth without
its journal) and senders are fetched afresh.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from functools import partial

import msgspec

from alys_fast.actors import Actor, ActorError
from alys_fast.chain.txpool import RPC_TX_REJECTED, TxPool, TxPoolError, TxPoolLimits
from alys_fast.engine.actor import EngineClient
from alys_fast.engine.state import Account
from alys_fast.node.context import TXPOOL, NodeContext
from alys_fast.node.offload import Worker
from alys_fast.validation import InvalidTransaction, Transaction

# Cached accounts beyond twice the pooled senders before a prune (a prune costs O(cache)).
_SPARE_ACCOUNTS = 4096


class Submit(msgspec.Struct, frozen=True):
    """-> one result per item: the pooled Transaction or the TxPoolError refusing it."""

    items: Sequence[Transaction | InvalidTransaction]


class Best(msgspec.Struct, frozen=True):
    """-> the transactions for the next block, in execution order."""

    gas_limit: int
    base_fee: int


class BlockIncluded(msgspec.Struct, frozen=True):
    """A new head: its transactions leave the pool, its state changes update the senders."""

    transactions: Sequence[Transaction]
    changes: Mapping[bytes, Account | None]
    base_fee: int
    # Transactions the builder skipped (they cannot apply at this head): they leave the pool.
    dropped: Sequence[bytes] = ()


class PendingNonce(msgspec.Struct, frozen=True):
    """-> the nonce the address's next transaction should use."""

    address: bytes


class GetPooled(msgspec.Struct, frozen=True):
    """-> the pooled transaction with this hash, or None."""

    tx_hash: bytes


class PoolStats(msgspec.Struct, frozen=True):
    """-> {"pending", "queued", counters..., "rejected": {reason: n}, "oldest_pending": the
    seconds the longest-waiting pending transaction has been pooled (0: none)}."""


class Resync(msgspec.Struct, frozen=True):
    """Re-read every sender from the engine (the head moved without a BlockIncluded)."""

    base_fee: int


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


PoolMessage = Submit | Best | BlockIncluded | PendingNonce | GetPooled | PoolStats | Resync
PoolMessage |= Dump | Replace | Drop


class TxPoolActor(Actor):
    """Admits, orders and hands out transactions; see the module docstring."""

    def __init__(self, ctx: NodeContext, limits: TxPoolLimits | None = None) -> None:
        self.ctx = ctx
        self.engine = EngineClient(ctx)
        self.accounts: dict[bytes, tuple[int, int]] = {}
        self.worker = Worker("txpool")  # block-sized steps (best, remove_included) off the loop
        self.limits = limits
        self.pool = self._new_pool()

    def _new_pool(self) -> TxPool:
        spec = self.ctx.spec
        return TxPool(spec.chain_id, spec.gas_limit, self.accounts.__getitem__, self.limits)

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
            return pool.admit_many(message.items)
        if type(message) is Best:
            return await self.worker.run(pool.best, message.gas_limit, message.base_fee)
        if type(message) is BlockIncluded:
            pool.drop(message.dropped)
            self._apply(message.changes)
            if len(self.accounts) > 2 * len(pool.senders()) + _SPARE_ACCOUNTS:
                self._prune()
            await self.worker.run(
                partial(pool.remove_included, base_fee=message.base_fee),
                message.transactions, self.accounts.__getitem__,
            )
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
            return {**pool.status(), **pool.counters, "rejected": dict(pool.rejected),
                    "oldest_pending": 0.0 if oldest is None else time.monotonic() - oldest}
        if type(message) is Drop:
            return pool.drop(message.tx_hashes)
        if type(message) is Dump:
            return [tx for group in pool.content().values()
                    for by_nonce in group.values() for tx in by_nonce.values()]
        if type(message) is Replace:
            self.accounts.clear()
            self.pool = pool = self._new_pool()
            pool.base_fee = message.base_fee
            await self._fetch({tx.sender for tx in message.transactions})
            pool.admit_many(message.transactions)
            return None
        if type(message) is Resync:
            self.accounts.clear()
            senders = pool.senders()
            await self._fetch(set(senders))
            pool.base_fee = message.base_fee
            pool.resync(senders, self.accounts.__getitem__)
            return None
        raise TypeError(f"txpool: unexpected message {message!r}")

    def pre_restart(self, error: BaseException) -> None:
        self.worker.close()

    def stopped(self) -> None:
        self.worker.close()

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

    def __init__(self, ctx: NodeContext, timeout: float = 10.0) -> None:
        self.ctx = ctx
        self.timeout = timeout

    async def submit(
        self, items: Sequence[Transaction | InvalidTransaction]
    ) -> list[Transaction | TxPoolError]:
        return await self.ctx.ref(TXPOOL).ask(Submit(items), self.timeout)

    async def best(self, gas_limit: int, base_fee: int) -> list[Transaction]:
        return await self.ctx.ref(TXPOOL).ask(Best(gas_limit, base_fee), self.timeout)

    async def pending_nonce(self, address: bytes) -> int:
        return await self.ctx.ref(TXPOOL).ask(PendingNonce(address), self.timeout)

    async def pooled(self, tx_hash: bytes) -> Transaction | None:
        return await self.ctx.ref(TXPOOL).ask(GetPooled(tx_hash), self.timeout)

    async def dump(self) -> list[Transaction]:
        return await self.ctx.ref(TXPOOL).ask(Dump(), self.timeout)

    async def replace(self, transactions: Sequence[Transaction], base_fee: int) -> None:
        await self.ctx.ref(TXPOOL).ask(Replace(transactions, base_fee), self.timeout)

    async def drop(self, tx_hashes: Sequence[bytes]) -> int:
        return await self.ctx.ref(TXPOOL).ask(Drop(tx_hashes), self.timeout)

    async def stats(self) -> dict:
        return await self.ctx.ref(TXPOOL).ask(PoolStats(), self.timeout)
