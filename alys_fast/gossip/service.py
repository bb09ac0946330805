"""The gossip actor (``network/gossip``) and sync's link to the chain actor.

Wiring (the node does it once, for a node with peers): the network and sync setups in the
context (``ctx.network``, ``ctx.sync`` with :class:`ChainActorLink` as its chain), and
:class:`GossipActor` in the tree's ``network`` supervisor after the network and sync actors
(RestForOne: a restarted network restarts it, and it subscribes again).

Out, from topics (the chain and the pool never name the network):
- ``NEW_HEAD``: our Status moves (peers' sync targets).
- ``TO_PEERS``: the chain's consensus actions: a proposal -> ``NewBlock``, an approval ->
  ``Approval``, ``Penalize`` -> the network charges the peer (``BAD_CONSENSUS``),
  ``RequestSync`` -> sync fetches from that peer.
- ``NEW_TRANSACTIONS``: batched (:class:`~alys_fast.gossip.core.TxBatcher`) into
  ``Transactions``; ``POW_QUEUED``: ``QueuedPow``.

In, from the network: ``new_block`` and ``approval`` to the chain actor (``PeerBlock``,
``PeerApproval``: fork choice checks them); ``transactions`` recovered off the loop and
submitted to the pool without gossip (the flood already carries them); ``queued_pow`` decoded
and queued through the chain's one ``QueuePow`` path. Undecodable ones charge the sender.

Peers' transaction batches never hold up blocks and approvals: the actor only queues them
(:data:`MAX_WAITING_BATCHES`; beyond, a batch is dropped and counted as a missed delivery,
``alys_network_delivery_dropped``) for one admitting task, which recovers and submits what
waits as one pool submission. Under load, recovering and admitting a batch takes milliseconds,
and a block queued behind a few dozen of them would reach the chain late.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from alys_fast.actors import Actor, ActorError, Refused
from alys_fast.chain.actor import QueuePow
from alys_fast.chain.federation import GetHead, ImportBlocks, PeerApproval, PeerBlock, SetSyncing
from alys_fast.chain.pool_actor import PoolClient
from alys_fast.chain.topics import (
    NEW_HEAD,
    NEW_TRANSACTIONS,
    POW_QUEUED,
    TO_PEERS,
    NewHead,
    NewTransactions,
    PowQueued,
    ToPeers,
)
from alys_fast.chain.workflows import SegmentReport
from alys_fast.consensus import BlsError, Gossip, Penalize, Proposal
from alys_fast.gossip.core import TxBatcher, approval_from_wire, approval_to_wire
from alys_fast.network import wire
from alys_fast.network.peers import Offence
from alys_fast.network.service import NetworkClient, Received
from alys_fast.paths import CHAIN
from alys_fast.sync.core import Failure
from alys_fast.sync.service import ImportReport, SyncClient, SyncHost
from alys_fast.validation import InvalidBlock, Transaction, recover_transactions
from alys_fast.validation.blocks import decode_auxpow_header

log = logging.getLogger(__name__)

KINDS = frozenset({"new_block", "approval", "transactions", "queued_pow"})
#: Seconds a submitted transaction waits, at most, for its batch to fill.
FLUSH_SECONDS = 0.05
#: Seconds sync waits for the chain to import a batch (up to 64 blocks).
IMPORT_TIMEOUT = 300.0
#: Peers' transaction batches waiting for the pool, at most (a few seconds of heavy load).
MAX_WAITING_BATCHES = 256
#: Transactions recovered and submitted to the pool in one go, at most.
MAX_ADMIT_TXS = 4096


class ChainActorLink:
    """Sync's :class:`~alys_fast.sync.service.ChainLink`: the chain actor, by message."""

    def __init__(self, host: SyncHost, timeout: float = 10.0) -> None:
        self.host = host
        self.timeout = timeout

    async def head(self) -> tuple[int, bytes]:
        header = await self.host.ref(CHAIN).ask(GetHead(), self.timeout)
        return header.number, header.hash

    async def import_blocks(self, blocks: list[bytes]) -> ImportReport:
        report: SegmentReport = await self.host.ref(CHAIN).ask(ImportBlocks(blocks),
                                                               IMPORT_TIMEOUT)
        failure = None if report.block_at_fault is None else (
            Failure.INVALID if report.block_at_fault else Failure.UNAVAILABLE)
        return ImportReport(report.imported, report.head.number, failure, report.reason)

    def set_syncing(self, syncing: bool) -> None:
        with contextlib.suppress(ActorError):  # a chain restarting reads ctx.sync instead
            self.host.ref(CHAIN).tell(SetSyncing(syncing))


class _Flush:
    pass


