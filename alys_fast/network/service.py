"""The network actor: gossip, point-to-point messages and subscriptions over a transport.

Wiring (the node does it once): ``setup = NetworkSetup.create(settings, load_node_key(dir),
status)`` kept by the node, ``registry.register(NetworkCollector(setup))``, and
:class:`NetworkActor` (a :class:`NetworkHost`: the setup and the actors' directory) at
:data:`NETWORK` in the tree's ``network`` supervisor. The setup holds what outlives an actor
restart: the node key, the peer book (scores, bans, traffic counters), the subscriptions and our
status; a restarted actor builds a fresh transport and dials its bootnodes again.

Messages (:class:`NetworkClient` sends them):
- :class:`Broadcast` -> the number of peers it was queued for: a gossip message, flooded
  (``peers.py``); a consensus kind from a node that is not a federation member goes nowhere.
- :class:`SendTo` -> False when the peer is not connected: one message to one peer (a Status,
  a :class:`~alys_fast.network.wire.BlocksResponse` …).
- :class:`Subscribe`: ``target.tell(Received(peer, message))`` for every message of these
  kinds (``wire.ALL_KINDS``: ``"new_block"``, ``"approval"``, ``"blocks_request"`` …). One-way:
  the network imports nothing of the consensus, chain or sync that subscribe. A subscriber
  whose mailbox is full misses the message (counted); a stopped one is unsubscribed; one
  subscribed again (equal to one subscribed before) is told once.
- :class:`SetStatus`: our head moved; peers are told (:class:`~alys_fast.network.wire.Status`).
- :class:`PeerList` -> :class:`PeerInfo` for each known peer.
- :class:`Charge`: a layer above found a peer's message wrong (an invalid block, a forged
  approval): the peer is charged the offence, as for a malformed frame.

Every frame a peer sends is checked in this order, and a failed check drops it: the sender is
not banned and there is room for it (``PeerBook.heard``); the frame decodes (else charged
``MALFORMED`` or ``OVERSIZED``; another protocol version gets a Goodbye, uncharged); a
consensus kind comes from a member (else ``UNAUTHORIZED``); a Hello/Status names our chain id
and genesis (else ``WRONG_NETWORK``, a ban). Then: Hello is answered with our Status, Ping
with Pong, gossip is deduplicated, delivered and forwarded, the rest delivered.

Frames go out through each peer's bounded queue and one pump task per peer, so a slow peer
only fills its own queue (drops counted, ``alys_network_peer_send_dropped_total``); blocks and
approvals go before transaction batches (``peers.SendQueue``).

Where a frame's time goes is in ``/metrics`` (``NetworkSetup.latencies``), by kind:
``alys_network_inbound_seconds`` (taken off the transport -> told to the subscribers: the
actor's mailbox, decoding, dedupe), ``alys_network_outbound_seconds`` (queued for a peer ->
handed to libzmq: the send queue, behind other frames), and what a layer above adds (the gossip
actor's ``handoff``); ``alys_network_loop_lag_seconds`` is how late the event loop runs a
:data:`LAG_PROBE_SECONDS` timer, which every frame waits for too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from alys_fast.actors import Actor, ActorError, ActorRef, ActorStopped
from alys_fast.network import wire
from alys_fast.network.peers import (
    BadAddress,
    Latencies,
    Offence,
    Peer,
    PeerBook,
    PeerLimits,
    format_enode,
    parse_enode,
)
from alys_fast.network.transport import NodeKey, Transport, ZmqTransport
from alys_fast.network.wire import (
    CONSENSUS_KINDS,
    GOSSIP_KINDS,
    Goodbye,
    Gossip,
    Hello,
    Payload,
    Ping,
    Pong,
    Status,
)

log = logging.getLogger(__name__)

#: Where the network actor lives in the supervision tree.
NETWORK = "network/network"
#: Seconds between the event loop lag probe's timers.
LAG_PROBE_SECONDS = 0.05


@dataclass(frozen=True, slots=True)
class NetworkSettings:
    """A node's network configuration."""

    listen: str = "tcp://127.0.0.1:0"
    # host:port peers should dial (None: the bound address, right for loopback and LANs)
    advertise: str | None = None
    bootnodes: tuple[str, ...] = ()             # alys://<key hex>@host:port
    members: frozenset[str] = frozenset()       # the federation's node keys (hex)
    limits: PeerLimits = field(default_factory=PeerLimits)
    tick: float = 0.25                          # seconds between dial/ping/liveness checks


