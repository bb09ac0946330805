"""Chaos: random actors crash under steady load; all come back, nothing is lost unseen."""

from __future__ import annotations

import asyncio
import random

from alys_fast.actors import (
    Actor,
    ActorSystem,
    ChildSpec,
    CircuitBreaker,
    CircuitOpen,
    ExponentialBackoff,
    Immediate,
    MailboxFull,
    Strategy,
    SupervisorSpec,
)
from tests.actors.helpers import eventually, run


class Worker(Actor):
    def receive(self, message: tuple[int, bool]) -> int:
        if message[1]:
            raise RuntimeError(f"chaos crash {message[0]}")
        return message[0]


POLICIES = {
    "immediate": Immediate(),
    # A backoff child drains one crashing message per delay: 1% of a full mailbox is about
    # 100 crashes, so the cap bounds how long it needs to catch up after the load stops.
    "backoff": ExponentialBackoff(base=0.002, cap=0.01, jitter=0.2),
    "breaker": CircuitBreaker(max_failures=5, window=0.2, open_for=0.05),
}


def test_random_crashes_under_load_all_recover():
    rng = random.Random(1234)

    async def main():
        groups = tuple(
            SupervisorSpec(
                f"g{i}", strategy,
                tuple(ChildSpec(f"w{j}", Worker, policy=POLICIES[name])
                      for j, name in enumerate(POLICIES)),
                max_restarts=10_000, period=1)
            for i, strategy in enumerate(Strategy)
        )
        system = await ActorSystem(SupervisorSpec("root", Strategy.ONE_FOR_ONE, groups)).start()
        paths = [f"g{i}/w{j}" for i in range(3) for j in range(3)]
        refs = {p: system.ref(p) for p in paths}
        sent = dict.fromkeys(paths, 0)
        refused = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2.0
        n = 0
        while loop.time() < deadline:
            for _ in range(200):
                path = rng.choice(paths)
                n += 1
                try:
                    refs[path].tell((n, rng.random() < 0.01))
                    sent[path] += 1
                except (CircuitOpen, MailboxFull):
                    refused += 1          # fail-fast and backpressure, never a silent loss
            await asyncio.sleep(0.001)

        def settled() -> bool:
            nodes = [system.node(p) for p in paths]
            return all(len(x.mailbox) == 0 and x.state == "running" for x in nodes)

        try:
            await eventually(settled, timeout=15)
        except AssertionError:
            raise AssertionError([(p, system.node(p).state, len(system.node(p).mailbox))
                                  for p in paths]) from None
        for path in paths:
            node = system.node(path)
            assert node.mailbox.handled + system.dead_letters.counts[f"root/{path}"] == \
                sent[path], path
        restarts = sum(system.node(p).parent.restart_count(system.node(p)) for p in paths)
        await system.stop()
        return restarts, sum(sent.values()), refused

    restarts, total, refused = run(main())
    assert restarts > 10 and total > 10_000 and refused < total
