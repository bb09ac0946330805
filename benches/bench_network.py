"""Network message costs: gossip encode/decode and ZeroMQ CURVE send/recv over loopback.

Question: should the transport run in its own process (a remote actor)? It should if its
per-message CPU in the node's process were a real share of a slot. Measured per message kind —
a block of 1,000 transfers (~116 kB; its bytes are random: the network never parses a block),
an approval, a batch of 100 transactions:
- ``encode_us`` / ``decode_us``: ``wire.encode``; ``wire.split`` + ``decode_payload`` + the
  gossip id (what a node does with every frame it receives);
- ``round_trip_us``: one frame to a peer and back between two ``ZmqTransport``s on 127.0.0.1
  (CURVE encrypted, the asyncio loop on uvloop);
- ``one_way_per_s``: frames sent back to back and all received, per second, and MB/s.
Prints one JSON object; the conclusion is in ``alys_fast/network/transport.py``'s docstring.

    python benches/bench_network.py            # full
    python benches/bench_network.py --short    # a few seconds, for CI
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alys_fast.actors.runtime import run  # after the path fix: the script runs from anywhere
from alys_fast.network import wire
from alys_fast.network.transport import NodeKey, ZmqTransport
from alys_fast.network.wire import Approval, NewBlock, Transactions

TRANSFER_BYTES = 116  # a signed EIP-1559 transfer


def messages() -> dict[str, wire.Payload]:
    return {
        "new_block_1000_transfers": NewBlock(os.urandom(1000 * TRANSFER_BYTES + 700)),
        "approval": Approval(os.urandom(32), 9, 3, os.urandom(96)),
        "transactions_100": Transactions([os.urandom(TRANSFER_BYTES) for _ in range(100)]),
    }


def per_call_us(fn, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def codec(message: wire.Payload, n: int) -> dict:
    frame = wire.encode(message)

    def receive() -> None:
        payload = wire.split(frame)
        wire.decode_payload(payload)
        wire.message_id(payload)

    encode_us = per_call_us(lambda: wire.encode(message), n)
    decode_us = per_call_us(receive, n)
    return {"frame_bytes": len(frame), "encode_us": round(encode_us, 2),
            "decode_us": round(decode_us, 2),
            "codec_per_s": round(1e6 / (encode_us + decode_us))}


async def links() -> tuple[ZmqTransport, ZmqTransport]:
    a, b = NodeKey.generate(), NodeKey.generate()
    ta = ZmqTransport(a, "tcp://127.0.0.1:0", hwm=10_000)
    tb = ZmqTransport(b, "tcp://127.0.0.1:0", hwm=10_000)
    await ta.start()
    ta.dial(b.id, await tb.start())
    assert await ta.send(b.id, b"warm-up")
    await tb.recv()
    return ta, tb


async def round_trips(ta: ZmqTransport, tb: ZmqTransport, frame: bytes, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        await ta.send(tb.node_id, frame)
        peer, got = await tb.recv()
        await tb.send(peer, got)
        await ta.recv()
    return (time.perf_counter() - start) / n * 1e6


async def one_way(ta: ZmqTransport, tb: ZmqTransport, frame: bytes, n: int) -> float:
    async def drain() -> None:
        for _ in range(n):
            await tb.recv()
    start = time.perf_counter()
    receiver = asyncio.get_running_loop().create_task(drain())
    for _ in range(n):
        await ta.send(tb.node_id, frame)
    await receiver
    return n / (time.perf_counter() - start)


async def measure(short: bool) -> dict:
    scale = 1 if short else 10
    ta, tb = await links()
    results = {}
    try:
        for name, message in messages().items():
            small = type(message) is not NewBlock
            frame = wire.encode(message)
            result = codec(message, (2000 if small else 200) * scale)
            result["round_trip_us"] = round(
                await round_trips(ta, tb, frame, (500 if small else 100) * scale), 1)
            per_s = await one_way(ta, tb, frame, (5000 if small else 300) * scale)
            result["one_way_per_s"] = round(per_s)
            result["one_way_mb_per_s"] = round(per_s * len(frame) / 1e6, 1)
            results[name] = result
    finally:
        ta.close()
        tb.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="small run for CI (a few seconds)")
    args = parser.parse_args()
    results = run(measure(args.short))
    print(json.dumps({"bench": "network", "short": args.short, "cpus": os.cpu_count(),
                      "python": platform.python_version(), "messages": results}))


if __name__ == "__main__":
    main()
