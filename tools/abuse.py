#!/usr/bin/env python
"""A hostile JSON-RPC client: floods a node the ways issue 17's probe did, from its own address.

Attacks (each optional, all at once by default), every one from ``--source`` (any address in
127.0.0.0/8 can be bound on Linux, so the node sees a client other than the honest one):

- ``connections``: opens ``--idle`` TCP connections and never sends a byte.
- ``subscribers``: ``--ws`` WebSocket connections with ``--subs`` ``newHeads`` subscriptions
  each, never reading a notification.
- ``pings``: one WebSocket connection that sends ping frames as fast as the socket takes them
  and never reads the pongs.
- ``batches``: requests whose batch is over the node's limit and oversized bodies, in a loop.

It reports what it managed (connections opened and refused, frames sent, answers by status) as
one JSON object. ``tools/loadgen.py --abuse-after S`` runs it against the node it loads, so the
honest figures with and without abuse come from one run. Loopback only: it refuses any target
that is not a 127.0.0.0/8 address.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import ipaddress
import json
import os
import resource
import secrets
import struct
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

ATTACKS = ("connections", "subscribers", "pings", "batches")


@dataclass
class Tally:
    """What the attacks achieved; the report."""

    opened: Counter = field(default_factory=Counter)
    refused: Counter = field(default_factory=Counter)
    frames: Counter = field(default_factory=Counter)
    answers: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {name: dict(value) for name, value in vars(self).items()}


def _frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame (RFC 6455 §5.2): clients must mask every frame."""
    mask = secrets.token_bytes(4)
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    elif size < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


async def _connect(host: str, port: int, source: str
                   ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(
        asyncio.open_connection(host, port, local_addr=(source, 0)), 5.0)


async def _websocket(host: str, port: int, source: str
                     ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    """A WebSocket after its handshake, or None when the node refused it."""
    reader, writer = await _connect(host, port, source)
    key = base64.b64encode(secrets.token_bytes(16)).decode()
    writer.write((f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
    if not head.startswith(b"HTTP/1.1 101"):
        writer.close()
        return None
    return reader, writer


async def idle_connections(host: str, port: int, source: str, count: int, tally: Tally,
                           held: list[asyncio.StreamWriter]) -> None:
    for _ in range(count):
        try:
            _, writer = await _connect(host, port, source)
        except (OSError, TimeoutError) as exc:
            tally.refused[f"idle: {type(exc).__name__}"] += 1
            continue
        held.append(writer)
        tally.opened["idle"] += 1


async def subscribers(host: str, port: int, source: str, conns: int, subs: int, tally: Tally,
                      held: list[asyncio.StreamWriter]) -> None:
    for _ in range(conns):
        try:
            ws = await _websocket(host, port, source)
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            tally.refused[f"ws: {type(exc).__name__}"] += 1
            continue
        if ws is None:
            tally.refused["ws: not upgraded"] += 1
            continue
        _, writer = ws
        held.append(writer)
        tally.opened["ws"] += 1
        request = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe",
                              "params": ["newHeads"]}).encode()
        writer.write(_frame(0x1, request) * subs)
        tally.frames["subscribe"] += subs


async def ping_flood(host: str, port: int, source: str, stop: asyncio.Event,
                     tally: Tally) -> None:
    try:
        ws = await _websocket(host, port, source)
    except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
        tally.refused[f"pings: {type(exc).__name__}"] += 1
        return
    if ws is None:
        tally.refused["pings: not upgraded"] += 1
        return
    _, writer = ws
    burst = _frame(0x9, b"x" * 125) * 1000
    try:
        while not stop.is_set():
            writer.write(burst)
            await asyncio.wait_for(writer.drain(), 1.0)
            tally.frames["ping"] += 1000
    except (OSError, TimeoutError) as exc:
        tally.refused[f"pings: {type(exc).__name__}"] += 1
    finally:
        writer.close()


async def batch_flood(host: str, port: int, source: str, stop: asyncio.Event,
                      tally: Tally) -> None:
    calls = [{"jsonrpc": "2.0", "id": i, "method": "eth_blockNumber"} for i in range(5000)]
    over_batch = json.dumps(calls).encode()
    over_body = b"[" + b" " * (8 * 1024 * 1024) + b"]"
    while not stop.is_set():
        for body in (over_batch, over_body):
            try:
                reader, writer = await _connect(host, port, source)
                writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n" % len(body))
                writer.write(body)
                await asyncio.wait_for(writer.drain(), 5.0)
                status = await asyncio.wait_for(reader.readline(), 5.0)
                tally.answers[status.decode(errors="replace").strip() or "no answer"] += 1
                writer.close()
            except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
                tally.answers[f"error: {type(exc).__name__}"] += 1
            if stop.is_set():
                return


async def attack(url: str, *, source: str, attacks: tuple[str, ...], idle: int, ws: int,
                 subs: int, stop: asyncio.Event) -> Tally:
    """Run the chosen attacks until ``stop`` is set; connections are held until then."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 8545
    if not ipaddress.ip_address(host).is_loopback or not ipaddress.ip_address(source).is_loopback:
        raise SystemExit("abuse: loopback targets and sources only")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    tally = Tally()
    held: list[asyncio.StreamWriter] = []
    tasks = []
    if "connections" in attacks:
        tasks.append(idle_connections(host, port, source, idle, tally, held))
    if "subscribers" in attacks:
        tasks.append(subscribers(host, port, source, ws, subs, tally, held))
    if "pings" in attacks:
        tasks.append(ping_flood(host, port, source, stop, tally))
    if "batches" in attacks:
        tasks.append(batch_flood(host, port, source, stop, tally))
    try:
        await asyncio.gather(*tasks, stop.wait())
    finally:
        for writer in held:
            writer.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return tally


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8545")
    parser.add_argument("--source", default="127.0.0.2", help="the address to connect from")
    parser.add_argument("--attacks", default=",".join(ATTACKS),
                        help=f"comma-separated, from {', '.join(ATTACKS)}")
    parser.add_argument("--idle", type=int, default=1100, help="idle connections")
    parser.add_argument("--ws", type=int, default=400, help="non-reading WebSocket connections")
    parser.add_argument("--subs", type=int, default=128, help="newHeads subscriptions each")
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    args.attacks = tuple(a for a in args.attacks.split(",") if a)
    unknown = set(args.attacks) - set(ATTACKS)
    if unknown:
        parser.error(f"unknown attacks: {', '.join(sorted(unknown))}")
    return args


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(args.seconds, stop.set)
    started = time.perf_counter()
    tally = await attack(args.url, source=args.source, attacks=args.attacks, idle=args.idle,
                         ws=args.ws, subs=args.subs, stop=stop)
    return {"tool": "abuse", "pid": os.getpid(), "seconds": round(time.perf_counter() - started, 1),
            **tally.as_dict()}


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        print(json.dumps(asyncio.run(_main(parse_args(sys.argv[1:])))))
