"""The metrics actor and the collector that turns the node's counters into Prometheus families.

Counters are plain numbers owned by the actor that counts them (the chain's in the node's
``stats["chain"]``, the RPC's in ``stats["rpc"]``: its calls per method, and the slot
of the head it serves), so counting costs an integer add.
The pool's live inside its actor; the metrics actor asks for them once per ``interval`` and
keeps the last answer in ``stats["pool"]``. :class:`NodeCollector` reads these at scrape
time, with the RPC's open connections and the version; it is registered once per node, so a
restarted metrics actor changes nothing for it. (The node also registers prometheus_client's
process and platform collectors: CPU, memory, file descriptors, Python version.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import platform
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from alys_fast import __version__
from alys_fast.actors import Actor, ActorError, Directory
from alys_fast.chain.pool_actor import PoolClient, PoolSettings
from alys_fast.metrics.stats import NodeStats
from alys_fast.rpc.health import HealthSettings, head_age
from alys_fast.rpc.settings import RpcEndpoint

log = logging.getLogger(__name__)


class MetricsActor(Actor):
    """Samples the pool's numbers every ``interval`` seconds into ``stats["pool"]``."""

    def __init__(self, stats: NodeStats, directory: Directory, interval: float = 1.0) -> None:
        self.stats = stats
        self.directory = directory
        self.interval = interval
        self.task: asyncio.Task[None] | None = None

    def started(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._sample(), name="metrics-sample")

    def receive(self, message: object) -> None:
        raise TypeError(f"metrics: unexpected message {message!r}")

    async def _sample(self) -> None:
        pool = PoolClient(self.directory, timeout=self.interval)
        while True:
            with contextlib.suppress(ActorError):  # the pool restarting: keep the last sample
                self.stats["pool"] = await pool.stats()
            await asyncio.sleep(self.interval)

    def pre_restart(self, error: BaseException) -> None:
        self._cancel()

    def stopped(self) -> None:
        self._cancel()

    def _cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.task = None


