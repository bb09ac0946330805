"""Phase breakdown of one ERC-20 block through RevmEngine, in CPU ms (min and median over rounds).

The block is bench_evm's (N transfers, one per sender). Phases: ``evm.begin`` (transactions into
revm's shape), ``evm.execute`` (revm over the engine's state, blooms, receipts root),
``evm.prepare`` (the new state root), ``Run.result`` and ``Run.changes`` (the Python objects),
the rest of ``RevmEngine._execution`` (receipts and the diff), then the whole
``execute_block`` on a fresh engine; with the crate's ``raw_revm`` and ``native`` figures
(see benches/bench_evm.py). Run from the repository root:
``python tools/prof_evm.py [N] [ROUNDS]``.
"""

from __future__ import annotations

import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benches"))

from bench_evm import CHAIN_ID, ENV, alloc, transactions

from alys_fast.engine import Account, RevmEngine
from alys_fast.engine.revm import env_tuple
from alys_fast.validation.receipts import Log


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    txs = transactions(n, True)
    phases: dict[str, list[float]] = {}

    def lap(name: str, start: float) -> float:
        now = time.process_time()
        phases.setdefault(name, []).append(1000 * (now - start))
        return now

    for _ in range(rounds):
        engine = RevmEngine.from_alloc(alloc(n), chain_id=CHAIN_ID)
        evm = engine._evm
        parent = engine.state_root  # the head's root, hashed once before timing
        gc.collect()
        started = time.process_time()
        run = evm.begin(env_tuple(ENV), txs, False)
        started = lap("evm.begin", started)
        assert evm.execute(run) is None
        started = lap("evm.execute", started)
        root = evm.prepare(run)
        started = objects = lap("evm.prepare", started)
        run.result(Log)
        started = lap("Run.result", started)
        run.changes(Account)
        objects = lap("Run.changes", started) - objects  # both, which _execution calls again
        gc.collect()
        started = time.process_time()
        engine._execution(parent, ENV, txs, run, root)
        rest = time.process_time() - started - objects
        phases.setdefault("rest of _execution", []).append(1000 * rest)
        phases.setdefault("raw revm (Rust timer)", []).append(1000 * evm.raw_revm_seconds(run))
        phases.setdefault("native (Rust timer)", []).append(1000 * evm.native_block_seconds(run))
        engine = RevmEngine.from_alloc(alloc(n), chain_id=CHAIN_ID)
        parent = engine.state_root
        gc.collect()
        started = time.process_time()
        engine.execute_block(parent, ENV, txs)
        lap("execute_block", started)
    for name, values in phases.items():
        values.sort()
        print(f"{name:24s} min {values[0]:7.1f}  median {values[len(values) // 2]:7.1f}")
    print(f"{n / min(phases['execute_block']) * 1000:.0f} ERC-20 transfers/s (CPU time, best)")


if __name__ == "__main__":
    main()
