"""The chain actor: Aura slots, block authoring, and the head every other actor follows.

At each slot boundary (``slot = unix_ms // slot_ms``) it checks whether the slot is this node's
(``authorities[slot % n]``); if so it takes the pool's best transactions, has the engine
execute them (:func:`build_block`), signs the header and imports the block through the same
:class:`BlockImportWorkflow` peers' blocks will use. Once the block is stored and committed,
the new head goes to the pool (its transactions leave) and to the RPC (subscribers, queries).

A development chain (``ChainSettings.dev_mining`` set, see :mod:`alys_fast.chain.mining`) is driven
instead by its mining mode: a block when transactions arrive (:class:`Mine` with ``auto``),
every ``interval_ms``, or only when asked (:class:`Mine`), each in the slot the dev clock picks.

Merged mining (:mod:`alys_fast.chain.finality`): the actor owns the chain's :class:`Finality`,
fed every imported block. A proof queued with :class:`QueuePow` (submitted to this node's
consensus RPC, or later received from a peer: one path) goes into the next block this node
authors; when a block would be more than ``max_blocks_without_pow`` past the last finalized one
and no proof is queued, the slot is skipped with a "need PoW" log line (production halts until
a proof arrives; ``/health`` says so). The node's ``stats["auxpow"]`` carries the finality for
``/health``, ``/metrics`` and the status page.

Failure is handled by crashing: if authoring or importing fails, the actor raises, its
supervisor restarts it, and :meth:`ChainActor.started` rebuilds the head from storage and checks
the engine agrees, so no half-done block survives a failure. Blocks are authored every slot,
empty or not, as Aura does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import msgspec

from alys_fast.actors import (
    Actor,
    ActorError,
    ActorStopped,
    CircuitOpen,
    Directory,
    MailboxFull,
    Refused,
)
from alys_fast.actors.worker import Worker
from alys_fast.chain.aura import slot_at, slot_author_index, slot_start_ms
from alys_fast.chain.federation import (
    FEDERATION_MESSAGES,
    LOCK_FILE,
    FederatedChain,
    FederationMessage,
    LockFile,
)
from alys_fast.chain.finality import (
    AuxWork,
    Finality,
    FinalityState,
    UnfinalizedHashes,
)
from alys_fast.chain.mining import DevMining, MiningError
from alys_fast.chain.pool_actor import PoolClient
from alys_fast.chain.spec import ChainSpec
from alys_fast.chain.topics import (
    FINALIZED,
    NEW_HEAD,
    POW_QUEUED,
    STATE_EDITED,
    TO_PEERS,
    Finalized,
    NewHead,
    PowQueued,
    StateEdited,
    ToPeers,
)
from alys_fast.chain.workflows import (
    FINALITY_KEY,
    BlockImportError,
    BlockImportWorkflow,
    ImportedBlock,
    build_block,
    child_base_fee,
)
from alys_fast.consensus import SecretKey
from alys_fast.engine.actor import EngineClient
from alys_fast.engine.engine_api import EngineApiError
from alys_fast.engine.errors import EngineError
from alys_fast.engine.interface import BlockEnv, BlockExecution, StateOverrides
from alys_fast.metrics.histogram import Histogram
from alys_fast.metrics.stats import NodeStats
from alys_fast.paths import CHAIN
from alys_fast.storage.actor import StoreClient
from alys_fast.storage.store import StorageError
from alys_fast.validation import (
    Block,
    Header,
    InvalidBlock,
    Transaction,
    decode_header,
)
from alys_fast.validation.actor import RecoveryClient
from alys_fast.validation.blocks import AuxPowHeader

log = logging.getLogger(__name__)


class Tick(msgspec.Struct, frozen=True):
    """The slot ``slot`` has begun."""

    slot: int


class CreateAuxBlock(msgspec.Struct, frozen=True):
    """-> the :class:`AuxWork` over every unfinalized block; refused with :class:`NoWork`."""

    reply_type: ClassVar = AuxWork


class QueuePow(msgspec.Struct, frozen=True):
    """-> True if ``header`` was checked and queued for the next block this node authors, False
    if a proof of the same range already is; refused (``Refused``) naming the broken rule. A
    proof submitted here and one a peer gossips take this one path."""

    reply_type: ClassVar = bool
    header: AuxPowHeader
    gossip: bool = True  # published for the peers (False: a peer's, which the network floods)


class GetQueuedPow(msgspec.Struct, frozen=True):
    """-> the queued AuxPowHeader, or None."""

    reply_type: ClassVar = AuxPowHeader | None


class GetFinality(msgspec.Struct, frozen=True):
    """-> the chain's :class:`FinalityState`."""

    reply_type: ClassVar = FinalityState


