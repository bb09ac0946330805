"""The sync actor: serves ranges of blocks to peers and fetches them when this node is behind.

Wiring (the node does it once): ``setup = SyncSetup(settings, chain, StoreBlocks(StoreClient(
directory)))`` kept by the node, ``registry.register(SyncCollector(setup))``, and
:class:`SyncActor` (a :class:`SyncHost`: the setups and the actors' directory) at :data:`SYNC`
in the tree's ``network`` supervisor, after the network actor (RestForOne: a restarted network
restarts sync, which subscribes again). The setup holds what outlives an actor restart: the
peers' scores and bans, the counters and the state the chain and ``/health`` read
(:attr:`SyncSetup.syncing`).

What it needs of the chain is :class:`ChainLink`: the head, importing a batch of blocks in
order through the chain's import workflow (stopping at the first failure, reported as an
:class:`ImportReport`), and being told whether the node is syncing (then it neither authors
nor approves). Of the network, :class:`~alys_fast.network.service.NetworkClient`: Status and
Hello give peers' heads, BlocksRequest and BlocksResponse the ranges; the peer list (polled
every ``peer_poll`` seconds) tells who went away.

Messages (:class:`SyncClient` sends them):
- ``Received`` from the network: the subscribed kinds.
- :class:`SyncFrom`: a gossiped block's parent is unknown (the consensus's ``RequestSync``).
- :class:`GetSyncStatus` -> :class:`SyncStatus`.

Fetching follows ``core.RangeSync`` (its docstring states the rules); the chain imports one
batch at a time on a task of this actor, so responses keep arriving meanwhile.

Serving: a BlocksRequest is answered from the store with the canonical blocks from its start:
at most what was asked, what one frame carries (``wire.blocks_that_fit``) and what the peer's
token bucket holds (``serve_rate`` blocks a second, ``serve_burst`` at most; an empty bucket
makes the request wait, a shorter answer is valid and the requester asks for the rest). At most
``serve_queue`` requests wait per peer (more are dropped and counted: our own requester never
sends more than ``limits.per_peer``) and ``serve_concurrency`` are read at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from alys_fast.actors import Actor, ActorError
from alys_fast.network import wire
from alys_fast.network.service import NetworkClient, NetworkHost, Received
from alys_fast.network.wire import MAX_RANGE, BlocksRequest, BlocksResponse, Hello, Status
from alys_fast.storage.actor import StoreClient
from alys_fast.sync.core import (
    Action,
    Became,
    Charge,
    Failure,
    Import,
    Offence,
    PeerLedger,
    RangeSync,
    Rate,
    Send,
    ServeLimiter,
    SyncLimits,
    SyncState,
)
from alys_fast.validation import Block, decode_header

log = logging.getLogger(__name__)

#: Where the sync actor lives in the supervision tree.
SYNC = "network/sync"
KINDS = frozenset({"status", "hello", "blocks_request", "blocks_response"})


@dataclass(frozen=True, slots=True)
class SyncSettings:
    """A node's sync configuration (see the module docstring)."""

    limits: SyncLimits = field(default_factory=SyncLimits)
    tick: float = 0.25                 # seconds between timeout checks
    peer_poll: float = 1.0             # seconds between looks at the peer list and the head
    serve_rate: float = 4096.0         # blocks a second served to one peer
    serve_burst: int = 2 * MAX_RANGE
    serve_queue: int = 2               # requests waiting per peer
    serve_concurrency: int = 4         # requests read from the store at once
    serve_bytes: int = wire.MAX_BLOCK_BYTES  # a response's blocks at most (one frame)


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What the chain did with a batch: ``imported`` blocks went in (from the first), its head
    is ``head``; ``failure`` and ``reason`` say why it stopped short."""

    imported: int
    head: int
    failure: Failure | None = None
    reason: str = ""


class ChainLink(Protocol):
    """What sync needs of the chain (the chain actor, behind messages, in the node)."""

    async def head(self) -> tuple[int, bytes]:
        """The head's number and hash."""
        ...

    async def import_blocks(self, blocks: Sequence[bytes]) -> ImportReport:
        """Import encoded blocks in order through the import workflow, up to the first that
        fails (``Failure.INVALID`` when the block is at fault, ``UNAVAILABLE`` when the node
        is: storage, engine); a block at or below the head is skipped as imported."""
        ...

    def set_syncing(self, syncing: bool) -> None:
        """While syncing the chain neither authors nor approves."""
        ...


