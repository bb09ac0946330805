"""Restart types, exit kinds, restart policies and the intensity window: every restart
decision lives here, and :func:`restart_due` is the whole truth table (OTP's ``do_restart``).

Semantics (as Erlang/OTP's ``supervisor``; where this runtime adds to OTP it says so):

- Exit kind — how a child ended (:func:`exit_kind`): ``NORMAL`` (it stopped itself with
  ``stop()``, or its process exited 0: OTP's ``normal``); ``SHUTDOWN`` (a handler raised
  :class:`~alys_fast.actors.errors.Shutdown`, or a child supervisor gave up after its restart
  intensity: OTP's ``shutdown``); ``KILLED`` (``kill()`` cancelled its task, or a signal ended
  its process: OTP's ``killed``); ``CRASH`` (any other exception, or a non-zero exit).
  A child stopped by its own supervisor (shutdown, group restart) reports no exit.
- Restart type of a child — *whether* its own exit is followed by a restart:
  ``PERMANENT`` always (every exit kind); ``TRANSIENT`` only after an abnormal exit
  (``CRASH`` or ``KILLED``; not after ``NORMAL`` or ``SHUTDOWN``); ``TEMPORARY`` never.
  Default: ``PERMANENT``. A child that is not restarted is closed for good (state
  ``stopped``; asks to it raise ``ActorStopped``) until its supervisor itself is started
  again, which starts every child from its spec, as OTP's ``init`` does.
- Group restarts (``ONE_FOR_ALL``, ``REST_FOR_ONE``) terminate the siblings they take along,
  then start again only those that can be restarted: a ``TEMPORARY`` child (and a ``Never``
  one) is terminated and stays down, as OTP deletes a temporary child it terminates; a child
  already down for good stays down.
- Restart policy of a child — *how* it comes back once a restart is due (this runtime's
  addition; OTP restarts at once): ``Immediate`` at once (default); ``ExponentialBackoff``
  after ``base * factor**n`` seconds (capped, with ± ``jitter``; ``n`` resets once the child
  stayed up ``reset_after`` seconds), only after an abnormal exit (a normal exit of a
  permanent child restarts at once); ``CircuitBreaker`` at once until ``max_failures``
  abnormal exits fall within ``window`` seconds, then the circuit opens (calls fail fast with
  ``CircuitOpen``) for ``open_for`` seconds, after which the child is started half-open: its
  first handled message closes the circuit, an abnormal exit opens it again; ``Never``: the
  child is never restarted, whatever its restart type — on an exit its restart type would
  have restarted it leaves it down (state ``down``) and raises an alert, and it is treated as
  ``TEMPORARY`` by its siblings' group restarts.
- Restart intensity of a supervisor: every restart it makes (a group restart counts once; a
  circuit opening does not, its half-open probe does) is recorded; more than
  ``max_restarts`` within ``period`` seconds (a sliding window on a monotonic clock, OTP's
  ``add_restart``) and the supervisor gives up: it terminates its children (reverse start
  order) and exits with ``SHUTDOWN`` to its parent, which applies the supervisor's own
  restart type and policy (the root ends the system). Default: 3 in 5 s (OTP's is 1 in 5).

All state machines take an injected clock, so tests drive time explicitly.
"""

from __future__ import annotations

import enum
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from alys_fast.actors.errors import ActorKilled, Escalation, RemoteError, Shutdown

Clock = Callable[[], float]


class Restart(enum.Enum):
    PERMANENT = "permanent"
    TRANSIENT = "transient"
    TEMPORARY = "temporary"


class ExitKind(enum.Enum):
    NORMAL = "normal"
    SHUTDOWN = "shutdown"
    CRASH = "crash"
    KILLED = "killed"

    @property
    def abnormal(self) -> bool:
        return self in (ExitKind.CRASH, ExitKind.KILLED)


def exit_kind(error: BaseException | None) -> ExitKind:
    """The kind of a child's exit from the error it reported (None: it stopped normally)."""
    if error is None:
        return ExitKind.NORMAL
    if isinstance(error, Shutdown | Escalation) or (
        isinstance(error, RemoteError) and error.error_type == Shutdown.__name__
    ):
        return ExitKind.SHUTDOWN
    if isinstance(error, ActorKilled):
        return ExitKind.KILLED
    return ExitKind.CRASH


