"""Validation-core figures, every competitor measured in the same run.

- Single core (the process pinned to one CPU), signed legacy and type-2 transfers per second:
  ``recover_transaction`` against
  * eth-account's ``Account.recover_transaction`` + ``rlp`` decode (goal: ours >= 20x faster).
    eth-keys picks coincurve's libsecp256k1 when it is installed, so this baseline shares our
    recovery cost; its pure-Python backend is measured too, for the figure without coincurve;
  * bare coincurve ``PublicKey.from_signature_and_message(hasher=None)`` on the same signatures
    and signing hashes (goal: bare / ours <= 1.5), and the raw cffi ``secp256k1_ecdsa_recover``.
- Keccak-256 candidates (ours, pycryptodome, safe-pysha3, eth-hash) at several input sizes.
- The batch form on all usable cores (threads) against one core, and a 2-process pool doing the
  same batch (goal: threads >= 1.7x single core on 2 cores).

Prints one JSON object. ``--short`` for CI (well under a minute).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from multiprocessing import get_context
from typing import Any

import rlp
from coincurve import PublicKey
from coincurve._libsecp256k1 import ffi, lib
from coincurve.context import GLOBAL_CONTEXT
from Crypto.Hash import keccak as pycryptodome_keccak
from eth_account import Account
from eth_hash.auto import keccak as eth_hash_keccak

from alys_fast._cext.hashing import keccak256
from alys_fast.validation import (
    InvalidTransaction,
    Transaction,
    recover_transaction,
    recover_transactions,
)
from alys_fast.validation.transactions import usable_cores

CHAIN_ID = 1


def best_rate(fn: Callable[[], Any], items: int, repeats: int) -> float:
    """Items per second of the fastest of ``repeats`` runs of ``fn`` (which handles ``items``)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return items / best


def signed_transfers(count: int, tx_type: int) -> list[bytes]:
    """``count`` distinct signed transfers (distinct keys and nonces) of the given type."""
    raws = []
    for i in range(count):
        fields: dict[str, Any] = {
            "chainId": CHAIN_ID,
            "nonce": i,
            "to": "0x000000000000000000000000000000000000dEaD",
            "value": 10**15 + i,
            "gas": 21000,
            "data": b"",
        }
        if tx_type == 2:
            fields.update(type=2, maxFeePerGas=30 * 10**9, maxPriorityFeePerGas=10**9)
        else:
            fields["gasPrice"] = 20 * 10**9
        key = (i + 1).to_bytes(32, "big")
        raws.append(bytes(Account.sign_transaction(fields, key).raw_transaction))
    return raws


def bare_inputs(txs: list[Transaction]) -> list[tuple[bytes, bytes]]:
    """(r || s || recid, signing hash) per transaction, computed outside the timed loop."""
    out = []
    for tx in txs:
        if tx.type == 0:  # EIP-155: rlp([nonce, gas price, gas, to, value, data, chain id, 0, 0])
            unsigned = rlp.encode([*rlp.decode(tx.raw)[:6], tx.chain_id, 0, 0])
            recid = (tx.v - 35) % 2
        else:  # type || rlp(fields without v, r, s)
            unsigned = tx.raw[:1] + rlp.encode(rlp.decode(tx.raw[1:])[:-3])
            recid = tx.v
        msg = pycryptodome_keccak.new(digest_bits=256, data=unsigned).digest()
        sig = tx.r.to_bytes(32, "big") + tx.s.to_bytes(32, "big") + bytes([recid])
        public = PublicKey.from_signature_and_message(sig, msg, hasher=None)
        assert keccak256(public.format(compressed=False)[1:])[12:] == tx.sender
        out.append((sig, msg))
    return out


def _recover_each(raws: list[bytes]) -> None:
    for raw in raws:
        recover_transaction(raw, CHAIN_ID)


def _coincurve_recover_each(inputs: list[tuple[bytes, bytes]]) -> None:
    for sig, msg in inputs:
        PublicKey.from_signature_and_message(sig, msg, hasher=None)


def eth_account_baseline(raws: list[bytes]) -> None:
    for raw in raws:
        Account.recover_transaction(raw)
        rlp.decode(raw[1:] if raw[0] < 0x80 else raw)


def raw_cffi_recover(inputs: list[tuple[bytes, bytes]]) -> Callable[[], None]:
    ctx = GLOBAL_CONTEXT.ctx
    parsed = []
    for sig, msg in inputs:
        rsig = ffi.new("secp256k1_ecdsa_recoverable_signature *")
        lib.secp256k1_ecdsa_recoverable_signature_parse_compact(ctx, rsig, sig[:64], sig[64])
        parsed.append((rsig, msg))
    pub = ffi.new("secp256k1_pubkey *")

    def run() -> None:
        for rsig, msg in parsed:
            lib.secp256k1_ecdsa_recover(ctx, pub, rsig, msg)

    return run