def zmq_transport(setup: NetworkSetup) -> Transport:
    """The production transport: ZeroMQ CURVE on ``settings.listen``."""
    return ZmqTransport(setup.key, setup.settings.listen, setup.book.admits,
                        handshake_failures=setup.handshake_failures)


@dataclass
class NetworkSetup:
    """One node's network state that outlives the network actor (see the module docstring)."""

    settings: NetworkSettings
    key: NodeKey
    status: Status
    book: PeerBook
    transport_factory: Callable[[NetworkSetup], Transport] = zmq_transport
    subscriptions: dict[str, list[Any]] = field(default_factory=dict)
    counters: Counter[str] = field(default_factory=Counter)
    handshake_failures: Counter[str] = field(default_factory=Counter)
    latencies: Latencies = field(default_factory=Latencies)
    endpoint: str | None = None  # bound, once the actor is up

    @classmethod
    def create(
        cls,
        settings: NetworkSettings,
        key: NodeKey,
        status: Status,
        transport_factory: Callable[[NetworkSetup], Transport] = zmq_transport,
        clock: Callable[[], float] | None = None,
    ) -> NetworkSetup:
        """``status``: the chain's at start (its ``role`` and ``listen`` are filled in here)."""
        book = PeerBook(settings.members, settings.limits, clock or time.monotonic)
        return cls(settings, key, status, book, transport_factory)

    @property
    def node_id(self) -> str:
        return self.key.id

    @property
    def member(self) -> bool:
        return self.key.id in self.settings.members

    @property
    def enode(self) -> str:
        """Our ``alys://`` address ("" before the actor has bound its listen address)."""
        where = self.settings.advertise or self.endpoint
        return format_enode(self.node_id, where) if where else ""

    def own_status(self) -> Status:
        return msgspec.structs.replace(
            self.status, role="authority" if self.member else "full", listen=self.enode)


class NetworkHost(Protocol):
    """What the actor is built with (the node's): its setup and a way to reach the others."""

    network: NetworkSetup

    def ref(self, path: str) -> ActorRef: ...


class Received(msgspec.Struct, frozen=True):
    """Told to subscribers: ``message`` from ``peer`` (its node key, authenticated), taken off
    the transport at ``arrived`` (``time.perf_counter()``)."""

    peer: str
    message: Payload
    arrived: float = 0.0


class Broadcast(msgspec.Struct, frozen=True):
    """-> the number of peers the message was queued for."""

    message: Gossip


class SendTo(msgspec.Struct, frozen=True):
    """-> False when ``peer`` is not connected."""

    peer: str
    message: Payload


class Subscribe(msgspec.Struct, frozen=True):
    """From now on, ``target.tell(Received(...))`` for every message of these kinds."""

    kinds: frozenset[str]
    target: Any  # an ActorRef (anything with ``tell``)


class SetStatus(msgspec.Struct, frozen=True):
    status: Status


class Charge(msgspec.Struct, frozen=True):
    """Charge ``peer`` with ``offence``; ``why`` is for the operator's log."""

    peer: str
    offence: Offence
    why: str


class PeerList(msgspec.Struct, frozen=True):
    """-> [PeerInfo, ...]"""


class PeerInfo(msgspec.Struct, frozen=True):
    key: str
    endpoint: str | None
    member: bool
    connected: bool
    score: float
    head_number: int | None
    messages_in: int
    messages_out: int
    send_dropped: int


class _Inbound(msgspec.Struct, frozen=True):
    peer: str
    frame: Any  # bytes or memoryview
    arrived: float  # time.perf_counter() when taken off the transport


class _Tick(msgspec.Struct, frozen=True):
    pass