class NodeCollector(Collector):
    """The chain, pool and RPC numbers of one node (see the module docstring)."""

    def __init__(self, stats: NodeStats, pool: PoolSettings, rpc: RpcEndpoint,
                 health: HealthSettings) -> None:
        """``pool``: the limits it exports; ``rpc``: whose server's connections it counts;
        ``health``: how it ages the head."""
        self.stats = stats
        self.pool = pool
        self.rpc = rpc
        self.health = health

    def collect(self) -> Iterator:
        stats = self.stats
        chain = stats.get("chain", {})
        pool = stats.get("pool", {})
        rpc = stats.get("rpc", {})
        yield GaugeMetricFamily("alys_chain_head", "Number of the head block",
                                value=chain.get("head", 0))
        yield CounterMetricFamily("alys_chain_blocks", "Blocks authored and imported",
                                  value=chain.get("blocks", 0))
        yield CounterMetricFamily("alys_chain_transactions", "Transactions included in blocks",
                                  value=chain.get("transactions", 0))
        yield CounterMetricFamily("alys_chain_missed_slots", "Own slots passed without a block",
                                  value=chain.get("missed_slots", 0))
        for key, help_text in (("build_seconds", "Time to build a block from the pool"),
                               ("import_seconds", "Time to import a built block"),
                               ("wait_seconds", "Time a peer's block waits for the chain, "
                                                "from the network"),
                               ("approval_wait_seconds", "Time a peer's approval waits for "
                                                         "the chain, from the network"),
                               ("lookup_seconds", "Time to find a peer's block's transactions "
                                                  "in the pool, or recover them"),
                               ("validate_seconds", "Time to execute a peer's block"),
                               ("approvals_seconds", "Time from an own block built to its "
                                                     "certificate (2n/3 approvals)"),
                               ("certify_seconds", "Time from a peer's block received to its "
                                                   "import")):
            histogram = chain.get(key)
            if histogram is not None:
                family = HistogramMetricFamily(f"alys_chain_block_{key}", help_text)
                buckets, total = histogram.snapshot()
                family.add_metric([], buckets, total)
                yield family
        consensus = chain.get("consensus")
        if consensus is not None:
            events = CounterMetricFamily(
                "alys_consensus_events", "Fork-choice events (alys_fast/consensus/forkchoice.py): "
                "rival blocks, late and duplicate approvals, equivocations, lock releases, ...",
                labels=["event"])
            for event, n in sorted(consensus.items()):
                events.add_metric([event], n)
            yield events
        yield CounterMetricFamily("alys_txs_received", "Transactions received over RPC",
                                  value=rpc.get("received", 0))
        accepted = CounterMetricFamily("alys_txpool_accepted", "Transactions admitted to the pool",
                                       value=pool.get("accepted", 0))
        yield accepted
        rejected = CounterMetricFamily("alys_txpool_rejected",
                                       "Transactions refused by the pool", labels=["reason"])
        for reason, n in sorted(pool.get("rejected", {}).items()):
            rejected.add_metric([reason], n)
        yield rejected
        size = GaugeMetricFamily("alys_txpool_transactions", "Pooled transactions",
                                 labels=["state"])
        size.add_metric(["pending"], pool.get("pending", 0))
        size.add_metric(["queued"], pool.get("queued", 0))
        yield size
        for key in ("replaced", "evicted", "included", "dropped", "expired"):
            yield CounterMetricFamily(f"alys_txpool_{key}", f"Pooled transactions {key}",
                                      value=pool.get(key, 0))
        for key in ("replayed", "skipped"):
            yield CounterMetricFamily(f"alys_txpool_journal_{key}",
                                      f"Journal records {key} at the pool's last start",
                                      value=pool.get(f"journal_{key}", 0))
        yield self._pool_limits()
        yield GaugeMetricFamily("alys_txpool_oldest_pending_seconds",
                                "How long the longest-waiting pending transaction has been pooled",
                                value=pool.get("oldest_pending", 0))
        yield from self._rpc(rpc)
        engine = stats.get("engine")
        if engine is not None:
            yield from self._engine(engine)
        build = GaugeMetricFamily("alys_build_info", "The running build",
                                  labels=["version", "python"])
        build.add_metric([__version__, platform.python_version()], 1)
        yield build

    def _pool_limits(self) -> GaugeMetricFamily:
        """The pool's configured limits (``[pool]``), one sample each."""
        limits = GaugeMetricFamily("alys_txpool_limit", "The transaction pool's configured limits",
                                   labels=["limit"])
        journal = self.pool.journal
        for name, value in (*asdict(self.pool.limits).items(),
                            ("journal", int(journal.enabled)), ("rejournal", journal.rejournal)):
            limits.add_metric([name], value)
        return limits

    def _engine(self, engine: Any) -> Iterator:
        """An external execution engine's breaker, sync and Engine API latency per method."""
        status = engine.breaker.status()
        state = GaugeMetricFamily("alys_engine_breaker_state",
                                  "The execution engine's circuit breaker (1: its state)",
                                  labels=["state"])
        for name in ("closed", "open", "half_open"):
            state.add_metric([name], int(status.state == name))
        yield state
        for key, help_text in (("failures", "Engine API calls that failed or timed out"),
                               ("timeouts", "Engine API calls that timed out"),
                               ("refused", "Engine API calls refused by the open breaker"),
                               ("opened", "Times the breaker opened")):
            yield CounterMetricFamily(f"alys_engine_breaker_{key}", help_text,
                                      value=getattr(status, key))
        yield GaugeMetricFamily("alys_engine_synced", "Whether geth is at the node's head",
                                value=int(engine.synced))
        yield CounterMetricFamily("alys_engine_replayed_blocks",
                                  "Stored payloads replayed to bring geth back to the head",
                                  value=engine.replayed)
        latency = HistogramMetricFamily("alys_engine_request_seconds",
                                        "Time geth took to answer an Engine API call",
                                        labels=["method"])
        for method, histogram in sorted(engine.latency.items()):
            buckets, total = histogram.snapshot()
            latency.add_metric([method], buckets, total)
        yield latency

    def _rpc(self, rpc: dict) -> Iterator:
        """Calls, errors and latency per method; open connections; the served head's age."""
        requests = CounterMetricFamily("alys_rpc_requests", "JSON-RPC calls answered",
                                       labels=["method"])
        errors = CounterMetricFamily("alys_rpc_errors", "JSON-RPC calls answered with an error",
                                     labels=["method"])
        latency = HistogramMetricFamily("alys_rpc_request_seconds",
                                        "Time to answer a JSON-RPC call", labels=["method"])
        calls = rpc.get("calls")
        for method, counted in sorted(calls.methods.items() if calls is not None else ()):
            buckets, total = counted.latency.snapshot()
            requests.add_metric([method], counted.latency.count)
            errors.add_metric([method], counted.errors)
            latency.add_metric([method], buckets, total)
        yield from (requests, errors, latency)
        server = self.rpc.server
        open_now = server.connections() if server is not None else {"http": 0, "websocket": 0}
        connections = GaugeMetricFamily("alys_rpc_connections", "Open RPC connections",
                                        labels=["kind"])
        for kind, n in open_now.items():
            connections.add_metric([kind], n)
        yield connections
        slot = rpc.get("head_slot")
        if slot is not None:
            yield GaugeMetricFamily("alys_chain_head_age_seconds",
                                    "Seconds since the start of the head block's slot",
                                    value=head_age(self.health, slot))
