"""The circuit breaker's state machine on an injected clock: no sleeps, no timing."""

from __future__ import annotations

import pytest

from alys_fast.actors.breaker import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def breaker(clock: Clock, **options: float) -> CircuitBreaker:
    settings = {"failure_threshold": 3, "base_backoff": 1.0, "max_backoff": 5.0, **options}
    return CircuitBreaker(clock=clock, **settings)  # type: ignore[arg-type]


def fail(b: CircuitBreaker, times: int, reason: str = "refused") -> None:
    for _ in range(times):
        assert b.allow()
        b.record_failure(reason)


def test_closed_lets_every_call_through_and_success_resets_the_count(clock: Clock) -> None:
    b = breaker(clock)
    fail(b, 2)
    assert b.allow()
    b.record_success()
    fail(b, 2)
    assert b.state is BreakerState.CLOSED
    assert b.consecutive_failures == 2


def test_consecutive_failures_open_it_and_calls_are_refused(clock: Clock) -> None:
    b = breaker(clock)
    fail(b, 2)
    b.record_failure("geth: timed out", timeout=True)
    assert b.state is BreakerState.OPEN
    assert not b.allow() and not b.allow()
    status = b.status()
    assert (status.refused, status.opened, status.failures, status.timeouts) == (2, 1, 3, 1)
    assert status.last_failure == "geth: timed out"
    assert status.retry_in == 1.0


def test_half_open_lets_one_probe_and_a_success_closes(clock: Clock) -> None:
    b = breaker(clock)
    fail(b, 3)
    clock.now += 0.999
    assert b.state is BreakerState.OPEN and not b.allow()
    clock.now += 0.001
    assert b.state is BreakerState.HALF_OPEN
    assert b.allow()  # the probe
    assert not b.allow()  # no second call while the probe is out
    b.record_success()
    assert b.state is BreakerState.CLOSED
    assert b.consecutive_failures == 0 and b.allow()


def test_failed_probes_double_the_backoff_up_to_the_cap(clock: Clock) -> None:
    b = breaker(clock)
    fail(b, 3)
    waits = []
    for _ in range(5):
        waits.append(b.retry_in())
        clock.now += b.retry_in()
        assert b.allow()
        b.record_failure("still down")
        assert b.state is BreakerState.OPEN
    assert waits == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert b.opened == 6
    clock.now += b.retry_in()
    assert b.allow()
    b.record_success()
    fail(b, 3)  # after closing, backoff starts over
    assert b.retry_in() == 1.0


def test_an_abandoned_probe_frees_the_next_one(clock: Clock) -> None:
    b = breaker(clock)
    fail(b, 3)
    clock.now += 1.0
    assert b.allow()
    b.abandon()
    assert b.allow()


def test_failures_of_calls_already_out_do_not_reopen_an_open_breaker(clock: Clock) -> None:
    b = breaker(clock, failure_threshold=1)
    fail(b, 1)
    b.record_failure("a call sent before it opened")
    assert (b.opened, b.retry_in()) == (1, 1.0)


@pytest.mark.parametrize("options", [{"failure_threshold": 0}, {"base_backoff": 0},
                                     {"base_backoff": 6.0}])
def test_bad_settings_are_refused(clock: Clock, options: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        breaker(clock, **options)
