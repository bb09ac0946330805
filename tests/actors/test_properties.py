"""Hypothesis properties of the runtime: ordering, no silent loss, intensity honoured."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from alys_fast.actors import Actor, ActorSystem, ChildSpec, Strategy, SupervisorSpec
from alys_fast.actors.policies import RestartIntensity
from tests.actors.helpers import eventually, run


class Sink(Actor):
    """Records ``(sender, seq)`` pairs; crashes on the ones marked ``crash``."""

    def __init__(self, seen: list) -> None:
        self.seen = seen

    def receive(self, message: tuple[int, int, bool]) -> None:
        sender, seq, crash = message
        if crash:
            raise RuntimeError(f"crash on {sender}:{seq}")
        self.seen.append((sender, seq))


# A schedule: which sender sends next, and whether that message crashes the actor.
schedules = st.lists(st.tuples(st.integers(0, 4), st.booleans()), min_size=1, max_size=150)


@settings(max_examples=40, deadline=None)
@given(schedules)
def test_per_sender_order_and_only_crashing_messages_lost(schedule):
    async def main():
        seen: list = []
        spec = SupervisorSpec("root", Strategy.ONE_FOR_ONE,
                              (ChildSpec("sink", Sink, args=(seen,)),),
                              max_restarts=len(schedule) + 1, period=60)
        system = await ActorSystem(spec).start()
        ref = system.ref("sink")
        next_seq = [0] * 5
        sent, crashing = [], []
        for sender, crash in schedule:
            message = (sender, next_seq[sender], crash)
            next_seq[sender] += 1
            await ref.send(message)
            (crashing if crash else sent).append(message[:2])
        await eventually(lambda: len(seen) + system.dead_letters.total == len(schedule))
        await system.stop()
        return seen, sent, crashing, system.dead_letters.total

    seen, sent, crashing, dead = run(main())
    assert sorted(seen) == sorted(sent)          # nothing lost except the crashing ones
    assert dead == len(crashing)                 # and those are all dead-lettered, once
    for sender in range(5):                      # each sender's order is kept
        mine = [seq for s, seq in seen if s == sender]
        assert mine == sorted(mine)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 5),
    st.floats(0.5, 10),
    st.lists(st.floats(0, 3), min_size=1, max_size=60),
)
def test_intensity_matches_a_model(max_restarts, period, gaps):
    now = [0.0]
    intensity = RestartIntensity(max_restarts, period, lambda: now[0])
    times: list[float] = []
    for gap in gaps:
        now[0] += gap
        times.append(now[0])
        in_window = [t for t in times if now[0] - t <= period]
        assert intensity.add_restart() is (len(in_window) <= max_restarts)