NetworkMessage = Broadcast | SendTo | Subscribe | SetStatus | PeerList | Charge | _Inbound | _Tick


class NetworkActor(Actor):
    """Runs one node's transport, peer book and gossip; see the module docstring."""

    def __init__(self, host: NetworkHost) -> None:
        self.setup = host.network
        self.book = host.network.book
        self.transport: Transport | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.pumps: dict[str, asyncio.Task[None]] = {}
        self.wakes: dict[str, asyncio.Event] = {}
        self.nonce = random.getrandbits(63)
        self.unsent_kinds: set[str] = set()  # consensus kinds a non-member could not send

    async def started(self) -> None:
        setup, book = self.setup, self.book
        book.reset_links()
        for address in setup.settings.bootnodes:
            key, endpoint = parse_enode(address)
            if key != setup.node_id:
                book.add_bootnode(key, endpoint)
        transport = setup.transport_factory(setup)
        setup.endpoint = await transport.start()
        self.transport = transport
        loop = asyncio.get_running_loop()
        self.tasks = [loop.create_task(self._read(transport), name="network-read"),
                      loop.create_task(self._tick_every(setup.settings.tick), name="network-tick"),
                      loop.create_task(self._probe_lag(), name="network-lag")]
        log.info("network: node %s listening on %s (%s)", setup.node_id, setup.endpoint,
                 "federation member" if setup.member else "full node")
        self._tick()

    async def _read(self, transport: Transport) -> None:
        with contextlib.suppress(ActorError):  # stopping: nobody to read for
            while True:
                peer, frame = await transport.recv()
                await self.ref.send(_Inbound(peer, frame, time.perf_counter()))

    async def _probe_lag(self) -> None:
        """How late the loop runs a timer: what a frame arriving now would wait, at least."""
        latencies = self.setup.latencies
        while True:
            due = time.perf_counter() + LAG_PROBE_SECONDS
            await asyncio.sleep(LAG_PROBE_SECONDS)
            latencies.observe("loop_lag", "", max(0.0, time.perf_counter() - due))

    async def _tick_every(self, interval: float) -> None:
        with contextlib.suppress(ActorError):
            while True:
                await asyncio.sleep(interval)
                await self.ref.send(_Tick())

    def receive(self, message: NetworkMessage) -> Any:
        kind = type(message)
        if kind is _Inbound:
            return self._inbound(message.peer, message.frame, message.arrived)
        if kind is _Tick:
            return self._tick()
        if kind is Broadcast:
            return self._broadcast(message.message)
        if kind is SendTo:
            peer = self.book.peers.get(message.peer)
            if peer is None or not peer.connected:
                return False
            return self._enqueue(peer, wire.encode(message.message),
                                 wire.kind_of(message.message))
        if kind is Subscribe:
            for name in message.kinds & wire.ALL_KINDS:
                targets = self.setup.subscriptions.setdefault(name, [])
                if message.target not in targets:  # a restarted subscriber subscribes again
                    targets.append(message.target)
            return None
        if kind is SetStatus:
            self.setup.status = message.status
            frame = wire.encode(self.setup.own_status())
            for peer in self.book.connected():
                self._enqueue(peer, frame, "status")
            return None
        if kind is PeerList:
            return [_info(p) for p in self.book.peers.values()]
        if kind is Charge:
            peer = self.book.peers.get(message.peer)
            if peer is not None:
                self._charge(peer, message.offence, message.why)
            return None
        raise TypeError(f"network: unexpected message {type(message).__name__}")

    # -- in ---------------------------------------------------------------------------
    def _inbound(self, key: str, frame: bytes | memoryview, arrived: float) -> None:
        book = self.book
        peer = book.heard(key, len(frame))
        if peer is None:
            return
        self._ensure_pump(peer)
        try:
            payload = wire.split(frame)
            message = wire.decode_payload(payload)
        except wire.VersionMismatch as exc:
            log.info("network: peer %s speaks %s: hanging up", peer.label, exc)
            self._disconnect(peer, f"protocol version {wire.PROTOCOL_VERSION} only")
            return
        except wire.Oversized as exc:
            self._charge(peer, Offence.OVERSIZED, str(exc))
            return
        except wire.WireError as exc:
            self._charge(peer, Offence.MALFORMED, str(exc))
            return
        kind = wire.kind_of(message)
        if kind in CONSENSUS_KINDS and not peer.member:
            self._charge(peer, Offence.UNAUTHORIZED, f"{kind} from a non-member")
            return
        if kind in GOSSIP_KINDS:
            if not book.first_copy(wire.message_id(payload)):
                return
            # Forwarded first: a subscriber told may run (a block's decoding) before the pumps.
            for target in book.forward_to(kind, key, self_member=self.setup.member):
                self._enqueue(target, frame, kind)
            self._deliver(key, kind, message, arrived)
            return
        handled = type(message)
        if handled is Hello or handled is Status:
            self._introduced(peer, message, arrived)
            return
        if handled is Ping:
            self._enqueue(peer, wire.encode(Pong(message.nonce)), "pong")
            return
        if handled is Goodbye:
            log.info("network: peer %s said goodbye: %s", peer.label, message.reason)
            self._disconnect(peer, None)
            return
        if handled is not Pong:
            self._deliver(key, kind, message, arrived)
        if peer.status is None and not peer.greeted:
            self._greet(peer)

    def _introduced(self, peer: Peer, status: Status, arrived: float) -> None:
        ours = self.setup.status
        if status.chain_id != ours.chain_id or status.genesis_hash != ours.genesis_hash:
            self._charge(peer, Offence.WRONG_NETWORK, f"chain {status.chain_id}")
            return
        endpoint = None
        with contextlib.suppress(BadAddress):
            key, advertised = parse_enode(status.listen)
            endpoint = advertised if key == peer.key else None
        if not self.book.introduced(peer, status, endpoint):
            self._disconnect(peer, "banned")
            return
        if type(status) is Hello:
            self._enqueue(peer, wire.encode(self.setup.own_status()), "status")
        self._deliver(peer.key, wire.kind_of(status), status, arrived)

    def _deliver(self, key: str, kind: str, message: Payload, arrived: float) -> None:
        targets = self.setup.subscriptions.get(kind)
        if not targets:
            return
        received = Received(key, message, arrived)
        for target in list(targets):
            try:
                target.tell(received)
            except ActorStopped:
                targets.remove(target)
            except ActorError:  # a full mailbox or an open circuit: this one is missed
                self.setup.counters["delivery_dropped"] += 1
        self.setup.latencies.observe("inbound", kind, time.perf_counter() - arrived)

    def _charge(self, peer: Peer, offence: Offence, why: str) -> None:
        log.info("network: peer %s charged %s (%s)", peer.label, offence.name, why[:200])
        if self.book.charge(peer.key, offence):
            log.warning("network: peer %s banned for %.0fs (%s)", peer.label,
                        self.book.limits.ban_seconds, offence.name)
            self._disconnect(peer, f"banned: {offence.value.replace('_', ' ')}")

    # -- out --------------------------------------------------------------------------
    def _broadcast(self, message: Gossip) -> int:
        kind = wire.kind_of(message)
        if kind in CONSENSUS_KINDS and not self.setup.member:
            if kind not in self.unsent_kinds:  # said once per kind, not every slot
                self.unsent_kinds.add(kind)
                log.warning("network: this node's key is not among the spec's node_keys: "
                            "its %s messages are not sent", kind)
            return 0
        frame = wire.encode(message)
        self.book.first_copy(wire.message_id(wire.split(frame)))  # our own, when it comes back
        targets = self.book.forward_to(kind, None, self_member=self.setup.member)
        return sum(self._enqueue(peer, frame, kind) for peer in targets)

    def _enqueue(self, peer: Peer, frame: bytes | memoryview, kind: str) -> bool:
        if not peer.queue.put(frame, kind, time.perf_counter()):
            return False
        self._ensure_pump(peer)
        self.wakes[peer.key].set()
        return True

    def _ensure_pump(self, peer: Peer) -> None:
        if peer.key not in self.pumps:
            self.wakes[peer.key] = asyncio.Event()
            self.pumps[peer.key] = asyncio.get_running_loop().create_task(
                self._pump(peer), name=f"network-send-{peer.label}")

    async def _pump(self, peer: Peer) -> None:
        transport = self.transport
        assert transport is not None
        queue, latencies = peer.queue, self.setup.latencies
        wake = self.wakes[peer.key]
        while True:
            while (queued := queue.take()) is not None:
                if await transport.send(peer.key, queued.frame):
                    self.book.sent(peer, len(queued.frame))
                    latencies.observe("outbound", queued.kind,
                                      time.perf_counter() - queued.queued_at)
                else:
                    queue.dropped += 1
            wake.clear()
            await wake.wait()

    def _greet(self, peer: Peer) -> None:
        peer.greeted = True
        status = self.setup.own_status()
        self._enqueue(peer, wire.encode(Hello(*msgspec.structs.astuple(status))), "hello")

    def _tick(self) -> None:
        transport = self.transport
        assert transport is not None
        due = self.book.tick()
        for peer in due.lost:
            log.info("network: lost peer %s", peer.label)
            self._stop_pump(peer.key)
            transport.hang_up(peer.key)
        for peer in due.dial:
            assert peer.endpoint is not None
            transport.dial(peer.key, peer.endpoint)
            self._greet(peer)
        for peer in due.ping:
            self.nonce += 1
            self._enqueue(peer, wire.encode(Ping(self.nonce & (2**63 - 1))), "ping")

    def _disconnect(self, peer: Peer, reason: str | None) -> None:
        """Close the link, after a Goodbye if ``reason``; a bootnode is dialed again later
        (unless banned), an inbound peer forgotten."""
        peer.connected = peer.greeted = False
        peer.queue.clear()
        if not peer.dialed:
            self.book.peers.pop(peer.key, None)
        self._stop_pump(peer.key)
        if self.transport is not None:
            farewell = None if reason is None else wire.encode(Goodbye(reason))
            self.transport.hang_up(peer.key, farewell)

    def _stop_pump(self, key: str) -> None:
        pump = self.pumps.pop(key, None)
        if pump is not None:
            pump.cancel()
        self.wakes.pop(key, None)

    # -- lifecycle --------------------------------------------------------------------
    def pre_restart(self, error: BaseException) -> None:
        self._close()

    def stopped(self) -> None:
        self._close()

    def _close(self) -> None:
        for task in (*self.tasks, *self.pumps.values()):
            task.cancel()
        self.tasks = []
        self.pumps.clear()
        self.wakes.clear()
        if self.transport is not None:
            self.transport.close()
            self.transport = None