class BlockSource(Protocol):
    """The canonical chain's blocks, encoded as the wire carries them (``Block.encode``)."""

    async def blocks(self, start: int, count: int, budget: int) -> list[bytes]:
        """Up to ``count`` blocks from ``start`` (fewer past the head), at most ``budget``
        bytes of them but at least one."""
        ...


class StoreBlocks:
    """:class:`BlockSource` over the storage actor."""

    def __init__(self, store: StoreClient) -> None:
        self.store = store

    async def blocks(self, start: int, count: int, budget: int) -> list[bytes]:
        out: list[bytes] = []
        for number in range(start, start + count):
            record = await self.store.block(number=number)
            if record is None:
                break
            out.append(Block(decode_header(record.header), record.transactions).encode())
            if wire.blocks_that_fit(out, budget) < len(out):
                out.pop()
                break
        return out


@dataclass
class SyncSetup:
    """One node's sync state that outlives the sync actor (see the module docstring)."""

    settings: SyncSettings
    chain: ChainLink
    source: BlockSource
    ledger: PeerLedger = field(init=False)
    rate: Rate = field(default_factory=Rate)
    counters: Counter[str] = field(default_factory=Counter)
    state: SyncState = SyncState.STARTING
    core: RangeSync | None = None  # the running actor's, for metrics

    def __post_init__(self) -> None:
        self.ledger = PeerLedger(self.settings.limits)

    @property
    def syncing(self) -> bool:
        """Whether the node is catching up (it neither authors nor approves; ``/health``)."""
        return self.state is not SyncState.FOLLOWING


class SyncHost(NetworkHost, Protocol):
    """What the actor is built with (the node's context): its setup, the network's, and a way
    to reach the network actor."""

    sync: SyncSetup


class SyncFrom(msgspec.Struct, frozen=True):
    """``peer`` gossiped block ``number``, whose parent the chain does not have."""

    peer: str
    number: int


class GetSyncStatus(msgspec.Struct, frozen=True):
    """-> :class:`SyncStatus`."""


class SyncStatus(msgspec.Struct, frozen=True):
    state: str
    syncing: bool
    head: int
    target: int
    requests_in_flight: int
    blocks_per_second: float


class _Imported(msgspec.Struct, frozen=True):
    report: ImportReport


class _Tick(msgspec.Struct, frozen=True):
    pass


SyncMessage = Received | SyncFrom | GetSyncStatus | _Imported | _Tick


