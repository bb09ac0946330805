"""The pure-Python reference verifier (alys_fast/auxpow/reference.py) against the compiled one:
the same verdict and rule code on every vector and on random mutations of mined proofs."""

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alys_fast.auxpow import AuxPowError, parse_auxpow, sha256d, verify_auxpow, verify_header
from alys_fast.auxpow import reference as ref
from alys_fast.merged_mining.miner import MiningJob, serialize_auxpow, txid

DATA = Path(__file__).parent.parent / "data" / "auxpow"
VECTORS = [json.loads(line) for line in (DATA / "auxpow-vectors.jsonl").read_text().splitlines()]
HEADER_VECTORS = [v for v in VECTORS if v.get("header_with_auxpow_hex")]
ALYS = next(v for v in VECTORS if v["chain"] == "alys")
CHAIN_ID = 121212
OTHERS = tuple(sha256d(i.to_bytes(4, "little")) for i in range(600))  # a 10-hash chain branch
JOB = MiningJob(sha256d(b"alys block"), CHAIN_ID, 0x207FFFFF, others=OTHERS, tree_nonce=9)
PROOF = JOB.mine()
SHORT_JOB = MiningJob(sha256d(b"alys block"), CHAIN_ID, 0x207FFFFF)
SHORT_PROOF = SHORT_JOB.mine()


def _verdict(check: Callable[[], None]) -> str:
    """'valid', the rule code, or 'not-a-proof' for a refusal outside the rules (ValueError)."""
    try:
        check()
    except (AuxPowError, ref.RuleBroken) as exc:
        return exc.code
    except ValueError:
        return "not-a-proof"
    return "valid"


def _header_args(v: dict) -> dict:
    override = v.get("target_bits_override")
    return {
        "strict_chain_id": v["strict_chain_id"],
        "chain_id_mask": int(v.get("version_chain_id_mask", "0xffff"), 16),
        "pow_algo": v["pow_algo"],
        "bits": None if override is None else int(override, 16),
    }


def _both_on_header(v: dict, data: bytes) -> tuple[str, str]:
    args = _header_args(v)
    compiled = _verdict(lambda: verify_header(data, v["chain_id"], "namecoin", **args))
    reference = _verdict(lambda: ref.check_header(data, v["chain_id"], "namecoin", **args))
    return compiled, reference


@pytest.mark.parametrize("v", HEADER_VECTORS, ids=lambda v: f"{v['chain']}-{v['height']}")
def test_reference_gives_each_vectors_verdict(v: dict) -> None:
    compiled, reference = _both_on_header(v, bytes.fromhex(v["header_with_auxpow_hex"]))
    assert reference == compiled == v["expect"].removeprefix("invalid: ")


def test_reference_accepts_the_alys_coinbase_vector() -> None:
    coinbase = bytes.fromhex(ALYS["coinbase_tx_hex"])
    committed = bytes.fromhex(ALYS["root_bytes_as_in_script_hex"])
    parsed = parse_auxpow(serialize_auxpow(coinbase, bytes(80)))
    parent = (1).to_bytes(4, "little") + bytes(32) + parsed.coinbase_txid + bytes(12)
    proof = serialize_auxpow(coinbase, parent)
    ref.check(ref.parse(proof), committed, 1, 2**256 - 1, "alys")
    with pytest.raises(ref.RuleBroken) as err:
        ref.check(ref.parse(proof), committed[::-1], 1, 2**256 - 1, "alys")
    assert err.value.code == "chain-merkle-root-not-in-coinbase"


def test_reference_txid_strips_the_witness() -> None:
    coinbase = bytes.fromhex(ALYS["coinbase_tx_hex"])  # segwit-serialized
    proof = ref.parse(serialize_auxpow(coinbase, bytes(80)))
    assert proof.txid == parse_auxpow(serialize_auxpow(coinbase, bytes(80))).coinbase_txid
    assert proof.txid != txid(coinbase)


def _both_on_proof(data: bytes, committed: bytes, profile: str, strict: bool) -> tuple[str, str]:
    target = JOB.target
    compiled = _verdict(lambda: verify_auxpow(
        parse_auxpow(data), committed, CHAIN_ID, target, profile, strict_chain_id=strict))
    reference = _verdict(lambda: ref.check(
        ref.parse(data), committed, CHAIN_ID, target, profile, strict))
    return compiled, reference


def test_mined_proofs_verify_with_both() -> None:
    for proof in (PROOF, SHORT_PROOF):
        assert _both_on_proof(proof, JOB.aux_hash, "alys", True) == ("valid", "valid")


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from([PROOF, SHORT_PROOF]),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1, max_size=3),
    st.sampled_from(["alys", "namecoin"]),
    st.booleans(),
)
def test_byte_flips_get_the_same_verdict(
    proof: bytes, flips: list[tuple[int, int]], profile: str, strict: bool
) -> None:
    data = bytearray(proof)
    for at, xor in flips:
        data[at % len(data)] ^= xor
    compiled, reference = _both_on_proof(bytes(data), JOB.aux_hash, profile, strict)
    assert compiled == reference


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from([PROOF, SHORT_PROOF]),
    st.integers(0, 10**6),
    st.binary(max_size=40),
    st.integers(0, 40),
)
def test_splices_and_cuts_get_the_same_verdict(
    proof: bytes, at: int, insert: bytes, cut: int
) -> None:
    at %= len(proof)
    data = proof[:at] + insert + proof[at + cut :]
    assert len({*_both_on_proof(data, JOB.aux_hash, "alys", True)}) == 1
