"""Who the node talks to, how much it trusts them, and when it dials them again (pure, no I/O).

A peer is known by its node key (the CURVE public key, 64 hex digits), which the transport
has authenticated; its address is ``alys://<key>@host:port`` (:func:`parse_enode`).

Rules (the :class:`PeerBook` applies them; the service does the I/O they call for):
- Dialing. Bootnodes are dialed at start; a dialed peer that has not answered within the
  current backoff delay is dialed again, the delay doubling from ``backoff_first`` up to
  ``backoff_cap`` seconds; its Status resets the delay. A connected peer silent for
  ``dead_after`` seconds is lost (pinged every ``ping_interval`` seconds before that): a
  dialed one is dialed again, an inbound one is forgotten (unless banned).
- Score. Every peer starts at 0; an :class:`Offence` costs its points; the score recovers
  towards 0 at ``recover_per_second``. At or below ``ban_threshold`` the peer is banned for
  ``ban_seconds``, by node key and by advertised address: its frames are dropped unread, its
  handshakes refused, it is neither dialed nor forwarded to. (Not by IP: nodes of a devnet
  share 127.0.0.1, and many full nodes may share a NAT.)
- Gossip is a flood with dedupe, fine for a federation of at most ~15 authorities and some
  full nodes (every message crosses each link at most once per direction; no mesh, no
  IHAVE/IWANT as gossipsub needs for thousands): a message id is the SHA-256 of its payload;
  the first copy is delivered and forwarded to every connected peer but its sender, later
  copies are counted and dropped (:class:`SeenSet`, bounded, oldest forgotten first).
  Consensus kinds are forwarded only by federation members, since only their frames are
  accepted for those kinds; transactions by everyone.
- Send queues. Each peer has a bounded queue of frames waiting for the transport
  (:class:`SendQueue`); a frame that finds it full is dropped and counted, so one slow peer
  never holds memory or delays the others. The queue has two lanes: blocks, approvals and
  link control (:data:`URGENT_KINDS`) leave before transaction batches and block ranges, so
  under load a block never waits behind the transactions queued before it. How long frames
  take on their way through the node is kept in :class:`Latencies` (``/metrics``).
"""

from __future__ import annotations

import enum
import re
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from alys_fast.metrics.histogram import Histogram
from alys_fast.network.wire import ALL_KINDS, CONSENSUS_KINDS, Status

_ENODE = re.compile(r"alys://([0-9a-f]{64})@([^\s@/]+):(\d{1,5})")


class BadAddress(ValueError):
    """A peer address that is not ``alys://<64 hex digits>@host:port``."""


def parse_enode(text: str) -> tuple[str, str]:
    """``alys://<key hex>@host:port`` -> (key hex, ``tcp://host:port``)."""
    match = _ENODE.fullmatch(text.strip())
    if match is None or not 0 < int(match[3]) < 65536:
        raise BadAddress(f"peer address {text!r} is not alys://<64 hex digits>@host:port")
    return match[1], f"tcp://{match[2]}:{match[3]}"


def format_enode(key: str, endpoint: str) -> str:
    """The ``alys://`` address of node ``key`` listening at ``tcp://host:port``."""
    return f"alys://{key}@{endpoint.removeprefix('tcp://')}"


class Offence(enum.Enum):
    """What a peer did wrong; :attr:`points` is what it costs."""

    MALFORMED = "malformed"            # not a message of the protocol
    OVERSIZED = "oversized"            # over a size limit
    UNAUTHORIZED = "unauthorized"      # a consensus message from a non-member
    WRONG_NETWORK = "wrong_network"    # another chain id or genesis: banned at once
    BAD_CONSENSUS = "bad_consensus"    # a block or approval breaking a consensus rule

    @property
    def points(self) -> int:
        return _POINTS[self]


_POINTS = {Offence.MALFORMED: 25, Offence.OVERSIZED: 50, Offence.UNAUTHORIZED: 25,
           Offence.WRONG_NETWORK: 100, Offence.BAD_CONSENSUS: 25}


@dataclass(frozen=True, slots=True)
class PeerLimits:
    """Tunables of the peer book; the defaults suit a federation on a WAN."""

    max_peers: int = 64
    send_queue: int = 1024            # frames waiting per peer
    ban_threshold: int = -100
    ban_seconds: float = 600.0
    recover_per_second: float = 0.1
    ping_interval: float = 5.0
    dead_after: float = 20.0
    backoff_first: float = 0.5
    backoff_cap: float = 30.0
    seen_capacity: int = 65_536       # gossip message ids remembered


class Backoff:
    """Capped exponential delays: ``first``, ``2·first``, … up to ``cap``; ``reset`` on success."""

    __slots__ = ("attempts", "cap", "first")

    def __init__(self, first: float, cap: float) -> None:
        self.first = first
        self.cap = cap
        self.attempts = 0

    def next_delay(self) -> float:
        delay = min(self.cap, self.first * 2 ** min(self.attempts, 32))
        self.attempts += 1
        return delay

    def reset(self) -> None:
        self.attempts = 0


