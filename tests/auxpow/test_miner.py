"""The CPU miner's core: its proofs verify (compiled verifier, Alys profile), each field a test
mutates breaks the RULES.md rule it belongs to, and createauxblock answers parse as Alys's."""

import dataclasses
import hashlib

import pytest

from alys_fast.auxpow import AuxPow, AuxPowError, parse_auxpow, sha256d, verify_auxpow
from alys_fast.merged_mining.miner import (
    AuxBlock,
    AuxBlockError,
    MiningJob,
    build_coinbase,
    chain_tree,
    commitment_script,
    grind,
    header_prefix,
    serialize_auxpow,
    txid,
)

CHAIN_ID = 21212  # Alys's rpc.rs vector: small enough to appear in a parent version
AUX_HASH = sha256d(b"aggregate of unfinalized blocks")
EASY = 0x207FFFFF
OTHERS = tuple(sha256d(bytes([i])) for i in range(5))  # a 3-hash chain branch
JOB = MiningJob(AUX_HASH, CHAIN_ID, EASY, others=OTHERS, tree_nonce=3)


def _verify(proof: bytes | AuxPow, bits: int = EASY, committed: bytes = AUX_HASH) -> None:
    auxpow = parse_auxpow(proof) if isinstance(proof, bytes) else proof
    verify_auxpow(auxpow, committed, CHAIN_ID, MiningJob(AUX_HASH, CHAIN_ID, bits).target, "alys")


def _rule(proof: bytes | AuxPow, **kwargs: object) -> str:
    with pytest.raises(AuxPowError) as err:
        _verify(proof, **kwargs)
    return err.value.code


def _assemble(coinbase: bytes, chain_branch=(), chain_mask=0, parent_chain=1) -> bytes:
    """A proof around ``coinbase`` with a parent that meets EASY (the PoW is never the fault)."""
    prefix = (parent_chain << 16).to_bytes(4, "little") + bytes(32) + txid(coinbase)
    prefix += bytes(4) + EASY.to_bytes(4, "little")
    nonce = grind(prefix, MiningJob(AUX_HASH, CHAIN_ID, EASY).target, 0, 1 << 16)
    assert nonce is not None
    parent = prefix + nonce.to_bytes(4, "little")
    return serialize_auxpow(coinbase, parent, (), 0, chain_branch, chain_mask)


def test_mined_proofs_verify() -> None:
    plain = parse_auxpow(MiningJob(AUX_HASH, CHAIN_ID, 0x1F00FFFF).mine())
    _verify(plain, bits=0x1F00FFFF)
    assert plain.output_scripts[2] == commitment_script(AUX_HASH)  # the hash, verbatim (AL3)
    assert len(plain.output_scripts) == 3 and plain.chain_branch == ()
    assert plain.parent_header[:4] == (1 << 16).to_bytes(4, "little")
    branched = parse_auxpow(JOB.mine())
    _verify(branched)
    assert len(branched.chain_branch) == 3 and branched.output_scripts[2][36:40] == b"\x08\0\0\0"


def test_chain_one_gets_another_parent_chain_id() -> None:
    proof = parse_auxpow(MiningJob(AUX_HASH, 1, EASY).mine())
    verify_auxpow(proof, AUX_HASH, 1, 2**255, "alys")
    assert proof.parent_header[2:4] == b"\x02\x00"


def test_the_extra_nonce_changes_the_merkle_root() -> None:
    assert JOB.prefix(0)[36:68] != JOB.prefix(1)[36:68]
    _verify(JOB.proof(1, grind(JOB.prefix(1), JOB.target, 0, 1 << 16)))


def test_grind_finds_the_first_nonce_at_or_below_the_target() -> None:
    prefix = header_prefix(bytes(32), EASY, CHAIN_ID)
    target = 2**252  # one hash in 16
    first = next(
        n for n in range(1000)
        if int.from_bytes(hashlib.sha256(hashlib.sha256(
            prefix + n.to_bytes(4, "little")).digest()).digest(), "little") <= target
    )
    assert grind(prefix, target, 0, 1000) == first
    assert grind(prefix, target, first + 1, 0) is None
    assert grind(prefix, 0, 2**32 - 5, 100) is None  # stops at the end of the nonce space


