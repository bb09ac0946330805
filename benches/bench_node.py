"""End-to-end node throughput: a real node under tools/loadgen.py's pre-signed transfer load.

Starts ``python -m alys_fast run`` on a fresh chain (senders funded at genesis), submits
pre-signed EIP-1559 transfers in JSON-RPC batches from several keep-alive clients at a paced
rate, and watches the blocks. Reports submit and included tx/s, submit→inclusion and ack
latency percentiles, the node's RSS at start / middle / end and CPU, and the issue's goals
(≥ 10,000 tx/s included over 60 s, p95 ack < 10 ms, p95 inclusion ≤ one slot + 100 ms, flat
memory). See tools/loadgen.py for how each figure is measured.

Prints one JSON object. ``--short`` for CI: ~5 s of load at 4,000 tx/s (< 20 s in all); the
full run is 60 s at 10,000 tx/s with 250 ms slots and batches of 25 (about 80 s with the
pre-signing).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path
from types import ModuleType

LOADGEN = Path(__file__).resolve().parent.parent / "tools" / "loadgen.py"


def load_loadgen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("alys_fast_loadgen", LOADGEN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and the signing processes look it up
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="small run for CI (< 20 s)")
    args = parser.parse_args()
    started = time.perf_counter()
    report = load_loadgen().run(["--short"] if args.short else [])
    node = report["node"]
    print(json.dumps({
        "bench": "node_load",
        "mode": report["mode"],
        "config": report["config"],
        "submitted": report["submitted"],
        "accepted": report["accepted"],
        "rejected": report["rejected"],
        "included": report["included"],
        "submit_tx_per_s": report["submit_tx_per_s"],
        "included_tx_per_s": report["included_tx_per_s"],
        "inclusion_latency_ms": report["inclusion_latency_ms"],
        "ack_latency_ms": report["ack_latency_ms"],
        "late_batches": report["pacing"]["late_batches"],
        "blocks": report["blocks"],
        "node_rss_mb": {k: node["rss_mb"].get(k) for k in ("start", "middle", "end", "peak")},
        "node_cpu_percent": node["cpu_percent"],
        "node_metrics": {k: v for k, v in (node["metrics"] or {}).items() if k != "actors"},
        "loadgen_cpu_percent": report["loadgen_cpu_percent"],
        "goals": report["goals"],
        "seconds": round(time.perf_counter() - started, 1),
    }, indent=2))


if __name__ == "__main__":
    main()
