"""A 3-authority devnet under load: transactions included a second, and how long a block takes
to reach every node.

``alys-fast devnet --authorities 3`` (1 s slots, each node its own process verifying every
signature, all on this machine) is created with tools/loadgen.py's derived senders funded, then:

1. idle (``--idle`` s): every node's ``newHeads`` (WebSocket) is timed against the block's slot
   start — its timestamp, whole seconds, is its slot's start with 1 s slots. That span is the
   author's build, the block's gossip, ⌈2n/3⌉ approvals and the import on that node, as the
   node's RPC publishes it (goal: p95 < 100 ms, per node and block);
2. light load (``--low-duration`` s at ``--low-rate`` tx/s, default 2,000; 0 skips it), then
   load (``--duration`` s at ``--rate`` tx/s): ``tools/loadgen.py --url A,B,C`` sends pre-signed
   transfers, its clients round-robin over the three nodes (each sender to one node), watches
   inclusion on node 0 and checks what the transfers did; the timing of step 1 goes on. Included
   tx/s is loadgen's sustained figure (the median 5 s window; goal >= 5,000).

Where the time goes (``breakdown``, per phase): every node's ``/metrics`` is read at each
phase's start and end, and the latency histograms' growth in between (all nodes together)
gives each stage's count, mean and estimated p50/p95 (ms, interpolated in the buckets as
Prometheus' ``histogram_quantile``). The stages, in a block's order: the author's
``build``; ``outbound`` (queued for a peer -> handed to libzmq) and ``inbound`` (taken off
libzmq -> delivered by the network actor) per message kind; ``handoff`` (-> told to the chain
by the gossip actor); ``wait`` / ``approval_wait`` (-> handled by the chain: the mailboxes); a
peer's ``lookup`` (its transactions' signatures found in the pool) and ``validate``
(execution); ``approvals`` (the author's block built -> its ⌈2n/3⌉ approvals gathered: the
goal's span, ``approvals_ms``); ``import`` (store and commit); ``certify`` (a peer's block
received -> imported there); ``loop_lag`` (how late each node's event loop runs a timer);
``handler`` per actor (how long one message holds it: what a block's message may wait behind).

Prints one JSON object: the goals, the propagation percentiles per phase (over every import
and over the last node's import of each block, from the slot's start: the build included),
``approvals_ms`` per phase (from the build's end), the breakdown, and loadgen's report of the
load (its ``node.tree`` is the devnet process with all its nodes). ``--short``: a few seconds
of each, only that it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

import websockets
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tools")]

import loadgen  # noqa: E402  (tools/loadgen.py: its senders, gas limit and the load itself)

from alys_fast.chain.spec import DEV_ACCOUNTS  # noqa: E402
from alys_fast.node.devnet import create_devnet  # noqa: E402
from alys_fast.validation import address_of  # noqa: E402

AUTHORITIES = 3
SLOT_MS = 1000  # the slot start is then the block's timestamp in whole seconds
GOAL_TX_PER_S = 5_000
GOAL_PROPAGATION_P95_MS = 100
# The spec's gas limit over a slot's offered load: 2 puts the load at EIP-1559's target (the
# base fee holds) and caps a block at two slots' worth, which peers validate within a slot;
# loadgen's single-node 3 let a backlog make 18,000-transfer blocks that took peers seconds to
# validate, so the next author proposed a rival block and the chain stalled.
GAS_HEADROOM = 2


class Heads:
    """When each node published each block (``newHeads``), against the block's slot start."""

    def __init__(self) -> None:
        self.phase = "idle"
        # phase -> block number -> node -> seconds after the slot start
        self.seen: dict[str, dict[int, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))

    async def watch(self, index: int, url: str, stop: asyncio.Event) -> None:
        async with websockets.connect(url.replace("http", "ws", 1), max_size=None) as ws:
            await ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe",
                                      "params": ["newHeads"]}))
            await ws.recv()  # the subscription id
            while not stop.is_set():
                try:
                    message = await asyncio.wait_for(ws.recv(), 0.5)
                except TimeoutError:
                    continue
                now = time.time()
                head = json.loads(message)["params"]["result"]
                self.seen[self.phase][int(head["number"], 16)][index] = \
                    now - int(head["timestamp"], 16)

    def summary(self, phase: str, nodes: int) -> dict[str, Any]:
        """Percentiles in ms (loadgen's) over every import, and over each block's last."""
        blocks = self.seen.get(phase, {})
        everywhere = [by_node for by_node in blocks.values() if len(by_node) == nodes]
        return {
            "blocks": len(blocks),
            "every_import_ms": loadgen.percentiles(
                [late for by_node in blocks.values() for late in by_node.values()]),
            "last_node_ms": loadgen.percentiles([max(by_node.values()) for by_node in everywhere]),
            "p95_by_node_ms": {
                node: loadgen.percentiles(
                    [by_node[node] for by_node in blocks.values() if node in by_node])["p95"]
                for node in range(nodes)},
        }