# --- each field a miner writes, broken alone ---------------------------------------------------

def _coinbase(commitment: bytes) -> bytes:
    return build_coinbase(commitment)


def test_commitment_in_another_output_or_not_whole() -> None:
    good = commitment_script(AUX_HASH)
    moved = _coinbase(good).replace(bytes([44]) + good, b"\x00")  # output 2 emptied
    assert _rule(_assemble(moved)) == "chain-merkle-root-not-in-coinbase"
    longer = _coinbase(good + b"\x00")
    assert _rule(_assemble(longer)) == "chain-merkle-root-not-in-coinbase"
    magic = _coinbase(b"\xfa\xbe\x6d\x6e" + good[4:])
    assert _rule(_assemble(magic)) == "chain-merkle-root-not-in-coinbase"
    _verify(_assemble(_coinbase(good)))


def test_commitment_bytes() -> None:
    root = bytearray(AUX_HASH)
    root[7] ^= 1
    assert _rule(_assemble(_coinbase(commitment_script(bytes(root))))) == (
        "chain-merkle-root-not-in-coinbase")
    assert _rule(_assemble(_coinbase(commitment_script(AUX_HASH[::-1])))) == (
        "chain-merkle-root-not-in-coinbase")


def test_tree_size_and_nonce() -> None:
    assert _rule(_assemble(_coinbase(commitment_script(AUX_HASH, 2)))) == "tree-size-mismatch"
    root, branch, slot = chain_tree(AUX_HASH, CHAIN_ID, OTHERS, JOB.tree_nonce)
    moved = commitment_script(root, 8, JOB.tree_nonce + 1)  # another slot for this nonce
    assert _rule(_assemble(_coinbase(moved), branch, slot)) == "wrong-chain-index"
    _verify(_assemble(_coinbase(commitment_script(root, 8, JOB.tree_nonce)), branch, slot))


def test_chain_branch_hashes_and_side_mask() -> None:
    proof = parse_auxpow(JOB.mine())
    branch = list(proof.chain_branch)
    branch[1] = sha256d(branch[1])
    assert _rule(dataclasses.replace(proof, chain_branch=tuple(branch))) == (
        "chain-merkle-root-not-in-coinbase")
    assert _rule(dataclasses.replace(proof, chain_index=proof.chain_index ^ 2)) == (
        "chain-merkle-root-not-in-coinbase")
    assert _rule(dataclasses.replace(proof, chain_branch=proof.chain_branch[:2])) == (
        "chain-merkle-root-not-in-coinbase")
    assert _rule(dataclasses.replace(proof, chain_branch=(bytes(32),) * 31)) == (
        "chain-merkle-branch-too-long")


def test_a_wrong_slot_committed_with_its_own_root() -> None:
    """Side mask and commitment agree on a slot the tree nonce does not give: R10."""
    from alys_fast.auxpow.reference import fold_by_side_mask

    _root, branch, slot = chain_tree(AUX_HASH, CHAIN_ID, OTHERS, JOB.tree_nonce)
    wrong = slot ^ 1
    root = fold_by_side_mask(AUX_HASH, list(branch), wrong)
    proof = _assemble(_coinbase(commitment_script(root, 8, JOB.tree_nonce)), branch, wrong)
    assert _rule(proof) == "wrong-chain-index"


def test_coinbase_branch_and_mask() -> None:
    proof = parse_auxpow(JOB.mine())
    extra = dataclasses.replace(proof, coinbase_branch=(bytes(32),))
    assert _rule(extra) == "coinbase-not-in-parent-merkle-root"
    _verify(dataclasses.replace(proof, coinbase_index=5))  # no branch: the mask is unread (AL2)