def _info(peer: Peer) -> PeerInfo:
    return PeerInfo(peer.key, peer.endpoint, peer.member, peer.connected, round(peer.score, 3),
                    None if peer.status is None else peer.status.head_number,
                    peer.traffic.messages_in, peer.traffic.messages_out, peer.queue.dropped)


class NetworkClient:
    """Typed messages to the network actor."""

    def __init__(self, host: NetworkHost, timeout: float = 5.0) -> None:
        self.host = host
        self.timeout = timeout

    def broadcast(self, message: Gossip) -> None:
        self.host.ref(NETWORK).tell(Broadcast(message))

    async def send_to(self, peer: str, message: Payload) -> bool:
        return await self.host.ref(NETWORK).ask(SendTo(peer, message), self.timeout)

    async def subscribe(self, kinds: Iterable[str], target: ActorRef) -> None:
        wanted = frozenset(kinds)
        if unknown := wanted - wire.ALL_KINDS:
            raise ValueError(f"no such message kinds: {', '.join(sorted(unknown))}")
        await self.host.ref(NETWORK).ask(Subscribe(wanted, target), self.timeout)

    def set_status(self, status: Status) -> None:
        self.host.ref(NETWORK).tell(SetStatus(status))

    def charge(self, peer: str, offence: Offence, why: str) -> None:
        self.host.ref(NETWORK).tell(Charge(peer, offence, why))

    async def peers(self) -> list[PeerInfo]:
        return await self.host.ref(NETWORK).ask(PeerList(), self.timeout)


