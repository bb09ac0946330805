"""The pure AuxPoW chain rules: the block's AuxPoW header codec, the incremental aggregate, range
finality and the no-PoW limit (alys_fast/chain/finality.py), without actors."""

import msgspec
import pytest

from alys_fast._cext import rlp
from alys_fast.auxpow import AuxPowError
from alys_fast.chain.finality import (
    MISSING_POW,
    Finality,
    FinalityState,
    NoWork,
    UnfinalizedHashes,
    aggregate_hash,
    verify_commitment,
)
from alys_fast.chain.genesis import genesis_header
from alys_fast.chain.spec import dev_spec
from alys_fast.validation import InvalidBlock, decode_header
from alys_fast.validation.blocks import AuxPowHeader, Header
from tests.auxpow.proofs import mine

SPEC = msgspec.structs.replace(dev_spec(), max_blocks_without_pow=3)
BITS = SPEC.bits
CHAIN_ID = SPEC.pow_chain_id()
MINER = b"\x42" * 20

# Alys's own vector (app/src/rpc.rs test_decode_submitauxblock_args): submitauxblock's hash and
# proof, valid for chain id 21212; the hash appears verbatim in coinbase output 2.
ALYS_HASH = "f5aa3d8d1f59922d78a072ce6fee4e4f85f9dceb0737d181db35d98ef4584eb4"
ALYS_PROOF = (
    "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff2e02ff17"
    "04f028e7652f7a7a616d78632f9b1f463eeea422e558d49377f2c75c0109d718e970007ac4cfc0ffffffffffff"
    "ffff0300000000000000001600148ec4187ad5b631c9a559ba4cd8eb191618ec24830000000000000000266a24"
    "aa21a9edf9c04456edd5d664954fafd41f74e526552b72f2df6bbf6568f6acb6a05fd31300000000000000002c"
    "fabe6d6df5aa3d8d1f59922d78a072ce6fee4e4f85f9dceb0737d181db35d98ef4584eb4010000000000000024"
    "60910e236c5ddadc4b5d8483402a0c0a24148dafdad5d27755770df47aa23fe5185883037187916ad659ae13fd"
    "7b4c80c4bd99737459f8203ffc92962c2c7771ab23775ff322af955beddf107840635c8464b1a284b836ecb3e8"
    "0d8d43aab465b67ca58b97eeff36d44105cf74a8dfec9f4d0c17aa3a8302852908b6f83569e73c60be31000000"
    "0000000000000000002011deda93abf5a65b68494fae9b52c3b871c53ca6421510cce1124d9b46f78824aa1dba"
    "ca594a6722e6e2e897ed515074eb2ec6b1c354df8c63971e0a26e3ba0e0629e765ffff7f20514d46e9"
)


def _hash(n: int) -> bytes:
    return n.to_bytes(32, "big")


def test_alys_rpc_vector_verifies_with_the_hash_as_given() -> None:
    proof = bytes.fromhex(ALYS_PROOF)
    verify_commitment(proof, bytes.fromhex(ALYS_HASH), 21212, 0x207FFFFF)
    with pytest.raises(AuxPowError) as err:
        verify_commitment(proof, bytes.fromhex(ALYS_HASH)[::-1], 21212, 0x207FFFFF)
    assert err.value.code == "chain-merkle-root-not-in-coinbase"


def test_running_aggregate_matches_a_fresh_hash_through_appends_and_drops() -> None:
    hashes = UnfinalizedHashes(_hash(n) for n in range(1, 6))
    assert hashes.aggregate() == aggregate_hash(_hash(n) for n in range(1, 6))
    assert hashes.aggregate_through(1) == aggregate_hash([_hash(1), _hash(2)])
    hashes.drop_through(2)  # blocks 1..3 finalized
    hashes.append(_hash(6))
    assert (hashes.first(), hashes.last(), len(hashes)) == (_hash(4), _hash(6), 3)
    assert hashes.index(_hash(5)) == 1 and hashes.index(_hash(2)) is None
    assert hashes.aggregate() == aggregate_hash([_hash(4), _hash(5), _hash(6)])


def test_auxpow_header_round_trips_and_is_covered_by_the_hash() -> None:
    header = _child(genesis_header(SPEC), _proof_header([_hash(1)]))
    raw = header.encode()
    assert decode_header(raw) == header
    plain = msgspec.structs.replace(header, auxpow=None)
    assert rlp.decode(plain.encode())[13] == []
    assert header.hash != plain.hash


def _aux_items(**change: object) -> object:
    items = {"range_start": b"\x01" * 32, "range_end": b"\x01" * 32, "bits": b"\x01",
             "chain_id": b"\x01", "height": b"\x01", "auxpow": b"\x00" * 10,
             "fee_recipient": b"\x01" * 20}
    return list({**items, **change}.values())


@pytest.mark.parametrize(
    ("item", "field"),
    [
        (_aux_items(), "auxpow.auxpow"),  # ten zero bytes do not parse as a proof
        (_aux_items(range_start=b"\x01" * 31), "auxpow.range_start"),
        (_aux_items(bits=b"\x01" * 5), "auxpow.bits"),
        (_aux_items(bits=b"\x00\x01"), "auxpow.bits"),
        (_aux_items(fee_recipient=[]), "auxpow.fee_recipient"),
        ([b"\x01" * 32] * 3, "auxpow"),
        (b"", "auxpow"),
    ],
)
def test_malformed_auxpow_headers_are_refused_naming_the_field(item: object, field: str) -> None:
    items = _child(genesis_header(SPEC), None).items()
    items[13] = item
    with pytest.raises(InvalidBlock) as err:
        decode_header(rlp.encode(items))
    assert (err.value.rule, err.value.values["field"]) == ("malformed header", field)


