"""The chain actor: Aura slots, block authoring, and the head every other actor follows.

At each slot boundary (``slot = unix_ms // slot_ms``) it checks whether the slot is this node's
(``authorities[slot % n]``); if so it takes the pool's best transactions, has the engine
execute them (:func:`build_block`), signs the header and imports the block through the same
:class:`BlockImportWorkflow` peers' blocks will use. Once the block is stored and committed,
the new head goes to the pool (its transactions leave) and to the RPC (subscribers, queries).

Failure is handled by crashing: if authoring or importing fails, the actor raises, its
supervisor restarts it, and :meth:`ChainActor.started` rebuilds the head from storage and checks
the engine agrees, so no half-done block survives a failure. Blocks are authored every slot,
empty or not, as Aura does.
"""

from __future__ import annotations

import asyncio
import logging
import time

import msgspec

from alys_fast.actors import Actor, ActorStopped, CircuitOpen, MailboxFull
from alys_fast.chain.aura import slot_at, slot_author_index, slot_start_ms
from alys_fast.chain.pool_actor import BlockIncluded, PoolClient, Resync
from alys_fast.chain.workflows import (
    BlockImportWorkflow,
    ImportedBlock,
    authority_addresses,
    build_block,
    child_base_fee,
)
from alys_fast.engine.actor import EngineClient
from alys_fast.metrics.histogram import Histogram
from alys_fast.node.context import RPC, TXPOOL, NodeContext
from alys_fast.node.offload import Worker
from alys_fast.storage.actor import StoreClient
from alys_fast.validation import Header
from alys_fast.validation.blocks import address_of

log = logging.getLogger(__name__)


class Tick(msgspec.Struct, frozen=True):
    """The slot ``slot`` has begun."""

    slot: int


class NewHead(msgspec.Struct, frozen=True):
    """Told to the RPC actor when the head moves (``imported`` None after a restart)."""

    header: Header
    imported: ImportedBlock | None = None


ChainMessage = Tick


class ChainActor(Actor):
    """Authors blocks in this node's Aura slots and keeps the head; see the module docstring."""

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        self.spec = ctx.spec
        self.engine = EngineClient(ctx)
        self.store = StoreClient(ctx)
        self.pool = PoolClient(ctx)
        self.head: Header | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.worker = Worker("chain")  # hashing and validating blocks, off the event loop
        self.my_slot: int | None = None
        if ctx.authority_key is not None:
            me = address_of(ctx.authority_key)
            authors = authority_addresses(self.spec)
            if me not in authors:
                raise ValueError(f"the authority key's address 0x{me.hex()} is not in the spec")
            self.my_slot = authors.index(me)
        # Owned here, copied out by the metrics actor.
        self.stats = ctx.stats.setdefault("chain", {
            "head": 0, "blocks": 0, "transactions": 0, "missed_slots": 0,
            "build_seconds": Histogram(), "import_seconds": Histogram(),
        })

    async def started(self) -> None:
        head = await self.store.head_header()
        root = await self.engine.state_root()
        if root != head.state_root:
            # A block was stored but the engine never committed it (the commit ask failed):
            # the store is the truth, so the engine reloads from it.
            log.warning("engine behind stored head %d: reloading it from storage", head.number)
            root = await self.engine.reload()
        if root != head.state_root:
            raise RuntimeError(
                f"engine state 0x{root.hex()} is not head {head.number}'s 0x{head.state_root.hex()}"
            )
        self.head = head
        self.stats["head"] = head.number
        self.ctx.tell(TXPOOL, Resync(child_base_fee(self.spec, head)))
        self.ctx.tell(RPC, NewHead(head))
        log.info("chain at head %d 0x%s", head.number, head.hash.hex())
        self._schedule()

    async def receive(self, message: ChainMessage) -> object:
        if type(message) is Tick:
            try:
                await self._on_slot(message.slot)
            finally:
                self._schedule()
            return None
        raise TypeError(f"chain: unexpected message {message!r}")

    def pre_restart(self, error: BaseException) -> None:
        self._cancel()
        self.worker.close()

    def stopped(self) -> None:
        self._cancel()
        self.worker.close()

    # --- slots ------------------------------------------------------------------------------

    def _schedule(self) -> None:
        """Arm a timer for the start of the next slot."""
        self._cancel()
        slot_ms = self.spec.slot_ms
        now_ms = time.time_ns() // 1_000_000
        slot = slot_at(now_ms, slot_ms) + 1
        delay = (slot_start_ms(slot, slot_ms) - now_ms) / 1000
        self.timer = asyncio.get_running_loop().call_later(delay, self._tick, slot)

    def _tick(self, slot: int) -> None:
        self.timer = None
        try:
            self.ref.tell(Tick(slot))
        except MailboxFull:
            self._schedule()  # far behind: skip this slot, keep the clock running
        except (ActorStopped, CircuitOpen):
            return  # stopping: its successor arms its own timer

    def _cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    async def _on_slot(self, slot: int) -> None:
        now = slot_at(time.time_ns() // 1_000_000, self.spec.slot_ms)
        head = self.head
        assert head is not None
        if self.my_slot is None:
            return
        if now > slot:  # behind: count our own slots that passed without a block
            first, n, mine = max(slot, head.slot + 1), len(self.spec.authorities), self.my_slot
            self.stats["missed_slots"] += max(0, (now - 1 - mine) // n - (first - 1 - mine) // n)
            slot = now
        if slot <= head.slot or slot_author_index(self.spec, slot) != self.my_slot:
            return
        await self._author(head, slot)

    async def _author(self, parent: Header, slot: int) -> None:
        assert self.ctx.authority_key is not None
        spec = self.spec
        started = time.perf_counter()
        candidates = await self.pool.best(spec.gas_limit, child_base_fee(spec, parent))
        block, execution = await build_block(
            spec, parent, candidates, self.engine, slot, self.ctx.authority_key,
            offload=self.worker.run,
        )
        built = time.perf_counter()
        workflow = BlockImportWorkflow(
            parent, spec=spec, engine=self.engine, store=self.store, on_head=self._on_head,
            offload=self.worker.run,
        )
        known = {tx.raw: tx for tx in execution.transactions}
        await workflow.run(block, execution=execution, known=known)
        stats = self.stats
        stats["build_seconds"].observe(built - started)
        stats["import_seconds"].observe(time.perf_counter() - built)

    def _on_head(self, imported: ImportedBlock) -> None:
        header = imported.header
        self.head = header
        execution = imported.execution
        self.stats["head"] = header.number
        self.stats["blocks"] += 1
        self.stats["transactions"] += len(execution.transactions)
        self.ctx.tell(
            TXPOOL,
            BlockIncluded(
                execution.transactions, execution.changes.accounts,
                child_base_fee(self.spec, header), tuple(tx.hash for tx, _ in execution.skipped),
            ),
        )
        self.ctx.tell(RPC, NewHead(header, imported))
