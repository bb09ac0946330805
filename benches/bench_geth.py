"""Driving a real geth over the Engine API: per-call latency and transfers/s included.

Starts geth (``tools/install_geth.sh``; a note instead of figures where it cannot be had) from
a Shanghai dev genesis funding ``--senders`` derived accounts, pre-signs every transfer of the
run (EIP-1559, 1 wei each, the signing of tools/loadgen.py), then drives ``--blocks`` blocks as
fast as it can, each as the consensus side will: the block's ``--txs`` transfers to geth's pool
(one JSON-RPC batch), ``engine_forkchoiceUpdatedV2`` with payload attributes, a wait while geth
fills the payload in the background, ``engine_getPayloadV2``, ``engine_newPayloadV2``, and
``engine_forkchoiceUpdatedV2`` to the new head. The wait adapts: it grows by half whenever a
payload leaves sent transactions out (they go in the next block) and shrinks by a tenth when
one holds them all.

Prints one JSON object: p50/p95/max of the submission batch, of each Engine API call and of
the whole block (submission, calls and wait), the mean
build wait, and transfers included per second (first submission → last block imported;
every transfer is checked included at the end by the recipient's balance). ``--short`` for
CI: 20 blocks of 200 transfers.

Then the same comparison through a whole node (``"node"`` in the output): an Aura node
authoring every 1 s slot, once on the embedded engine and once on geth (``NodeSettings.execution``),
is sent ``--waves`` waves of ``--wave`` pre-signed transfers over its JSON-RPC (to its pool,
or forwarded to geth's), each wave sent when the one before is included; transfers included
per second for each backend, the node's Engine API latency (p50/p95 from its histograms,
bucket bounds), and the time from geth's return after a ``kill -9`` to the first new block.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib.util
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from alys_fast.chain.spec import DEV_AUTHORITY_KEY, dev_spec  # noqa: E402
from alys_fast.engine.engine_api import (  # noqa: E402
    EngineApi,
    EthRpc,
    ForkchoiceState,
    PayloadAttributes,
)
from alys_fast.engine.geth import GethProcess  # noqa: E402
from alys_fast.metrics.histogram import Histogram  # noqa: E402
from alys_fast.node.node import Node  # noqa: E402
from alys_fast.node.settings import NodeSettings  # noqa: E402

LOADGEN = ROOT / "tools" / "loadgen.py"
GWEI = 10**9
NODE_BATCH = 500  # calls per JSON-RPC batch to a node (its limit is 1,000)


def load_loadgen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("alys_fast_loadgen", LOADGEN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def find_geth() -> tuple[str | None, str]:
    done = subprocess.run(["bash", str(ROOT / "tools" / "install_geth.sh")],
                          capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        return None, done.stderr.strip()[-300:]
    return done.stdout.strip(), ""


def spread(values: list[float]) -> dict[str, float]:
    ms = sorted(v * 1000 for v in values)
    return {"p50_ms": round(statistics.median(ms), 3),
            "p95_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.95))], 3),
            "max_ms": round(ms[-1], 3)}


def presign(loadgen: ModuleType, chain_id: int, senders: int, per_sender: int
            ) -> tuple[list[bytes], list[list[bytes]]]:
    """(sender addresses, each sender's transfers in nonce order)."""
    keys = [loadgen.sender_key(i) for i in range(senders)]
    addresses = [loadgen.address_of(k) for k in keys]
    signed = loadgen.sign_all(chain_id, keys, [0] * senders, per_sender, 10 * GWEI, GWEI,
                              None, workers=2)
    return addresses, signed


async def drive(geth: GethProcess, blocks: list[list[bytes]], recipient: bytes
                ) -> dict[str, Any]:
    api = EngineApi(geth.auth_url, geth.jwt_secret(), geth.spec.fork, timeout=30.0)
    rpc = EthRpc(geth.http_url, timeout=30.0)
    timings: dict[str, list[float]] = {"submit": [], "forkchoice_build": [], "get_payload": [],
                                       "new_payload": [], "forkchoice_head": [], "block": []}
    try:
        genesis = await rpc.call("eth_getBlockByNumber", ["0x0", False])
        head, timestamp = bytes.fromhex(genesis["hash"][2:]), 0
        wait, waits, included, pending = 0.02, [], 0, 0
        started = time.perf_counter()
        for raws in blocks:
            block_start = time.perf_counter()
            batch = [{"jsonrpc": "2.0", "id": i, "method": "eth_sendRawTransaction",
                      "params": ["0x" + raw.hex()]} for i, raw in enumerate(raws)]
            answers = msgspec.json.decode(await rpc.forward(msgspec.json.encode(batch)))
            refused = [a["error"]["message"] for a in answers if "error" in a]
            if refused:
                raise RuntimeError(f"geth refused {len(refused)} transfers: {refused[0]}")
            pending += len(raws)
            timestamp += 1
            t0 = time.perf_counter()
            updated = await api.forkchoice_updated(ForkchoiceState(head),
                                                   PayloadAttributes(timestamp=timestamp))
            t1 = time.perf_counter()
            await asyncio.sleep(wait)
            waits.append(wait)
            t2 = time.perf_counter()
            payload = (await api.get_payload(updated.payload_id)).execution_payload
            t3 = time.perf_counter()
            await api.new_payload(payload)
            t4 = time.perf_counter()
            await api.forkchoice_updated(ForkchoiceState(payload.block_hash))
            t5 = time.perf_counter()
            steps = (t0 - block_start, t1 - t0, t3 - t2, t4 - t3, t5 - t4, t5 - block_start)
            for name, took in zip(timings, steps, strict=True):
                timings[name].append(took)
            head = payload.block_hash
            included += len(payload.transactions)
            pending -= len(payload.transactions)
            wait = min(2.0, wait * 1.5) if pending else max(0.002, wait * 0.9)
        while pending:  # the transfers left in the pool go in the last blocks
            timestamp += 1
            built = await api.build(ForkchoiceState(head), PayloadAttributes(timestamp=timestamp),
                                    wait=wait)
            payload = built.execution_payload
            await api.import_payload(payload)
            head = payload.block_hash
            included += len(payload.transactions)
            pending -= len(payload.transactions)
        elapsed = time.perf_counter() - started
        balance = int(await rpc.call("eth_getBalance", ["0x" + recipient.hex(), "latest"]), 16)
    finally:
        await api.close()
        await rpc.close()
    return {
        "blocks": int(payload.block_number),
        "transfers_included": included,
        "balance_check": balance == included,
        "seconds": round(elapsed, 3),
        "transfers_per_s": round(included / elapsed, 1),
        "mean_build_wait_ms": round(1000 * statistics.fmean(waits), 2),
        "latency": {name: spread(values) for name, values in timings.items()},
    }


def histogram_spread(histogram: Histogram) -> dict[str, float]:
    """p50/p95 of a node histogram, as the upper bounds of the buckets they fall in (ms)."""
    buckets, _ = histogram.snapshot()
    count = buckets[-1][1]
    out = {}
    for name, share in (("p50_ms", 0.5), ("p95_ms", 0.95)):
        bound = next(float(le) for le, n in buckets if n >= share * count)
        out[name] = round(bound * 1000, 3)
    return out


async def until(check: Any, timeout: float) -> None:
    deadline = time.perf_counter() + timeout
    while not check():
        if time.perf_counter() > deadline:
            raise RuntimeError(f"not within {timeout:g} s")
        await asyncio.sleep(0.02)


async def node_backend(spec: Any, waves: list[list[bytes]], data_dir: Path,
                       binary: str | None) -> dict[str, Any]:
    """Transfers/s through a node on one backend (geth when ``binary``); see the docstring."""
    settings = NodeSettings(spec=spec, data_dir=data_dir / "node", rpc_port=0,
                            authority_key=bytes.fromhex(DEV_AUTHORITY_KEY[2:]))
    geth = None
    if binary is not None:
        geth = GethProcess(binary, data_dir / "geth", spec, extra_args=("--cache", "512"))
        await asyncio.to_thread(geth.init)
        geth.start()
        await geth.wait_ready(60.0)
        settings = dataclasses.replace(settings, execution=geth.execution_settings())
    node = await Node(settings).start()
    rpc = EthRpc(node.url, timeout=30.0)
    chain = node.stats["chain"]
    figures: dict[str, Any] = {}
    try:
        await until(lambda: chain["head"] >= 1, 30)
        included = chain["transactions"]
        started = time.perf_counter()
        for raws in waves:
            for first in range(0, len(raws), NODE_BATCH):
                batch = [{"jsonrpc": "2.0", "id": i, "method": "eth_sendRawTransaction",
                          "params": ["0x" + raw.hex()]}
                         for i, raw in enumerate(raws[first:first + NODE_BATCH])]
                answers = msgspec.json.decode(await rpc.forward(msgspec.json.encode(batch)))
                refused = [a["error"]["message"] for a in answers if "error" in a]
                if refused:
                    raise RuntimeError(f"{len(refused)} transfers refused: {refused[0]}")
            included += len(raws)
            await until(lambda goal=included: chain["transactions"] >= goal, 60)
        elapsed = time.perf_counter() - started
        figures["transfers_per_s"] = round(sum(map(len, waves)) / elapsed, 1)
        if geth is not None:
            engine = node.stats["engine"]
            figures["engine_latency"] = {method: histogram_spread(h)
                                         for method, h in sorted(engine.latency.items())}
            os.kill(geth.pid, signal.SIGKILL)
            await geth.stop()
            await until(lambda: engine.breaker.state != "closed", 30)
            stood = chain["head"]
            geth.start()
            await geth.wait_ready(60.0)
            back = time.perf_counter()
            await until(lambda: chain["head"] > stood, 60)
            figures["first_block_after_geth_back_s"] = round(time.perf_counter() - back, 3)
    finally:
        await rpc.close()
        await node.stop()
        if geth is not None:
            await geth.stop()
    return figures


def node_figures(binary: str, loadgen: ModuleType, waves: int, wave: int, senders: int
                 ) -> dict[str, Any]:
    """The embedded engine and geth behind one node each, the same transfers (see the
    docstring)."""
    per_sender = wave // senders
    addresses, signed = presign(loadgen, 121212, senders, per_sender * waves)
    batches = [[raws[i] for raws in signed
                for i in range(w * per_sender, (w + 1) * per_sender)] for w in range(waves)]
    spec = dev_spec(slot_ms=1000, accounts=["0x" + a.hex() for a in addresses])
    out = {}
    for name, which in (("embedded", None), ("geth", binary)):
        with tempfile.TemporaryDirectory(prefix=f"bench-node-{name}-") as tmp:
            out[name] = asyncio.run(node_backend(spec, batches, Path(tmp), which))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--short", action="store_true", help="CI mode: 20 blocks of 200")
    parser.add_argument("--blocks", type=int, default=200)
    parser.add_argument("--txs", type=int, default=500, help="transfers per block")
    parser.add_argument("--senders", type=int, default=100)
    parser.add_argument("--waves", type=int, default=10, help="waves through a whole node")
    parser.add_argument("--wave", type=int, default=1400, help="transfers per wave")
    args = parser.parse_args(argv)
    if args.short:
        args.blocks, args.txs, args.waves, args.wave = 20, 200, 3, 400
    if args.txs % args.senders or args.wave % args.senders:
        parser.error("--txs and --wave must be multiples of --senders")
    binary, why = find_geth()
    if binary is None:
        print(json.dumps({"bench": "geth", "note": f"geth unavailable: {why}"}))
        return
    loadgen = load_loadgen()
    per_sender_block = args.txs // args.senders
    addresses, signed = presign(loadgen, 121212, args.senders, per_sender_block * args.blocks)
    blocks = [[raws[i] for raws in signed
               for i in range(b * per_sender_block, (b + 1) * per_sender_block)]
              for b in range(args.blocks)]
    spec = msgspec.structs.replace(
        dev_spec(accounts=["0x" + a.hex() for a in addresses]), fork="shanghai")
    with tempfile.TemporaryDirectory(prefix="bench-geth-") as tmp:
        geth = GethProcess(binary, Path(tmp), spec, extra_args=("--cache", "512"))

        async def run() -> dict[str, Any]:
            await asyncio.to_thread(geth.init)
            geth.start()
            try:
                await geth.wait_ready(60.0)
                return await drive(geth, blocks, loadgen.RECIPIENT)
            finally:
                await geth.stop()

        figures = asyncio.run(run())
    figures["node"] = node_figures(binary, loadgen, args.waves, args.wave, args.senders)
    print(json.dumps({"bench": "geth", "fork": "shanghai", "txs_per_block": args.txs,
                      "senders": args.senders, **figures}))


if __name__ == "__main__":
    main()
