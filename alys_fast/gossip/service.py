"""The gossip actor (``network/gossip``) and sync's link to the chain actor.

Wiring (the node does it once, for a node with peers): the network and sync setups (sync's
with :class:`ChainActorLink` as its chain), and :class:`GossipActor` (the chain id and the
host the network and sync actors take) in the tree's ``network`` supervisor after the network
and sync actors (RestForOne: a restarted network restarts it, and it subscribes again).

Out, from topics (the chain and the pool never name the network):
- ``NEW_HEAD``: our Status moves (peers' sync targets).
- ``TO_PEERS``: the chain's consensus actions: a proposal -> ``NewBlock``, an approval ->
  ``Approval``, ``Penalize`` -> the network charges the peer (``BAD_CONSENSUS``),
  ``RequestSync`` -> sync fetches from that peer.
- ``NEW_TRANSACTIONS``: batched (:class:`~alys_fast.gossip.core.TxBatcher`) into
  ``Transactions``; ``POW_QUEUED``: ``QueuedPow``.

In, from the network: ``new_block``, ``approval`` and ``prevote`` to the chain actor
(``PeerBlock``, ``PeerApproval``, ``PeerPrevote``: fork choice checks them) by
:class:`ChainInbound`, which the network actor calls in its own turn: no gossip mailbox between
a block and the chain, where it would queue behind the pool's notifications and peers'
transaction batches; ``transactions`` recovered in the node's recovery processes (the RPC's and
the chain's :class:`RecoveryClient`) and submitted to the pool without gossip (the flood already
carries them); ``queued_pow`` decoded and queued through the chain's one ``QueuePow`` path.
Undecodable ones charge the sender.

Peers' transaction batches never hold up blocks and approvals: the actor only queues them
(:data:`MAX_WAITING_BATCHES`; beyond, a batch is dropped and counted as a missed delivery,
``alys_network_delivery_dropped``) for one admitting task, which recovers and submits what
waits as one pool submission. Under load, recovering and admitting a batch takes milliseconds,
and a block queued behind a few dozen of them would reach the chain late.

``alys_network_handoff_seconds`` (by kind) is how long a peer's message took from the network
to the chain (a block or approval told to it) or to the pool (a batch taken for admission).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from alys_fast.actors import Actor, ActorError, Directory, Refused
from alys_fast.chain.actor import QueuePow
from alys_fast.chain.federation import (
    GetHead,
    ImportBlocks,
    PeerApproval,
    PeerBlock,
    PeerPrevote,
    SetSyncing,
)
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
from alys_fast.consensus import BlsError, Gossip, Penalize, Prevote, Proposal
from alys_fast.gossip.core import (
    TxBatcher,
    approval_from_wire,
    approval_to_wire,
    prevote_from_wire,
    prevote_to_wire,
)
from alys_fast.network import wire
from alys_fast.network.peers import Offence
from alys_fast.network.service import NetworkClient, Received
from alys_fast.paths import CHAIN
from alys_fast.sync.core import Failure
from alys_fast.sync.service import ImportReport, SyncClient, SyncHost
from alys_fast.validation import InvalidBlock, Transaction
from alys_fast.validation.actor import RecoveryClient
from alys_fast.validation.blocks import decode_auxpow_header

log = logging.getLogger(__name__)

KINDS = frozenset({"new_block", "approval", "prevote", "transactions", "queued_pow"})
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

    def __init__(self, directory: Directory, timeout: float = 10.0) -> None:
        self.directory = directory
        self.timeout = timeout

    async def head(self) -> tuple[int, bytes]:
        header = await self.directory.ref(CHAIN).ask(GetHead(), self.timeout)
        return header.number, header.hash

    async def import_blocks(self, blocks: list[bytes]) -> ImportReport:
        report: SegmentReport = await self.directory.ref(CHAIN).ask(ImportBlocks(blocks),
                                                                    IMPORT_TIMEOUT)
        failure = None if report.block_at_fault is None else (
            Failure.INVALID if report.block_at_fault else Failure.UNAVAILABLE)
        return ImportReport(report.imported, report.head.number, failure, report.reason)

    def set_syncing(self, syncing: bool) -> None:
        with contextlib.suppress(ActorError):  # a chain restarting asks sync's state instead
            self.directory.ref(CHAIN).tell(SetSyncing(syncing))


class _Flush:
    pass


#: What :class:`ChainInbound` hands to the chain; the gossip actor takes the other kinds.
TO_CHAIN = frozenset({"new_block", "approval", "prevote"})


@dataclass(frozen=True)
class ChainInbound:
    """The network's subscriber for peers' blocks and approvals: tells each to the chain actor
    (an approval whose signature is not a G2 point charges its sender). Equal for one host, so
    a restarted gossip actor subscribing it again changes nothing."""

    host: SyncHost

    def tell(self, received: Received) -> None:
        payload, peer, arrived = received.message, received.peer, received.arrived
        if type(payload) is wire.NewBlock:
            message: PeerBlock | PeerApproval | PeerPrevote = PeerBlock(
                peer, payload.block, arrived)
        else:
            kind = wire.kind_of(payload)
            try:
                message = (PeerPrevote(peer, prevote_from_wire(payload), arrived)
                           if type(payload) is wire.Prevote
                           else PeerApproval(peer, approval_from_wire(payload), arrived))
            except BlsError as exc:
                NetworkClient(self.host).charge(peer, Offence.MALFORMED, f"{kind}: {exc}")
                return
        network = self.host.network
        try:  # the chain busy or restarting: sync catches up (a block), or it is missed
            self.host.ref(CHAIN).tell(message)
        except ActorError:
            network.counters["delivery_dropped"] += 1
            return
        if arrived:
            network.latencies.observe("handoff", wire.kind_of(payload),
                                      time.perf_counter() - arrived)


class GossipActor(Actor):
    """Carries the chain's and the pool's messages to peers and theirs back (module doc)."""

    subscribes = (NEW_HEAD, TO_PEERS, NEW_TRANSACTIONS, POW_QUEUED)

    def __init__(self, chain_id: int, host: SyncHost) -> None:
        self.chain_id = chain_id
        self.host = host
        self.network = NetworkClient(host)
        self.sync = SyncClient(host)
        self.pool = PoolClient(host)
        self.recovery = RecoveryClient(host, chain_id)  # the node's recovery processes
        self.batcher = TxBatcher()
        self.flusher: asyncio.Task[None] | None = None
        # Peers' batches waiting for the pool, with when each was taken off the network.
        self.arrived: asyncio.Queue[tuple[list[bytes], float]] = asyncio.Queue(
            MAX_WAITING_BATCHES)
        self.admitter: asyncio.Task[None] | None = None

    async def started(self) -> None:
        await self.network.subscribe(TO_CHAIN, ChainInbound(self.host))
        await self.network.subscribe(KINDS - TO_CHAIN, self.ref)
        head = await self.host.ref(CHAIN).ask(GetHead(), 10.0)
        self._status(head.number, head.hash, self.host.network.status.finalized_number)
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
        arrived, latencies = self.arrived, self.host.network.latencies
        while True:
            batch, at = await arrived.get()
            raws = list(batch)
            latencies.observe("handoff", "transactions", time.perf_counter() - at)
            while len(raws) < MAX_ADMIT_TXS and not arrived.empty():
                batch, at = arrived.get_nowait()
                raws += batch
                latencies.observe("handoff", "transactions", time.perf_counter() - at)
            txs = await self.recovery.recover(raws)
            valid = [tx for tx in txs if isinstance(tx, Transaction)]
            if valid:
                try:
                    await self.pool.submit(valid, gossip=False)
                except ActorError as exc:  # the pool restarting or swamped: these are lost
                    log.info("gossip: %d peer transactions not pooled: %s", len(valid), exc)

    async def receive(self, message: Any) -> None:
        kind = type(message)
        if kind is Received:
            await self._inbound(message.peer, message.message, message.arrived)
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
        status = self.host.network.status
        self.network.set_status(wire.Status(
            status.chain_id, status.genesis_hash, number, block_hash, finalized, status.role,
            status.listen))

    def _outbound(self, message: ToPeers) -> None:
        action = message.action
        if type(action) is Gossip:
            if type(action.message) is Proposal:
                self.network.broadcast(wire.NewBlock(action.message.block))
            else:
                self.network.broadcast(prevote_to_wire(action.message)
                                       if type(action.message) is Prevote
                                       else approval_to_wire(action.message))
        elif type(action) is Penalize:
            self.network.charge(action.peer, Offence.BAD_CONSENSUS, action.reason)
        else:
            self.sync.sync_from(action.peer, action.height)

    async def _inbound(self, peer: str, payload: wire.Payload, arrived: float) -> None:
        kind = type(payload)
        if kind is wire.Transactions:
            try:
                self.arrived.put_nowait((payload.raws, arrived))
            except asyncio.QueueFull:
                self.host.network.counters["delivery_dropped"] += 1
        elif kind is wire.QueuedPow:
            try:
                header = decode_auxpow_header(payload.header)
            except InvalidBlock as exc:
                self.network.charge(peer, Offence.MALFORMED, f"AuxPoW header: {exc}")
                return
            with contextlib.suppress(Refused):  # a proof for a range already finalized here
                await self.host.ref(CHAIN).ask(QueuePow(header, gossip=False), 10.0)

    def pre_restart(self, error: BaseException) -> None:
        self._close()

    def stopped(self) -> None:
        self._close()

    def _close(self) -> None:
        for task in (self.flusher, self.admitter):
            if task is not None:
                task.cancel()
        self.flusher = self.admitter = None