class NetworkCollector(Collector):
    """Peers, per-peer traffic, drops, penalties and bans, for ``/metrics``."""

    def __init__(self, setup: NetworkSetup) -> None:
        self.setup = setup

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily
                                  | HistogramMetricFamily]:
        book = self.setup.book
        connected = book.connected()
        peers = GaugeMetricFamily("alys_network_peers", "Connected peers", labels=["role"])
        members = sum(p.member for p in connected)
        peers.add_metric(["authority"], members)
        peers.add_metric(["full"], len(connected) - members)
        yield peers
        messages = CounterMetricFamily("alys_network_peer_messages", "Frames per peer",
                                       labels=["peer", "direction"])
        size = CounterMetricFamily("alys_network_peer_bytes", "Frame bytes per peer",
                                   labels=["peer", "direction"])
        dropped = CounterMetricFamily("alys_network_peer_send_dropped",
                                      "Frames to a peer dropped (queue full or link down)",
                                      labels=["peer"])
        score = GaugeMetricFamily("alys_network_peer_score", "A peer's score (0 is best)",
                                  labels=["peer"])
        for peer in book.peers.values():
            traffic = peer.traffic
            messages.add_metric([peer.label, "in"], traffic.messages_in)
            messages.add_metric([peer.label, "out"], traffic.messages_out)
            size.add_metric([peer.label, "in"], traffic.bytes_in)
            size.add_metric([peer.label, "out"], traffic.bytes_out)
            dropped.add_metric([peer.label], peer.queue.dropped)
            score.add_metric([peer.label], peer.score)
        yield from (messages, size, dropped, score)
        penalties = CounterMetricFamily("alys_network_penalties", "Offences charged to peers",
                                        labels=["offence"])
        for offence in Offence:
            penalties.add_metric([offence.value], book.penalties[offence.name])
        yield penalties
        yield CounterMetricFamily("alys_network_bans", "Peers banned", value=book.bans_total)
        yield GaugeMetricFamily("alys_network_banned", "Node keys banned now",
                                value=sum(book.banned(k) for k in list(book.bans)))
        yield CounterMetricFamily("alys_network_gossip_duplicates",
                                  "Gossip messages received again", value=book.duplicates)
        yield CounterMetricFamily("alys_network_refused_frames",
                                  "Frames dropped unread (banned sender, or no room)",
                                  value=book.refused)
        yield CounterMetricFamily("alys_network_delivery_dropped",
                                  "Messages a subscriber's full mailbox missed",
                                  value=self.setup.counters["delivery_dropped"])
        handshakes = CounterMetricFamily("alys_network_handshake_failures",
                                         "CURVE handshakes refused", labels=["reason"])
        for reason, n in sorted(self.setup.handshake_failures.items()):
            handshakes.add_metric([reason], n)
        yield handshakes
        yield from latency_families(self.setup.latencies)


_LATENCY_HELP = {
    "inbound": "Seconds from a frame taken off the transport to its delivery, by kind",
    "outbound": "Seconds from a frame queued for a peer to its handing to libzmq, by kind",
    "handoff": "Seconds from a frame taken off the transport to its handing to the chain or "
               "the pool by the gossip actor, by kind",
    "loop_lag": f"Seconds the event loop ran a {LAG_PROBE_SECONDS * 1000:.0f} ms timer late",
}


def latency_families(latencies: Latencies) -> Iterator[HistogramMetricFamily]:
    """``alys_network_<stage>_seconds`` per stage, labelled by kind (none for the loop lag)."""
    families: dict[str, HistogramMetricFamily] = {}
    for (stage, kind), histogram in sorted(latencies.histograms.items()):
        family = families.get(stage)
        if family is None:
            family = families[stage] = HistogramMetricFamily(
                f"alys_network_{stage}_seconds", _LATENCY_HELP.get(stage, stage),
                labels=["kind"] if kind else None)
        buckets, total = histogram.snapshot()
        family.add_metric([kind] if kind else [], buckets, total)
    yield from families.values()
