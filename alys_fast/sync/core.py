"""Range sync as a pure state machine: events in, actions out (no I/O, an injected clock).

:class:`RangeSync` is one node's view of how far its peers are and which blocks it is fetching.
The sync actor (``service.py``) feeds it what happens (a peer's Status, a BlocksResponse, the
chain's report on an import, the clock) and carries out the :data:`Action` s it returns:
:class:`Send` a request, :class:`Import` a batch, :class:`Charge` a peer, :class:`Became` a new
state. Alys's own sync (ALYS-PROTOCOL §2.4) asks one peer at a time for ``head+1 .. +1024``;
this one asks several peers in parallel and imports strictly in order.

Terms: the *head* is the chain's last imported block; a peer's *head* is the number its latest
Status advertised; a peer is *usable* while it is known (a Status arrived, it did not go away)
and not banned; the *target* is the highest usable peer head (the head itself when there is
none); a height is *claimed* while it is in flight (asked of a peer), buffered (received, not yet
imported) or importing.

Rules, one per case:

1. States. ``starting`` (the node has just started; it does not author or approve) becomes
   ``syncing`` as soon as the target is above the head, ``following`` once a peer is known at or
   below the head or :attr:`SyncLimits.startup_grace` seconds passed with none ahead.
   ``syncing`` becomes ``following`` when the head reaches the target and no import is running
   (caught up with the best usable peer; a node whose peers all went away follows what it has).
   ``following`` becomes ``syncing`` when a usable peer's head is at least
   :attr:`SyncLimits.sync_distance` blocks ahead, or at once when a gossiped block's parent is
   unknown (:meth:`RangeSync.on_unknown_parent`: the sender has at least the block before it).
   That tolerance trusts gossip to bring the next blocks, so it holds only while the node is
   *caught up*: since it last synced, it reached the highest head its usable peers told (a head
   lowered by an empty answer does not count) and has had a usable peer ever since. A node that
   follows without having caught up (the startup grace passed with no peer, its peers all went
   away, or their heads were only lowered) syncs from the first peer ahead of it by any
   distance, as at start: blocks gossiped while it was behind or alone are not gossiped again.
   :attr:`RangeSync.syncing` (not ``following``) is what stops the chain authoring/approving.
2. Requests (only while ``syncing``). The lowest unclaimed height above the head is asked next,
   from the usable peer whose head covers it with the fewest requests in flight (then the best
   score, then the lowest key), but not the peer that last failed that height while another can
   serve it. A request covers consecutive unclaimed heights, at most
   :attr:`SyncLimits.range_blocks` (<= 1,024, Alys's ``MAX_REQUEST_BLOCKS``), none above the
   peer's head, the target or ``head + window``. At most :attr:`SyncLimits.per_peer` requests
   are in flight per peer and :attr:`SyncLimits.in_flight` in all; while the buffer holds
   :attr:`SyncLimits.buffer_bytes` or more, only the next height the import needs is asked.
   Buffered bytes therefore stay below ``buffer_bytes + in_flight * MAX_FRAME``.
3. Responses are matched by request id and sender. One for no request of that peer is
   ``UNSOLICITED`` (charged), unless it answers a request already over (answered, timed out or
   dropped; the last :attr:`SyncLimits.settled_memory` are remembered): a late or duplicated
   answer is dropped, uncharged. One whose start differs from the
   request's or that carries more blocks than asked is ``MISMATCHED`` (charged, the range is
   asked again). An empty one is ``EMPTY`` (charged lightly; the peer's head is lowered below
   the start until its next Status). Fewer blocks than asked is allowed (a frame's worth,
   ``wire.blocks_that_fit``): the rest is unclaimed and asked again. Blocks at or below the
   head, or already buffered, are dropped; the others are buffered by height with their sender.
4. Timeouts: a request unanswered after :attr:`SyncLimits.request_timeout` seconds is
   ``TIMEOUT`` (charged), its heights unclaimed and asked of another peer when there is one.
5. Import: one batch at a time, the consecutive buffered heights from ``head + 1`` (at most
   :attr:`SyncLimits.import_batch`), in order; out-of-order responses wait in the buffer. The
   chain imports them through its import workflow (signature, approvals, execution, state root)
   and reports how many it imported and its head (:meth:`RangeSync.on_imported`). A refused
   block is ``BAD_BLOCK`` for the peer that served it (a ban): every block buffered from it is
   dropped and those heights asked of another peer. A local failure (storage, engine) charges
   nobody; the batch goes back to the buffer and is tried again after
   :attr:`SyncLimits.retry_delay` seconds. Blocks are therefore imported strictly in order, with
   no gap and no duplicate, and only what the chain verified.
6. Peers: a Status sets the peer's head; a peer that goes away loses its requests (unclaimed,
   uncharged); a banned one too, and its responses are ignored. Scores (:class:`PeerLedger`):
   each offence costs its :attr:`Offence.points`, the score recovers towards 0 at
   :attr:`SyncLimits.recover_per_second`; at or below :attr:`SyncLimits.ban_threshold` the peer
   is banned for :attr:`SyncLimits.ban_seconds`.

Progress: while one usable peer serves its blocks honestly and within the timeout, every height
up to its head is eventually imported: a height is only unclaimed by a failure charged to
another peer, each such peer is banned after a bounded number of failures, and an honest peer
is never charged. (A peer on another fork serves blocks the chain refuses: it is charged as a
liar, which is what it is to this node.)
"""