# The latency histograms of the breakdown: metric name -> stage (labels name the kind).
STAGES = {
    "alys_chain_block_build_seconds": "build",
    "alys_network_outbound_seconds": "outbound",
    "alys_network_inbound_seconds": "inbound",
    "alys_network_handoff_seconds": "handoff",
    "alys_chain_block_wait_seconds": "wait",
    "alys_chain_block_approval_wait_seconds": "approval_wait",
    "alys_chain_block_lookup_seconds": "lookup",
    "alys_chain_block_validate_seconds": "validate",
    "alys_chain_block_approvals_seconds": "approvals",
    "alys_chain_block_import_seconds": "import",
    "alys_chain_block_certify_seconds": "certify",
    "alys_network_loop_lag_seconds": "loop_lag",
    "alys_actor_handler_seconds": "handler",
}
# The actors whose handler latency the breakdown shows (what a message waits behind).
ACTORS = ("chain/chain", "chain/txpool", "chain/engine", "chain/storage", "network/network",
          "network/gossip")
Buckets = dict[str, dict[float, float]]  # series -> upper bound -> cumulative count


def scrape(url: str) -> Buckets:
    """The breakdown's histograms on the node at ``url`` (cumulative buckets, plus each
    series' sum under the bound -1)."""
    with urllib.request.urlopen(url.rstrip("/") + "/metrics", timeout=10) as response:
        text = response.read().decode()
    series: Buckets = defaultdict(dict)
    for family in text_string_to_metric_families(text):
        stage = STAGES.get(family.name + "_seconds") or STAGES.get(family.name)
        if stage is None:
            continue
        for sample in family.samples:
            kind = sample.labels.get("kind") or sample.labels.get("actor", "").removeprefix("alys/")
            if stage == "handler" and kind not in ACTORS:
                continue
            name = f"{stage}.{kind}" if kind else stage
            if sample.name.endswith("_bucket"):
                series[name][float(sample.labels["le"])] = sample.value
            elif sample.name.endswith("_sum"):
                series[name][-1.0] = sample.value
    return series


def breakdown(before: list[Buckets], after: list[Buckets]) -> dict[str, Any]:
    """Each stage's growth between two scrapes of every node: count, mean and p50/p95 in ms."""
    grown: Buckets = defaultdict(lambda: defaultdict(float))
    for old, new in zip(before, after, strict=True):
        for name, buckets in new.items():
            for bound, value in buckets.items():
                grown[name][bound] += value - old.get(name, {}).get(bound, 0.0)
    out = {}
    for name in sorted(grown, key=lambda n: (list(STAGES.values()).index(n.split(".")[0]), n)):
        buckets = grown[name]
        total = buckets.pop(-1.0, 0.0)
        count = buckets.get(float("inf"), 0.0)
        if count:
            out[name] = {"count": int(count), "mean_ms": round(total / count * 1e3, 2),
                         "p50_ms": quantile(buckets, 0.5), "p95_ms": quantile(buckets, 0.95)}
    return out