class Mine(msgspec.Struct, frozen=True):
    """-> the numbers of the blocks made (dev chains): ``count`` blocks, the first at
    ``timestamp`` if given, each ``interval`` seconds after the one before (the first after
    the head) if given, as anvil's. ``auto``:
    after a submission, blocks only if the chain automines and the pool has transactions.
    Refused with :class:`MiningError` (as every dev message on an Aura node)."""

    reply_type: ClassVar = list[int]
    count: int = 1
    timestamp: int | None = None
    interval: int | None = None
    auto: bool = False


class SetMining(msgspec.Struct, frozen=True):
    """-> None: ``automine`` on or off, or ``interval_ms`` (0: interval mining off)."""

    reply_type: ClassVar = None

    automine: bool | None = None
    interval_ms: int | None = None


class MoveTime(msgspec.Struct, frozen=True):
    """-> the dev clock's total offset in seconds: forward by ``increase`` seconds, or the next
    block at ``next_timestamp``."""

    reply_type: ClassVar = int
    increase: int | None = None
    next_timestamp: int | None = None


class SetNextBaseFee(msgspec.Struct, frozen=True):
    """-> None: the next block's base fee (dev chains)."""

    reply_type: ClassVar = None

    base_fee: int


class EditState(msgspec.Struct, frozen=True):
    """-> None: a dev chain's state edit of the head (``anvil_setBalance``...): each account's
    given balance, nonce, code and slots (``state_diff``), visible at once and made part of
    the next block's state."""

    reply_type: ClassVar = None
    edits: StateOverrides


class GetMining(msgspec.Struct, frozen=True):
    """-> the dev chain's (mode, interval_ms, clock offset in seconds)."""

    reply_type: ClassVar = tuple[str, int, int]


class TakeSnapshot(msgspec.Struct, frozen=True):
    """-> the id of a snapshot of the head, the pool and the dev clock."""

    reply_type: ClassVar = int


class Revert(msgspec.Struct, frozen=True):
    """-> True if the chain, its state, the pool and the clock went back to the snapshot
    ``snapshot_id`` (then forgotten, with every later one); False if there is no such one."""

    reply_type: ClassVar = bool
    snapshot_id: int


ChainMessage = Tick | Mine | SetMining | MoveTime | SetNextBaseFee | GetMining | TakeSnapshot
ChainMessage |= Revert | EditState | CreateAuxBlock | QueuePow | GetQueuedPow | GetFinality
ChainMessage |= FederationMessage
_DEV_MESSAGES = (
    Mine, SetMining, MoveTime, SetNextBaseFee, GetMining, TakeSnapshot, Revert, EditState)
_POW_MESSAGES = (CreateAuxBlock, QueuePow, GetQueuedPow, GetFinality)
# Most blocks one Mine makes: a bounded wait for its asker.
MAX_MINE = 10_000


@dataclass(frozen=True)
class ChainSettings:
    """What the chain actor is built with.

    ``authority_key``: this node's block-signing secret (None: it never authors).
    ``dev_mining``: a development chain's mining mode and clock (None: Aura slots on the wall
    clock); kept by the node, not the actor, so that an actor restart keeps them.
    ``syncing``: a node with peers (fork choice with the federation) asks it whether sync is
    catching up, when the actor starts; None: a lone node, which imports what it builds.
    ``data_dir``: where an authority with peers keeps what it approved last (``LOCK_FILE``).
    """

    spec: ChainSpec
    authority_key: bytes | None = None
    dev_mining: DevMining | None = None
    syncing: Callable[[], bool] | None = None
    data_dir: Path | None = None


