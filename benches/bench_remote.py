"""Cross-process actor messaging over ZeroMQ: tell throughput and ask round trip, one run.

Questions answered (goals from the foundation issue):
- tell throughput to a remote actor, batched per loop iteration (goal >= 200k msgs/s):
  ``N`` tells (``send`` when the mailbox is full), then one ask as a barrier, so every message
  counted was handled by the child;
- ask round trip to a remote actor, sequential (goal p99 < 300 us).

Beside it, as references: the same actor run locally (same process, compiled mailbox), and a
raw ZeroMQ ping-pong with a uvloop echo process (the transport's own floor for a round trip).
Parent and child both run on uvloop. Prints one JSON object.

    python benches/bench_remote.py            # full
    python benches/bench_remote.py --short    # < 30 s, for CI
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import msgspec
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alys_fast.actors import (  # after the path fix: the script runs from anywhere
    Actor,
    ActorSystem,
    ChildSpec,
    MailboxFull,
    Strategy,
    SupervisorSpec,
)
from alys_fast.actors.runtime import run


class Add(msgspec.Struct, tag=True):
    n: int


class Total(msgspec.Struct, tag=True):
    pass


class Echo(msgspec.Struct, tag=True):
    n: int


class Sink(Actor):
    """Sums ``Add``; replies ``Total`` and ``Echo``. Loaded by the child from this file."""

    Message = Add | Total | Echo
    Reply = int

    def __init__(self) -> None:
        self.total = 0

    def receive(self, message: Add | Total | Echo) -> int | None:
        if type(message) is Add:
            self.total += message.n
            return None
        if type(message) is Echo:
            return message.n
        return self.total


async def tell_rate(ref, n: int) -> float:
    """Messages per second, from the first tell to the reply of the barrier ask."""
    base = await ref.ask(Total())
    message = Add(1)
    tell, send = ref.tell, ref.send
    started = time.perf_counter()
    for _ in range(n):
        try:
            tell(message)
        except MailboxFull:
            await send(message)
    while True:  # the barrier ask waits for room as the tells above do (ask never waits)
        try:
            total = await ref.ask(Total(), timeout=120)
            break
        except MailboxFull:
            await asyncio.sleep(0.001)
    elapsed = time.perf_counter() - started
    assert total - base == n, f"lost messages: {total - base} of {n}"
    return n / elapsed


async def ask_latency(ref, n: int, warmup: int) -> dict:
    ask = ref.ask
    for i in range(warmup):
        await ask(Echo(i))
    samples = []
    clock = time.perf_counter_ns
    for i in range(n):
        started = clock()
        await ask(Echo(i))
        samples.append(clock() - started)
    return _percentiles(samples)


_ECHO_CHILD = """
import sys, zmq, uvloop, asyncio
sock = zmq.Context().socket(zmq.PAIR)
sock.connect(sys.argv[1])
async def main():
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    def readable():
        while True:
            try:
                frame = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if frame == b"":
                done.set_result(None)
                return
            sock.send(frame)
    loop.add_reader(sock.getsockopt(zmq.FD), readable)
    readable()
    await done
uvloop.run(main())
"""


async def zmq_floor(n: int, warmup: int) -> dict:
    """The transport alone: a raw PAIR ping-pong to a uvloop echo process, same FD pattern."""
    with tempfile.TemporaryDirectory(prefix="alys-bench-") as tmp:
        endpoint = f"ipc://{tmp}/s"
        sock = zmq.Context.instance().socket(zmq.PAIR)
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind(endpoint)
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", _ECHO_CHILD, endpoint)
        loop = asyncio.get_running_loop()
        waiting: list[asyncio.Future] = []

        def readable() -> None:
            while True:
                try:
                    sock.recv(zmq.NOBLOCK)
                except zmq.Again:
                    return
                waiting.pop().set_result(None)

        loop.add_reader(sock.getsockopt(zmq.FD), readable)
        samples = []
        clock = time.perf_counter_ns
        for i in range(warmup + n):
            started = clock()
            future = loop.create_future()
            waiting.append(future)
            sock.send(b"ping")
            if sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                readable()
            await future
            if i >= warmup:
                samples.append(clock() - started)
        sock.send(b"")
        await proc.wait()
        loop.remove_reader(sock.getsockopt(zmq.FD))
        sock.close()
    return _percentiles(samples)


def _percentiles(samples: list[int]) -> dict:
    samples.sort()
    n = len(samples)
    return {
        "n": n,
        "p50_us": round(samples[n // 2] / 1e3, 1),
        "p90_us": round(samples[int(n * 0.90)] / 1e3, 1),
        "p99_us": round(samples[int(n * 0.99)] / 1e3, 1),
        "max_us": round(samples[-1] / 1e3, 1),
        "mean_us": round(statistics.fmean(samples) / 1e3, 1),
    }


async def measure(short: bool) -> dict:
    tells = 300_000 if short else 2_000_000
    asks = 5_000 if short else 20_000
    rounds = 3
    spec = SupervisorSpec("bench", Strategy.ONE_FOR_ONE, (
        ChildSpec("remote", Sink, process=True),
        ChildSpec("local", Sink),
    ))
    system = await ActorSystem(spec).start()
    try:
        out: dict = {}
        for name in ("remote", "local"):
            ref = system.ref(name)
            await tell_rate(ref, 20_000)                       # warm up
            rates = [await tell_rate(ref, tells) for _ in range(rounds)]
            out[name] = {
                "tell_msgs": tells,
                "tell_msgs_per_s": [round(r) for r in rates],
                "tell_msgs_per_s_median": round(statistics.median(rates)),
                "ask": await ask_latency(ref, asks, warmup=500),
            }
        out["zmq_floor"] = await zmq_floor(asks, warmup=500)
        return out
    finally:
        await system.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="small run for CI (< 30 s)")
    args = parser.parse_args()
    started = time.perf_counter()
    results = run(measure(args.short))
    remote = results["remote"]
    print(json.dumps({
        "bench": "remote_actors",
        "mode": "short" if args.short else "full",
        "transport": "zeromq PAIR over ipc://, msgspec msgpack, one frame per loop iteration",
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "remote": remote,
        "local_reference": results["local"],
        "zmq_pingpong_floor": results["zmq_floor"],
        "goals": {
            "tell_msgs_per_s>=200k": remote["tell_msgs_per_s_median"] >= 200_000,
            "ask_p99_us<300": remote["ask"]["p99_us"] < 300,
        },
        "seconds": round(time.perf_counter() - started, 1),
    }, indent=2))


if __name__ == "__main__":
    main()