class GossipActor(Actor):
    """Carries the chain's and the pool's messages to peers and theirs back (module doc)."""

    subscribes = (NEW_HEAD, TO_PEERS, NEW_TRANSACTIONS, POW_QUEUED)

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.network = NetworkClient(ctx)
        self.sync = SyncClient(ctx)
        self.pool = PoolClient(ctx)
        self.batcher = TxBatcher()
        self.flusher: asyncio.Task[None] | None = None
        self.arrived: asyncio.Queue[list[bytes]] = asyncio.Queue(MAX_WAITING_BATCHES)
        self.admitter: asyncio.Task[None] | None = None

    async def started(self) -> None:
        await self.network.subscribe(KINDS, self.ref)
        head = await self.ctx.ref(CHAIN).ask(GetHead(), 10.0)
        self._status(head.number, head.hash, self.ctx.network.status.finalized_number)
        loop = asyncio.get_running_loop()
        self.flusher = loop.create_task(self._flush_every(FLUSH_SECONDS))
        self.admitter = loop.create_task(self._admit_arrived(), name="gossip-admit")

    async def _flush_every(self, interval: float) -> None:
        with contextlib.suppress(ActorError):
            while True:
                await asyncio.sleep(interval)
                await self.ref.send(_Flush())

    async def _admit_arrived(self) -> None:
        """Recover and pool peers' transactions, what waits as one submission."""
        arrived = self.arrived
        while True:
            raws = list(await arrived.get())
            while len(raws) < MAX_ADMIT_TXS and not arrived.empty():
                raws += arrived.get_nowait()
            txs = await asyncio.to_thread(recover_transactions, raws, self.ctx.spec.chain_id)
            valid = [tx for tx in txs if isinstance(tx, Transaction)]
            if valid:
                try:
                    await self.pool.submit(valid, gossip=False)
                except ActorError as exc:  # the pool restarting or swamped: these are lost
                    log.info("gossip: %d peer transactions not pooled: %s", len(valid), exc)

    async def receive(self, message: Any) -> None:
        kind = type(message)
        if kind is Received:
            await self._inbound(message.peer, message.message)
        elif kind is ToPeers:
            self._outbound(message)
        elif kind is NewHead:
            header = message.header
            self._status(header.number, header.hash, message.finalized)
        elif kind is NewTransactions:
            for batch in self.batcher.add(message.raws):
                self.network.broadcast(batch)
        elif kind is _Flush:
            batch = self.batcher.flush()
            if batch is not None:
                self.network.broadcast(batch)
        elif kind is PowQueued:
            self.network.broadcast(wire.QueuedPow(message.header.encode()))
        else:
            raise TypeError(f"gossip: unexpected message {kind.__name__}")

    def _status(self, number: int, block_hash: bytes, finalized: int) -> None:
        status = self.ctx.network.status
        self.network.set_status(wire.Status(
            status.chain_id, status.genesis_hash, number, block_hash, finalized, status.role,
            status.listen))

    def _outbound(self, message: ToPeers) -> None:
        action = message.action
        if type(action) is Gossip:
            if type(action.message) is Proposal:
                self.network.broadcast(wire.NewBlock(action.message.block))
            else:
                self.network.broadcast(approval_to_wire(action.message))
        elif type(action) is Penalize:
            self.network.charge(action.peer, Offence.BAD_CONSENSUS, action.reason)
        else:
            self.sync.sync_from(action.peer, action.height)

    async def _inbound(self, peer: str, payload: wire.Payload) -> None:
        chain = self.ctx.ref(CHAIN)
        kind = type(payload)
        if kind is wire.NewBlock:
            with contextlib.suppress(ActorError):  # the chain busy or restarting: sync catches up
                chain.tell(PeerBlock(peer, payload.block))
        elif kind is wire.Approval:
            try:
                approval = approval_from_wire(payload)
            except BlsError as exc:
                self.network.charge(peer, Offence.MALFORMED, f"approval: {exc}")
                return
            with contextlib.suppress(ActorError):
                chain.tell(PeerApproval(peer, approval))
        elif kind is wire.Transactions:
            try:
                self.arrived.put_nowait(payload.raws)
            except asyncio.QueueFull:
                self.ctx.network.counters["delivery_dropped"] += 1
        elif kind is wire.QueuedPow:
            try:
                header = decode_auxpow_header(payload.header)
            except InvalidBlock as exc:
                self.network.charge(peer, Offence.MALFORMED, f"AuxPoW header: {exc}")
                return
            with contextlib.suppress(Refused):  # a proof for a range already finalized here
                await chain.ask(QueuePow(header, gossip=False), 10.0)

    def pre_restart(self, error: BaseException) -> None:
        self._close()

    def stopped(self) -> None:
        self._close()

    def _close(self) -> None:
        for task in (self.flusher, self.admitter):
            if task is not None:
                task.cancel()
        self.flusher = self.admitter = None
