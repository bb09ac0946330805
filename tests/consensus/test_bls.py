"""The BLS face against Ethereum's bls12-381-tests vectors and py_ecc (the slow reference)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from py_ecc.bls import G2ProofOfPossession as reference

from alys_fast.consensus import bls
from alys_fast.consensus.bls import BlsError, PublicKey, SecretKey, Signature

VECTORS = json.loads((Path(__file__).parent / "data" / "bls_vectors.json").read_text())
# ALYS-PROTOCOL §1.1: Alys's dev authority key is the scalar 1.
DEV_PUBLIC_KEY = (
    "97f1d3a73197d7942695638c4fa9ac0fc3688c4f9774b905a14e3a3f171bac586c55e83ff97a1aeffb3af00adb22c6bb"
)


def _name(case: dict) -> str:
    return case.get("name", "")


def _public_key(hex_key: str) -> PublicKey | None:
    try:
        return PublicKey.from_bytes(bytes.fromhex(hex_key))
    except BlsError:
        return None


def _signature(hex_signature: str) -> Signature | None:
    try:
        return Signature.from_bytes(bytes.fromhex(hex_signature))
    except BlsError:
        return None


def test_dev_key_is_alys_s():
    key = SecretKey.from_bytes((1).to_bytes(32, "big"))
    assert key.public_key().to_bytes().hex() == DEV_PUBLIC_KEY


@pytest.mark.parametrize("case", VECTORS["sign"], ids=lambda c: c["privkey"][:8] + c["message"][:4])
def test_sign(case):
    secret = bytes.fromhex(case["privkey"])
    message = bytes.fromhex(case["message"])
    if case["signature"] is None:
        with pytest.raises(BlsError, match="above 0"):
            SecretKey.from_bytes(secret)
        return
    signature = bls.sign(SecretKey.from_bytes(secret), message)
    assert signature.to_bytes().hex() == case["signature"]


@pytest.mark.parametrize("case", VECTORS["verify"], ids=_name)
def test_verify(case):
    key, signature = _public_key(case["pubkey"]), _signature(case["signature"])
    message = bytes.fromhex(case["message"])
    ok = key is not None and signature is not None and bls.verify(key, message, signature)
    assert ok is case["output"]


@pytest.mark.parametrize("case", VECTORS["aggregate"], ids=lambda c: str(len(c["input"])))
def test_aggregate(case):
    signatures = [Signature.from_bytes(bytes.fromhex(s)) for s in case["input"]]
    if case["output"] is None:
        with pytest.raises(BlsError, match="no signatures"):
            bls.aggregate(signatures)
        return
    assert bls.aggregate(signatures).to_bytes().hex() == case["output"]


@pytest.mark.parametrize("case", VECTORS["fast_aggregate_verify"], ids=_name)
def test_fast_aggregate_verify(case):
    keys = [_public_key(k) for k in case["pubkeys"]]
    signature = _signature(case["signature"])
    message = bytes.fromhex(case["message"])
    ok = (
        None not in keys
        and signature is not None
        and bls.fast_aggregate_verify(keys, message, signature)  # type: ignore[arg-type]
    )
    assert ok is case["output"]


@pytest.mark.parametrize("case", VECTORS["deserialization_G1"], ids=_name)
def test_public_key_decoding(case):
    data = bytes.fromhex(case["input"])
    if case["name"] == "succeeds_infinity_with_true_b_flag":
        # A valid G1 encoding, but not a public key (KeyValidate refuses the identity).
        with pytest.raises(BlsError, match="infinity"):
            PublicKey.from_bytes(data)
        return
    assert (_public_key(case["input"]) is not None) is case["output"]
    if case["output"]:
        assert PublicKey.from_bytes(data).to_bytes() == data


@pytest.mark.parametrize("case", VECTORS["deserialization_G2"], ids=_name)
def test_signature_decoding(case):
    assert (_signature(case["input"]) is not None) is case["output"]
    if case["output"]:
        data = bytes.fromhex(case["input"])
        assert Signature.from_bytes(data).to_bytes() == data


def test_errors_read_as_sentences():
    with pytest.raises(BlsError) as too_short:
        PublicKey.from_bytes(b"\x00" * 47)
    assert str(too_short.value) == "a BLS public key is 48 bytes, got 47 bytes"
    with pytest.raises(BlsError) as too_large:
        SecretKey.from_bytes(b"\xff" * 32)
    assert "below the curve order" in str(too_large.value)
    assert "hidden" in repr(SecretKey.random())


def test_agrees_with_py_ecc():
    """Signatures, keys and aggregates equal the pure-Python reference's, and each side
    verifies the other's (py_ecc is ~300x slower: two keys only)."""
    message = bytes(range(32))
    scalars = (7, 0x1234567890ABCDEF)
    keys = [SecretKey.from_bytes(s.to_bytes(32, "big")) for s in scalars]
    signatures = [key.sign(message) for key in keys]
    for scalar, key, signature in zip(scalars, keys, signatures, strict=True):
        assert key.public_key().to_bytes() == reference.SkToPk(scalar)
        assert signature.to_bytes() == reference.Sign(scalar, message)
    combined = bls.aggregate(signatures)
    assert combined.to_bytes() == reference.Aggregate([s.to_bytes() for s in signatures])
    public = [key.public_key().to_bytes() for key in keys]
    assert reference.FastAggregateVerify(public, message, combined.to_bytes())
    assert bls.fast_aggregate_verify([k.public_key() for k in keys], message, combined)
    assert not bls.fast_aggregate_verify([keys[0].public_key()], message, combined)
