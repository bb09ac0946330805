"""Range sync: how fast an empty node replays a chain of transfers fetched from a peer.

A chain of ``--blocks`` blocks of ``--per-block`` signed transfers each (200 × 1,000 = 200,000
by default; one transfer per sender per block, pre-signed in processes as ``tools/loadgen.py``
does) is built into a temp data dir. Its node (storage, engine, network and sync actors:
``tests/sync/stack.py``) serves it over the real ZeroMQ CURVE transport on 127.0.0.1 to an
empty node, which syncs it through the import workflow (every signature recovered, every block
executed, its state root checked, stored); the empty node recovers signatures in its two
recovery processes, as a node does. Both nodes share this process and its event loop.
Prints one JSON object: replayed transactions and blocks a second (goal: >= 20,000 tx/s; from
the moment the empty node has started to its head at the source's; ``node_start_s``, spawning
its recovery processes among the rest, is given apart and ``tx_per_s_with_start`` counts it),
the time the chain took to make, and where the CPU went during the sync: seconds by thread of this
process (``MainThread``: both nodes' event loop — actors, transport, serving, rebuilding
recovered transactions; ``engine``: execution and state roots; ``storage``: RocksDB writes and
reads; ``sync-import``: stateless block checks; ``native``: ZeroMQ's CURVE I/O threads) and by
both nodes' recovery processes, and the whole machine's busy CPU seconds over the same time
(``machine_busy_cpu_s``: other work on the machine shares its cores).
``--short``: a few seconds, for CI.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import threading
import time
from collections import Counter
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


def cpu_by_part() -> Counter[str]:
    """CPU seconds so far of this process's threads by name (a pool's ``_N`` suffix dropped;
    threads Python did not start are ``native``), and of its child processes together."""
    names = {t.native_id: re.sub(r"_\d+$", "", t.name) for t in threading.enumerate()}
    parts: Counter[str] = Counter()
    for thread, seconds in loadgen.thread_cpu(os.getpid()).items():
        parts[names.get(thread, "native")] += seconds
    children = [pid for pid in loadgen.process_tree(os.getpid()) if pid != os.getpid()]
    parts["recovery processes"] = sum(loadgen.cpu_seconds(pid) or 0.0 for pid in children)
    return parts


async def sync(spec, source_dir: Path, empty_dir: Path, timeout: float) -> dict[str, object]:
    source = await SyncNode.create(source_dir, spec, listen="tcp://127.0.0.1:0").start()
    head = source.chain
    number, target = await head.head()
    begun = time.perf_counter()
    empty = SyncNode.create(empty_dir, spec, listen="tcp://127.0.0.1:0", bootnodes=[source.enode])
    # The sync begins as the node starts (its peer's status arrives): measured from there.
    await empty.start()
    started = time.perf_counter()
    before, machine = cpu_by_part(), loadgen.machine_cpu()
    try:
        deadline = started + timeout
        while empty.chain.header is None or empty.chain.header.number < number \
                or empty.chain.header.hash != target:
            if time.perf_counter() > deadline:
                raise SystemExit(f"not synced within {timeout:.0f}s")
            await asyncio.sleep(0.02)
        seconds = time.perf_counter() - started
        # Before the children exit: their CPU is read from /proc while they run.
        spent, machine = cpu_by_part(), loadgen.machine_cpu() - machine
    finally:
        await empty.stop()
        await source.stop()
    spent.subtract(before)
    cpu = {part: round(value, 2) for part, value in spent.most_common() if value >= 0.01}
    return {"blocks": number, "seconds": round(seconds, 3),
            "node_start_s": round(started - begun, 3), "cpu_s": cpu,
            "machine_busy_cpu_s": round(machine, 2)}


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
        "node_start_s": result["node_start_s"],
        "tx_per_s_with_start": round(
            transactions / (result["seconds"] + result["node_start_s"])),
        "cpu_s": result["cpu_s"],
        "machine_busy_cpu_s": result["machine_busy_cpu_s"],
        "load_average": os.getloadavg()[0],
        "chain_made": made,
    }))


if __name__ == "__main__":
    main()
