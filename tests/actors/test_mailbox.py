"""The compiled mailbox on its own: order, bounds, lanes, budgets, failures, refusal."""

from __future__ import annotations

import asyncio

import pytest

from alys_fast._cext import require
from alys_fast.actors import ActorStopped, CircuitOpen, MailboxFull

mb = require("mailbox")


def test_fifo_and_budget():
    box = mb.Mailbox("t", 100)
    for i in range(10):
        box.tell(i)
    seen: list[int] = []
    assert box.process(seen.append, 4) == mb.BUDGET
    assert seen == [0, 1, 2, 3]
    assert box.process(seen.append, 100) == mb.EMPTY
    assert seen == list(range(10))
    assert box.handled == 10 and len(box) == 0
    assert box.latency.count == 10


def test_full_mailbox_refuses_and_counts():
    box = mb.Mailbox("t", 2)
    box.tell(1)
    box.tell(2)
    with pytest.raises(MailboxFull, match="mailbox of 't' is full"):
        box.tell(3)
    assert box.rejected == 1 and len(box) == 2


def test_capacity_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        mb.Mailbox("t", 0)


def test_system_lane_goes_first():
    box = mb.Mailbox("t", 10)
    box.tell("user")
    box.put_system("sys")
    assert box.process(lambda m: None, 10) == mb.SYSTEM
    assert box.take_system() == "sys"
    seen = []
    assert box.process(seen.append, 10) == mb.EMPTY and seen == ["user"]


def test_failure_keeps_rest_and_reports_message():
    box = mb.Mailbox("t", 10)
    for m in ("a", "bad", "c"):
        box.tell(m)

    def handler(m):
        if m == "bad":
            raise ValueError("no")

    assert box.process(handler, 10) == mb.FAILED
    message, error = box.clear_failure()
    assert message == "bad" and isinstance(error, ValueError)
    assert len(box) == 1 and box.handled == 1


def test_ask_future_gets_result_or_error():
    async def main():
        box = mb.Mailbox("t", 10)
        loop = asyncio.get_running_loop()
        ok, bad = loop.create_future(), loop.create_future()
        box.ask(2, ok)
        box.ask(0, bad)
        box.process(lambda x: 10 // x, 10)
        assert ok.result() == 5
        with pytest.raises(ZeroDivisionError):
            bad.result()

    asyncio.run(main())


def test_coroutine_handler_is_handed_back():
    async def handler(m):
        return m * 2

    async def main():
        box = mb.Mailbox("t", 10)
        fut = asyncio.get_running_loop().create_future()
        box.ask(21, fut)
        assert box.process(handler, 10) == mb.AWAIT
        assert box.busy_since > 0
        box.settle(await box.pending[2])
        assert fut.result() == 42 and box.busy_since == 0 and box.handled == 1

    asyncio.run(main())


def test_wait_and_wait_space():
    async def main():
        box = mb.Mailbox("t", 1)
        waiter = box.wait()
        assert waiter is not None and not waiter.done()
        box.tell("x")
        assert waiter.done()
        assert box.wait() is None
        room = box.wait_space()
        assert room is not None and not room.done()
        box.process(lambda m: None, 10)
        assert room.done() and box.wait_space() is None

    asyncio.run(main())


def test_refuse_and_close():
    box = mb.Mailbox("t", 10)
    box.tell("kept")
    box.refuse(lambda: CircuitOpen("t", 1.0))
    with pytest.raises(CircuitOpen):
        box.tell("x")
    assert len(box) == 1
    box.accept()
    box.tell("y")
    assert box.close() == ["kept", "y"]
    with pytest.raises(ActorStopped):
        box.tell("z")
    with pytest.raises(ActorStopped):
        box.put_system("stop")


def test_histogram_buckets_are_cumulative():
    hist = mb.LatencyHistogram()
    for s in (5e-7, 2e-6, 0.2, 100.0):
        hist.observe(s)
    cumulative = hist.cumulative()
    assert cumulative[0] == (1e-6, 1.0)
    assert cumulative[-1][1] == 4.0
    counts = [c for _, c in cumulative]
    assert counts == sorted(counts)
