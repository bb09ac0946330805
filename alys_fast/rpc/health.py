"""What ``GET /health`` says about one node, and when it says the node is unhealthy (503).

The node is unhealthy, with one line per cause in ``reasons``, when:

- it is an authority and its head has not moved for ``stall_slots`` of its own slots
  (every slot with one authority; every n-th with n, until gossip brings the others' blocks).
  The head's time is its slot's start (to the millisecond; the header's timestamp has whole
  seconds), on the clock the chain authors by. A dev chain mining by interval stalls after as
  many intervals; one that mines on demand (automine, or none) is still while nobody sends
  anything, which is healthy;
- block production is halted for lack of an AuxPoW (the next block would be more than
  ``max_blocks_without_pow`` past the last finalized one, and no proof is queued);
- an actor or supervisor of the tree is not running (restarting, circuit open, down), or an
  actor is stuck in a handler; and for every alert the tree raised (an actor left down);
- an external execution client (geth) is unreachable: its circuit breaker is open or probing
  (the node neither authors nor imports), or it answers but is not yet back at the head.

A node with peers adds its ``node_id``, its connected ``peers`` (authorities, full nodes) and
whether it is ``syncing``. The report also carries the chain id, the head and its age in
seconds, the AuxPoW finality (last finalized block, blocks since, whether a proof is queued)
and the whole tree: what the status page shows.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from alys_fast.actors import Directory
from alys_fast.chain.aura import STALL_SLOTS, slot_start_ms
from alys_fast.chain.mining import DevMining
from alys_fast.chain.spec import ChainSpec
from alys_fast.metrics.stats import NodeStats
from alys_fast.network.service import NetworkSetup
from alys_fast.validation import Header


@dataclass(frozen=True)
class HealthSettings:
    """What the verdict depends on: the chain (its slots, its authorities), whether this node
    authors (``authority``), after how many of its slots a still head is a stall, and a dev
    chain's mining mode and clock (None: Aura on the wall clock)."""

    spec: ChainSpec
    authority: bool = False
    stall_slots: int = STALL_SLOTS
    dev_mining: DevMining | None = None


def head_age(settings: HealthSettings, slot: int, now_ms: int | None = None) -> float:
    """Seconds since the head's slot began; never negative (a dev chain's blocks can run ahead
    of the clock, one slot per block)."""
    now_ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    if settings.dev_mining is not None:
        now_ms += settings.dev_mining.offset_ms  # evm_increaseTime moved the chain's clock
    return max(0.0, (now_ms - slot_start_ms(slot, settings.spec.slot_ms)) / 1000)


def stall_after(settings: HealthSettings) -> float | None:
    """Seconds after which a head that has not moved makes the node unhealthy; None when a
    still head is normal (no authority key, or a dev chain mining on demand)."""
    if not settings.authority:
        return None
    dev = settings.dev_mining
    if dev is not None:
        return settings.stall_slots * dev.interval_ms / 1000 if dev.mode == "interval" else None
    spec = settings.spec
    return settings.stall_slots * len(spec.authorities) * spec.slot_ms / 1000


@dataclass(frozen=True)
class HealthCheck:
    """One node's ``/health``: its settings and where the live facts are — the actor tree (via
    ``directory``), the services' counters (``stats``) and, on a node with peers, the network
    (``network``) and whether sync is catching up (``syncing``)."""

    settings: HealthSettings
    directory: Directory
    stats: NodeStats
    network: NetworkSetup | None = None
    syncing: Callable[[], bool] | None = None

    def report(self, head: Header) -> dict[str, Any]:
        """The ``/health`` JSON for ``head`` (the head the RPC serves); see the module
        docstring."""
        settings = self.settings
        tree = self.directory.system.health()
        age = head_age(settings, head.slot)
        reasons = []
        limit = stall_after(settings)
        if limit is not None and age > limit:
            reasons.append(f"head {head.number} is {age:.1f} s old: no new block for "
                           f"{settings.stall_slots} slots ({limit:g} s)")
        finality = self.stats.get("auxpow", {})
        if finality.get("halted"):
            reasons.append(finality["halted"])
        reasons += _engine(self.stats.get("engine"))
        reasons += _down(tree)
        reasons += [f"alert {alert['path']}: {alert['text']}" for alert in tree["alerts"]]
        return {
            "healthy": not reasons,
            "status": "unhealthy" if reasons else "ok",
            "reasons": reasons,
            "chain_id": settings.spec.chain_id,
            "authority": settings.authority,
            "head": head.number,
            "head_hash": "0x" + head.hash.hex(),
            "head_age": round(age, 3),
            "finalized": finality.get("finalized", 0),
            "blocks_since_finality": finality.get("blocks_since_finality", 0),
            "pow_queued": bool(finality.get("queued")),
            **self._network(),
            "actors": tree,
        }

    def _network(self) -> dict[str, Any]:
        """A node with peers: its node id, connected peers (authorities, full nodes) and
        whether it is syncing (then it neither authors nor approves)."""
        network = self.network
        if network is None:
            return {}
        connected = network.book.connected()
        members = sum(peer.member for peer in connected)
        return {
            "node_id": network.node_id,
            "peers": {"authorities": members, "full": len(connected) - members},
            "syncing": self.syncing is not None and self.syncing(),
        }


def _engine(stats: Any) -> Iterator[str]:
    """Why an external execution engine (``stats["engine"]``, an EngineStats) stops the
    node from making and importing blocks, if it does."""
    if stats is None:
        return
    status = stats.breaker.status()
    if status.state != "closed":
        yield (f"execution engine unreachable: circuit breaker {status.state} after "
               f"{status.consecutive_failures} failures (last: {status.last_failure}); "
               f"next probe in {status.retry_in:.1f} s; no blocks are made or imported")
    elif not stats.synced:
        yield "execution engine answers but is not at the head yet: replaying blocks to it"


def _down(node: dict[str, Any]) -> Iterator[str]:
    """A line for every node of the health tree that is not running, or stuck."""
    if node["state"] != "running":
        yield f"{node['kind']} {node['path']} is {node['state']}"
    elif node.get("stuck"):
        yield f"{node['kind']} {node['path']} is stuck: in a handler for {node['busy_for']:.1f} s"
    for child in node.get("children", ()):
        yield from _down(child)
