"""BLS libraries side by side for Alys's approvals (POP ciphersuite), and the approval codecs.

Candidates (PyPI wheels on Python 3.11): ``blspy`` (Chia's blst bindings, behind
``alys_fast.consensus.bls``), ``milagro-bls-binding``, ``pyblst`` (raw blst primitives, the
ciphersuite composed here: hash-to-G2, scalar multiplication, two Miller loops) and ``py_ecc``
(pure Python, the slow reference: few iterations). Before timing, each candidate must give
Alys's dev key for sk=1 and the bls12-381-tests signature for a vector, and verify the chosen
library's signatures; its ``agrees`` says so.

Per operation, µs (best of a few repeats): keygen (sk -> pk), sign and verify of a 32-byte
root, aggregate of 2/3/15 signatures, fast-aggregate-verify with 2 and 15 keys, pubkey and
signature decoding (subgroup checks included); then encode/decode of an ``Approval`` and an
``AggregateApproval`` (decode includes the signature's subgroup check).

Prints one JSON object. ``--short`` for CI.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from alys_fast.consensus import bls
from alys_fast.consensus.approvals import AggregateApproval, Approval, sign_approval

DST = bls.DST
DEV_PUBLIC_KEY = bytes.fromhex(
    "97f1d3a73197d7942695638c4fa9ac0fc3688c4f9774b905a14e3a3f171bac586c55e83ff97a1aeffb3af00adb22c6bb"
)
# bls12-381-tests sign_case_84d45c9c7cca6b92
VECTOR_KEY = bytes.fromhex("328388aff0d4a5b7dc9205abd374e7e98f3cd9f3418edb4eafda5fb16473d216")
VECTOR_MESSAGE = b"\xab" * 32
VECTOR_SIGNATURE = bytes.fromhex(
    "ae82747ddeefe4fd64cf9cedb9b04ae3e8a43420cd255e3c7cd06a8d88b7c7f8638543719981c5d16fa3527c468c25f0"
    "026704a6951bde891360c7e8d12ddee0559004ccdbe6046b55bae1b257ee97f7cdb955773d7cf29adf3ccbb9975e4eb9"
)
ROOT = bytes(range(32))
SCALARS = [0x1000 + 7919 * i for i in range(15)]
SECRETS = [s.to_bytes(32, "big") for s in SCALARS]


def _blspy() -> dict[str, Callable]:
    return {
        "keygen": lambda sk: bls.SecretKey.from_bytes(sk).public_key().to_bytes(),
        "sign": lambda sk, m: bls.SecretKey.from_bytes(sk).sign(m).to_bytes(),
        "prepare_keys": lambda pks: [bls.PublicKey.from_bytes(p) for p in pks],
        "prepare_sigs": lambda sigs: [bls.Signature.from_bytes(s) for s in sigs],
        "verify": lambda pk, m, sig: bls.verify(pk, m, sig),
        "aggregate": lambda sigs: bls.aggregate(sigs),
        "fast_aggregate_verify": lambda pks, m, sig: bls.fast_aggregate_verify(pks, m, sig),
        "pubkey_decode": bls.PublicKey.from_bytes,
        "signature_decode": bls.Signature.from_bytes,
    }


def _milagro() -> dict[str, Callable]:
    import milagro_bls_binding as m

    return {
        "keygen": m.SkToPk,
        "sign": m.Sign,
        "prepare_keys": list,
        "prepare_sigs": list,
        "verify": m.Verify,
        "aggregate": m.Aggregate,
        "fast_aggregate_verify": m.FastAggregateVerify,
        "pubkey_decode": None,  # no separate decoding: bytes go into every call
        "signature_decode": None,
    }


def _pyblst() -> dict[str, Callable]:
    import pyblst

    g1, g2 = pyblst.BlstP1Element, pyblst.BlstP2Element
    generator = g1.uncompress(DEV_PUBLIC_KEY)

    def sign(sk: bytes, message: bytes) -> bytes:
        return g2.hash_to_group(message, DST).scalar_mul(int.from_bytes(sk, "big")).compress()

    def verify(pk, message: bytes, sig) -> bool:
        hashed = g2.hash_to_group(message, DST)
        left, right = pyblst.miller_loop(pk, hashed), pyblst.miller_loop(generator, sig)
        return pyblst.final_verify(left, right)

    def aggregate(sigs):
        total = sigs[0]
        for sig in sigs[1:]:
            total = total + sig
        return total

    def fast_aggregate_verify(pks, message, sig) -> bool:
        return verify(aggregate(pks), message, sig)

    return {
        "keygen": lambda sk: generator.scalar_mul(int.from_bytes(sk, "big")).compress(),
        "sign": sign,
        "prepare_keys": lambda pks: [g1.uncompress(p) for p in pks],
        "prepare_sigs": lambda sigs: [g2.uncompress(s) for s in sigs],
        "verify": verify,
        "aggregate": aggregate,
        "fast_aggregate_verify": fast_aggregate_verify,
        "pubkey_decode": g1.uncompress,
        "signature_decode": g2.uncompress,
    }


def _py_ecc() -> dict[str, Callable]:
    from py_ecc.bls import G2ProofOfPossession as p

    return {
        "keygen": lambda sk: p.SkToPk(int.from_bytes(sk, "big")),
        "sign": lambda sk, m: p.Sign(int.from_bytes(sk, "big"), m),
        "prepare_keys": list,
        "prepare_sigs": list,
        "verify": p.Verify,
        "aggregate": p.Aggregate,
        "fast_aggregate_verify": p.FastAggregateVerify,
        "pubkey_decode": None,
        "signature_decode": None,
    }


CANDIDATES = {
    "blspy": _blspy, "milagro-bls-binding": _milagro, "pyblst": _pyblst, "py_ecc": _py_ecc
}


def _micros(run: Callable[[], object], count: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        for _ in range(count):
            run()
        best = min(best, time.perf_counter() - began)
    return round(best / count * 1e6, 1)


def _measure(lib: dict[str, Callable], count: int, repeats: int) -> dict[str, object]:
    reference_public = [bls.SecretKey.from_bytes(s).public_key().to_bytes() for s in SECRETS]
    reference_sigs = [bls.SecretKey.from_bytes(s).sign(ROOT).to_bytes() for s in SECRETS]
    pks = lib["prepare_keys"](reference_public)
    sigs = lib["prepare_sigs"](reference_sigs)
    agg15 = lib["aggregate"](sigs)
    agrees = (
        lib["keygen"]((1).to_bytes(32, "big")) == DEV_PUBLIC_KEY
        and bytes(lib["sign"](VECTOR_KEY, VECTOR_MESSAGE)) == VECTOR_SIGNATURE
        and bool(lib["verify"](pks[0], ROOT, sigs[0]))
        and not lib["verify"](pks[1], ROOT, sigs[0])
        and bool(lib["fast_aggregate_verify"](pks, ROOT, agg15))
    )
    figures: dict[str, object] = {"agrees": agrees}
    timed = {
        "keygen": lambda: lib["keygen"](SECRETS[0]),
        "sign": lambda: lib["sign"](SECRETS[0], ROOT),
        "verify": lambda: lib["verify"](pks[0], ROOT, sigs[0]),
        "aggregate_2": lambda: lib["aggregate"](sigs[:2]),
        "aggregate_3": lambda: lib["aggregate"](sigs[:3]),
        "aggregate_15": lambda: lib["aggregate"](sigs),
        "fast_aggregate_verify_2": lambda: lib["fast_aggregate_verify"](
            pks[:2], ROOT, lib["aggregate"](sigs[:2])
        ),
        "fast_aggregate_verify_15": lambda: lib["fast_aggregate_verify"](pks, ROOT, agg15),
    }
    if lib["pubkey_decode"] is not None:
        timed["pubkey_decode"] = lambda: lib["pubkey_decode"](reference_public[0])
        timed["signature_decode"] = lambda: lib["signature_decode"](reference_sigs[0])
    for name, run in timed.items():
        figures[name + "_us"] = _micros(run, count, repeats)
    return figures


def _codecs(count: int, repeats: int) -> dict[str, float]:
    key = bls.SecretKey.from_bytes(SECRETS[0])
    approval = sign_approval(key, 0, 12345, ROOT)
    aggregate = AggregateApproval()
    for i, secret in enumerate(SECRETS[:10]):
        aggregate = aggregate.add(i, bls.SecretKey.from_bytes(secret).sign(ROOT))
    approval_wire, aggregate_wire = approval.encode(), aggregate.encode()
    return {
        "approval_encode_us": _micros(approval.encode, count * 10, repeats),
        "approval_decode_us": _micros(lambda: Approval.decode(approval_wire), count, repeats),
        "aggregate_encode_us": _micros(aggregate.encode, count * 10, repeats),
        "aggregate_decode_us": _micros(
            lambda: AggregateApproval.decode(aggregate_wire), count, repeats
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="a few seconds, for CI")
    args = parser.parse_args()
    count, repeats = (3, 1) if args.short else (50, 3)
    results: dict[str, object] = {}
    for name, make in CANDIDATES.items():
        try:
            lib = make()
        except ImportError:
            results[name] = "not installed"
            continue
        slow = name == "py_ecc"
        results[name] = _measure(lib, 1 if slow else count, 1 if slow else repeats)
    results["codecs"] = _codecs(count, repeats)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
