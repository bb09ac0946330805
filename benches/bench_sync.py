"""Range sync: how fast an empty node replays a chain of transfers fetched from a peer.

A chain of ``--blocks`` blocks of ``--per-block`` signed transfers each (200 × 1,000 = 200,000
by default; one transfer per sender per block, pre-signed in processes as ``tools/loadgen.py``
does) is built into a temp data dir. Its node (storage, engine, network and sync actors:
``tests/sync/stack.py``) serves it over the real ZeroMQ CURVE transport on 127.0.0.1 to an
empty node, which syncs it through the import workflow (every signature recovered, every block
executed, its state root checked, stored). Both nodes share this process and its event loop.
Prints one JSON object: replayed transactions and blocks a second (goal: >= 20,000 tx/s), and
the time the chain took to make. ``--short``: a few seconds, for CI.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import msgspec
import uvloop

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tools")]

import loadgen  # noqa: E402  (tools/loadgen.py: the pre-signing helpers)

from alys_fast.chain.spec import dev_spec  # noqa: E402
from alys_fast.network.wire import MAX_RANGE  # noqa: E402
from alys_fast.validation import address_of, recover_transactions  # noqa: E402
from tests.sync.stack import SyncNode, build_chain  # noqa: E402

GOAL_TX_PER_S = 20_000


def make_chain(directory: Path, blocks: int, per_block: int) -> tuple[object, dict[str, float]]:
    """Sign and build the chain; its spec and how long each part took."""
    keys = [loadgen.sender_key(i) for i in range(per_block)]
    spec = dev_spec(accounts=["0x" + address_of(k).hex() for k in keys], balance=10**24)
    # Room for two blocks' worth of gas: every block is at the EIP-1559 target, so the base
    # fee stays at its genesis value and the pre-signed fee cap always covers it.
    spec = msgspec.structs.replace(spec, gas_limit=2 * per_block * loadgen.TRANSFER_GAS)
    started = time.perf_counter()
    signed = loadgen.sign_all(spec.chain_id, keys, [0] * per_block, blocks,
                              2 * loadgen.GWEI, 1, None, os.cpu_count() or 1)
    signing = time.perf_counter() - started

    def block_txs():
        for height in range(blocks):
            yield recover_transactions([raws[height] for raws in signed], spec.chain_id)

    started = time.perf_counter()
    head = build_chain(directory, spec, block_txs())
    assert head.number == blocks
    return spec, {"sign_s": round(signing, 2),
                  "build_s": round(time.perf_counter() - started, 2)}


async def sync(spec, source_dir: Path, empty_dir: Path, timeout: float) -> dict[str, float]:
    source = await SyncNode.create(source_dir, spec, listen="tcp://127.0.0.1:0").start()
    head = source.chain
    number, target = await head.head()
    started = time.perf_counter()
    empty = await SyncNode.create(empty_dir, spec, listen="tcp://127.0.0.1:0",
                                  bootnodes=[source.enode]).start()
    try:
        deadline = started + timeout
        while empty.chain.header is None or empty.chain.header.hash != target:
            if time.perf_counter() > deadline:
                raise SystemExit(f"not synced within {timeout:.0f}s")
            await asyncio.sleep(0.02)
        seconds = time.perf_counter() - started
    finally:
        await empty.stop()
        await source.stop()
    return {"blocks": number, "seconds": round(seconds, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=200)
    parser.add_argument("--per-block", type=int, default=1_000)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--short", action="store_true", help="20 blocks of 500 (CI)")
    args = parser.parse_args()
    if args.short:
        args.blocks, args.per_block = 20, 500
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp:
        spec, made = make_chain(Path(tmp) / "source", args.blocks, args.per_block)
        result = uvloop.run(sync(spec, Path(tmp) / "source", Path(tmp) / "empty", args.timeout))
    transactions = args.blocks * args.per_block
    tx_per_s = transactions / result["seconds"]
    print(json.dumps({
        "bench": "sync",
        "transport": "zeromq-curve 127.0.0.1, both nodes in one process",
        "blocks": result["blocks"],
        "transactions": transactions,
        "range_blocks": MAX_RANGE,
        "seconds": result["seconds"],
        "tx_per_s": round(tx_per_s),
        "blocks_per_s": round(result["blocks"] / result["seconds"], 1),
        "goal_tx_per_s": GOAL_TX_PER_S,
        "meets_goal": tx_per_s >= GOAL_TX_PER_S,
        "chain_made": made,
    }))


if __name__ == "__main__":
    main()