def quantile(buckets: dict[float, float], q: float) -> float:
    """Prometheus' ``histogram_quantile`` (linear within a bucket), in ms."""
    bounds = sorted(buckets)
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        if buckets[bound] >= rank:
            if bound == float("inf"):
                return round(lower * 1e3, 2)
            inside = buckets[bound] - below
            share = (rank - below) / inside if inside else 1.0
            return round((lower + (bound - lower) * share) * 1e3, 2)
        lower, below = bound, buckets[bound]
    return round(lower * 1e3, 2)


async def scrape_all(urls: list[str]) -> list[Buckets]:
    return list(await asyncio.gather(*(asyncio.to_thread(scrape, url) for url in urls)))


async def start_devnet(root: Path) -> tuple[asyncio.subprocess.Process, list[str]]:
    """``alys-fast devnet`` on the devnet in ``root``; its process and the nodes' RPC URLs."""
    devnet = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "alys_fast", "devnet", "--data-dir", str(root), "--json",
        "--log-level", "WARNING", stdout=asyncio.subprocess.PIPE)
    assert devnet.stdout is not None
    urls: dict[int, str] = {}
    while len(urls) < AUTHORITIES:
        line = await asyncio.wait_for(devnet.stdout.readline(), 120)
        if not line:
            raise RuntimeError(f"the devnet exited ({await devnet.wait()}); logs in {root}")
        event = json.loads(line)
        if "rpc" not in event:
            raise RuntimeError(f"node {event['node']} exited at start; log in {root}")
        urls[event["node"]] = event["rpc"]
    return devnet, [urls[i] for i in range(AUTHORITIES)]


