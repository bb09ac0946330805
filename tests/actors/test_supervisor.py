"""Supervision end to end: strategies, restart types, policies, intensity, shutdown, health."""

from __future__ import annotations

import asyncio
import time

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from alys_fast.actors import (
    Actor,
    ActorStopped,
    ActorSystem,
    AskTimeout,
    ChildSpec,
    CircuitBreaker,
    CircuitOpen,
    ExponentialBackoff,
    MailboxFull,
    Never,
    Restart,
    Strategy,
    SupervisorSpec,
)
from alys_fast.actors.system import EXIT_ESCALATED
from tests.actors.helpers import Recorder, eventually, run


def tree(strategy, log, names=("a", "b", "c"), **kw):
    children = tuple(ChildSpec(n, Recorder, args=(n, log), **kw) for n in names)
    return SupervisorSpec("root", strategy, children, max_restarts=10, period=5)


def started(log, name):
    return sum(1 for n, e, _ in log if n == name and e == "started")


async def crash(system, name):
    with pytest.raises(RuntimeError, match="asked to crash"):
        await system.ref(name).ask("crash")


@pytest.mark.parametrize(
    ("strategy", "restarted"),
    [
        (Strategy.ONE_FOR_ONE, {"b"}),
        (Strategy.ONE_FOR_ALL, {"a", "b", "c"}),
        (Strategy.REST_FOR_ONE, {"b", "c"}),
    ],
)
def test_strategies_restart_the_right_children(strategy, restarted):
    async def main():
        log: list = []
        system = await ActorSystem(tree(strategy, log)).start()
        await crash(system, "b")
        await eventually(lambda: all(started(log, n) == 2 for n in restarted))
        for name in "abc":
            assert await system.ref(name).ask("count") == 0 or name not in restarted
            assert started(log, name) == (2 if name in restarted else 1)
        # siblings are stopped in reverse start order before anyone starts again
        stops = [n for n, e, _ in log if e == "stopped"]
        assert stops == sorted(restarted - {"b"}, reverse=True)
        await system.stop()

    run(main())


@pytest.mark.parametrize(
    ("restart", "crashed", "comes_back"),
    [
        (Restart.PERMANENT, True, True),
        (Restart.PERMANENT, False, True),
        (Restart.TRANSIENT, True, True),
        (Restart.TRANSIENT, False, False),
        (Restart.TEMPORARY, True, False),
        (Restart.TEMPORARY, False, False),
    ],
)
def test_restart_types(restart, crashed, comes_back):
    async def main():
        log: list = []
        system = await ActorSystem(tree(Strategy.ONE_FOR_ONE, log, ("a",), restart=restart)).start()
        ref = system.ref("a")
        if crashed:
            await crash(system, "a")
        else:
            ref.tell("stop")
        if comes_back:
            await eventually(lambda: started(log, "a") == 2)
            assert await ref.ask("ping") == "ping"
        else:
            await eventually(lambda: system.node("a").state == "stopped")
            with pytest.raises(ActorStopped):
                ref.tell("ping")
            assert started(log, "a") == 1
        await system.stop()

    run(main())


def test_lifecycle_hooks_and_mailbox_survive_restart():
    async def main():
        log: list = []
        system = await ActorSystem(tree(Strategy.ONE_FOR_ONE, log, ("a",))).start()
        ref = system.ref("a")
        ref.tell(1)
        ref.tell("crash")
        ref.tell(2)          # waits in the mailbox across the restart
        ref.tell(3)
        await eventually(lambda: ("a", "got", 3) in log)
        events = [(e, v) for _, e, v in log]
        assert events == [
            ("started", None), ("got", 1), ("pre_restart", "a asked to crash"),
            ("started", None), ("got", 2), ("got", 3),
        ]
        assert system.dead_letters.counts["root/a"] == 1   # the crashing one, not retried
        assert system.dead_letters.recent[-1][1] == "str"
        await system.stop()
        assert log[-1] == ("a", "stopped", None)

    run(main())


def test_backoff_delays_restart():
    async def main():
        log: list = []
        policy = ExponentialBackoff(base=0.2, factor=2, cap=1, jitter=0)
        system = await ActorSystem(tree(Strategy.ONE_FOR_ONE, log, ("a",), policy=policy)).start()
        t0 = time.monotonic()
        await crash(system, "a")
        await eventually(lambda: system.node("a").state == "restarting")
        assert await system.ref("a").ask("ping", timeout=3) == "ping"   # waits for the restart
        assert time.monotonic() - t0 >= 0.15   # timer resolution: ~1 ms
        await system.stop()

    run(main())


def test_circuit_breaker_fails_fast_then_probes():
    async def main():
        log: list = []
        policy = CircuitBreaker(max_failures=2, window=10, open_for=0.3)
        system = await ActorSystem(tree(Strategy.ONE_FOR_ONE, log, ("a",), policy=policy)).start()
        ref = system.ref("a")
        await crash(system, "a")
        await eventually(lambda: started(log, "a") == 2)
        await crash(system, "a")                      # second failure in the window: open
        await eventually(lambda: system.node("a").state == "open")
        with pytest.raises(CircuitOpen, match="circuit of 'root/a' is open"):
            await ref.ask("ping")
        with pytest.raises(CircuitOpen):
            ref.tell("ping")
        await eventually(lambda: started(log, "a") == 3, timeout=2)   # half-open
        assert await ref.ask("probe") == "probe"
        await eventually(lambda: system.node("a").state == "running")
        await system.stop()

    run(main())