class SyncActor(Actor):
    """Range sync and serving for one node; see the module docstring."""

    def __init__(self, host: SyncHost) -> None:
        self.host = host
        self.setup = host.sync
        self.network = NetworkClient(host)
        self.core: RangeSync | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.importing: asyncio.Task[None] | None = None
        settings = self.setup.settings
        self.limiter = ServeLimiter(settings.serve_rate, settings.serve_burst)
        self.waiting: dict[str, deque[BlocksRequest]] = {}
        self.servers: dict[str, asyncio.Task[None]] = {}
        self.reading = asyncio.Semaphore(settings.serve_concurrency)
        self.polled_at = 0.0

    async def started(self) -> None:
        setup = self.setup
        head, _ = await setup.chain.head()
        self.core = RangeSync(head, setup.settings.limits, ledger=setup.ledger)
        setup.core = self.core
        setup.state = SyncState.STARTING
        setup.chain.set_syncing(True)
        await self.network.subscribe(KINDS, self.ref)
        loop = asyncio.get_running_loop()
        self.tasks = [loop.create_task(self._tick_every(setup.settings.tick), name="sync-tick")]
        log.info("sync: head %d, waiting for peers' status", head)

    async def _tick_every(self, interval: float) -> None:
        with contextlib.suppress(ActorError):
            while True:
                await asyncio.sleep(interval)
                await self.ref.send(_Tick())

    async def receive(self, message: SyncMessage) -> Any:
        core = self.core
        assert core is not None
        kind = type(message)
        if kind is Received:
            peer, payload = message.peer, message.message
            handled = type(payload)
            if handled is BlocksResponse:
                actions = core.on_response(peer, payload.request_id, payload.start,
                                           payload.blocks)
            elif handled is BlocksRequest:
                self._queue_serve(peer, payload)
                return None
            elif handled is Status or handled is Hello:
                actions = core.on_status(peer, payload.head_number)
            else:
                return None
        elif kind is _Imported:
            self.importing = None
            report = message.report
            self.setup.rate.add(report.imported)
            if report.failure is not None:
                log.warning("sync: import stopped at block %d: %s", report.head + 1,
                            report.reason)
            actions = core.on_imported(report.imported, report.head, report.failure)
        elif kind is _Tick:
            actions = core.tick()
            if core.clock() - self.polled_at >= self.setup.settings.peer_poll:
                actions += await self._poll()
        elif kind is SyncFrom:
            actions = core.on_unknown_parent(message.peer, message.number)
        elif kind is GetSyncStatus:
            return SyncStatus(core.state.value, core.syncing, core.head, core.target,
                              core.in_flight(), round(self.setup.rate.per_second(), 1))
        else:
            raise TypeError(f"sync: unexpected message {type(message).__name__}")
        await self._carry_out(actions)
        return None

    async def _poll(self) -> list[Action]:
        """Who went away, peers' heads known before we subscribed, and the chain's head (moved
        by gossip while following)."""
        core = self.core
        assert core is not None
        self.polled_at = core.clock()
        actions: list[Action] = []
        peers = {p.key: p for p in await self.network.peers() if p.connected}
        for key in [k for k in core.peers if k not in peers]:
            actions += core.on_peer_gone(key)
            self.limiter.forget(key)
        for key, info in peers.items():
            if key not in core.peers and info.head_number is not None:
                actions += core.on_status(key, info.head_number)
        if self.importing is None:
            actions += core.on_head((await self.setup.chain.head())[0])
        return actions

    async def _carry_out(self, actions: list[Action]) -> None:
        pending = list(actions)
        while pending:
            action = pending.pop(0)
            kind = type(action)
            if kind is Send:
                if not await self.network.send_to(action.peer, action.request):
                    assert self.core is not None
                    pending += self.core.on_peer_gone(action.peer)
            elif kind is Import:
                self._import(action)
            elif kind is Charge:
                log.info("sync: peer %s charged %s%s", action.peer[:16], action.offence.value,
                         ", banned" if action.banned else "")
            elif kind is Became:
                self._publish(action.state)

    def _publish(self, state: SyncState) -> None:
        """The new state into the setup; the chain is told when syncing starts or stops."""
        core, setup = self.core, self.setup
        assert core is not None
        was_syncing = setup.syncing
        setup.state = state
        if setup.syncing != was_syncing:
            setup.chain.set_syncing(setup.syncing)
        log.info("sync: %s at head %d (best peer head %d)", state.value, core.head, core.target)

    def _import(self, batch: Import) -> None:
        async def run() -> None:
            try:
                report = await self.setup.chain.import_blocks(batch.blocks)
            except Exception as exc:  # the chain actor down or slow: nobody's fault, retried
                log.warning("sync: the chain did not import: %r", exc)
                report = ImportReport(0, batch.start - 1, Failure.UNAVAILABLE, str(exc))
            with contextlib.suppress(ActorError):
                self.ref.tell(_Imported(report))

        self.importing = asyncio.get_running_loop().create_task(run(), name="sync-import")

    # --- serving ------------------------------------------------------------------------------

    def _queue_serve(self, peer: str, request: BlocksRequest) -> None:
        queue = self.waiting.setdefault(peer, deque())
        if len(queue) >= self.setup.settings.serve_queue:
            self.setup.counters["serve_dropped"] += 1
            return
        queue.append(request)
        if peer not in self.servers:
            self.servers[peer] = asyncio.get_running_loop().create_task(
                self._serve(peer, queue), name=f"sync-serve-{peer[:16]}")

    async def _serve(self, peer: str, queue: deque[BlocksRequest]) -> None:
        settings, counters = self.setup.settings, self.setup.counters
        try:
            while queue:
                request = queue[0]
                granted = self.limiter.take(peer, request.count)
                if granted == 0:
                    await asyncio.sleep(self.limiter.wait(peer))
                    continue
                queue.popleft()
                try:
                    async with self.reading:
                        found = await self.setup.source.blocks(request.start, granted,
                                                               settings.serve_bytes)
                    await self.network.send_to(
                        peer, BlocksResponse(request.request_id, request.start, found))
                except ActorError as exc:  # storage or network down: the peer asks again
                    counters["serve_failed"] += 1
                    log.warning("sync: could not serve %s: %r", peer[:16], exc)
                    continue
                counters["served_requests"] += 1
                counters["served_blocks"] += len(found)
        finally:
            self.servers.pop(peer, None)

    # --- lifecycle ----------------------------------------------------------------------------

    def pre_restart(self, error: BaseException) -> None:
        self._close()

    def stopped(self) -> None:
        self._close()

    def _close(self) -> None:
        for task in (*self.tasks, *self.servers.values()):
            task.cancel()
        if self.importing is not None:
            self.importing.cancel()
        self.tasks, self.importing = [], None
        self.servers.clear()
        self.setup.core = None


