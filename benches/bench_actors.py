"""In-process actor figures against an asyncio.Queue baseline, measured in one run.

- tell→handle throughput: a producer tells N messages (waiting for room when the bounded
  mailbox is full), one consumer handles them; the same load through a bounded
  ``asyncio.Queue`` + ``await q.get()`` is the baseline (goal ≥ 3×).
- ask round trip: sequential asks to an echo actor, p50/p99 in µs (goal p99 < 50 µs).

Prints one JSON object. ``--short`` for CI (a few seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import uvloop

from alys_fast.actors import (
    Actor,
    ActorSystem,
    ChildSpec,
    MailboxFull,
    Strategy,
    SupervisorSpec,
)

BURST = 4096


class Counter(Actor):
    def __init__(self) -> None:
        self.count = 0
        self.done: asyncio.Future | None = None
        self.target = 0

    def receive(self, message):
        if type(message) is tuple:          # ("expect", n, future)
            self.count, self.target, self.done = 0, message[1], message[2]
            return None
        self.count += 1
        if self.count == self.target:
            self.done.set_result(None)
        return None


class Echo(Actor):
    def receive(self, message):
        return message


async def actor_throughput(n: int) -> float:
    spec = SupervisorSpec("bench", Strategy.ONE_FOR_ONE, (
        ChildSpec("counter", Counter, mailbox=BURST * 2),))
    system = await ActorSystem(spec).start()
    ref = system.ref("counter")
    done = asyncio.get_running_loop().create_future()
    ref.tell(("expect", n, done))
    tell = ref.tell
    t0 = time.perf_counter()
    for i in range(n):
        try:
            tell(i)
        except MailboxFull:
            await ref.send(i)           # backpressure: wait for room
    await done
    elapsed = time.perf_counter() - t0
    await system.stop()
    return n / elapsed


async def queue_throughput(n: int) -> float:
    queue: asyncio.Queue = asyncio.Queue(maxsize=BURST * 2)
    done = asyncio.get_running_loop().create_future()
    state = {"count": 0}

    async def consumer() -> None:
        while True:
            await queue.get()
            state["count"] += 1
            if state["count"] == n:
                done.set_result(None)

    task = asyncio.ensure_future(consumer())
    put = queue.put_nowait
    t0 = time.perf_counter()
    for i in range(n):
        try:
            put(i)
        except asyncio.QueueFull:
            await queue.put(i)
    await done
    elapsed = time.perf_counter() - t0
    task.cancel()
    return n / elapsed


async def ask_latency(n: int) -> dict:
    spec = SupervisorSpec("bench", Strategy.ONE_FOR_ONE, (ChildSpec("echo", Echo),))
    system = await ActorSystem(spec).start()
    ref = system.ref("echo")
    for i in range(1000):                      # warm up
        await ref.ask(i)
    samples = []
    clock = time.perf_counter_ns
    for i in range(n):
        t0 = clock()
        await ref.ask(i)
        samples.append((clock() - t0) / 1000)
    await system.stop()
    samples.sort()
    return {
        "p50_us": round(samples[len(samples) // 2], 2),
        "p99_us": round(samples[int(len(samples) * 0.99)], 2),
        "max_us": round(samples[-1], 2),
        "mean_us": round(statistics.fmean(samples), 2),
    }


async def main(short: bool) -> dict:
    n = 200_000 if short else 2_000_000
    rounds = 3 if short else 5
    actor = max([await actor_throughput(n) for _ in range(rounds)])
    baseline = max([await queue_throughput(n) for _ in range(rounds)])
    ask = await ask_latency(5_000 if short else 50_000)
    return {
        "bench": "actors",
        "messages": n,
        "tell_handle_msgs_per_s": round(actor),
        "asyncio_queue_msgs_per_s": round(baseline),
        "speedup_vs_queue": round(actor / baseline, 2),
        "speedup_goal": 3.0,
        "ask_round_trip": ask,
        "ask_p99_goal_us": 50,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="CI mode: a few seconds")
    args = parser.parse_args()
    print(json.dumps(uvloop.run(main(args.short))))
