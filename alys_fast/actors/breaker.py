"""A circuit breaker for an external dependency (geth over the Engine API, later bitcoind).

It lives with the actor runtime, not with the engine, because it is a supervision strategy
(the seed's tree names the EngineActor's "CircuitBreaker") that any actor fronting another
process can use; it knows nothing of what it guards. It is a pure state machine: the caller
asks :meth:`CircuitBreaker.allow` before each call and reports the outcome; time comes from an
injected clock, so tests drive it without sleeping.

States:

- ``closed``: every call goes through. ``failure_threshold`` consecutive failures (a timeout
  is a failure) open it; a success resets the count.
- ``open``: no call goes through (each refusal is counted) until ``retry_at``; then the
  breaker is half-open.
- ``half_open``: exactly one call (the probe) goes through; the others are refused while it
  is out. A successful probe closes the breaker; a failed one opens it again for twice the
  previous backoff, capped at ``max_backoff`` (the first opening waits ``base_backoff``).

The reason of the last failure is kept for ``/health``, and the counters for ``/metrics``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum

import msgspec


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class BreakerStatus(msgspec.Struct, frozen=True):
    """What ``/health`` and ``/metrics`` show of a breaker at one moment."""

    state: BreakerState
    consecutive_failures: int
    last_failure: str | None
    retry_in: float
    successes: int
    failures: int
    timeouts: int
    refused: int
    opened: int


class CircuitBreaker:
    """Closed / open / half-open with capped exponential backoff; see the module docstring."""

    def __init__(
        self,
        *,
        failure_threshold: int = 3,
        base_backoff: float = 0.5,
        max_backoff: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be >= 1, got {failure_threshold}")
        if not 0 < base_backoff <= max_backoff:
            raise ValueError(
                f"need 0 < base_backoff <= max_backoff, got {base_backoff} and {max_backoff}")
        self.failure_threshold = failure_threshold
        self.base_backoff = base_backoff
        self.max_backoff = max_backoff
        self.clock = clock
        self._open = False
        self._probing = False
        self._backoff = 0.0
        self._retry_at = 0.0
        self.consecutive_failures = 0
        self.last_failure: str | None = None
        self.successes = 0
        self.failures = 0
        self.timeouts = 0
        self.refused = 0
        self.opened = 0

    @property
    def state(self) -> BreakerState:
        if not self._open:
            return BreakerState.CLOSED
        if self._probing or self.clock() >= self._retry_at:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def retry_in(self) -> float:
        """Seconds until the next probe may go (0 when closed or half-open)."""
        return max(0.0, self._retry_at - self.clock()) if self._open else 0.0

    def allow(self) -> bool:
        """Whether a call may go now; True in half-open marks it as the probe."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        self.refused += 1
        return False

    def record_success(self) -> None:
        self.successes += 1
        self.consecutive_failures = 0
        self._open = False
        self._probing = False
        self._backoff = 0.0

    def record_failure(self, reason: str, *, timeout: bool = False) -> None:
        """A failed call; ``reason`` is what ``/health`` will say."""
        self.failures += 1
        self.timeouts += timeout
        self.consecutive_failures += 1
        self.last_failure = reason
        if self._probing or (not self._open
                             and self.consecutive_failures >= self.failure_threshold):
            self._trip()

    def abandon(self) -> None:
        """A call let through ended without an outcome (cancelled by its caller): nothing is
        learned, but a probe that was out no longer blocks the next one."""
        self._probing = False

    def _trip(self) -> None:
        self._backoff = (self.base_backoff if not self._open
                         else min(self.max_backoff, self._backoff * 2))
        self._open = True
        self._probing = False
        self._retry_at = self.clock() + self._backoff
        self.opened += 1

    def status(self) -> BreakerStatus:
        return BreakerStatus(
            state=self.state,
            consecutive_failures=self.consecutive_failures,
            last_failure=self.last_failure,
            retry_in=self.retry_in(),
            successes=self.successes,
            failures=self.failures,
            timeouts=self.timeouts,
            refused=self.refused,
            opened=self.opened,
        )