def single_core(count: int, repeats: int, native_count: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, tx_type in (("legacy", 0), ("type2", 2)):
        raws = signed_transfers(count, tx_type)
        txs = [recover_transaction(raw, CHAIN_ID) for raw in raws]
        inputs = bare_inputs(txs)
        ours = best_rate(partial(_recover_each, raws), count, repeats)
        bare = best_rate(partial(_coincurve_recover_each, inputs), count, repeats)
        cffi_raw = best_rate(raw_cffi_recover(inputs), count, repeats)
        eth = best_rate(partial(eth_account_baseline, raws), count, 1)
        os.environ["ECC_BACKEND_CLASS"] = "eth_keys.backends.NativeECCBackend"
        try:
            native = best_rate(partial(eth_account_baseline, raws[:native_count]), native_count, 1)
        finally:
            del os.environ["ECC_BACKEND_CLASS"]
        out[name] = {
            "recover_transaction_per_s": round(ours),
            "eth_account_recover_plus_rlp_per_s": round(eth),
            "eth_account_pure_python_backend_per_s": round(native),
            "coincurve_bare_recover_per_s": round(bare),
            "cffi_raw_secp256k1_recover_per_s": round(cffi_raw),
            "speedup_vs_eth_account": round(ours / eth, 2),
            "speedup_vs_eth_account_pure_python": round(ours / native, 1),
            "bare_coincurve_over_ours": round(bare / ours, 3),
            "raw_cffi_over_ours": round(cffi_raw / ours, 3),
        }
    return out


def _hash_repeatedly(fn: Callable[[bytes], bytes], data: bytes, loops: int) -> None:
    for _ in range(loops):
        fn(data)


def keccak_candidates(repeats: int, budget_bytes: int) -> dict[str, Any]:
    candidates: dict[str, Callable[[bytes], bytes]] = {
        "alys_fast_c": keccak256,
        "pycryptodome": lambda d: pycryptodome_keccak.new(digest_bits=256, data=d).digest(),
        "eth_hash_auto": eth_hash_keccak,
    }
    out: dict[str, Any] = {}
    try:
        import sha3  # safe-pysha3: measured when installed (not a declared dependency)

        candidates["safe_pysha3"] = lambda d: sha3.keccak_256(d).digest()
    except ImportError:
        out["safe_pysha3"] = "not installed"
    for size in (32, 136, 1024, 100 * 1024):
        data = bytes(range(256)) * (size // 256) + bytes(size % 256)
        want = candidates["pycryptodome"](data)
        loops = max(10, budget_bytes // max(size, 64))
        row: dict[str, Any] = {}
        for name, fn in candidates.items():
            assert fn(data) == want, name
            rate = best_rate(partial(_hash_repeatedly, fn, data, loops), loops, repeats)
            row[name] = {"ns_per_hash": round(1e9 / rate, 1), "mb_per_s": round(rate * size / 1e6)}
        fastest_other = min(row[n]["ns_per_hash"] for n in row if n != "alys_fast_c")
        row["ours_vs_fastest_other"] = round(fastest_other / row["alys_fast_c"]["ns_per_hash"], 2)
        out[f"{size}_bytes"] = row
    return out


def _process_chunk(raws: list[bytes]) -> list[Transaction | InvalidTransaction]:
    return recover_transactions(raws, CHAIN_ID, threads=1)


def batch(count: int, repeats: int) -> dict[str, Any]:
    """Interleaved runs (single, threads, processes) so background load hits all alike."""
    raws = signed_transfers(count // 2, 0) + signed_transfers(count - count // 2, 2)
    cores = usable_cores()
    chunks = [raws[i::cores] for i in range(cores)]
    # spawn: workers start clean instead of forking a process that already runs threads.
    with ProcessPoolExecutor(max_workers=cores, mp_context=get_context("spawn")) as pool:
        list(pool.map(_process_chunk, chunks))  # warm the workers
        runs = {
            "single_thread": partial(recover_transactions, raws, CHAIN_ID, threads=1),
            "threads": partial(recover_transactions, raws, CHAIN_ID),
            "process_pool": lambda: list(pool.map(_process_chunk, chunks)),
        }
        best = dict.fromkeys(runs, 0.0)
        for _ in range(repeats):
            for name, run in runs.items():
                best[name] = max(best[name], best_rate(run, count, 1))
    return {
        "cores": cores,
        "transactions": count,
        **{f"{name}_per_s": round(rate) for name, rate in best.items()},
        "threads_speedup": round(best["threads"] / best["single_thread"], 2),
        "process_pool_speedup": round(best["process_pool"] / best["single_thread"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="small sizes for CI (< 60 s)")
    args = parser.parse_args()
    count, repeats, native = (300, 3, 20) if args.short else (2000, 5, 100)
    affinity = sorted(os.sched_getaffinity(0))
    started = time.perf_counter()
    os.sched_setaffinity(0, {affinity[0]})  # single-core figures on one CPU
    try:
        single = single_core(count, repeats, native)
        hashing = keccak_candidates(repeats, 2_000_000 if args.short else 20_000_000)
    finally:
        os.sched_setaffinity(0, affinity)
    result = {
        "mode": "short" if args.short else "full",
        "single_core": single,
        "keccak256": hashing,
        "batch": batch(count * 3, repeats * 2),
        "seconds": 0.0,
    }
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
