"""The AuxPoW verifier against real proofs (tests/data/auxpow, vendored from the shared vectors)
and against mutations of them: each verdict and each failing rule code must match."""

import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alys_fast.auxpow import (
    AuxPowError,
    expected_index,
    parse_auxpow,
    parse_header,
    sha256d,
    verify_auxpow,
    verify_header,
)

DATA = Path(__file__).parent.parent / "data" / "auxpow"
VECTORS = [json.loads(line) for line in (DATA / "auxpow-vectors.jsonl").read_text().splitlines()]
HEADER_VECTORS = [v for v in VECTORS if v.get("header_with_auxpow_hex")]
ALYS = next(v for v in VECTORS if v["chain"] == "alys")
MAX_TARGET = 2**256 - 1


def _name(v: dict) -> str:
    return f"{v['chain']}-{v['height']}-{v['expect'].replace(': ', '-')}"


def _verify(v: dict, data: bytes | None = None) -> None:
    override = v.get("target_bits_override")
    verify_header(
        data if data is not None else bytes.fromhex(v["header_with_auxpow_hex"]),
        v["chain_id"],
        "namecoin",
        strict_chain_id=v["strict_chain_id"],
        chain_id_mask=int(v.get("version_chain_id_mask", "0xffff"), 16),
        pow_algo=v["pow_algo"],
        bits=None if override is None else int(override, 16),
    )


@pytest.mark.parametrize("v", HEADER_VECTORS, ids=_name)
def test_vector_verdict_and_rule(v: dict) -> None:
    if v["expect"] == "valid":
        _verify(v)
        return
    code = v["expect"].removeprefix("invalid: ")
    with pytest.raises(AuxPowError) as err:
        _verify(v)
    assert err.value.code == code


@pytest.mark.parametrize("v", [v for v in HEADER_VECTORS if v["expect"] == "valid"], ids=_name)
def test_parsed_fields_match_the_vector(v: dict) -> None:
    header, auxpow = parse_header(bytes.fromhex(v["header_with_auxpow_hex"]))
    assert sha256d(header)[::-1].hex() == v["block_hash"]
    assert auxpow is not None
    assert auxpow.coinbase_txid[::-1].hex() == v["coinbase_txid"]
    assert len(auxpow.coinbase_branch) == v["coinbase_branch_len"]
    assert len(auxpow.chain_branch) == v["chain_branch_len"]
    assert auxpow.chain_index == v["chain_index"]
    assert sha256d(auxpow.parent_header)[::-1].hex() == v["parent_block_hash"]


@pytest.mark.parametrize(
    ("nonce", "chain_id", "h", "index"),
    [
        (0, 1, 4, 11),
        (0x9F909FF0, 98, 6, 40),
        (0, 98, 5, 24),
        (0x77654E2F, 98, 6, 63),
        (0, 98, 11, 1080),
        (0, 98, 6, 56),
        (0, 98, 4, 8),
    ],
)
def test_expected_index_worked_examples(nonce: int, chain_id: int, h: int, index: int) -> None:
    assert expected_index(nonce, chain_id, h) == index


def _alys_proof(chain_branch: int = 0) -> bytes:
    """An AuxPoW around the Alys coinbase vector: the coinbase alone in its parent block."""
    coinbase = bytes.fromhex(ALYS["coinbase_tx_hex"])
    txid = parse_auxpow(_wrap(coinbase, bytes(32), 0)).coinbase_txid
    return _wrap(coinbase, txid, chain_branch)


def _wrap(coinbase: bytes, parent_root: bytes, chain_branch: int) -> bytes:
    parent = (1).to_bytes(4, "little") + bytes(32) + parent_root + bytes(12)
    return (
        coinbase
        + bytes(32)
        + b"\x00"
        + bytes(4)
        + bytes([chain_branch])
        + bytes(32 * chain_branch)
        + bytes(4)
        + parent
    )


def test_alys_commitment_in_coinbase_output() -> None:
    auxpow = parse_auxpow(_alys_proof())
    index = ALYS["commitment_output_index"]
    assert auxpow.output_scripts[index].hex() == ALYS["commitment_script_hex"]
    # AL3: with an empty chain branch the script holds the committed hash's own bytes (Alys's
    # check(hash_aux_block) gets createauxblock's hash unreversed); the vector's
    # alys_expected_hash_internal_hex is the reversed root Alys's test hands to parse_coinbase.
    committed = bytes.fromhex(ALYS["root_bytes_as_in_script_hex"])
    assert committed[::-1].hex() == ALYS["alys_expected_hash_internal_hex"]
    verify_auxpow(auxpow, committed, 1, MAX_TARGET, "alys")
    with pytest.raises(AuxPowError) as err:
        verify_auxpow(auxpow, committed[::-1], 1, MAX_TARGET, "alys")
    assert err.value.code == "chain-merkle-root-not-in-coinbase"


def test_branch_too_long() -> None:
    committed = bytes.fromhex(ALYS["root_bytes_as_in_script_hex"])
    for profile in ("alys", "namecoin"):
        with pytest.raises(AuxPowError) as err:
            verify_auxpow(parse_auxpow(_alys_proof(31)), committed, 1, MAX_TARGET, profile)
        assert err.value.code == "chain-merkle-branch-too-long"


NAMECOIN = next(v for v in HEADER_VECTORS if v["height"] == 37174 and v["expect"] == "valid")
PROOF = bytes.fromhex(NAMECOIN["header_with_auxpow_hex"])[80:]


def test_every_truncation_is_refused() -> None:
    for cut in range(len(PROOF)):
        with pytest.raises(AuxPowError) as err:
            parse_auxpow(PROOF[:cut])
        assert err.value.code == "truncated"


def test_trailing_byte_is_refused() -> None:
    with pytest.raises(AuxPowError) as err:
        parse_auxpow(PROOF + b"\x00")
    assert err.value.code == "trailing-data"


def test_flag_without_auxpow() -> None:
    with pytest.raises(AuxPowError) as err:
        parse_header(bytes.fromhex(NAMECOIN["header_with_auxpow_hex"])[:80])
    assert err.value.code == "auxpow-flag-without-auxpow"


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutations_verify_or_name_a_rule(data: st.DataObject) -> None:
    raw = bytearray(bytes.fromhex(NAMECOIN["header_with_auxpow_hex"]))
    at = data.draw(st.integers(0, len(raw) - 1))
    raw[at] ^= data.draw(st.integers(1, 255))
    try:
        _verify(NAMECOIN, bytes(raw))
    except AuxPowError as err:
        assert err.code


def test_sha256d_matches_hashlib_across_padding_boundaries() -> None:
    for n in range(0, 200):
        data = bytes(range(256))[:n] * 3
        assert sha256d(data) == hashlib.sha256(hashlib.sha256(data).digest()).digest()