def restart_due(restart: Restart, kind: ExitKind) -> bool:
    """OTP's truth table: is an exit of this kind followed by a restart of this type?"""
    if restart is Restart.PERMANENT:
        return True
    if restart is Restart.TRANSIENT:
        return kind.abnormal
    return False


@dataclass(frozen=True, slots=True)
class Immediate:
    """Restart at once."""


@dataclass(frozen=True, slots=True)
class ExponentialBackoff:
    """Wait ``min(cap, base * factor**n) * (1 ± jitter)`` before the n-th consecutive restart."""

    base: float = 0.05
    factor: float = 2.0
    cap: float = 10.0
    jitter: float = 0.1
    reset_after: float = 30.0


@dataclass(frozen=True, slots=True)
class CircuitBreaker:
    """Open after ``max_failures`` crashes within ``window`` s; probe again after ``open_for`` s."""

    max_failures: int = 3
    window: float = 10.0
    open_for: float = 5.0


@dataclass(frozen=True, slots=True)
class Never:
    """Never restart: the child stays down and an alert is raised."""


Policy = Immediate | ExponentialBackoff | CircuitBreaker | Never
IMMEDIATE = Immediate()


class Verdict(enum.Enum):
    RESTART = "restart"       # restart after ``delay``
    OPEN = "open"             # circuit opened: refuse calls, half-open probe after ``delay``
    STAY_DOWN = "stay_down"   # Never: leave it down, alert


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    delay: float = 0.0


class PolicyState:
    """The per-child memory a policy needs (attempts, failure times, circuit state)."""

    def __init__(self, policy: Policy, clock: Clock, rng: random.Random | None = None) -> None:
        self.policy = policy
        self.clock = clock
        self.rng = rng or random.Random()
        self.attempt = 0
        self.failures: deque[float] = deque()
        self.circuit = "closed"        # closed | open | half_open
        self.opened_at = 0.0

    def on_crash(self, up_since: float) -> Decision:
        """A crash was seen; decide when (and whether) the child comes back."""
        policy, now = self.policy, self.clock()
        if isinstance(policy, Never):
            return Decision(Verdict.STAY_DOWN)
        if isinstance(policy, ExponentialBackoff):
            if now - up_since >= policy.reset_after:
                self.attempt = 0
            delay = min(policy.cap, policy.base * policy.factor**self.attempt)
            self.attempt += 1
            spread = policy.jitter * (2 * self.rng.random() - 1)
            return Decision(Verdict.RESTART, max(0.0, delay * (1 + spread)))
        if isinstance(policy, CircuitBreaker):
            self.failures.append(now)
            while self.failures and now - self.failures[0] > policy.window:
                self.failures.popleft()
            if self.circuit == "half_open" or len(self.failures) >= policy.max_failures:
                self.circuit = "open"
                self.opened_at = now
                self.failures.clear()
                return Decision(Verdict.OPEN, policy.open_for)
            return Decision(Verdict.RESTART)
        return Decision(Verdict.RESTART)

    def on_normal_exit(self) -> Decision:
        """A permanent child stopped normally: restart it, without backoff or failure count."""
        return Decision(Verdict.RESTART)

    def half_open(self) -> None:
        self.circuit = "half_open"

    def on_success(self) -> None:
        """The half-open probe was handled: close the circuit."""
        if self.circuit == "half_open":
            self.circuit = "closed"

    def retry_in(self) -> float:
        if not isinstance(self.policy, CircuitBreaker) or self.circuit != "open":
            return 0.0
        return max(0.0, self.opened_at + self.policy.open_for - self.clock())


class RestartIntensity:
    """OTP's ``add_restart``: a sliding window of restart times; False means escalate."""

    def __init__(self, max_restarts: int, period: float, clock: Clock) -> None:
        if max_restarts < 0 or period <= 0:
            raise ValueError(
                f"restart intensity needs max_restarts >= 0 and period > 0, "
                f"got {max_restarts} in {period}s"
            )
        self.max_restarts = max_restarts
        self.period = period
        self.clock = clock
        self.times: deque[float] = deque()

    def add_restart(self) -> bool:
        now = self.clock()
        self.times.append(now)
        while self.times and now - self.times[0] > self.period:
            self.times.popleft()
        return len(self.times) <= self.max_restarts

    def reset(self) -> None:
        self.times.clear()