#: Kinds a peer's send queue sends before the others (see the module docstring).
URGENT_KINDS = frozenset(ALL_KINDS - {"transactions", "blocks_response"})


class QueuedFrame(NamedTuple):
    """A frame waiting in a send queue, with what its ``outbound`` latency is measured from."""

    frame: bytes | memoryview
    kind: str
    queued_at: float  # time.perf_counter() when it was queued


class SendQueue:
    """A peer's frames waiting for the transport, urgent kinds first; a frame finding its lane
    full (``capacity`` frames) is dropped, counted."""

    __slots__ = ("bulk", "capacity", "dropped", "urgent")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.urgent: deque[QueuedFrame] = deque()
        self.bulk: deque[QueuedFrame] = deque()
        self.dropped = 0

    def put(self, frame: bytes | memoryview, kind: str, queued_at: float = 0.0) -> bool:
        lane = self.urgent if kind in URGENT_KINDS else self.bulk
        if len(lane) >= self.capacity:
            self.dropped += 1
            return False
        lane.append(QueuedFrame(frame, kind, queued_at))
        return True

    def take(self) -> QueuedFrame | None:
        """The next frame to send (None: none waits)."""
        if self.urgent:
            return self.urgent.popleft()
        return self.bulk.popleft() if self.bulk else None

    def clear(self) -> None:
        self.urgent.clear()
        self.bulk.clear()

    def __len__(self) -> int:
        return len(self.urgent) + len(self.bulk)


#: Seconds: from 0.1 ms (a hop on an idle loop) to a 10 s stall.
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                   0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Latencies:
    """Histograms of how long frames take on their way through the node, by stage and kind
    (``("outbound", "new_block")``: queued for a peer -> handed to the transport)."""

    __slots__ = ("histograms",)

    def __init__(self) -> None:
        self.histograms: dict[tuple[str, str], Histogram] = {}

    def observe(self, stage: str, kind: str, seconds: float) -> None:
        histogram = self.histograms.get((stage, kind))
        if histogram is None:
            histogram = self.histograms[stage, kind] = Histogram(LATENCY_BUCKETS)
        histogram.observe(seconds)


class SeenSet:
    """The last ``capacity`` message ids; :meth:`add` is True for an id not seen yet."""

    __slots__ = ("capacity", "ids")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.ids: OrderedDict[bytes, None] = OrderedDict()

    def add(self, message_id: bytes) -> bool:
        if message_id in self.ids:
            return False
        self.ids[message_id] = None
        if len(self.ids) > self.capacity:
            self.ids.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(slots=True)
class Traffic:
    messages_in: int = 0
    bytes_in: int = 0
    messages_out: int = 0
    bytes_out: int = 0


@dataclass(slots=True)
class Peer:
    """One peer: what it said about itself, its standing, its link and traffic."""

    key: str
    queue: SendQueue
    backoff: Backoff
    endpoint: str | None = None  # tcp://host:port we dial (bootnodes) or it advertised
    dialed: bool = False         # we keep a link to it (a bootnode)
    member: bool = False         # a federation node key
    status: Status | None = None
    connected: bool = False
    greeted: bool = False        # we sent it a Hello on the current link
    last_seen: float = 0.0
    last_ping: float = 0.0
    next_dial: float = 0.0
    score: float = 0.0
    scored_at: float = 0.0
    traffic: Traffic = field(default_factory=Traffic)

    @property
    def label(self) -> str:
        """A short form of the key for logs and metric labels."""
        return self.key[:16]


@dataclass(frozen=True, slots=True)
class Due:
    """What :meth:`PeerBook.tick` asks the service to do now."""

    dial: list[Peer]
    ping: list[Peer]
    lost: list[Peer]


