"""End-to-end node throughput: a real node under tools/loadgen.py's pre-signed load, beside anvil.

For each workload (plain transfers, then ERC-20 ``transfer`` calls of the committed Token
contract, deployed and funded before the measured window), starts ``python -m alys_fast run``
on a fresh chain (senders funded at genesis), submits the pre-signed EIP-1559 transactions in
JSON-RPC batches from several keep-alive clients at a paced rate and watches the blocks; then
the same transactions against anvil from the same genesis when anvil is installed
(``tools/install_anvil.sh``; a note when it is not). Reports per target submitted, included
(checked by balances: failed transactions do not count) and failed transactions, included
tx/s, submit→inclusion and ack latency percentiles, the node's RSS and CPU, the issue's goals
(included ≥ 15,000 transfers/s and ≥ 10,000 ERC-20 transfers/s with 1 s blocks, p95 ack
< 10 ms, p95 inclusion ≤ one slot + 100 ms, flat memory), and alys-fast / anvil. See
tools/loadgen.py for how each figure is measured.

Prints one JSON object. ``--short`` for CI: per workload and target ~5 s of load at 4,000 tx/s
with 250 ms slots (about 30 s in all with anvil). The full run is 60 s per workload and
target with 1 s slots, transfers at 15,750 tx/s and ERC-20 at 10,500 tx/s (5 % above the
goals; about 7 minutes: anvil falls behind and its load takes longer).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

LOADGEN = Path(__file__).resolve().parent.parent / "tools" / "loadgen.py"
# Offered rate per workload in the full run: the goal for each plus 5 %, since the
# included rate cannot exceed the offered one and a goal met exactly would read as a coin toss.
FULL_RATE = {"transfer": 15_750, "erc20": 10_500}


def load_loadgen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("alys_fast_loadgen", LOADGEN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and the signing processes look it up
    spec.loader.exec_module(module)
    return module


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """One target's figures, without the per-actor metrics and profile."""
    if "note" in report:
        return report
    node = report["node"]
    return {
        "config": report["config"],
        "token_setup": report["token_setup"],
        "submitted": report["submitted"],
        "accepted": report["accepted"],
        "rejected": report["rejected"],
        "included": report["included"],
        "failed": report["failed"],
        "check": report["check"],
        "submit_tx_per_s": report["submit_tx_per_s"],
        "included_tx_per_s": report["included_tx_per_s"],
        "included_tx_per_s_sustained": report["included_tx_per_s_sustained"],
        "inclusion_latency_ms": report["inclusion_latency_ms"],
        "ack_latency_ms": report["ack_latency_ms"],
        "late_batches": report["pacing"]["late_batches"],
        "blocks": report["blocks"],
        "node_rss_mb": {k: node["rss_mb"].get(k) for k in ("start", "middle", "end", "peak")},
        "node_cpu_percent": node["cpu_percent"],
        "node_with_children": {"cpu_percent": node["tree"]["cpu_percent"],
                               "cpu_us_per_included_tx": node["tree"]["cpu_us_per_included_tx"],
                               "rss_mb_end": node["tree"]["rss_mb"].get("end")},
        "node_metrics": {k: v for k, v in (node["metrics"] or {}).items() if k != "actors"},
        "loadgen_cpu_percent": report["loadgen_cpu_percent"],
        "machine": report["machine"],
        "goals": report["goals"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="small runs for CI (~30 s)")
    parser.add_argument("--workload", choices=("transfer", "erc20", "all"), default="all")
    parser.add_argument("--target", choices=("alys-fast", "both"), default="both",
                        help="alys-fast alone, or beside anvil (default both)")
    args = parser.parse_args()
    started = time.perf_counter()
    loadgen = load_loadgen()
    workloads = ["transfer", "erc20"] if args.workload == "all" else [args.workload]
    runs = {}
    for workload in workloads:
        argv = ["--workload", workload, "--target", args.target]
        argv += (["--short"] if args.short
                 else ["--rate", str(FULL_RATE[workload]), "--slot-ms", "1000"])
        report = loadgen.run(argv)
        if args.target == "both":
            runs[workload] = {
                "side_by_side": report["side_by_side"],
                "ratio_included_tx_per_s_sustained":
                    report.get("ratio_included_tx_per_s_sustained"),
                "ratio_cpu_per_tx_anvil_over_alys_fast":
                    report.get("ratio_cpu_per_tx_anvil_over_alys_fast"),
                "goals": report.get("goals"),
                "note": report.get("note"),
                "alys-fast": summary(report["reports"]["alys-fast"]),
                "anvil": summary(report["reports"]["anvil"]),
            }
        else:
            runs[workload] = {"alys-fast": summary(report)}
    print(json.dumps({
        "bench": "node_load",
        "mode": "short" if args.short else "full",
        "runs": runs,
        "seconds": round(time.perf_counter() - started, 1),
    }, indent=2))


if __name__ == "__main__":
    main()
