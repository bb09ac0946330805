"""AuxPoW figures, compiled and pure-Python measured in the same run.

- Proof verifications per second on one core (the process pinned to one CPU), for a mined Alys
  proof whose chain branch has 10 hashes (its coinbase is alone in the parent block): parse, all
  rules and the SHA256d PoW, by the compiled verifier (goal: >= 50,000/s; also from an already
  parsed proof) and by the pure-Python reference (``alys_fast.auxpow.reference``). Both spend
  most of their time in SHA256 (13 double hashes), so the ratio is small.
- CPU miner hashes per second per process (``alys_fast.merged_mining.miner.grind``), one
  process alone and each of two processes side by side.

Prints one JSON object. ``--short`` for CI (a few seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

from alys_fast.auxpow import parse_auxpow, sha256d, verify_auxpow
from alys_fast.auxpow import reference as ref
from alys_fast.merged_mining.miner import MiningJob, grind

CHAIN_ID = 121212
BITS = 0x207FFFFF
OTHERS = tuple(sha256d(i.to_bytes(4, "little")) for i in range(600))  # 2**10 leaves


def _best_rate(run: Callable[[int], None], count: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        run(count)
        best = min(best, time.perf_counter() - began)
    return count / best


def verification(count: int, repeats: int) -> dict:
    job = MiningJob(sha256d(b"bench"), CHAIN_ID, BITS, others=OTHERS, tree_nonce=5)
    proof = job.mine()
    parsed = parse_auxpow(proof)
    assert len(parsed.chain_branch) == 10
    target, committed = job.target, job.aux_hash

    def compiled(n: int) -> None:
        for _ in range(n):
            verify_auxpow(parse_auxpow(proof), committed, CHAIN_ID, target, "alys")

    def compiled_preparsed(n: int) -> None:
        for _ in range(n):
            verify_auxpow(parsed, committed, CHAIN_ID, target, "alys")

    def reference(n: int) -> None:
        for _ in range(n):
            ref.check(ref.parse(proof), committed, CHAIN_ID, target, "alys")

    fast = _best_rate(compiled, count, repeats)
    slow = _best_rate(reference, max(count // 20, 50), repeats)
    return {
        "proof_bytes": len(proof),
        "chain_branch": 10,
        "compiled_per_s": round(fast),
        "compiled_preparsed_per_s": round(_best_rate(compiled_preparsed, count, repeats)),
        "reference_per_s": round(slow),
        "compiled_over_reference": round(fast / slow, 1),
        "goal_per_s": 50_000,
    }


def _hash_rate(nonces: int) -> float:
    prefix = MiningJob(sha256d(b"bench"), CHAIN_ID, BITS).prefix(os.getpid())
    began = time.perf_counter()
    assert grind(prefix, 0, 0, nonces) is None  # target 0: every nonce is tried
    return nonces / (time.perf_counter() - began)


def mining(nonces: int) -> dict:
    alone = _hash_rate(nonces)
    with ProcessPoolExecutor(max_workers=2, mp_context=get_context("spawn")) as pool:
        pool.submit(_hash_rate, 1000).result()  # start both workers before timing
        side_by_side = list(pool.map(_hash_rate, [nonces, nonces]))
    return {
        "hashes_per_s_one_process": round(alone),
        "hashes_per_s_each_of_two": [round(rate) for rate in side_by_side],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="small sizes for CI (seconds)")
    args = parser.parse_args()
    count, repeats, nonces = (5_000, 3, 300_000) if args.short else (50_000, 5, 3_000_000)
    started = time.perf_counter()
    affinity = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {affinity[0]})  # single-core figures on one CPU
    try:
        verify = verification(count, repeats)
    finally:
        os.sched_setaffinity(0, affinity)
    result = {
        "mode": "short" if args.short else "full",
        "verification_single_core": verify,
        "miner": mining(nonces),
        "seconds": 0.0,
    }
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