class PeerBook:
    """Every peer of one node, its score and bans; see the module docstring for the rules."""

    def __init__(
        self,
        members: Iterable[str],
        limits: PeerLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.members = frozenset(members)
        self.limits = limits or PeerLimits()
        self.clock = clock
        self.peers: dict[str, Peer] = {}
        self.bans: dict[str, float] = {}            # node key -> banned until
        self.address_bans: dict[str, float] = {}    # endpoint -> banned until
        self.seen = SeenSet(self.limits.seen_capacity)
        self.penalties: Counter[str] = Counter()    # offence name -> times charged
        self.bans_total = 0
        self.duplicates = 0      # gossip copies seen before
        self.refused = 0         # frames dropped unread (banned peer, or no room for a new one)

    # -- who ------------------------------------------------------------------------
    def _new_peer(self, key: str) -> Peer:
        limits = self.limits
        peer = Peer(key, SendQueue(limits.send_queue),
                    Backoff(limits.backoff_first, limits.backoff_cap),
                    member=key in self.members)
        self.peers[key] = peer
        return peer

    def add_bootnode(self, key: str, endpoint: str) -> Peer:
        """A peer to dial at once and keep a link to."""
        peer = self.peers.get(key) or self._new_peer(key)
        peer.endpoint = endpoint
        peer.dialed = True
        peer.next_dial = 0.0
        return peer

    def connected(self) -> list[Peer]:
        return [p for p in self.peers.values() if p.connected]

    def reset_links(self) -> None:
        """After the service restarts: no link is up, every dialed peer is due now."""
        for peer in self.peers.values():
            peer.connected = peer.greeted = False
            peer.queue.clear()
            peer.backoff.reset()
            peer.next_dial = 0.0

    # -- bans -----------------------------------------------------------------------
    def banned(self, key: str) -> bool:
        until = self.bans.get(key)
        if until is None:
            return False
        if self.clock() < until:
            return True
        del self.bans[key]
        return False

    def address_banned(self, endpoint: str | None) -> bool:
        until = self.address_bans.get(endpoint or "")
        if until is None:
            return False
        if self.clock() < until:
            return True
        del self.address_bans[endpoint or ""]
        return False

    def admits(self, key: str) -> bool:
        """May this node key complete a handshake / have its frames read?"""
        return not self.banned(key)

    def ban(self, key: str) -> None:
        until = self.clock() + self.limits.ban_seconds
        self.bans[key] = until
        self.bans_total += 1
        peer = self.peers.get(key)
        if peer is not None:
            if peer.endpoint is not None:
                self.address_bans[peer.endpoint] = until
            peer.connected = False
            peer.queue.clear()
            peer.score = 0.0
            if not peer.dialed:
                del self.peers[key]

    def charge(self, key: str, offence: Offence) -> bool:
        """Take ``offence``'s points off the peer's score; True if that bans it."""
        self.penalties[offence.name] += 1
        peer = self.peers.get(key) or self._new_peer(key)
        now = self.clock()
        recovered = (now - peer.scored_at) * self.limits.recover_per_second
        peer.score = min(0.0, peer.score + recovered) - offence.points
        peer.scored_at = now
        if peer.score <= self.limits.ban_threshold:
            self.ban(key)
            return True
        return False

    # -- traffic ----------------------------------------------------------------------
    def heard(self, key: str, size: int) -> Peer | None:
        """A frame of ``size`` bytes came from ``key``: the peer, now connected, or None if
        the frame must be dropped unread (banned, or no room for another peer)."""
        if self.banned(key):
            self.refused += 1
            return None
        peer = self.peers.get(key)
        if peer is None:
            if len(self.connected()) >= self.limits.max_peers:
                self.refused += 1
                return None
            peer = self._new_peer(key)
        now = self.clock()
        peer.connected = True
        peer.last_seen = now
        traffic = peer.traffic
        traffic.messages_in += 1
        traffic.bytes_in += size
        return peer

    def introduced(self, peer: Peer, status: Status, endpoint: str | None) -> bool:
        """The peer sent its status (and listen address): the link works, its dial delay
        starts again from the first; False if that address is banned."""
        peer.status = status
        peer.backoff.reset()
        if endpoint is not None and not peer.dialed:
            peer.endpoint = endpoint
        if self.address_banned(peer.endpoint):
            self.ban(peer.key)
            return False
        return True

    @staticmethod
    def sent(peer: Peer, size: int) -> None:
        peer.traffic.messages_out += 1
        peer.traffic.bytes_out += size

    def first_copy(self, message_id: bytes) -> bool:
        """True the first time a gossip message id is seen; counts the duplicates."""
        if self.seen.add(message_id):
            return True
        self.duplicates += 1
        return False

    def forward_to(self, kind: str, source: str | None, *, self_member: bool) -> list[Peer]:
        """The peers a gossip message of ``kind`` goes to (``source``: who sent it to us;
        None for our own): every connected peer but the source; consensus kinds only from a
        member."""
        if kind in CONSENSUS_KINDS and not self_member:
            return []
        return [p for p in self.peers.values() if p.connected and p.key != source]

    # -- time -------------------------------------------------------------------------
    def tick(self) -> Due:
        """Dials due, pings due and peers lost, as of now (the caller then acts on them)."""
        now = self.clock()
        limits = self.limits
        dial: list[Peer] = []
        ping: list[Peer] = []
        lost: list[Peer] = []
        for peer in list(self.peers.values()):
            if peer.connected:
                if now - peer.last_seen > limits.dead_after:
                    peer.connected = peer.greeted = False
                    peer.queue.clear()
                    lost.append(peer)
                    if not peer.dialed and not self.banned(peer.key):
                        del self.peers[peer.key]
                        continue
                    peer.next_dial = now
                elif now - peer.last_ping >= limits.ping_interval:
                    peer.last_ping = now
                    ping.append(peer)
                    continue
            if (peer.dialed and not peer.connected and now >= peer.next_dial
                    and not self.banned(peer.key) and not self.address_banned(peer.endpoint)):
                peer.next_dial = now + peer.backoff.next_delay()
                dial.append(peer)
        return Due(dial, ping, lost)