class ChainActor(Actor):
    """Authors blocks in this node's Aura slots and keeps the head; see the module docstring.

    ``stats``: the node's, where it keeps ``"chain"`` and ``"auxpow"`` (see the module
    docstring)."""

    def __init__(self, settings: ChainSettings, directory: Directory, stats: NodeStats) -> None:
        self.settings = settings
        self.spec = settings.spec
        self.engine = EngineClient(directory)
        self.store = StoreClient(directory)
        self.pool = PoolClient(directory)
        self.recovery = RecoveryClient(directory, self.spec.chain_id)
        self.head: Header | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.worker = Worker("chain")  # hashing and validating blocks, off the event loop
        self.my_slot: int | None = None
        self.dev = settings.dev_mining  # None: an Aura node on the wall clock
        self.finality: Finality | None = None  # loaded from storage when the actor starts
        # A dev chain's state after edits since the head block (None: the head's own).
        self.edited_root: bytes | None = None
        # Fork choice with the federation's peers (None: a lone node imports what it builds).
        self.federation: FederatedChain | None = None
        # Why the last block could not be made, if the execution engine failed it.
        self.engine_failure: str | None = None
        if settings.authority_key is not None:
            me = SecretKey.from_bytes(settings.authority_key).public_key()
            authorities = self.spec.authority_keys()
            if me not in authorities:
                raise ValueError(
                    f"the authority key's public key 0x{me.to_bytes().hex()} is not in the spec")
            self.my_slot = authorities.index(me)
        # Owned here, copied out by the metrics actor.
        self.stats = stats.setdefault("chain", {
            "head": 0, "blocks": 0, "transactions": 0, "missed_slots": 0,
            "build_seconds": Histogram(), "import_seconds": Histogram(),
        })
        self.pow_stats = stats.setdefault("auxpow", {"halted": None})

    async def started(self) -> None:
        head = await self.store.head_header()
        root = await self.engine.state_root()
        edited = await self.store.edited_root()
        if root != head.state_root and root != edited:
            # A block was stored but the engine never committed it (the commit ask failed):
            # the store is the truth, so the engine reloads from it.
            log.warning("engine behind stored head %d: reloading it from storage", head.number)
            root = await self.engine.reload()
        if root not in (head.state_root, edited):
            raise RuntimeError(
                f"engine state 0x{root.hex()} is not head {head.number}'s 0x{head.state_root.hex()}"
            )
        self.head = head
        self.edited_root = edited
        self.stats["head"] = head.number
        self.finality = await self._load_finality(head)
        syncing = self.settings.syncing
        if syncing is not None:
            data_dir = self.settings.data_dir
            self.federation = FederatedChain(
                self, self.spec, head, secret_key=self.settings.authority_key,
                syncing=syncing(), recover=self._recover,
                lock_file=None if data_dir is None else LockFile(data_dir / LOCK_FILE))
        self.system.publish(NEW_HEAD, NewHead(head, finalized=self.finality.state.finalized_number))
        log.info("chain at head %d 0x%s", head.number, head.hash.hex())
        self._schedule()

    async def receive(self, message: ChainMessage) -> object:
        kind = type(message)
        if kind is Tick:
            try:
                if self.dev is None:
                    await self._on_slot(message.slot)
                elif self.dev.mode == "interval":
                    await self._mine(Mine())
            finally:
                self._schedule()
            return None
        if kind in _POW_MESSAGES:
            return self._pow(message)
        if kind in FEDERATION_MESSAGES:
            if self.federation is None:
                raise Refused("this node has no peers: it takes no blocks from them")
            return await self.federation.receive(message)
        if kind not in _DEV_MESSAGES:
            raise TypeError(f"chain: unexpected message {message!r}")
        dev = self.dev
        if dev is None:
            raise MiningError("this node authors in its Aura slots: it is not a dev chain")
        if kind is Mine:
            return await self._mine(message)
        if kind is SetMining:
            if message.automine is not None:
                dev.set_automine(message.automine)
            if message.interval_ms is not None:
                dev.set_interval(message.interval_ms)
            self._schedule()
            return None
        if kind is MoveTime:
            if message.increase is not None:
                return dev.increase_time(message.increase)
            if message.next_timestamp is not None:
                assert self.head is not None
                dev.set_next_timestamp(message.next_timestamp, self.head.timestamp)
            return dev.offset_ms // 1000
        if kind is EditState:
            return await self._edit(message.edits)
        if kind is SetNextBaseFee:
            dev.next_base_fee = message.base_fee
            return None
        if kind is GetMining:
            return dev.mode, dev.interval_ms, dev.offset_ms // 1000
        if kind is TakeSnapshot:
            assert self.head is not None
            return dev.snapshot(self.head.number, self.head.hash, await self.pool.dump())
        return await self._revert(message.snapshot_id)

    def pre_restart(self, error: BaseException) -> None:
        self._cancel()
        self.worker.close()

    # --- merged mining ----------------------------------------------------------------------

    def _pow(self, message: ChainMessage) -> object:
        finality = self.finality
        assert finality is not None
        kind = type(message)
        if kind is CreateAuxBlock:
            return finality.work()   # NoWork refuses
        if kind is QueuePow:
            try:
                queued = finality.queue(message.header)
            except InvalidBlock as exc:
                raise Refused(str(exc)) from None
            if queued:
                log.info("queued an AuxPoW for the blocks up to 0x%s",
                         message.header.range_end.hex())
                if message.gossip:
                    self.system.publish(POW_QUEUED, PowQueued(message.header))
            self._publish_finality()
            return queued
        if kind is GetQueuedPow:
            return finality.queued
        return finality.state

    async def _load_finality(self, head: Header) -> Finality:
        """The finality stored with the blocks, and the hashes of the blocks after it."""
        raw = await self.store.meta(FINALITY_KEY)
        if raw is None:
            state = FinalityState.genesis(self.spec, (await self.store.block_hashes(0, 0))[0])
        else:
            state = FinalityState.decode(raw)
        hashes = await self.store.block_hashes(state.finalized_number + 1, head.number)
        finality = Finality(self.spec, state, UnfinalizedHashes(hashes), head.number)
        self.finality = finality
        self._publish_finality()
        return finality

    async def _finality_at(self, number: int) -> FinalityState:
        """The finality as it was when block ``number`` was the head (a dev chain's revert):
        each PoW block names the previous one (``height - 1``) and its range's end."""
        assert self.finality is not None
        state = self.finality.state
        while state.pow_number > number:
            aux = (await self._header_at(state.pow_number)).auxpow
            assert aux is not None, "a PoW block carries an AuxPoW header"
            previous = aux.height - 1
            if previous == 0:
                genesis = (await self.store.block_hashes(0, 0))[0]
                state = FinalityState.genesis(self.spec, genesis)
                continue
            header = await self._header_at(previous)
            assert header.auxpow is not None
            end = await self.store.block(hash=header.auxpow.range_end)
            assert end is not None
            state = FinalityState(end.number, end.hash, previous, header.hash, header.auxpow.bits)
        return state

    async def _header_at(self, number: int) -> Header:
        record = await self.store.block(number=number)
        assert record is not None, f"block {number} is stored"
        return decode_header(record.header)

    def _proof_for_next_block(self) -> AuxPowHeader | None:
        assert self.finality is not None
        try:
            return self.finality.proof_for_next_block()
        except InvalidBlock as exc:
            log.warning("dropping the queued AuxPoW, no longer valid on the head: %s", exc)
            return None

    def _publish_finality(self) -> None:
        """The finality into ``stats["auxpow"]``, for /health, /metrics and the status page."""
        finality = self.finality
        assert finality is not None
        state = finality.state
        if state.finalized_number > self.pow_stats.get("finalized", state.finalized_number):
            self.system.publish(FINALIZED, Finalized(state.finalized_number, state.finalized_hash))
        self.pow_stats.update(
            finalized=state.finalized_number,
            finalized_hash=state.finalized_hash,
            pow_block=state.pow_number,
            blocks_since_finality=finality.blocks_since_finality(),
            max_blocks_without_pow=self.spec.max_blocks_without_pow,
            queued=finality.queued is not None,
        )

    def stopped(self) -> None:
        self._cancel()
        self.worker.close()

    # --- slots ------------------------------------------------------------------------------

    def _schedule(self) -> None:
        """Arm a timer for the start of the next slot (a dev chain: of the next mining
        interval, and only when it mines by interval)."""
        self._cancel()
        dev = self.dev
        if dev is not None and dev.mode != "interval":
            return
        period = self.spec.slot_ms if dev is None else dev.interval_ms
        now_ms = time.time_ns() // 1_000_000
        slot = slot_at(now_ms, period) + 1
        delay = (slot_start_ms(slot, period) - now_ms) / 1000
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
        if self.federation is not None:
            await self.federation.on_slot(max(now, slot))
            return
        if self.my_slot is None:
            return
        if now > slot:  # behind: count our own slots that passed without a block
            first, n, mine = max(slot, head.slot + 1), len(self.spec.authorities), self.my_slot
            self.stats["missed_slots"] += max(0, (now - 1 - mine) // n - (first - 1 - mine) // n)
            slot = now
        if slot <= head.slot or slot_author_index(self.spec, slot) != self.my_slot:
            return
        await self._author(head, slot)

    async def _mine(self, request: Mine) -> list[int]:
        """Make the blocks a dev chain is asked for (see :class:`Mine`); their numbers."""
        dev = self.dev
        assert dev is not None
        if self.my_slot is None:
            raise MiningError("this node has no authority key: it cannot make blocks")
        if not 1 <= request.count <= MAX_MINE:
            raise MiningError(f"blocks to mine must be 1 to {MAX_MINE}, got {request.count}")
        if request.auto and dev.mode != "auto":
            return []
        made: list[int] = []
        timestamp = request.timestamp
        for _ in range(MAX_MINE if request.auto else request.count):
            head = self.head
            assert head is not None
            if request.interval is not None and (made or timestamp is None):
                timestamp = head.timestamp + request.interval  # anvil's: each after the last
            candidates = None
            base_fee = dev.next_base_fee
            if base_fee is None:
                base_fee = child_base_fee(self.spec, head)
            if request.auto:
                candidates = await self.pool.best(self.spec.gas_limit, base_fee)
                if not candidates:
                    break  # the set base fee waits for the next block made
            now_ms = time.time_ns() // 1_000_000
            slot = dev.next_slot(head.slot, now_ms, self.spec.slot_ms, timestamp)
            dev.next_base_fee = None  # used once
            included = await self._author(head, slot, candidates, base_fee)
            if included is None:  # halted for lack of PoW, or the engine failed
                if request.auto or made:
                    break
                raise MiningError(str(self.pow_stats["halted"] or self.engine_failure))
            made.append(head.number + 1)
            if request.auto and not included:
                break  # nothing in the pool can go in a block: do not spin
            timestamp = None
        return made

    async def _edit(self, edits: StateOverrides) -> None:
        """Edit the head state: the engine runs the edit as a block without transactions,
        the store keeps it ahead of the next block, the engine commits it, and the next block
        builds on it; the pool hears of the accounts, as after a block."""
        head = self.head
        assert head is not None
        env = BlockEnv(number=head.number + 1, timestamp=head.timestamp,
                       fee_recipient=self.spec.fee_recipient_bytes(), gas_limit=head.gas_limit,
                       base_fee=child_base_fee(self.spec, head))
        try:
            execution = await self.engine.edit(env, edits)
        except EngineError as exc:
            raise MiningError(str(exc)) from None
        await self.store.write_edit(execution.changes, execution.state_root)
        await self.engine.commit(execution, None)
        self.edited_root = execution.state_root
        self.system.publish(STATE_EDITED, StateEdited(execution.changes.accounts, env.base_fee))

    async def _revert(self, snapshot_id: int) -> bool:
        """Go back to a snapshot: storage unwinds to its block, the engine reloads from
        storage, the pool holds what it held then, the RPC follows the head back."""
        dev = self.dev
        assert dev is not None
        snapshot = dev.take_snapshot(snapshot_id)
        if snapshot is None:
            return False
        finality = await self._finality_at(snapshot.number)
        try:
            await self.store.unwind(snapshot.number, {FINALITY_KEY: finality.encode()})
        except StorageError as exc:  # its history was pruned: the client's answer
            raise MiningError(f"cannot revert to snapshot {snapshot_id}: {exc}") from None
        await self.engine.reload()
        head = await self.store.head_header()
        if head.hash != snapshot.block_hash:
            raise RuntimeError(f"reverted to block {head.number} 0x{head.hash.hex()}, not the "
                               f"snapshot's 0x{snapshot.block_hash.hex()}")
        self.head = head
        self.edited_root = None
        self.stats["head"] = head.number
        await self._load_finality(head)
        await self.pool.replace(snapshot.transactions, child_base_fee(self.spec, head))
        self.system.publish(NEW_HEAD, NewHead(head, finalized=finality.finalized_number))
        self._schedule()
        return True

    async def _author(
        self, parent: Header, slot: int, candidates: list | None = None,
        base_fee: int | None = None,
    ) -> int | None:
        """Build, import and publish the block of ``slot`` on ``parent`` from ``candidates``
        (None: the pool's best), at ``base_fee`` (None: EIP-1559's), with the queued proof if
        there is one; the number of transactions it holds, or None if the slot is skipped
        because the block would be invalid without a proof ("need PoW") or the execution
        engine failed (``engine_failure`` says how: an external engine down or refusing)."""
        assert self.settings.authority_key is not None and self.finality is not None
        spec = self.spec
        auxpow = self._proof_for_next_block()
        if self._halted_for_pow(parent, slot, auxpow):
            return None
        started = time.perf_counter()
        if base_fee is None:
            base_fee = child_base_fee(spec, parent)
        if candidates is None:
            candidates = await self.pool.best(spec.gas_limit, base_fee)
        try:
            block, execution = await build_block(
                spec, parent, candidates, self.engine, slot, self.settings.authority_key,
                offload=self.worker.run, base_fee=base_fee, parent_state_root=self.edited_root,
                auxpow=auxpow,
            )
            built = time.perf_counter()
            workflow = BlockImportWorkflow(
                parent, spec=spec, engine=self.engine, store=self.store, on_head=self._on_head,
                offload=self.worker.run, base_fee=base_fee, parent_state_root=self.edited_root,
                finality=self.finality,
            )
            known = {tx.raw: tx for tx in execution.transactions}
            await workflow.run(block, execution=execution, known=known)
        except (EngineApiError, BlockImportError) as exc:
            failure = exc if isinstance(exc, EngineApiError) else exc.__cause__
            if not isinstance(failure, EngineApiError):
                raise
            # An external engine down, hung or refusing: nothing was stored; the slot passes.
            reason = f"block {parent.number + 1} not made: {exc}"
            (log.info if reason == self.engine_failure else log.warning)("%s", reason)
            self.engine_failure = reason
            return None
        self.engine_failure = None
        stats = self.stats
        stats["build_seconds"].observe(built - started)
        stats["import_seconds"].observe(time.perf_counter() - built)
        return len(execution.transactions)

    def _halted_for_pow(self, parent: Header, slot: int, auxpow: AuxPowHeader | None) -> bool:
        """Whether the child of ``parent`` would be invalid without a proof and none is queued
        ("need PoW": the slot is skipped, the halt is logged once and shown by ``/health``)."""
        finality = self.finality
        assert finality is not None
        if auxpow is not None or not finality.needs_pow(parent.number + 1):
            self.pow_stats["halted"] = None
            return False
        halted = (
            f"need PoW: block {parent.number + 1} would be "
            f"{finality.blocks_since_finality(parent.number + 1)} blocks past the last "
            f"finalized block {finality.state.finalized_number} (at most "
            f"{self.spec.max_blocks_without_pow} without a proof); production is halted until "
            "a proof is submitted to the consensus RPC (submitauxblock)"
        )
        if self.pow_stats["halted"] is None:
            log.warning("%s", halted)
        else:
            log.info("need PoW: slot %d skipped", slot)
        self.pow_stats["halted"] = halted
        return True

    # --- the federation (a node with peers; alys_fast.chain.federation) ------------------------

    async def build_proposal(
        self, parent: Header, slot: int
    ) -> tuple[Block, BlockExecution] | None:
        """The block of ``slot`` on ``parent`` from the pool's best, built and signed but not
        imported (the federation approves it first); None if the slot is skipped ("need
        PoW")."""
        assert self.settings.authority_key is not None
        auxpow = self._proof_for_next_block()
        if self._halted_for_pow(parent, slot, auxpow):
            return None
        base_fee = child_base_fee(self.spec, parent)
        candidates = await self.pool.best(self.spec.gas_limit, base_fee)
        return await build_block(
            self.spec, parent, candidates, self.engine, slot, self.settings.authority_key,
            offload=self.worker.run, base_fee=base_fee, auxpow=auxpow)

    def import_workflow(self, parent: Header, *, candidate: bool) -> BlockImportWorkflow:
        """A workflow importing a child of ``parent`` under the chain's finality (a
        ``candidate`` is only checked and executed; its approvals are not checked again: the
        fork choice verified them, its author's among them, when it took the block)."""
        return BlockImportWorkflow(
            parent, spec=self.spec, engine=self.engine, store=self.store, on_head=self._on_head,
            offload=self.worker.run, finality=self.finality,
            min_approvals=0 if candidate else None)

    def publish_to_peers(self, message: ToPeers) -> None:
        self.system.publish(TO_PEERS, message)

    async def _recover(self, block: Block) -> dict[bytes, Transaction]:
        """``block``'s transactions by raw encoding: those in the pool as its admission
        recovered them (a signature is checked once per node, not again per block), the
        others in the recovery processes (the workflow then checks the rest without recovering
        them again)."""
        try:
            known = await self.pool.pooled_by_raw(block.transactions)
        except ActorError:  # the pool restarting: recover them all
            known = {}
        missing = [raw for raw in block.transactions if raw not in known]
        if missing:
            txs = await self.recovery.recover(missing)
            known.update((tx.raw, tx) for tx in txs if isinstance(tx, Transaction))
        return known

    def _on_head(self, imported: ImportedBlock) -> None:
        header = imported.header
        self.head = header
        self.edited_root = None
        assert self.finality is not None
        self.finality.advance(header)
        self._publish_finality()
        if header.auxpow is not None:
            log.info("block %d finalizes up to block %d", header.number,
                     self.finality.state.finalized_number)
        execution = imported.execution
        self.stats["head"] = header.number
        self.stats["blocks"] += 1
        self.stats["transactions"] += len(execution.transactions)
        self.system.publish(
            NEW_HEAD, NewHead(header, imported, self.finality.state.finalized_number))
        if self.federation is not None:
            self.federation.on_head(header)


class ChainClient:
    """Typed asks to the chain actor: a dev chain's mining, clock and snapshots. A refusal
    (:class:`MiningError`, e.g. a timestamp before the head's) is raised by the ask."""

    def __init__(self, directory: Directory, timeout: float = 10.0) -> None:
        self.directory = directory
        self.timeout = timeout

    async def _ask(self, message: ChainMessage, timeout: float | None = None) -> Any:
        return await self.directory.ref(CHAIN).ask(message, timeout or self.timeout)

    async def mine(self, count: int = 1, timestamp: int | None = None,
                   interval: int | None = None) -> list[int]:
        # Each block is a few ms; the wait grows with the count asked for.
        return await self._ask(Mine(count, timestamp, interval), self.timeout + count * 0.05)

    async def automine(self) -> list[int]:
        """After a submission: the blocks automining made (none unless the chain automines)."""
        return await self._ask(Mine(auto=True), self.timeout * 6)

    async def set_mining(self, *, automine: bool | None = None,
                         interval_ms: int | None = None) -> None:
        await self._ask(SetMining(automine, interval_ms))

    async def move_time(self, *, increase: int | None = None,
                        next_timestamp: int | None = None) -> int:
        return await self._ask(MoveTime(increase, next_timestamp))

    async def edit_state(self, edits: StateOverrides) -> None:
        await self._ask(EditState(edits))

    async def set_next_base_fee(self, base_fee: int) -> None:
        await self._ask(SetNextBaseFee(base_fee))

    async def mining(self) -> tuple[str, int, int]:
        return await self._ask(GetMining())

    async def snapshot(self) -> int:
        return await self._ask(TakeSnapshot())

    async def revert(self, snapshot_id: int) -> bool:
        return await self._ask(Revert(snapshot_id), self.timeout * 6)

    async def create_aux_block(self) -> AuxWork:
        """The work over every unfinalized block; NoWork if there is none."""
        return await self._ask(CreateAuxBlock())

    async def queue_pow(self, header: AuxPowHeader) -> bool:
        """Check and queue a proof for the next block (``Refused`` names the broken rule)."""
        return await self._ask(QueuePow(header))

    async def queued_pow(self) -> AuxPowHeader | None:
        return await self._ask(GetQueuedPow())

    async def finality(self) -> FinalityState:
        return await self._ask(GetFinality())