from __future__ import annotations

import enum
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from alys_fast.network.wire import MAX_FRAME, MAX_RANGE, BlocksRequest

Clock = Callable[[], float]


class SyncState(enum.Enum):
    STARTING = "starting"
    SYNCING = "syncing"
    FOLLOWING = "following"


class Offence(enum.Enum):
    """What a peer did wrong while serving sync; :attr:`points` is what it costs."""

    TIMEOUT = "timeout"            # no response within the request timeout
    UNSOLICITED = "unsolicited"    # a response to no request of ours
    MISMATCHED = "mismatched"      # a response not for the range asked
    EMPTY = "empty"                # no blocks for heights its Status claimed
    BAD_BLOCK = "bad_block"        # a block the chain refused

    @property
    def points(self) -> int:
        return _POINTS[self]


_POINTS = {Offence.TIMEOUT: 10, Offence.UNSOLICITED: 10, Offence.MISMATCHED: 25,
           Offence.EMPTY: 5, Offence.BAD_BLOCK: 100}


class Failure(enum.Enum):
    """Why the chain stopped importing a batch."""

    INVALID = "invalid"          # the next block is not valid on the head: its sender's fault
    UNAVAILABLE = "unavailable"  # a local fault (storage, engine): nobody's, try again later


@dataclass(frozen=True, slots=True)
class SyncLimits:
    """Tunables of range sync; see the module docstring for what each bounds."""

    range_blocks: int = MAX_RANGE
    per_peer: int = 2
    in_flight: int = 8
    window: int = 8 * MAX_RANGE
    buffer_bytes: int = 256 * 1024 * 1024
    import_batch: int = 64
    request_timeout: float = 15.0
    retry_delay: float = 1.0
    sync_distance: int = 4
    startup_grace: float = 2.0
    settled_memory: int = 1024
    ban_threshold: int = -100
    ban_seconds: float = 600.0
    recover_per_second: float = 0.1

    def __post_init__(self) -> None:
        if not 1 <= self.range_blocks <= MAX_RANGE:
            raise ValueError(f"range_blocks must be 1 to {MAX_RANGE}, got {self.range_blocks}")
        for name in ("per_peer", "in_flight", "window", "import_batch", "sync_distance"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")

    @property
    def max_buffered_bytes(self) -> int:
        """The most the buffer can hold (rule 2)."""
        return self.buffer_bytes + self.in_flight * MAX_FRAME


# --- actions ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``request`` to ``peer``."""

    peer: str
    request: BlocksRequest


@dataclass(frozen=True, slots=True)
class Import:
    """Import ``blocks`` (heights ``start`` ..), in order; answer :meth:`RangeSync.on_imported`."""

    start: int
    blocks: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Charge:
    """``peer`` committed ``offence``; ``banned`` if that banned it."""

    peer: str
    offence: Offence
    banned: bool


@dataclass(frozen=True, slots=True)
class Became:
    """The state changed (the chain stops or resumes authoring and approving)."""

    state: SyncState
    syncing: bool


Action = Send | Import | Charge | Became


# --- peers' scores ----------------------------------------------------------------------------


class PeerLedger:
    """Sync's scores and bans of peers (rule 6); kept across sync actor restarts."""

    def __init__(self, limits: SyncLimits, clock: Clock = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self.scores: dict[str, tuple[float, float]] = {}  # peer -> (score, when)
        self.bans: dict[str, float] = {}                  # peer -> banned until
        self.penalties: Counter[Offence] = Counter()
        self.bans_total = 0

    def score(self, peer: str) -> float:
        score, when = self.scores.get(peer, (0.0, 0.0))
        return min(0.0, score + (self.clock() - when) * self.limits.recover_per_second)

    def charge(self, peer: str, offence: Offence) -> bool:
        """Take the offence's points; True if that bans the peer."""
        self.penalties[offence] += 1
        score = self.score(peer) - offence.points
        if score > self.limits.ban_threshold:
            self.scores[peer] = (score, self.clock())
            return False
        self.scores.pop(peer, None)
        self.bans[peer] = self.clock() + self.limits.ban_seconds
        self.bans_total += 1
        return True

    def banned(self, peer: str) -> bool:
        until = self.bans.get(peer)
        if until is None:
            return False
        if self.clock() < until:
            return True
        del self.bans[peer]
        return False


# --- the state machine ------------------------------------------------------------------------


@dataclass(slots=True)
class _Request:
    peer: str
    start: int
    count: int
    deadline: float

    @property
    def end(self) -> int:
        return self.start + self.count - 1


@dataclass(slots=True)
class _Peer:
    claimed: int   # the head it told: its Status, or the parent of a block it gossiped
    head: int      # the highest height it is asked for: ``claimed``, lowered by an empty answer
    in_flight: int = 0


@dataclass
class SyncCounters:
    """What happened, for metrics."""

    requests: int = 0
    responses: int = 0
    blocks_received: int = 0
    blocks_imported: int = 0
    duplicates: int = 0
    late: int = 0
    import_failures: Counter[Failure] = field(default_factory=Counter)


class RangeSync:
    """One node's range sync; see the module docstring for the rules it applies."""

    def __init__(
        self, head: int, limits: SyncLimits | None = None, *, clock: Clock = time.monotonic,
        ledger: PeerLedger | None = None,
    ) -> None:
        self.limits = limits or SyncLimits()
        self.clock = clock
        self.ledger = ledger or PeerLedger(self.limits, clock)
        self.head = head
        self.state = SyncState.STARTING
        self.caught_up = False                           # rule 1: gossip keeps this node current
        self.started_at = clock()
        self.peers: dict[str, _Peer] = {}
        self.requests: dict[int, _Request] = {}
        self.buffer: dict[int, tuple[str, bytes]] = {}   # height -> (sender, block)
        self.buffered_bytes = 0
        self.importing: list[tuple[str, bytes]] = []     # the batch the chain has, in order
        self.retry_at: float | None = None               # a failed import is tried again then
        self.avoid: dict[int, str] = {}                  # height -> the peer that last failed it
        self.settled: OrderedDict[tuple[str, int], None] = OrderedDict()  # (peer, request id)
        self.counters = SyncCounters()
        self._next_id = 1

    # --- views ------------------------------------------------------------------------------

    @property
    def syncing(self) -> bool:
        """Whether the chain must neither author nor approve (rule 1)."""
        return self.state is not SyncState.FOLLOWING

    @property
    def target(self) -> int:
        heads = [p.head for p in self.peers.values()]
        return max(self.head, *heads) if heads else self.head

    @property
    def distance(self) -> int:
        return self.target - self.head

    def in_flight(self, peer: str | None = None) -> int:
        if peer is None:
            return len(self.requests)
        view = self.peers.get(peer)
        return 0 if view is None else view.in_flight

    # --- events -----------------------------------------------------------------------------

    def on_status(self, peer: str, head: int) -> list[Action]:
        """``peer`` says its head is ``head``."""
        if self.ledger.banned(peer):
            return []
        view = self.peers.get(peer)
        if view is None:
            self.peers[peer] = _Peer(head, head)
        else:
            view.claimed = view.head = head
        return self._advance([])

    def on_unknown_parent(self, peer: str, number: int) -> list[Action]:
        """``peer`` gossiped block ``number`` whose parent the chain does not have."""
        if self.ledger.banned(peer) or number <= self.head + 1:
            return []
        view = self.peers.setdefault(peer, _Peer(number - 1, number - 1))
        view.head = max(view.head, number - 1)
        view.claimed = max(view.claimed, number - 1)
        actions: list[Action] = []
        if self.state is not SyncState.SYNCING:
            self._become(SyncState.SYNCING, actions)
        return self._advance(actions)

    def on_peer_gone(self, peer: str) -> list[Action]:
        """``peer`` disconnected: its requests are unclaimed, uncharged."""
        if self.peers.pop(peer, None) is None:
            return []
        self._drop_requests(peer)
        return self._advance([])

    def on_head(self, head: int) -> list[Action]:
        """The chain's head is ``head`` (moved by something other than this sync)."""
        if head != self.head and not self.importing:
            self._set_head(head)
        return self._advance([])

    def on_response(
        self, peer: str, request_id: int, start: int, blocks: Sequence[bytes]
    ) -> list[Action]:
        """A BlocksResponse from ``peer`` (rule 3)."""
        actions: list[Action] = []
        if self.ledger.banned(peer):
            return actions
        request = self.requests.get(request_id)
        if request is None or request.peer != peer:
            if (peer, request_id) in self.settled:
                self.counters.late += 1
            else:
                self._charge(peer, Offence.UNSOLICITED, actions)
            return self._advance(actions)
        self._finish(request_id)
        self.counters.responses += 1
        if start != request.start or len(blocks) > request.count:
            self.avoid[request.start] = peer
            self._charge(peer, Offence.MISMATCHED, actions)
        elif not blocks:
            self.avoid[request.start] = peer
            view = self.peers.get(peer)
            if view is not None:
                view.head = min(view.head, request.start - 1)
            self._charge(peer, Offence.EMPTY, actions)
        else:
            self._buffer(peer, start, blocks)
        return self._advance(actions)

    def on_imported(self, imported: int, head: int, failure: Failure | None = None) -> list[Action]:
        """The chain's report on the last :class:`Import`: ``imported`` blocks of it went in,
        its head is now ``head``; ``failure`` says why it stopped short (rule 5)."""
        actions: list[Action] = []
        batch, self.importing = self.importing, []
        self.counters.blocks_imported += imported
        first = self.head + imported + 1   # the height of the first block not imported
        rest = [(first + offset, sender, block)
                for offset, (sender, block) in enumerate(batch[imported:])]
        self._set_head(head)
        if failure is Failure.INVALID and rest:
            culprit = rest[0][1]
            self.counters.import_failures[failure] += 1
            self.avoid[first] = culprit
            self._forget_blocks_of(culprit)
            rest = [entry for entry in rest if entry[1] != culprit]
            self._charge(culprit, Offence.BAD_BLOCK, actions)
        elif failure is Failure.UNAVAILABLE:
            self.counters.import_failures[failure] += 1
            self.retry_at = self.clock() + self.limits.retry_delay
        for height, sender, block in rest:
            if height > self.head and height not in self.buffer:
                self.buffer[height] = (sender, block)
                self.buffered_bytes += len(block)
        return self._advance(actions)

    def tick(self) -> list[Action]:
        """The clock moved: timeouts, the startup grace, an import retry."""
        actions: list[Action] = []
        now = self.clock()
        for request_id, request in list(self.requests.items()):
            # A peer banned by an earlier timeout here lost its other requests with it.
            if request.deadline <= now and request_id in self.requests:
                self._finish(request_id)
                self.avoid[request.start] = request.peer
                self._charge(request.peer, Offence.TIMEOUT, actions)
        if self.retry_at is not None and now >= self.retry_at:
            self.retry_at = None
        return self._advance(actions)

    # --- the rules --------------------------------------------------------------------------

    def _advance(self, actions: list[Action]) -> list[Action]:
        self._evaluate(actions)
        if self.state is SyncState.SYNCING:
            self._plan(actions)
        self._next_import(actions)
        if self.state is SyncState.SYNCING:  # an import may have caught up
            self._evaluate(actions)
        return actions

    def _evaluate(self, actions: list[Action]) -> None:
        target, head, state = self.target, self.head, self.state
        if not self.peers:
            self.caught_up = False
        elif head >= max(view.claimed for view in self.peers.values()):
            self.caught_up = True
        if state is SyncState.STARTING:
            if target > head:
                self._become(SyncState.SYNCING, actions)
            elif self.peers or self.clock() - self.started_at >= self.limits.startup_grace:
                self._become(SyncState.FOLLOWING, actions)
        elif state is SyncState.SYNCING:
            if head >= target and not self.importing:
                self._become(SyncState.FOLLOWING, actions)
        elif target - head >= (self.limits.sync_distance if self.caught_up else 1):
            self._become(SyncState.SYNCING, actions)

    def _become(self, state: SyncState, actions: list[Action]) -> None:
        self.state = state
        if state is SyncState.SYNCING:
            self.caught_up = False
        if state is SyncState.FOLLOWING:
            for request_id in list(self.requests):
                self._finish(request_id)
            self._clear_buffer()
        actions.append(Became(state, self.syncing))

    def _plan(self, actions: list[Action]) -> None:
        limits = self.limits
        while len(self.requests) < limits.in_flight:
            needed = self.head + len(self.importing) + 1
            start = self._lowest_unclaimed(needed)
            last = min(self.target, self.head + limits.window)
            if start > last or (self.buffered_bytes >= limits.buffer_bytes and start != needed):
                return
            peer = self._choose(start)
            if peer is None:
                return
            view = self.peers[peer]
            end = min(start + limits.range_blocks - 1, view.head, last)
            end = min(end, self._next_claimed(start, end) - 1)
            request_id = self._next_id
            self._next_id += 1
            request = _Request(peer, start, end - start + 1, self.clock() + limits.request_timeout)
            self.requests[request_id] = request
            view.in_flight += 1
            self.counters.requests += 1
            actions.append(Send(peer, BlocksRequest(request_id, start, request.count)))

    def _lowest_unclaimed(self, height: int) -> int:
        spans = sorted((r.start, r.end) for r in self.requests.values())
        while True:
            if height in self.buffer:
                height += 1
                continue
            for start, end in spans:
                if start <= height <= end:
                    height = end + 1
                    break
            else:
                return height

    def _next_claimed(self, start: int, end: int) -> int:
        """The first claimed height in ``start+1 .. end`` (``end + 1`` if none)."""
        first = end + 1
        for request in self.requests.values():
            if start < request.start <= end:
                first = min(first, request.start)
        for height in range(start + 1, first):
            if height in self.buffer:
                return height
        return first

    def _choose(self, height: int) -> str | None:
        """The usable peer to ask for ``height`` (rule 2), or None."""
        per_peer, avoided = self.limits.per_peer, self.avoid.get(height)
        best: tuple[bool, int, float, str] | None = None
        for key, view in self.peers.items():
            if view.head < height or view.in_flight >= per_peer or self.ledger.banned(key):
                continue
            rank = (key == avoided, view.in_flight, -self.ledger.score(key), key)
            if best is None or rank < best:
                best = rank
        return None if best is None else best[3]

    def _buffer(self, peer: str, start: int, blocks: Sequence[bytes]) -> None:
        counters = self.counters
        counters.blocks_received += len(blocks)
        claimed_to = self.head + len(self.importing)
        for offset, block in enumerate(blocks):
            height = start + offset
            if height <= claimed_to or height in self.buffer:
                counters.duplicates += 1
                continue
            self.buffer[height] = (peer, block)
            self.buffered_bytes += len(block)

    def _next_import(self, actions: list[Action]) -> None:
        if self.importing or self.retry_at is not None:
            return
        height = self.head + 1
        batch: list[tuple[str, bytes]] = []
        while height in self.buffer and len(batch) < self.limits.import_batch:
            entry = self.buffer.pop(height)
            self.buffered_bytes -= len(entry[1])
            batch.append(entry)
            height += 1
        if batch:
            self.importing = batch
            actions.append(Import(self.head + 1, tuple(block for _, block in batch)))

    # --- bookkeeping ------------------------------------------------------------------------

    def _set_head(self, head: int) -> None:
        self.head = head
        for height in [h for h in self.buffer if h <= head]:
            self.buffered_bytes -= len(self.buffer.pop(height)[1])
        for height in [h for h in self.avoid if h <= head]:
            del self.avoid[height]

    def _finish(self, request_id: int) -> None:
        """The request is over (answered, timed out, dropped): a later or second answer to it
        is dropped uncharged, while it is remembered."""
        request = self.requests.pop(request_id)
        view = self.peers.get(request.peer)
        if view is not None:
            view.in_flight -= 1
        self.settled[(request.peer, request_id)] = None
        while len(self.settled) > self.limits.settled_memory:
            self.settled.popitem(last=False)

    def _drop_requests(self, peer: str) -> None:
        for request_id in [i for i, r in self.requests.items() if r.peer == peer]:
            self._finish(request_id)

    def _forget_blocks_of(self, peer: str) -> None:
        for height in [h for h, (sender, _) in self.buffer.items() if sender == peer]:
            self.buffered_bytes -= len(self.buffer.pop(height)[1])

    def _clear_buffer(self) -> None:
        self.buffer.clear()
        self.buffered_bytes = 0

    def _charge(self, peer: str, offence: Offence, actions: list[Action]) -> None:
        banned = self.ledger.charge(peer, offence)
        if banned:
            self.peers.pop(peer, None)
            self._drop_requests(peer)
            self._forget_blocks_of(peer)
        actions.append(Charge(peer, offence, banned))


# --- serving ----------------------------------------------------------------------------------


class ServeLimiter:
    """Per-peer token buckets of blocks served: ``rate`` blocks a second, ``burst`` at most.

    A request is answered with as many blocks as the peer's bucket holds (fewer than asked is a
    valid response: the requester asks for the rest), and waits while it is empty.
    """

    def __init__(self, rate: float, burst: int, clock: Clock = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"serve rate and burst must be positive, got {rate}, {burst}")
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.buckets: dict[str, tuple[float, float]] = {}  # peer -> (tokens, when)

    def _tokens(self, peer: str) -> float:
        tokens, when = self.buckets.get(peer, (float(self.burst), 0.0))
        return min(float(self.burst), tokens + (self.clock() - when) * self.rate)

    def take(self, peer: str, wanted: int) -> int:
        """How many of ``wanted`` blocks may be served now (taken from the bucket)."""
        tokens = self._tokens(peer)
        granted = min(wanted, int(tokens))
        self.buckets[peer] = (tokens - granted, self.clock())
        return granted

    def wait(self, peer: str) -> float:
        """Seconds until the peer's bucket holds a block again (0: now)."""
        return max(0.0, (1 - self._tokens(peer)) / self.rate)

    def forget(self, peer: str) -> None:
        self.buckets.pop(peer, None)


class Rate:
    """Events per second over the last ``window`` seconds (blocks imported, for metrics)."""

    def __init__(self, window: float = 5.0, clock: Clock = time.monotonic) -> None:
        self.window = window
        self.clock = clock
        self.samples: deque[tuple[float, int]] = deque()

    def add(self, count: int) -> None:
        self.samples.append((self.clock(), count))

    def per_second(self) -> float:
        samples, since = self.samples, self.clock() - self.window
        while samples and samples[0][0] < since:
            samples.popleft()
        return sum(count for _, count in samples) / self.window
