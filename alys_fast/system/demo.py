"""``alys-fast system demo``: the seed tree running, with a worker that crashes on purpose.

A real run, not a recording: a load task tells messages to a counter actor that raises on
every ``crash_every``-th message; its supervisor restarts it with exponential backoff while the
mailbox keeps the waiting messages. At the end handled + dead letters must equal sent.
"""

from __future__ import annotations

import asyncio
import time

import msgspec

from alys_fast.actors import (
    Actor,
    ActorSystem,
    ChildSpec,
    ExponentialBackoff,
    Strategy,
    SupervisorSpec,
)
from alys_fast.system.tree import build_spec, render_health


class Work(msgspec.Struct, tag=True):
    n: int


class FlakyCounter(Actor):
    """Accepts work; raises on every ``crash_every``-th message to exercise supervision."""

    def __init__(self, crash_every: int) -> None:
        self.crash_every = crash_every

    def receive(self, message: Work) -> None:
        if message.n % self.crash_every == 0:
            raise RuntimeError(f"demo crash on message {message.n}")


async def run_demo(seconds: float, crash_every: int = 5000) -> dict:
    demo = SupervisorSpec(
        "demo",
        Strategy.ONE_FOR_ONE,
        (ChildSpec("counter", FlakyCounter, args=(crash_every,),
                   policy=ExponentialBackoff(base=0.01, cap=0.2)),),
        max_restarts=1000,
        period=1.0,
    )
    system = await ActorSystem(build_spec({}, (demo,))).start()
    counter = system.ref("demo/counter")
    sent = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for _ in range(1000):
            sent += 1
            await counter.send(Work(sent))
        await asyncio.sleep(0)
    # Wait until every message was handled or dead-lettered and the counter is back up.
    node = system.node("demo/counter")
    while len(node.mailbox) or node.state != "running":
        await asyncio.sleep(0.01)
    result = {
        "sent": sent,
        "handled": node.mailbox.handled,
        "dead_letters": system.dead_letters.total,
        "restarts": node.parent.restart_count(node),
        "health": system.health(),
    }
    await system.stop()
    return result


def print_demo(result: dict) -> None:
    print("\n".join(render_health(result["health"])))
    print(
        f"sent={result['sent']} handled={result['handled']} "
        f"dead_letters={result['dead_letters']} restarts={result['restarts']}"
    )
