"""The chain actor's federation side: it drives fork choice (:class:`Consensus`) for a node
with peers, and carries out the actions it returns.

A node with peers (``ctx.network_settings``) does not import its own blocks at once, as a lone
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
While the node syncs (:class:`SetSyncing`, and at start what ``ctx.sync`` says) it neither
authors nor approves (:class:`Consensus`'s rule 8).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
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
    Penalize,
    Proposal,
    RequestSync,
    SecretKey,
    Validate,
)
from alys_fast.engine import BlockExecution
from alys_fast.validation import Block, Header, InvalidBlock, Transaction, decode_block
from alys_fast.validation.blocks import header_approvals

log = logging.getLogger(__name__)


class PeerBlock(msgspec.Struct, frozen=True):
    """A block ``peer`` gossiped (encoded, with its approvals so far)."""

    reply_type: ClassVar = None
    peer: str
    raw: bytes


class PeerApproval(msgspec.Struct, frozen=True):
    """An approval ``peer`` gossiped."""

    reply_type: ClassVar = None
    peer: str
    approval: Approval


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


FederationMessage = PeerBlock | PeerApproval | ImportBlocks | SetSyncing | GetHead
FEDERATION_MESSAGES = (PeerBlock, PeerApproval, ImportBlocks, SetSyncing, GetHead)


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
        """A workflow on ``parent``; a ``candidate`` needs only its author's approval."""
        ...

    def publish_to_peers(self, message: ToPeers) -> None: ...


class FederatedChain:
    """One node's fork choice, driven by the chain actor (see the module docstring)."""

    def __init__(self, chain: ChainSide, spec: ChainSpec, head: Header, *,
                 secret_key: bytes | None, syncing: bool,
                 recover: Callable[[Block], Awaitable[dict[bytes, Transaction]]]) -> None:
        self.chain = chain
        self.recover = recover
        key = None if secret_key is None else SecretKey.from_bytes(secret_key)
        self.consensus = Consensus(spec.authority_keys(), block_ref(head), secret_key=key,
                                   syncing=syncing)
        # Executions of validated candidates, by root, reused when one is certified.
        self.verified: dict[bytes, tuple[BlockExecution, dict[bytes, Transaction]]] = {}
        self.pending: deque[Action] = deque()

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
            try:
                block = decode_block(message.raw)
            except InvalidBlock as exc:
                self.pending.append(Penalize(message.peer, f"undecodable block: {exc}"))
            else:
                self.pending.extend(consensus.on_block(proposal_of(block), message.peer))
        elif kind is PeerApproval:
            self.pending.extend(consensus.on_approval(message.approval, message.peer))
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
        for root in [r for r, (ex, _) in self.verified.items() if ex.env.number <= header.number]:
            del self.verified[root]

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
        self.chain.stats["build_seconds"].observe(time.perf_counter() - started)
        block, execution = built
        self.verified[block.hash] = (execution, {tx.raw: tx for tx in execution.transactions})
        proposal = proposal_of(block)
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
        try:
            execution, txs = await workflow.execute(block, known=await self.recover(block))
        except BlockImportError as exc:
            if not block_at_fault(exc):
                raise  # the engine or the store failing: the actor restarts
            return self.consensus.on_validated(root, False, exc.reason)
        self.verified[root] = (execution, {tx.raw: tx for tx in txs})
        return self.consensus.on_validated(root, True)

    async def _import(self, proposal: Proposal) -> None:
        head = self.chain.head
        assert head is not None
        block = with_approvals(proposal.block, proposal.approvals)
        execution, known = self.verified.get(proposal.ref.root, (None, None))
        started = time.perf_counter()
        await self.chain.import_workflow(head, candidate=False).run(
            block, execution=execution, known=known)
        self.chain.stats["import_seconds"].observe(time.perf_counter() - started)