def test_trailing_bytes_after_the_proof_are_refused() -> None:
    aux = _proof_header([_hash(1)])
    items = _child(genesis_header(SPEC), aux).items()
    items[13][5] = aux.auxpow + b"\x00"
    with pytest.raises(InvalidBlock, match="trailing-data"):
        decode_header(rlp.encode(items))


class Chain:
    """Headers built on the spec's genesis, fed through a Finality as the chain actor does."""

    def __init__(self) -> None:
        self.headers = [genesis_header(SPEC)]
        state = FinalityState.genesis(SPEC, self.headers[0].hash)
        self.finality = Finality(SPEC, state, UnfinalizedHashes(), 0)

    def extend(self, aux: AuxPowHeader | None = None) -> Header:
        header = _child(self.headers[-1], aux)
        self.finality.check_block(header)
        self.finality.advance(header)
        self.headers.append(header)
        return header

    def proof(self, last: int, **override: object) -> AuxPowHeader:
        """A proof for blocks (finalized + 1)..last as the consensus RPC would build it."""
        work = self.finality.work()
        first = self.finality.state.finalized_number + 1
        aux = _proof_header([h.hash for h in self.headers[first:last + 1]],
                            height=work.height)
        return msgspec.structs.replace(aux, **override)


def _proof_header(hashes: list[bytes], height: int = 1) -> AuxPowHeader:
    return AuxPowHeader(
        range_start=hashes[0], range_end=hashes[-1], bits=BITS, chain_id=CHAIN_ID,
        height=height, auxpow=mine(aggregate_hash(hashes), BITS), fee_recipient=MINER,
    )


def _child(parent: Header, aux: AuxPowHeader | None) -> Header:
    return msgspec.structs.replace(parent, parent_hash=parent.hash, number=parent.number + 1,
                                   slot=parent.slot + 1, auxpow=aux)


def test_a_proof_finalizes_its_range_and_becomes_the_latest_pow_block() -> None:
    chain = Chain()
    for _ in range(3):
        chain.extend()
    work = chain.finality.work()
    assert (work.range_start, work.range_end) == (chain.headers[1].hash, chain.headers[3].hash)
    assert work.hash == aggregate_hash(h.hash for h in chain.headers[1:4])
    assert (work.height, work.previous_pow_hash) == (1, chain.headers[0].hash)
    pow_block = chain.extend(chain.proof(2))  # finalizes 1..2, leaves 3 and itself open
    state = chain.finality.state
    assert (state.finalized_number, state.finalized_hash) == (2, chain.headers[2].hash)
    assert (state.pow_number, state.pow_hash) == (4, pow_block.hash)
    assert chain.finality.hashes.aggregate() == aggregate_hash(
        [chain.headers[3].hash, pow_block.hash])
    assert chain.finality.work().height == 5


def test_no_block_past_the_limit_without_a_proof() -> None:
    chain = Chain()
    for _ in range(3):
        chain.extend()
    assert chain.finality.needs_pow(4)
    with pytest.raises(InvalidBlock) as err:
        chain.finality.check_block(_child(chain.headers[-1], None))
    assert err.value.rule == MISSING_POW
    chain.extend(chain.proof(3))  # block 4 carries the proof: valid, and finalizes 1..3
    assert chain.finality.blocks_since_finality() == 1 and not chain.finality.needs_pow(5)


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ({"range_start": _hash(99)}, "auxpow range does not start after the finalized block"),
        ({"range_end": _hash(99)}, "auxpow range end is not an unfinalized block before this one"),
        ({"chain_id": 7}, "auxpow chain id is not the spec's"),
        ({"height": 9}, "auxpow height does not follow the latest PoW block"),
        ({"commit_to": _hash(5)}, "auxpow chain-merkle-root-not-in-coinbase"),
    ],
)
def test_a_bad_proof_is_refused_naming_its_rule(change: dict, rule: str) -> None:
    chain = Chain()
    chain.extend()
    chain.extend()
    committed = change.pop("commit_to", aggregate_hash(h.hash for h in chain.headers[1:3]))
    bad = chain.proof(2, auxpow=mine(committed, BITS), **change)
    before = chain.finality.state
    with pytest.raises(InvalidBlock) as err:
        chain.finality.queue(bad)
    assert err.value.rule == rule
    with pytest.raises(InvalidBlock):
        chain.finality.check_block(_child(chain.headers[-1], bad))
    assert (chain.finality.state, chain.finality.queued) == (before, None)


def test_queue_holds_one_proof_until_a_block_finalizes() -> None:
    chain = Chain()
    chain.extend()
    chain.extend()
    proof = chain.proof(2)
    assert chain.finality.queue(proof) is True
    assert chain.finality.queue(proof) is False  # the same range: ignored, as Alys does
    with pytest.raises(NoWork):
        chain.finality.work()  # the queued proof already covers the head
    chain.extend(chain.finality.proof_for_next_block())
    assert chain.finality.queued is None and chain.finality.state.finalized_number == 2


def test_a_queued_proof_gone_stale_is_dropped() -> None:
    chain = Chain()
    chain.extend()
    chain.extend()
    stale = chain.proof(1)
    chain.finality.queue(stale)
    chain.extend(chain.proof(2))  # another proof finalized past it first
    chain.finality.queued = stale
    with pytest.raises(InvalidBlock):
        chain.finality.proof_for_next_block()
    assert chain.finality.queued is None


def test_state_round_trips_through_its_stored_encoding() -> None:
    state = FinalityState(7, _hash(7), 9, _hash(9), BITS)
    assert FinalityState.decode(state.encode()) == state
