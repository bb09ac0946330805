"""An in-process network whose links drop, delay, duplicate, reorder and partition — for tests.

:class:`FaultNetwork` is a hub; :meth:`FaultNetwork.transport` makes a :class:`FaultTransport`
with the same methods as ``ZmqTransport`` (``transport.Transport``), so the network service
and everything above it run unchanged over either. Node keys are taken as authenticated (a
frame arrives with the key of the transport that sent it), as CURVE guarantees on the real one.

Semantics, per directed link ``a -> b``:
- A link exists while either end dialed the other and both are started, as with ZeroMQ's
  bidirectional connections; ``send`` is False without one (or when either end is closed).
- Faults (:class:`LinkFaults`, per link or for all): ``drop`` (probability), ``duplicate``
  (probability of a second copy), ``reorder`` (probability that a frame is held back and
  delivered right after the next frame on that link, or after ``reorder_window`` s),
  ``delay`` + uniform ``jitter`` seconds. A partition (:meth:`FaultNetwork.partition`) drops
  every frame between groups until :meth:`FaultNetwork.heal`.
- Determinism: each link draws from its own ``random.Random`` seeded by the network's seed and
  the link's ends, so the fate of the n-th frame on a link depends only on the seed and n, not
  on traffic elsewhere. (Frames are delivered by loop timers, so with delays the interleaving
  *across* links follows the timers.)
- A receiver's ``admit(key)`` is consulted on delivery (a banned peer's frames never arrive),
  as ZAP refuses a banned key's handshake on the real transport.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LinkFaults:
    drop: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    delay: float = 0.0
    jitter: float = 0.0
    reorder_window: float = 0.05


_CLEAN = LinkFaults()


class _Link:
    __slots__ = ("held", "held_timer", "rng")

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.held: bytes | None = None
        self.held_timer: asyncio.TimerHandle | None = None


class FaultNetwork:
    """The hub every :class:`FaultTransport` of a test sends through."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.nodes: dict[str, FaultTransport] = {}      # started transports by node key
        self.endpoints: dict[str, str] = {}             # endpoint -> node key
        self.faults: dict[tuple[str, str], LinkFaults] = {}
        self.default = _CLEAN
        self.groups: dict[str, int] | None = None       # node key -> partition group
        self.dialed: set[tuple[str, str]] = set()
        self.counts: Counter[str] = Counter()  # delivered, dropped, duplicated, reordered, ...
        self._links: dict[tuple[str, str], _Link] = {}

    def transport(
        self, node_id: str, endpoint: str, admit: Callable[[str], bool] = lambda key: True
    ) -> FaultTransport:
        return FaultTransport(self, node_id, endpoint, admit)

    def set_faults(self, faults: LinkFaults, a: str | None = None, b: str | None = None) -> None:
        """Faults on the link ``a -> b`` (both directions if ``b`` is None), or on every link."""
        if a is None:
            self.default = faults
            return
        pairs = [(a, b)] if b is not None else [(a, k) for k in self.nodes if k != a]
        for pair in pairs:
            self.faults[pair] = faults
            if b is None:
                self.faults[pair[::-1]] = faults

    def partition(self, *groups: Iterable[str]) -> None:
        """Split the nodes: frames only flow within a group (a node in none is alone)."""
        self.groups = {key: i for i, group in enumerate(groups) for key in group}

    def heal(self) -> None:
        self.groups = None

    # -- delivery ---------------------------------------------------------------------
    def _linked(self, a: str, b: str) -> bool:
        return (a, b) in self.dialed or (b, a) in self.dialed

    def _link(self, a: str, b: str) -> _Link:
        link = self._links.get((a, b))
        if link is None:
            link = self._links[(a, b)] = _Link(random.Random(f"{self.seed}:{a}->{b}"))
        return link

    def route(self, a: str, b: str, frame: bytes) -> bool:
        if a not in self.nodes or b not in self.nodes or not self._linked(a, b):
            return False
        faults = self.faults.get((a, b), self.default)
        link = self._link(a, b)
        rng = link.rng
        # Draw every die for every frame, so a frame's fate depends only on its position.
        dropped = rng.random() < faults.drop
        duplicated = rng.random() < faults.duplicate
        held = rng.random() < faults.reorder
        delay = faults.delay + rng.random() * faults.jitter
        groups = self.groups
        if groups is not None and groups.get(a, -1 - hash(a)) != groups.get(b, -1 - hash(b)):
            self.counts["partitioned"] += 1
            return True
        if dropped:
            self.counts["dropped"] += 1
            return True
        copies = [frame, frame] if duplicated else [frame]
        self.counts["duplicated"] += duplicated
        if held and link.held is None:
            self.counts["reordered"] += 1
            link.held = frame
            loop = asyncio.get_running_loop()
            link.held_timer = loop.call_later(faults.reorder_window, self._release, a, b, delay)
            copies.pop()
            if not copies:
                return True
        for copy in copies:
            self._deliver(a, b, copy, delay)
        self._release(a, b, delay)
        return True

    def _release(self, a: str, b: str, delay: float) -> None:
        link = self._links[(a, b)]
        if link.held is not None:
            frame, link.held = link.held, None
            if link.held_timer is not None:
                link.held_timer.cancel()
                link.held_timer = None
            self._deliver(a, b, frame, delay)

    def _deliver(self, a: str, b: str, frame: bytes, delay: float) -> None:
        if delay > 0:
            asyncio.get_running_loop().call_later(delay, self._arrive, a, b, frame)
        else:
            self._arrive(a, b, frame)

    def _arrive(self, a: str, b: str, frame: bytes) -> None:
        receiver = self.nodes.get(b)
        if receiver is None or a not in self.nodes or not receiver.admit(a):
            self.counts["lost"] += 1
            return
        try:
            receiver.inbox.put_nowait((a, frame))
        except asyncio.QueueFull:
            self.counts["overflow"] += 1
            return
        self.counts["delivered"] += 1


class FaultTransport:
    """One node's end of a :class:`FaultNetwork` (the ``Transport`` methods)."""

    def __init__(
        self, network: FaultNetwork, node_id: str, endpoint: str,
        admit: Callable[[str], bool], inbox: int = 4096,
    ) -> None:
        self.network = network
        self.node_id = node_id
        self.endpoint = endpoint
        self.admit = admit
        self.inbox: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(inbox)

    async def start(self) -> str:
        net = self.network
        net.nodes[self.node_id] = self
        net.endpoints[self.endpoint] = self.node_id
        return self.endpoint

    def dial(self, peer: str, endpoint: str) -> None:
        # As ZeroMQ's connect: the link is up once the peer listens at that endpoint with
        # that key; until then frames to it are refused.
        if self.network.endpoints.get(endpoint) == peer:
            self.network.dialed.add((self.node_id, peer))

    def hang_up(self, peer: str, farewell: bytes | None = None) -> None:
        if farewell is not None:
            self.network.route(self.node_id, peer, farewell)
        self.network.dialed.discard((self.node_id, peer))

    async def send(self, peer: str, frame: bytes) -> bool:
        return self.network.route(self.node_id, peer, bytes(frame))

    async def recv(self) -> tuple[str, bytes]:
        return await self.inbox.get()

    def close(self) -> None:
        net = self.network
        if net.nodes.get(self.node_id) is self:
            del net.nodes[self.node_id]
            net.endpoints.pop(self.endpoint, None)
            net.dialed = {pair for pair in net.dialed if self.node_id not in pair}