async def bench(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    senders = [loadgen.sender_key(i) for i in range(args.senders)]
    create_devnet(
        root, AUTHORITIES, slot_ms=SLOT_MS,
        gas_limit=loadgen.derived_gas_limit(args.rate, SLOT_MS, loadgen.TRANSFER_GAS,
                                            GAS_HEADROOM),
        accounts=[a for a, _ in DEV_ACCOUNTS] + ["0x" + address_of(k).hex() for k in senders])
    devnet, urls = await start_devnet(root)
    heads = Heads()
    stop = asyncio.Event()
    watchers = [asyncio.ensure_future(heads.watch(i, url, stop)) for i, url in enumerate(urls)]
    phases = [("low", args.low_rate, args.low_duration), ("load", args.rate, args.duration)]
    reports: dict[str, Any] = {}
    stages: dict[str, Any] = {}
    try:
        start = await scrape_all(urls)
        await asyncio.sleep(args.idle)
        for phase, rate, duration in phases:
            if not rate:
                continue
            end = await scrape_all(urls)
            stages[heads.phase] = breakdown(start, end)
            heads.phase, start = phase, end
            reports[phase] = await run_load(args, urls, devnet.pid, rate, duration)
        stages[heads.phase] = breakdown(start, await scrape_all(urls))
    finally:
        stop.set()
        for watcher in watchers:
            with contextlib.suppress(Exception):
                await watcher
        if devnet.returncode is None:
            devnet.terminate()
            await devnet.wait()
    report = reports["load"]
    sustained = report["included_tx_per_s_sustained"]
    idle, loaded = heads.summary("idle", AUTHORITIES), heads.summary("load", AUTHORITIES)
    p95 = [s["every_import_ms"]["p95"] for s in (idle, loaded)]
    approvals = {phase: stages[phase].get("approvals") for phase in stages}
    approvals_p95 = (approvals.get("load") or {}).get("p95_ms")
    low = None if "low" not in reports else {
        "offered_tx_per_s": args.low_rate,
        "included_tx_per_s_sustained": reports["low"]["included_tx_per_s_sustained"],
        "inclusion_latency_ms": reports["low"]["inclusion_latency_ms"],
        "propagation_and_approvals_ms": heads.summary("low", AUTHORITIES),
        "approvals_ms": stages["low"].get("approvals"),
    }
    return {
        "bench": "devnet",
        "mode": "short" if args.short else "full",
        "authorities": AUTHORITIES,
        "slot_ms": SLOT_MS,
        "offered_tx_per_s": args.rate,
        "duration_s": args.duration,
        "included_tx_per_s_sustained": sustained,
        "included_tx_per_s": report["included_tx_per_s"],
        "propagation_and_approvals_ms": {"idle": idle, "load": loaded},
        "approvals_ms": approvals,
        "low_load": low,
        "breakdown": stages,
        "goals": None if args.short else {
            f"included_tx_per_s>={GOAL_TX_PER_S}": sustained >= GOAL_TX_PER_S,
            f"propagation_p95_ms<{GOAL_PROPAGATION_P95_MS}_idle":
                p95[0] is not None and p95[0] < GOAL_PROPAGATION_P95_MS,
            f"propagation_p95_ms<{GOAL_PROPAGATION_P95_MS}_under_load":
                p95[1] is not None and p95[1] < GOAL_PROPAGATION_P95_MS,
            f"approvals_after_build_p95_ms<{GOAL_PROPAGATION_P95_MS}_under_load":
                approvals_p95 is not None and approvals_p95 < GOAL_PROPAGATION_P95_MS,
        },
        "loadgen": report,
    }


async def run_load(args: argparse.Namespace, urls: list[str], devnet_pid: int, rate: float,
                   duration: float) -> dict[str, Any]:
    """``tools/loadgen.py`` at ``rate`` tx/s for ``duration`` s over every node; its report."""
    load = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "tools" / "loadgen.py"), "--url", ",".join(urls),
        "--accounts", "derived", "--senders", str(args.senders), "--rate", str(rate),
        "--duration", str(duration), "--slot-ms", str(SLOT_MS),
        "--clients", str(args.clients), "--pid", str(devnet_pid),
        stdout=asyncio.subprocess.PIPE)
    out, _ = await load.communicate()
    if load.returncode != 0:
        raise RuntimeError(f"tools/loadgen.py failed ({load.returncode})")
    return json.loads(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="CI: a few seconds, that it runs")
    parser.add_argument("--rate", type=float, help="offered tx/s (default 6,000)")
    parser.add_argument("--duration", type=float, help="seconds of load (default 30)")
    parser.add_argument("--low-rate", type=float,
                        help="offered tx/s of the light load first (default 2,000; 0: none)")
    parser.add_argument("--low-duration", type=float,
                        help="seconds of light load (default 15)")
    parser.add_argument("--idle", type=float, help="seconds of idle timing first (default 10)")
    parser.add_argument("--senders", type=int, help="funded senders (default 2,000)")
    parser.add_argument("--clients", type=int, default=6,
                        help="loadgen connections, round-robin over the nodes (default 6)")
    parser.add_argument("--keep", action="store_true", help="keep the devnet's directory")
    args = parser.parse_args()
    args.rate = args.rate or (300.0 if args.short else 6_000.0)
    args.duration = args.duration or (3.0 if args.short else 30.0)
    args.idle = args.idle if args.idle is not None else (2.0 if args.short else 10.0)
    if args.low_rate is None:
        args.low_rate = 100.0 if args.short else 2_000.0
    args.low_duration = args.low_duration or (2.0 if args.short else 15.0)
    args.senders = args.senders or (60 if args.short else 2_000)
    root = Path(tempfile.mkdtemp(prefix="alys-fast-bench-devnet-"))
    try:
        result = asyncio.run(bench(args, root / "devnet"))
    finally:
        if args.keep:
            print(f"devnet kept in {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
