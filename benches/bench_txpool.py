"""Transaction pool figures: admission throughput, block selection and post-block cleanup.

Pre-signs type-2 transfers (coincurve, the same libsecp256k1 the core recovers with; signing is
not measured) from S senders x K nonces, with tips spread so the heap has work to do, then:

- ``add_many``: batched admission, signature recovery included (tx/s);
- ``add``: one raw transaction at a time, as a single RPC call would (tx/s);
- ``best``: choosing a full block of every pooled transaction (goal: 10,000 in well under
  50 ms), for few senders with long nonce runs and for many senders with one each;
- ``remove_included``: dropping that block and re-reading its senders.

Prints one JSON object; ``--short`` for CI (a few seconds).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from coincurve import PrivateKey

from alys_fast._cext import require
from alys_fast.chain.spec import DEV_CHAIN_ID
from alys_fast.chain.txpool import TxPool, TxPoolLimits

keccak256 = require("hashing").keccak256
rlp_encode = require("rlp").encode

GWEI = 10**9
TO = bytes.fromhex("ab" * 20)


def signed_transfers(senders: int, per_sender: int) -> list[bytes]:
    """Raw type-2 transfers, sender-major, tips varying by sender and nonce."""
    raws = []
    for who in range(senders):
        key = PrivateKey((who + 1).to_bytes(32, "big"))
        for nonce in range(per_sender):
            tip = GWEI + ((who * 7919 + nonce * 104729) % 1000) * 10**6
            fields = [DEV_CHAIN_ID, nonce, tip, 100 * GWEI, 21_000, TO, 1, b"", []]
            payload = b"\x02" + rlp_encode(fields)
            sig = key.sign_recoverable(keccak256(payload), hasher=None)
            r, s, y = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big"), sig[64]
            raws.append(b"\x02" + rlp_encode([*fields, y, r, s]))
    return raws


def rich(_address: bytes) -> tuple[int, int]:
    return 0, 10**30


def fresh_pool(n: int) -> TxPool:
    limits = TxPoolLimits(max_txs=n, max_executable_per_sender=n)
    return TxPool(DEV_CHAIN_ID, 30_000_000, rich, limits)


def run(senders: int, per_sender: int, rounds: int) -> dict[str, float]:
    raws = signed_transfers(senders, per_sender)
    n = len(raws)
    add_many, add_one, best, cleanup = [], [], [], []
    for _ in range(rounds):
        pool = fresh_pool(n)
        start = time.perf_counter()
        results = pool.add_many(raws)
        add_many.append(time.perf_counter() - start)
        assert len(pool) == n, [r for r in results if not hasattr(r, "hash")][:3]

        pool = fresh_pool(n)
        start = time.perf_counter()
        for raw in raws:
            pool.add(raw)
        add_one.append(time.perf_counter() - start)

        start = time.perf_counter()
        block = pool.best(n * 21_000, GWEI)
        best.append(time.perf_counter() - start)
        assert len(block) == n

        def included(address: bytes) -> tuple[int, int]:
            return per_sender, 10**30

        start = time.perf_counter()
        pool.remove_included(block, included)
        cleanup.append(time.perf_counter() - start)
        assert len(pool) == 0
    return {
        "txs": n,
        "add_many_tx_per_s": round(n / statistics.median(add_many)),
        "add_tx_per_s": round(n / statistics.median(add_one)),
        "best_ms": round(statistics.median(best) * 1e3, 2),
        "remove_included_ms": round(statistics.median(cleanup) * 1e3, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="CI mode: one round")
    args = parser.parse_args()
    rounds = 1 if args.short else 5
    print(
        json.dumps(
            {
                "few_senders_long_runs(100x100)": run(100, 100, rounds),
                "many_senders_one_each(10000x1)": run(10_000, 1, rounds),
                "best_goal_ms": 50,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
