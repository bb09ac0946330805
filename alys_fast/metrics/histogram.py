"""A plain latency histogram an actor owns and updates with no locks, exported at scrape time.

prometheus-client's own Histogram takes a lock per observation; an actor's numbers are only
ever touched by that actor, so it keeps a bare one and the metrics actor copies it out.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

# Seconds: from a 1 ms block to a 10 s stall.
DEFAULT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Histogram:
    """Cumulative-on-export bucket counts plus sum and count (Prometheus histogram semantics)."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: Sequence[float] = DEFAULT_BUCKETS) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def snapshot(self) -> tuple[list[tuple[str, int]], float]:
        """(cumulative ``[(le, count), …, ("+Inf", count)]``, sum), as Prometheus exports."""
        out, running = [], 0
        for bound, n in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out, self.sum
