"""The chain actor's federation side: it drives fork choice (:class:`Consensus`) for a node
with peers, and carries out the actions it returns.

A node with peers (``ChainSettings.syncing`` set) does not import its own blocks at once, as a lone
authority does: each slot it asks :meth:`Consensus.on_slot`; an ``Author`` is built (the chain
actor's build path) and handed back as this node's proposal; blocks and approvals from peers
come in as :class:`PeerBlock` / :class:`PeerApproval`. ``Validate`` runs the block through
:class:`BlockImportWorkflow` up to execution, without storing or committing
(:meth:`BlockImportWorkflow.execute`), and keeps that execution, so ``ImportBlock`` (the
certificate reached) stores and commits the block with its aggregate approvals without
executing it again. What goes to peers (``Gossip``, ``Penalize``, ``RequestSync``) is published
on :data:`~alys_fast.chain.topics.TO_PEERS`: the chain does not know the network, the node's
gossip actor does. Blocks from sync come as :class:`ImportBlocks` and go through the same
workflow with the full approval threshold; every imported block moves the fork choice's head.
While the node syncs (:class:`SetSyncing`, and at start what ``ChainSettings.syncing`` says) it
neither authors nor approves (:class:`Consensus`'s rule 8).

How long a block takes, in the chain's stats (``/metrics``: ``alys_chain_block_<key>``):
``wait_seconds`` / ``approval_wait_seconds`` from a peer's block / approval taken off the
network to the chain handling it (the gossip actor's and the chain's mailboxes);
``lookup_seconds`` finding a peer's block's transactions in the pool (or recovering them),
``validate_seconds`` executing it; ``approvals_seconds`` from this node's own block built to its
⌈2n/3⌉ approvals gathered (propagation, the peers' validation, their approvals' way back);
``certify_seconds`` from a peer's block taken off the network to its import here.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar, Protocol

import msgspec

from alys_fast.chain.spec import ChainSpec
from alys_fast.chain.topics import ToPeers
from alys_fast.chain.workflows import (
    BlockImportError,
    BlockImportWorkflow,
    SegmentReport,
    block_at_fault,
    import_segment,
)
from alys_fast.consensus import (
    Action,
    AggregateApproval,
    Approval,
    Author,
    BlockRef,
    Consensus,
    Equivocation,
    Gossip,
    ImportBlock,
    Lock,
    Penalize,
    Prevote,
    Proposal,
    RequestSync,
    SaveLock,
    SecretKey,
    Validate,
)
from alys_fast.engine import BlockExecution
from alys_fast.metrics.histogram import Histogram
from alys_fast.validation import Block, Header, InvalidBlock, Transaction
from alys_fast.validation.blocks import decode_block_with_approvals, header_approvals

log = logging.getLogger(__name__)


class PeerBlock(msgspec.Struct, frozen=True):
    """A block ``peer`` gossiped (encoded, with its approvals so far), taken off the network at
    ``arrived`` (``time.perf_counter()``; 0: unknown)."""

    reply_type: ClassVar = None
    peer: str
    raw: bytes
    arrived: float = 0.0


class PeerApproval(msgspec.Struct, frozen=True):
    """An approval ``peer`` gossiped, taken off the network at ``arrived`` (as PeerBlock's)."""

    reply_type: ClassVar = None
    peer: str
    approval: Approval
    arrived: float = 0.0


class PeerPrevote(msgspec.Struct, frozen=True):
    """A prevote ``peer`` gossiped, taken off the network at ``arrived`` (as PeerBlock's)."""

    reply_type: ClassVar = None
    peer: str
    prevote: Prevote
    arrived: float = 0.0


class ImportBlocks(msgspec.Struct, frozen=True):
    """-> :class:`SegmentReport`: consecutive certified blocks from sync, imported in order."""

    reply_type: ClassVar = SegmentReport
    raws: Sequence[bytes]


class SetSyncing(msgspec.Struct, frozen=True):
    """The node started or stopped catching up (it neither authors nor approves meanwhile)."""

    reply_type: ClassVar = None
    syncing: bool


class GetHead(msgspec.Struct, frozen=True):
    """-> the head :class:`Header`."""

    reply_type: ClassVar = Header


FederationMessage = PeerBlock | PeerApproval | PeerPrevote | ImportBlocks | SetSyncing | GetHead
FEDERATION_MESSAGES = (PeerBlock, PeerApproval, PeerPrevote, ImportBlocks, SetSyncing, GetHead)
#: The file in the data dir holding what this authority approved last (:class:`LockFile`).
LOCK_FILE = "approval-lock"


class LockFile:
    """What this authority approved last (a :class:`Lock`), kept across restarts so that it
    never approves a different block at a height it already approved (``forkchoice.py``,
    rule 4). Written before the approval leaves the node: to a temporary file, flushed to
    disk, then renamed over the old one, so a crash leaves the old lock or the new one. The
    format: height and slot (8 bytes each, big-endian), then the block's 32-byte root."""

    SIZE = 48

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> Lock | None:
        """The saved lock; None if there is none (a file of the wrong size is refused)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        if len(data) != self.SIZE:
            raise ValueError(f"{self.path} is {len(data)} bytes, not a lock of {self.SIZE}")
        return Lock(int.from_bytes(data[:8], "big"), int.from_bytes(data[8:16], "big"),
                    data[16:])

    def save(self, lock: Lock) -> None:
        data = lock.height.to_bytes(8, "big") + lock.slot.to_bytes(8, "big") + lock.root
        temporary = self.path.with_name(self.path.name + ".tmp")
        with open(temporary, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.path)


def block_ref(header: Header) -> BlockRef:
    """What fork choice knows of a block (its root is the block hash, approvals excluded)."""
    return BlockRef(header.hash, header.parent_hash, header.number, header.slot)


def proposal_of(block: Block) -> Proposal:
    """A block as fork choice takes it: its ref and the approvals its header carries."""
    return Proposal(block, block_ref(block.header), header_approvals(block.header))


def with_approvals(block: Block, approvals: AggregateApproval) -> Block:
    """``block`` carrying ``approvals`` (its hash, which excludes them, is unchanged)."""
    header = msgspec.structs.replace(block.header, signature=approvals.encode())
    return Block(header, block.transactions)


class ChainSide(Protocol):
    """What the driver needs of the chain actor."""

    head: Header | None
    stats: dict[str, Any]  # its ``build_seconds`` and ``import_seconds`` histograms

    async def build_proposal(
        self, parent: Header, slot: int
    ) -> tuple[Block, BlockExecution] | None:
        """The block of ``slot`` on ``parent``, built and signed (None: the slot is skipped)."""
        ...

    def import_workflow(self, parent: Header, *, candidate: bool) -> BlockImportWorkflow:
        """A workflow on ``parent``; a ``candidate``'s approvals are the fork choice's to
        check (rule 1), not the workflow's."""
        ...

    def publish_to_peers(self, message: ToPeers) -> None: ...


class FederatedChain:
    """One node's fork choice, driven by the chain actor (see the module docstring)."""

    def __init__(self, chain: ChainSide, spec: ChainSpec, head: Header, *,
                 secret_key: bytes | None, syncing: bool,
                 recover: Callable[[Block], Awaitable[dict[bytes, Transaction]]],
                 lock_file: LockFile | None = None) -> None:
        self.chain = chain
        self.recover = recover
        key = None if secret_key is None else SecretKey.from_bytes(secret_key)
        self.lock_file = lock_file
        saved = None if lock_file is None or key is None else lock_file.load()
        self.consensus = Consensus(spec.authority_keys(), block_ref(head), secret_key=key,
                                   syncing=syncing, lock=saved)
        # The fork choice's counters (rival blocks, equivocations, ...), for /metrics.
        chain.stats["consensus"] = self.consensus.stats
        # Executions of validated candidates, by root, reused when one is certified.
        # With a peer's block, its transactions as validation returned them (its import
        # does not check it again); None for a block built here (checked at its import).
        self.verified: dict[bytes, tuple[BlockExecution, dict[bytes, Transaction],
                                         tuple[Transaction, ...] | None]] = {}
        self.pending: deque[Action] = deque()
        # When this node got each block not yet imported (built, or taken off the network):
        # its number, that time, and whether it was built here.
        self.had_at: dict[bytes, tuple[int, float, bool]] = {}
        for key in ("wait_seconds", "approval_wait_seconds", "lookup_seconds",
                    "validate_seconds", "approvals_seconds", "certify_seconds"):
            chain.stats.setdefault(key, Histogram())

    @property
    def stats(self) -> dict[str, int]:
        return dict(self.consensus.stats)

    async def on_slot(self, slot: int) -> None:
        self.pending.extend(self.consensus.on_slot(slot))
        await self._carry_out()

    async def receive(self, message: FederationMessage) -> object:
        kind = type(message)
        consensus = self.consensus
        if kind is PeerBlock:
            self._waited("wait_seconds", message.arrived)
            try:
                block, approvals = decode_block_with_approvals(message.raw)
            except InvalidBlock as exc:
                self.pending.append(Penalize(message.peer, f"undecodable block: {exc}"))
            else:
                header = block.header
                self.had_at.setdefault(header.hash, (
                    header.number, message.arrived or time.perf_counter(), False))
                proposal = Proposal(block, block_ref(header), approvals)
                self.pending.extend(consensus.on_block(proposal, message.peer))
        elif kind is PeerApproval:
            self._waited("approval_wait_seconds", message.arrived)
            self.pending.extend(consensus.on_approval(message.approval, message.peer))
        elif kind is PeerPrevote:
            self._waited("approval_wait_seconds", message.arrived)
            self.pending.extend(consensus.on_prevote(message.prevote, message.peer))
        elif kind is ImportBlocks:
            head = self.chain.head
            assert head is not None
            report = await import_segment(message.raws, head, self._sync_workflow, self.recover)
            await self._carry_out()
            return report
        elif kind is SetSyncing:
            self.pending.extend(consensus.set_syncing(message.syncing))
            log.info("chain: %s", "syncing: not authoring or approving" if message.syncing
                     else "caught up: following the federation")
        else:
            return self.chain.head
        await self._carry_out()
        return None

    def on_head(self, header: Header) -> None:
        """A block was imported (any path): fork choice moves on; carried out by the caller."""
        self.pending.extend(self.consensus.on_imported(block_ref(header)))
        for root in [r for r, (ex, *_) in self.verified.items() if ex.env.number <= header.number]:
            del self.verified[root]
        for root in [r for r, (number, *_) in self.had_at.items() if number <= header.number]:
            del self.had_at[root]

    def _save_lock(self, lock: Lock) -> None:
        if self.lock_file is not None:
            self.lock_file.save(lock)

    def _waited(self, key: str, arrived: float) -> None:
        if arrived:
            self.chain.stats[key].observe(time.perf_counter() - arrived)

    def _sync_workflow(self, parent: Header) -> BlockImportWorkflow:
        return self.chain.import_workflow(parent, candidate=False)

    async def _carry_out(self) -> None:
        pending = self.pending
        while pending:
            action = pending.popleft()
            kind = type(action)
            if kind is Validate:
                pending.extend(await self._validate(action.proposal))
            elif kind is ImportBlock:
                await self._import(action.proposal)
            elif kind is Author:
                await self._author(action.slot)
            elif kind is Gossip and type(action.message) is Proposal:
                proposal = action.message
                raw = with_approvals(proposal.block, proposal.approvals).encode()
                self.chain.publish_to_peers(ToPeers(Gossip(replace(proposal, block=raw))))
            elif kind is Gossip or kind is Penalize or kind is RequestSync:
                if kind is Penalize:
                    log.info("chain: peer %s penalized: %s", action.peer[:16], action.reason)
                self.chain.publish_to_peers(ToPeers(action))
            elif kind is SaveLock:
                self._save_lock(action.lock)
            elif kind is Equivocation:
                log.warning("chain: authority %d signed two blocks for slot %d (0x%s, 0x%s)",
                            action.author, action.first.slot, action.first.root.hex(),
                            action.second.root.hex())

    async def _author(self, slot: int) -> None:
        head = self.chain.head
        assert head is not None
        started = time.perf_counter()
        built = await self.chain.build_proposal(head, slot)
        if built is None:
            return
        built_at = time.perf_counter()
        self.chain.stats["build_seconds"].observe(built_at - started)
        block, execution = built
        self.had_at[block.hash] = (block.header.number, built_at, True)
        self.verified[block.hash] = (
            execution, {tx.raw: tx for tx in execution.transactions}, None)
        proposal = proposal_of(block)
        header = block.header  # its author's signature is an approval: locked before it leaves
        self._save_lock(Lock(header.number, header.slot, block.hash))
        self.chain.publish_to_peers(ToPeers(Gossip(replace(proposal, block=block.encode()))))
        self.pending.extend(self.consensus.on_block(proposal, None))

    async def _validate(self, proposal: Proposal) -> list[Action]:
        root = proposal.ref.root
        if root in self.verified:  # built here
            return self.consensus.on_validated(root, True)
        head = self.chain.head
        assert head is not None
        block = proposal.block
        workflow = self.chain.import_workflow(head, candidate=True)
        stats, started = self.chain.stats, time.perf_counter()
        known = await self.recover(block)
        looked_up = time.perf_counter()
        stats["lookup_seconds"].observe(looked_up - started)
        try:
            execution, txs = await workflow.execute(block, known=known)
        except BlockImportError as exc:
            if not block_at_fault(exc):
                raise  # the engine or the store failing: the actor restarts
            return self.consensus.on_validated(root, False, exc.reason)
        stats["validate_seconds"].observe(time.perf_counter() - looked_up)
        self.verified[root] = (execution, {tx.raw: tx for tx in txs}, txs)
        return self.consensus.on_validated(root, True)

    async def _import(self, proposal: Proposal) -> None:
        head = self.chain.head
        assert head is not None
        block = with_approvals(proposal.block, proposal.approvals)
        execution, known, checked = self.verified.get(proposal.ref.root, (None, None, None))
        had = self.had_at.get(proposal.ref.root)  # gone once imported (on_head)
        stats, started = self.chain.stats, time.perf_counter()
        if had is not None and had[2]:
            stats["approvals_seconds"].observe(started - had[1])
        await self.chain.import_workflow(head, candidate=False).run(
            block, execution=execution, known=known, checked=checked)
        imported = time.perf_counter()
        stats["import_seconds"].observe(imported - started)
        if had is not None and not had[2]:
            stats["certify_seconds"].observe(imported - had[1])
