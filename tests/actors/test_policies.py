"""Restart decisions as pure state machines, driven by an injected clock."""

from __future__ import annotations

import random

import pytest

from alys_fast.actors import (
    ActorCrashed,
    ActorKilled,
    CircuitBreaker,
    Escalation,
    ExponentialBackoff,
    Immediate,
    Never,
    RemoteError,
    Restart,
    Shutdown,
)
from alys_fast.actors.policies import (
    ExitKind,
    PolicyState,
    RestartIntensity,
    Verdict,
    exit_kind,
    restart_due,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("restart", "kind", "due"),
    [
        (Restart.PERMANENT, ExitKind.NORMAL, True),
        (Restart.PERMANENT, ExitKind.SHUTDOWN, True),
        (Restart.PERMANENT, ExitKind.CRASH, True),
        (Restart.PERMANENT, ExitKind.KILLED, True),
        (Restart.TRANSIENT, ExitKind.NORMAL, False),
        (Restart.TRANSIENT, ExitKind.SHUTDOWN, False),
        (Restart.TRANSIENT, ExitKind.CRASH, True),
        (Restart.TRANSIENT, ExitKind.KILLED, True),
        (Restart.TEMPORARY, ExitKind.NORMAL, False),
        (Restart.TEMPORARY, ExitKind.SHUTDOWN, False),
        (Restart.TEMPORARY, ExitKind.CRASH, False),
        (Restart.TEMPORARY, ExitKind.KILLED, False),
    ],
)
def test_restart_type_truth_table(restart, kind, due):
    assert restart_due(restart, kind) is due


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (None, ExitKind.NORMAL),
        (Shutdown(), ExitKind.SHUTDOWN),
        (RemoteError("a", "Shutdown", "shutdown"), ExitKind.SHUTDOWN),
        (Escalation("sup", 3, 5.0, "boom"), ExitKind.SHUTDOWN),
        (ActorKilled("a", "process exited with code -9"), ExitKind.KILLED),
        (ActorCrashed("a", "process exited with code 1"), ExitKind.CRASH),
        (RemoteError("a", "ValueError", "boom"), ExitKind.CRASH),
        (ValueError("boom"), ExitKind.CRASH),
    ],
)
def test_exit_kind_of_each_reported_error(error, kind):
    assert exit_kind(error) is kind


def test_immediate_restarts_at_once():
    state = PolicyState(Immediate(), Clock())
    decision = state.on_crash(up_since=0)
    assert decision.verdict is Verdict.RESTART and decision.delay == 0


def test_never_stays_down():
    assert PolicyState(Never(), Clock()).on_crash(0).verdict is Verdict.STAY_DOWN


def test_backoff_grows_caps_and_resets():
    clock = Clock()
    policy = ExponentialBackoff(base=0.1, factor=2, cap=1.0, jitter=0.0, reset_after=5)
    state = PolicyState(policy, clock)
    delays = [state.on_crash(up_since=clock.now).delay for _ in range(6)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    # A child that stayed up past reset_after starts again from base.
    assert state.on_crash(up_since=clock.now - 5).delay == pytest.approx(0.1)


def test_backoff_jitter_stays_in_band():
    policy = ExponentialBackoff(base=1.0, factor=1.0, cap=1.0, jitter=0.25)
    state = PolicyState(policy, Clock(), random.Random(7))
    delays = [state.on_crash(0).delay for _ in range(200)]
    assert all(0.75 <= d <= 1.25 for d in delays)
    assert max(delays) - min(delays) > 0.2  # jitter really spreads the delays


def test_circuit_opens_after_k_failures_in_window():
    clock = Clock()
    state = PolicyState(CircuitBreaker(max_failures=3, window=10, open_for=5), clock)
    assert state.on_crash(0).verdict is Verdict.RESTART
    clock.now += 20  # the first failure leaves the window
    assert state.on_crash(0).verdict is Verdict.RESTART
    clock.now += 1
    assert state.on_crash(0).verdict is Verdict.RESTART
    clock.now += 1
    decision = state.on_crash(0)
    assert decision.verdict is Verdict.OPEN and decision.delay == 5
    assert state.circuit == "open" and state.retry_in() == pytest.approx(5)
    clock.now += 2
    assert state.retry_in() == pytest.approx(3)


def test_half_open_probe_closes_or_reopens():
    clock = Clock()
    state = PolicyState(CircuitBreaker(max_failures=1, window=10, open_for=5), clock)
    assert state.on_crash(0).verdict is Verdict.OPEN
    state.half_open()
    assert state.on_crash(0).verdict is Verdict.OPEN  # the probe failed: open again
    state.half_open()
    state.on_success()
    assert state.circuit == "closed"


def test_intensity_window_slides():
    clock = Clock()
    intensity = RestartIntensity(max_restarts=3, period=5, clock=clock)
    assert all(intensity.add_restart() for _ in range(3))
    assert not intensity.add_restart()  # 4 within 5 s
    clock.now += 5.5
    assert intensity.add_restart()      # the old ones left the window


def test_intensity_zero_means_no_restart_allowed():
    intensity = RestartIntensity(max_restarts=0, period=1, clock=Clock())
    assert not intensity.add_restart()


def test_intensity_rejects_nonsense():
    with pytest.raises(ValueError, match="max_restarts >= 0 and period > 0"):
        RestartIntensity(max_restarts=1, period=0, clock=Clock())
