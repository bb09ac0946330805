"""Topics (publish by type-checked topic, subscribers by path) and asks' typed replies and
refusals, for local actors and a remote one."""

from __future__ import annotations

import asyncio
from typing import ClassVar

import msgspec
import pytest

from alys_fast.actors import (
    Actor,
    ActorSystem,
    BadReply,
    ChildSpec,
    Refused,
    Strategy,
    SupervisorSpec,
    Topic,
)
from tests.actors.helpers import eventually, run
from tests.actors.remote_actors import Counter, Decline, Incarnation

pytestmark = pytest.mark.timeout(60)


class Tick(msgspec.Struct, frozen=True):
    n: int


TICKS = Topic("test.ticks", Tick)


class Follower(Actor):
    """Records the ticks it follows; ``"crash"`` crashes it; ``"seen"`` returns them."""

    subscribes = (TICKS,)

    def __init__(self, seen: list) -> None:
        self.seen = seen

    def receive(self, message):
        if isinstance(message, Tick):
            self.seen.append(message.n)
            return None
        if message == "crash":
            raise RuntimeError("asked to crash")
        raise TypeError(f"unexpected {message!r}")


class Count(msgspec.Struct, frozen=True):
    """-> an int; ``wrong`` answers a str instead (an actor bug)."""

    reply_type: ClassVar = int
    wrong: bool = False


class Answerer(Actor):
    def __init__(self) -> None:
        self.handled = 0

    def receive(self, message):
        if isinstance(message, Count):
            self.handled += 1
            return "not an int" if message.wrong else self.handled
        if message == "refuse":
            raise Refused("no, thank you")
        raise TypeError(f"unexpected {message!r}")


def test_subscribers_by_path_get_publications_even_across_a_restart():
    async def main():
        seen: list = []
        spec = SupervisorSpec("root", Strategy.ONE_FOR_ONE, (
            ChildSpec("a", Follower, args=(seen,)), ChildSpec("b", Follower, args=(seen,)),
        ))
        system = await ActorSystem(spec).start()
        try:
            assert system.topics.subscribers(TICKS) == ("root/a", "root/b")
            assert system.publish(TICKS, Tick(1)) == 2
            await eventually(lambda: seen == [1, 1])
            with pytest.raises(RuntimeError):
                await system.ref("a").ask("crash")
            await eventually(lambda: system.node("a").state == "running")
            system.publish(TICKS, Tick(2))
            await eventually(lambda: sorted(seen) == [1, 1, 2, 2])
            with pytest.raises(TypeError, match="carries Tick, not int"):
                system.publish(TICKS, 3)
        finally:
            await system.stop()

    run(main())


def test_a_subscriber_that_cannot_take_a_publication_misses_it_counted():
    async def main():
        seen: list = []
        spec = SupervisorSpec("root", Strategy.ONE_FOR_ONE, (
            ChildSpec("a", Follower, args=(seen,), mailbox=1),
        ))
        system = await ActorSystem(spec).start()
        try:
            delivered = [system.publish(TICKS, Tick(n)) for n in range(3)]  # no yield between
            assert delivered == [1, 0, 0]
            assert system.topics.missed[TICKS.name, "root/a"] == 2
            await eventually(lambda: seen == [0])
        finally:
            await system.stop()

    run(main())


def test_a_refusal_reaches_the_asker_and_the_actor_runs_on():
    async def main():
        system = await ActorSystem(SupervisorSpec("root", Strategy.ONE_FOR_ONE, (
            ChildSpec("x", Answerer),))).start()
        try:
            ref = system.ref("x")
            assert await ref.ask(Count()) == 1
            with pytest.raises(Refused, match="no, thank you"):
                await ref.ask("refuse")
            assert await ref.ask(Count()) == 2          # same instance: not restarted
            assert system.root.restart_count(system.node("x")) == 0
            assert system.refusals["root/x"] == 1
            with pytest.raises(BadReply, match="answered Count with a str, not int"):
                await ref.ask(Count(wrong=True))
        finally:
            await system.stop()

    run(main())


@pytest.mark.slow
def test_a_remote_refusal_is_a_refused_of_its_kind_and_the_process_runs_on():
    async def main():
        system = await ActorSystem(SupervisorSpec("root", Strategy.ONE_FOR_ONE, (
            ChildSpec("c", Counter, process=True),))).start()
        try:
            ref = system.ref("c")
            before = await ref.ask(Incarnation())
            with pytest.raises(Refused, match="not today") as refused:
                await ref.ask(Decline("not today"))
            assert refused.value.kind == "Refused"
            after = await asyncio.wait_for(ref.ask(Incarnation()), 10)
            assert after == before
            assert system.root.restart_count(system.node("c")) == 0
        finally:
            await system.stop()

    run(main())