def test_coinbase_without_inputs() -> None:
    coinbase = build_coinbase(commitment_script(AUX_HASH))
    no_input = coinbase[:4] + b"\x00" + coinbase[coinbase.index(b"\x03", 5 + 32 + 4):]
    assert _rule(_assemble(no_input)) == "coinbase-has-no-inputs"


def test_parent_version_chain_id() -> None:
    coinbase = _coinbase(commitment_script(AUX_HASH))
    assert _rule(_assemble(coinbase, parent_chain=CHAIN_ID)) == "parent-has-own-chain-id"
    _verify(_assemble(coinbase, parent_chain=CHAIN_ID + 1))


def test_parent_nonce_is_the_pow() -> None:
    bits = 0x1F00FFFF
    proof = parse_auxpow(MiningJob(AUX_HASH, CHAIN_ID, bits).mine())
    _verify(proof, bits=bits)
    nonce = int.from_bytes(proof.parent_header[76:], "little")
    header = proof.parent_header[:76] + (nonce + 1).to_bytes(4, "little")
    assert _rule(dataclasses.replace(proof, parent_header=header), bits=bits) == (
        "parent-pow-above-target")


def test_trailing_bytes_and_truncation() -> None:
    proof = JOB.mine()
    with pytest.raises(AuxPowError) as err:
        parse_auxpow(proof + b"\x00")
    assert err.value.code == "trailing-data"
    for cut in range(len(proof)):
        with pytest.raises(AuxPowError) as err:
            parse_auxpow(proof[:cut])
        assert err.value.code == "truncated"


def test_the_wrong_committed_hash() -> None:
    assert _rule(JOB.mine(), committed=AUX_HASH[::-1]) == "chain-merkle-root-not-in-coinbase"


# --- createauxblock answers ---------------------------------------------------------------------

# namecoin-cli -regtest createauxblock output, Alys's parse_aux_block_rpc round-trip test.
NAMECOIN_AUX_BLOCK = {
    "hash": "df8be27164c84d325c77ef9383abf47c0c7ff06c66ccda3447b585c50872d010",
    "chainid": 1,
    "previousblockhash": "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206",
    "coinbasevalue": 5000000000,
    "bits": "207fffff",
    "height": 1,
    "_target": "0000000000000000000000000000000000000000000000000000000000ffff7f",
}


def test_aux_block_parses_alys_shape() -> None:
    block = AuxBlock.from_json(NAMECOIN_AUX_BLOCK)
    assert block.hash.hex() == NAMECOIN_AUX_BLOCK["hash"]  # bytes as spelled, no reversal
    assert (block.chain_id, block.bits, block.height) == (1, 0x207FFFFF, 1)
    assert block.target == 0x7FFFFF << 232
    proof = parse_auxpow(MiningJob.for_block(block).mine())
    verify_auxpow(proof, block.hash, block.chain_id, block.target, "alys")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hash": "00"}, "hash must be 32 bytes of hex"),
        ({"hash": None}, "hash must be 32 bytes of hex"),
        ({"chainid": -1}, "chainid must be an integer"),
        ({"chainid": True}, "chainid must be an integer"),
        ({"bits": "zz"}, "bits must be the compact target as hex"),
        ({"bits": 545259519}, "bits must be the compact target as hex"),
        ({"_target": "00" * 32}, "is not the target of bits"),
        ({"bits": "04923456"}, "gives no usable target"),
    ],
)
def test_aux_block_refusals_name_the_field(change: dict, message: str) -> None:
    with pytest.raises(AuxBlockError, match=message):
        AuxBlock.from_json({**NAMECOIN_AUX_BLOCK, **change})
    with pytest.raises(AuxBlockError, match='no "height"'):
        AuxBlock.from_json({k: v for k, v in NAMECOIN_AUX_BLOCK.items() if k != "height"})
    with pytest.raises(AuxBlockError, match="JSON object"):
        AuxBlock.from_json([])