class SyncClient:
    """Typed messages to the sync actor."""

    def __init__(self, host: SyncHost, timeout: float = 5.0) -> None:
        self.host = host
        self.timeout = timeout

    def sync_from(self, peer: str, number: int) -> None:
        """A gossiped block ``number`` from ``peer`` has an unknown parent."""
        self.host.ref(SYNC).tell(SyncFrom(peer, number))

    async def status(self) -> SyncStatus:
        return await self.host.ref(SYNC).ask(GetSyncStatus(), self.timeout)


class SyncCollector(Collector):
    """Sync's state, target, distance, requests, import rate and penalties, for ``/metrics``."""

    def __init__(self, setup: SyncSetup) -> None:
        self.setup = setup

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        setup = self.setup
        core = setup.core
        yield GaugeMetricFamily("alys_sync_syncing", "1 while catching up (no authoring, no "
                                "approving)", value=int(setup.syncing))
        if core is not None:
            yield GaugeMetricFamily("alys_sync_target", "Best usable peer head",
                                    value=core.target)
            yield GaugeMetricFamily("alys_sync_distance", "Blocks behind the best peer head",
                                    value=core.distance)
            yield GaugeMetricFamily("alys_sync_requests_in_flight", "Block ranges asked, "
                                    "unanswered", value=core.in_flight())
            yield GaugeMetricFamily("alys_sync_buffered_bytes", "Blocks received, waiting to "
                                    "be imported in order", value=core.buffered_bytes)
            yield CounterMetricFamily("alys_sync_blocks_imported", "Blocks imported by sync",
                                      value=core.counters.blocks_imported)
        yield GaugeMetricFamily("alys_sync_blocks_per_second", "Blocks imported a second "
                                "(last 5 s)", value=setup.rate.per_second())
        penalties = CounterMetricFamily("alys_sync_penalties", "Offences charged to peers by "
                                        "sync", labels=["offence"])
        for offence in Offence:
            penalties.add_metric([offence.value], setup.ledger.penalties[offence])
        yield penalties
        yield CounterMetricFamily("alys_sync_bans", "Peers banned by sync",
                                  value=setup.ledger.bans_total)
        counters = setup.counters
        yield CounterMetricFamily("alys_sync_served_blocks", "Blocks served to peers",
                                  value=counters["served_blocks"])
        yield CounterMetricFamily("alys_sync_serve_dropped", "Block requests dropped (too many "
                                  "waiting from one peer)", value=counters["serve_dropped"])
