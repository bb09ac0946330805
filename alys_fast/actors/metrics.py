"""Prometheus metrics of the actor runtime, read from the compiled counters at scrape time.

The hot path only bumps C integers and a C histogram inside the mailbox; this collector turns
them into metric families when Prometheus scrapes, so metrics cost nothing per message.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from alys_fast.actors.system import ActorSystem


class ActorMetrics(Collector):
    """Per actor: handled, handler latency, mailbox depth, full mailbox, restarts, dead letters,
    refusals; per topic and subscriber: missed notifications."""

    def __init__(self, system: ActorSystem) -> None:
        self.system = system

    def collect(self) -> Iterator[Metric]:
        handled = CounterMetricFamily(
            "alys_actor_messages_handled", "Messages handled by the actor", labels=["actor"])
        latency = HistogramMetricFamily(
            "alys_actor_handler_seconds", "Handler latency per message", labels=["actor"])
        depth = GaugeMetricFamily(
            "alys_actor_mailbox_depth", "Messages waiting in the mailbox", labels=["actor"])
        full = CounterMetricFamily(
            "alys_actor_mailbox_full", "tell() refused with MailboxFull", labels=["actor"])
        restarts = CounterMetricFamily(
            "alys_actor_restarts", "Restarts by the supervisor", labels=["actor"])
        dead = CounterMetricFamily(
            "alys_actor_dead_letters", "Messages never handled", labels=["actor"])
        refused = CounterMetricFamily(
            "alys_actor_refusals", "Messages declined with Refused", labels=["actor"])
        missed = CounterMetricFamily(
            "alys_topic_missed", "Notifications a subscriber missed (mailbox full or down)",
            labels=["topic", "actor"])
        alerts = GaugeMetricFamily("alys_actor_alerts", "Alerts raised (actors left down)")
        for node in self.system.nodes():
            path = node.path
            if node.parent is not None:
                restarts.add_metric([path], node.parent.restart_count(node))
            mailbox = getattr(node, "mailbox", None)
            if mailbox is None:
                continue
            handled.add_metric([path], mailbox.handled)
            hist = mailbox.latency
            buckets = [(_bound(b), c) for b, c in hist.cumulative()]
            latency.add_metric([path], buckets, hist.total_seconds)
            depth.add_metric([path], len(mailbox))
            full.add_metric([path], mailbox.rejected)
            dead.add_metric([path], self.system.dead_letters.counts.get(path, 0))
            refused.add_metric([path], self.system.refusals.get(path, 0))
        for (topic, path), count in self.system.topics.missed.items():
            missed.add_metric([topic, path], count)
        alerts.add_metric([], len(self.system.alerts))
        yield from (handled, latency, depth, full, restarts, dead, refused, missed, alerts)


def _bound(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)
