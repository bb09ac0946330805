"""JSON-RPC transport throughput and latency over keep-alive HTTP on 127.0.0.1.

The server runs in its own process (uvloop), the load generator in this one, so on a 2-core
machine each has a core. Several clients, each one keep-alive connection sending a request and
waiting for its answer (no pipelining), measure:

- ``single``: one ``eth_chainId``-style call per request;
- ``batch100``: batches of 100 ``eth_sendRawTransaction``-shaped calls (a ~110-byte raw
  transfer in hex each, the method returns a hash) — the shape of the 10k tx/s target.

Reported: requests/s, calls/s, p50/p95 request latency. The same dispatcher behind an aiohttp
server is measured side by side when aiohttp is importable (it is not a project dependency),
as a reference for what the node's own HTTP layer saves. ``--baseline FILE`` measures another
version of ``alys_fast/rpc/server.py`` in the same run (e.g. the last commit's:
``git show HEAD:alys_fast/rpc/server.py > /tmp/server_head.py``), so a change to the transport
is compared with what it replaces on the same machine at the same moment.

Prints one JSON object. ``--short`` for CI (< 20 s).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import multiprocessing as mp
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import uvloop

from alys_fast.rpc import Dispatcher, RpcServer

CLIENTS = 8
RAW_TX = "0x02f870" + "ab" * 110
TX_HASH = "0x" + "cd" * 32


def method_table() -> dict[str, Any]:
    def chain_id() -> str:
        return "0x1d97c"

    def send_raw(raw: str) -> str:
        if len(raw) < 4:
            raise ValueError(raw)
        return TX_HASH

    return {"eth_chainId": chain_id, "eth_sendRawTransaction": send_raw}


_SERVERS: dict[str, Any] = {"alys-fast": RpcServer}  # the RpcServer class of each contender


def load_baseline(path: str) -> Any:
    """The RpcServer class of another version of the server module (loaded before forking)."""
    spec = importlib.util.spec_from_file_location("baseline_rpc_server", path)
    assert spec is not None and spec.loader is not None
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.RpcServer


async def _serve_alys(kind: str, conn: Any) -> None:
    server = await _SERVERS[kind](method_table(), port=0).start()
    conn.send(server.port)
    await asyncio.get_running_loop().run_in_executor(None, conn.recv)
    await server.stop()


async def _serve_aiohttp(conn: Any) -> None:
    from aiohttp import web

    dispatcher = Dispatcher(method_table())

    async def handler(request: web.Request) -> web.Response:
        out = await dispatcher.handle(await request.read())
        return web.Response(body=out, content_type="application/json")

    app = web.Application()
    app.router.add_post("/", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    conn.send(site._server.sockets[0].getsockname()[1])
    await asyncio.get_running_loop().run_in_executor(None, conn.recv)
    await runner.cleanup()


def _server_process(kind: str, conn: Any) -> None:
    uvloop.run(_serve_aiohttp(conn) if kind == "aiohttp" else _serve_alys(kind, conn))


def _request(payload: Any) -> bytes:
    body = msgspec.json.encode(payload)
    return (b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body) + body)


async def _client(port: int, request: bytes, until: float, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    clock = time.perf_counter
    try:
        while clock() < until:
            started = clock()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            at = head.lower().index(b"content-length:") + 15
            body = await reader.readexactly(int(head[at:head.index(b"\r\n", at)]))
            latencies.append(clock() - started)
            if body[:1] not in (b"{", b"["):
                raise RuntimeError(f"unexpected answer {body[:80]!r}")
    finally:
        writer.close()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _load(port: int, pid: int, request: bytes, calls: int,
                seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    # warm up the connections and the server's caches
    await asyncio.gather(*(_client(port, request, time.perf_counter() + 0.2, [])
                           for _ in range(CLIENTS)))
    started = time.perf_counter()
    cpu = _cpu_seconds(pid)
    await asyncio.gather(*(_client(port, request, started + seconds, latencies)
                           for _ in range(CLIENTS)))
    elapsed = time.perf_counter() - started
    cpu = _cpu_seconds(pid) - cpu
    latencies.sort()
    n = len(latencies)
    return {
        "requests_per_s": round(n / elapsed),
        "calls_per_s": round(n * calls / elapsed),
        "p50_ms": round(latencies[n // 2] * 1e3, 3),
        "p95_ms": round(latencies[int(n * 0.95)] * 1e3, 3),
        # the server's CPU per request: what a loaded shared machine disturbs least
        "server_cpu_us_per_request": round(cpu / n * 1e6, 1),
    }


def measure(kind: str, seconds: float) -> dict[str, Any]:
    parent, child = mp.Pipe()
    process = mp.get_context("fork").Process(target=_server_process, args=(kind, child))
    process.start()
    try:
        port = parent.recv()
        single = _request({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []})
        batch = _request([{"jsonrpc": "2.0", "id": i, "method": "eth_sendRawTransaction",
                           "params": [RAW_TX]} for i in range(100)])
        return {
            "single": uvloop.run(_load(port, process.pid, single, 1, seconds)),
            "batch100": uvloop.run(_load(port, process.pid, batch, 100, seconds)),
        }
    finally:
        parent.send("stop")
        process.join(10)
        if process.is_alive():
            process.kill()


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    """The run with the median requests/s (the lower middle one of an even count)."""
    return sorted(runs, key=lambda run: run["requests_per_s"])[(len(runs) - 1) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="small run for CI (< 20 s)")
    parser.add_argument("--baseline", metavar="FILE",
                        help="another alys_fast/rpc/server.py to measure side by side")
    parser.add_argument("--rounds", type=int, default=3,
                        help="with --baseline: alternate rounds of both, each reported by its "
                             "median round (default 3; a shared machine's load comes and goes)")
    args = parser.parse_args()
    seconds = 1.5 if args.short else 8.0
    started = time.perf_counter()
    results: dict[str, Any] = {}
    if args.baseline:
        _SERVERS["baseline"] = load_baseline(args.baseline)
        rounds: dict[str, list[dict[str, Any]]] = {"baseline": [], "alys-fast": []}
        for _ in range(args.rounds):
            for kind, measured in rounds.items():
                measured.append(measure(kind, seconds))
        for kind, measured in rounds.items():
            results[kind] = {scenario: _median([one[scenario] for one in measured])
                             for scenario in ("single", "batch100")}
    else:
        results["alys-fast"] = measure("alys-fast", seconds)
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        results["aiohttp_reference"] = "aiohttp not installed"
    else:
        results["aiohttp_reference"] = measure("aiohttp", seconds)
    ours = results["alys-fast"]
    if "baseline" in results:
        results["vs_baseline"] = {
            f"{scenario}_{figure}": round(ours[scenario][figure]
                                          / results["baseline"][scenario][figure], 3)
            for scenario in ("single", "batch100")
            for figure in ("requests_per_s", "server_cpu_us_per_request")}
    print(json.dumps({
        "bench": "rpc_transport",
        "mode": "short" if args.short else "full",
        "clients": CLIENTS,
        "seconds_per_scenario": seconds,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "results": results,
        "goals": {"batch_calls_per_s>=10k": ours["batch100"]["calls_per_s"] >= 10_000},
        "seconds": round(time.perf_counter() - started, 1),
    }, indent=2))


if __name__ == "__main__":
    main()