def test_never_leaves_child_down_and_alerts():
    async def main():
        log: list = []
        system = await ActorSystem(
            tree(Strategy.ONE_FOR_ONE, log, ("a", "b"), policy=Never())).start()
        await crash(system, "a")
        await eventually(lambda: system.node("a").state == "down")
        assert system.alerts and system.alerts[0][0] == "root/a"
        with pytest.raises(ActorStopped):
            await system.ref("a").ask("ping")
        assert await system.ref("b").ask("ping") == "ping"   # siblings unaffected
        assert system.health()["alerts"][0]["path"] == "root/a"
        await system.stop()

    run(main())


def test_intensity_escalates_to_root_and_stops_node(caplog):
    async def main():
        log: list = []
        spec = SupervisorSpec(
            "root", Strategy.ONE_FOR_ONE,
            (ChildSpec("a", Recorder, args=("a", log)),), max_restarts=2, period=10)
        system = await ActorSystem(spec).start()
        for _ in range(3):
            system.ref("a").tell("crash")
            await asyncio.sleep(0.02)
        code = await asyncio.wait_for(system.wait(), 3)
        assert code == EXIT_ESCALATED
        assert "exceeded 2 restarts in 10" in system.exit_reason
        assert log[-1] == ("a", "stopped", None)

    run(main())
    assert any("stopping the node" in r.message for r in caplog.records)


def test_nested_escalation_restarts_the_subtree():
    async def main():
        log: list = []
        inner = SupervisorSpec(
            "inner", Strategy.ONE_FOR_ONE,
            (ChildSpec("x", Recorder, args=("x", log)),), max_restarts=0, period=10)
        root = SupervisorSpec(
            "root", Strategy.ONE_FOR_ONE,
            (inner, ChildSpec("y", Recorder, args=("y", log))), max_restarts=5, period=10)
        system = await ActorSystem(root).start()
        system.ref("inner/x").tell("crash")     # inner may not restart anything: escalates
        await eventually(lambda: started(log, "x") == 2)
        assert system.health()["children"][0]["restarts"] == 1
        assert started(log, "y") == 1
        assert await system.ref("inner/x").ask("ping") == "ping"
        await system.stop()

    run(main())


class Stubborn(Actor):
    """Blocks its handler without yielding to Stop: only a kill ends it."""

    async def receive(self, message):
        await asyncio.sleep(60)


def test_shutdown_kills_after_timeout_and_health_reports_stuck():
    async def main():
        spec = SupervisorSpec("root", Strategy.ONE_FOR_ONE, (
            ChildSpec("s", Stubborn, shutdown=0.2, stuck_after=0.05),))
        system = await ActorSystem(spec, watchdog_interval=0.05).start()
        system.ref("s").tell("block")
        await asyncio.sleep(0.1)
        assert system.stuck() == ["root/s"]
        assert system.health()["children"][0]["stuck"] is True
        t0 = time.monotonic()
        await system.stop()
        assert 0.15 < time.monotonic() - t0 < 2
        assert system.node("s").task.cancelled()

    run(main())


def test_ask_timeout_and_backpressure():
    async def main():
        spec = SupervisorSpec("root", Strategy.ONE_FOR_ONE, (
            ChildSpec("s", Stubborn, mailbox=2),))
        system = await ActorSystem(spec).start()
        ref = system.ref("s")
        ref.tell("block")                 # taken by the handler, which never finishes
        await asyncio.sleep(0.01)
        ref.tell(1)
        with pytest.raises(AskTimeout, match=r"ask str to 'root/s' got no reply within 0\.05s"):
            await ref.ask("x", timeout=0.05)
        with pytest.raises(MailboxFull):  # 1 and the timed-out ask still wait
            ref.tell(3)
        sender = asyncio.ensure_future(ref.send(3))
        await asyncio.sleep(0.05)
        assert not sender.done()          # waits for room instead of failing
        sender.cancel()
        assert system.node("s").mailbox.rejected == 1
        await system.stop()

    run(main())


def test_metrics_are_exported():
    async def main():
        log: list = []
        system = await ActorSystem(tree(Strategy.ONE_FOR_ONE, log, ("a",))).start()
        for i in range(5):
            await system.ref("a").ask(i)
        await crash(system, "a")
        await eventually(lambda: started(log, "a") == 2)
        registry = CollectorRegistry()
        registry.register(system.metrics)
        text = generate_latest(registry).decode()
        await system.stop()
        return text

    text = run(main())
    assert 'alys_actor_messages_handled_total{actor="root/a"} 5.0' in text
    assert 'alys_actor_restarts_total{actor="root/a"} 1.0' in text
    assert 'alys_actor_dead_letters_total{actor="root/a"} 1.0' in text
    assert 'alys_actor_handler_seconds_count{actor="root/a"} 5.0' in text
    assert 'alys_actor_mailbox_depth{actor="root/a"} 0.0' in text


def test_duplicate_child_names_are_rejected():
    log: list = []
    spec = tree(Strategy.ONE_FOR_ONE, log, ("a", "a"))

    async def main():
        with pytest.raises(ValueError, match="duplicate"):
            ActorSystem(spec)

    run(main())
