"""Headers and blocks: wire format, hashes, signing, and validate_block rule by rule."""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import pytest
from eth_account import Account

from alys_fast._cext import rlp
from alys_fast._cext.hashing import keccak256
from alys_fast.validation import (
    Block,
    Header,
    InvalidBlock,
    InvalidTransaction,
    decode_block,
    decode_header,
    ordered_trie_root,
    recover_transaction,
    sign_header,
    validate_block,
)
from alys_fast.validation.blocks import AuxPowHeader, address_of, header_signer
from alys_fast.validation.trie import EMPTY_TRIE_ROOT
from tests.auxpow.proofs import mine

CHAIN_ID = 212121
KEYS = [bytes([i]) * 32 for i in (1, 2, 3)]
AUTHORITIES = [address_of(k) for k in KEYS]
SENDER_KEY = b"\x42" * 32
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def transfer(nonce: int, max_fee: int = 10**9) -> bytes:
    fields = {
        "type": 2,
        "chainId": CHAIN_ID,
        "nonce": nonce,
        "to": "0x000000000000000000000000000000000000dEaD",
        "value": 1,
        "gas": 21000,
        "maxFeePerGas": max_fee,
        "maxPriorityFeePerGas": 1,
    }
    return bytes(Account.sign_transaction(fields, SENDER_KEY).raw_transaction)


GENESIS = Header(
    parent_hash=b"\x00" * 32,
    number=0,
    slot=0,
    timestamp=1_700_000_000,
    author=b"\x00" * 20,
    state_root=b"\x11" * 32,
    transactions_root=EMPTY_TRIE_ROOT,
    receipts_root=EMPTY_TRIE_ROOT,
    logs_bloom=b"\x00" * 256,
    gas_limit=30_000_000,
    gas_used=0,
    base_fee_per_gas=7,
)


def child(parent: Header, txs: tuple[bytes, ...] = (), slot: int | None = None, **fields) -> Block:
    """A correctly built and signed child of ``parent``; ``fields`` override before signing."""
    slot = parent.slot + 1 if slot is None else slot
    header = msgspec.structs.replace(
        parent,
        parent_hash=parent.hash,
        number=parent.number + 1,
        slot=slot,
        timestamp=parent.timestamp + 2,
        transactions_root=ordered_trie_root(list(txs)),
        gas_used=21000 * len(txs),
        signature=b"",
    )
    header = msgspec.structs.replace(header, **fields)
    return Block(sign_header(header, KEYS[slot % len(KEYS)]), txs)


def check(block: Block, parent: Header = GENESIS):
    return validate_block(block, parent, authorities=AUTHORITIES, chain_id=CHAIN_ID)


def test_valid_block_returns_its_transactions() -> None:
    txs = tuple(transfer(i) for i in range(3))
    block = child(GENESIS, txs)
    result = check(block)
    assert [tx.nonce for tx in result] == [0, 1, 2]
    assert {tx.sender for tx in result} == {address_of(SENDER_KEY)}
    assert header_signer(block.header) == block.header.author == AUTHORITIES[1]
    # A chain of two: the child of the child validates against it.
    assert check(child(block.header), block.header) == ()


def test_many_transactions_use_the_parallel_path() -> None:
    txs = tuple(transfer(i) for i in range(80))
    assert len(check(child(GENESIS, txs))) == 80


def _auxpow_header() -> AuxPowHeader:
    return AuxPowHeader(range_start=b"\x01" * 32, range_end=b"\x02" * 32, bits=0x207FFFFF,
                        chain_id=121212, height=1, auxpow=mine(b"\x03" * 32, 0x207FFFFF),
                        fee_recipient=b"\x04" * 20)


def test_hashes_cover_what_they_say() -> None:
    header = child(GENESIS).header
    # The AuxPoW header is signed with the rest (Alys's: it is part of the signed block).
    with_proof = msgspec.structs.replace(header, auxpow=_auxpow_header())
    assert with_proof.seal_hash != header.seal_hash
    assert with_proof.hash != header.hash
    resigned = sign_header(msgspec.structs.replace(header, extra_data=b"x"), KEYS[1])
    assert resigned.seal_hash != header.seal_hash
    assert resigned.hash != header.hash
    resealed = msgspec.structs.replace(header, signature=b"\x00" * 65)
    assert (resealed.seal_hash, resealed.hash == header.hash) == (header.seal_hash, False)


def test_wire_round_trip_and_ethereum_style_hash() -> None:
    block = child(GENESIS, (transfer(0),), auxpow=_auxpow_header())
    assert decode_block(block.encode()) == block
    assert decode_header(block.header.encode()) == block.header
    items = rlp.decode(block.header.encode())
    assert len(items) == 15 and len(items[13]) == 7
    assert block.hash == keccak256(rlp.encode(items))
    assert block.header.seal_hash == keccak256(rlp.encode(items[:14]))


@pytest.mark.parametrize(
    ("raw", "rule"),
    [
        (b"\xc0", "malformed block"),
        (b"\x01\x02", "malformed RLP"),
        (rlp.encode([[b"\x00"] * 14, []]), "malformed header"),
        (rlp.encode([[b"\x00" * 32, b"\x00\x01", *[b""] * 13], []]), "malformed header"),
        (rlp.encode([[b"\x00" * 31, *[b""] * 14], []]), "malformed header"),
        (rlp.encode([[b"\x00" * 32, [], *[b""] * 13], []]), "malformed header"),
    ],
)
def test_decode_rejects_malformed(raw: bytes, rule: str) -> None:
    with pytest.raises(InvalidBlock) as caught:
        decode_block(raw)
    assert caught.value.rule == rule


def test_decode_rejects_transactions_given_as_lists() -> None:
    header = child(GENESIS).header
    raw = rlp.encode([header.items(), [[b"\x01"]]])
    with pytest.raises(InvalidBlock, match="not a byte string"):
        decode_block(raw)


def _resign_with(block: Block, key: bytes, author: bytes) -> Block:
    """Signed by ``key`` but claiming ``author``."""
    signed = sign_header(block.header, key)
    return Block(msgspec.structs.replace(signed, author=author), block.transactions)


def _high_s(block: Block) -> Block:
    sig = block.header.signature
    s = SECP256K1_N - int.from_bytes(sig[32:64], "big")
    flipped = sig[:32] + s.to_bytes(32, "big") + bytes([sig[64] ^ 1])
    return Block(msgspec.structs.replace(block.header, signature=flipped), block.transactions)


def _replace(block: Block, **fields) -> Block:
    return Block(msgspec.structs.replace(block.header, **fields), block.transactions)


CASES: dict[str, tuple[Callable[[], Block], str]] = {
    "parent hash": (lambda: child(GENESIS, parent_hash=b"\x01" * 32), "unknown parent"),
    "number": (lambda: child(GENESIS, number=2), "number not parent's + 1"),
    "slot equal": (lambda: child(GENESIS, slot=0), "slot not after parent's"),
    "timestamp earlier": (
        lambda: child(GENESIS, timestamp=GENESIS.timestamp - 1),
        "timestamp before parent's",
    ),
    "gas used": (lambda: child(GENESIS, gas_used=30_000_001), "gas used above gas limit"),
    "wrong author": (
        lambda: _resign_with(child(GENESIS), KEYS[2], AUTHORITIES[2]),
        "wrong author for slot",
    ),
    "signer not author": (
        lambda: _resign_with(child(GENESIS), KEYS[2], AUTHORITIES[1]),
        "signer is not the author",
    ),
    "unsigned": (lambda: _replace(child(GENESIS), signature=b""), "header not signed"),
    "garbage signature": (
        lambda: _replace(child(GENESIS), signature=b"\xff" * 65),
        "invalid header signature",
    ),
    "high s": (lambda: _high_s(child(GENESIS)), "invalid header signature"),
    "tx root": (
        lambda: Block(child(GENESIS, (transfer(0),)).header, (transfer(1),)),
        "transactions root mismatch",
    ),
    "bad transaction": (lambda: child(GENESIS, (transfer(0), b"\x02\xc0")), "invalid transaction"),
    "fee cap": (lambda: child(GENESIS, (transfer(0, max_fee=6),)), "fee cap below base fee"),
    "extra data": (lambda: child(GENESIS, extra_data=b"x" * 33), "malformed header"),
    "author size": (lambda: _replace(child(GENESIS), author=b"\x01" * 19), "malformed header"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_rejects(name: str) -> None:
    make, rule = CASES[name]
    with pytest.raises(InvalidBlock) as caught:
        check(make())
    assert caught.value.rule == rule, str(caught.value)


def test_invalid_transaction_is_the_cause() -> None:
    block = child(GENESIS, (transfer(0), b"\x02\xc0"))
    with pytest.raises(InvalidBlock) as caught:
        check(block)
    assert caught.value.values["index"] == 1
    assert isinstance(caught.value.__cause__, InvalidTransaction)


def test_known_transactions_are_reused_and_still_checked() -> None:
    raws = tuple(transfer(i) for i in range(3))
    known = {raw: recover_transaction(raw, CHAIN_ID) for raw in (raws[0], raws[2])}
    block = child(GENESIS, raws)
    result = validate_block(
        block, GENESIS, authorities=AUTHORITIES, chain_id=CHAIN_ID, known=known
    )
    assert result[0] is known[raws[0]] and result[2] is known[raws[2]]
    assert result[1] not in known.values() and result == check(block)
    # A known transaction is not trusted to pay the base fee: the fee cap is checked anyway.
    cheap = transfer(0, max_fee=6)
    with pytest.raises(InvalidBlock) as caught:
        validate_block(
            child(GENESIS, (cheap,)),
            GENESIS,
            authorities=AUTHORITIES,
            chain_id=CHAIN_ID,
            known={cheap: recover_transaction(cheap, CHAIN_ID)},
        )
    assert caught.value.rule == "fee cap below base fee"
    assert caught.value.values["fee_cap"] == 6


def test_empty_authority_set_is_a_caller_error() -> None:
    with pytest.raises(ValueError, match="authority set is empty"):
        validate_block(child(GENESIS), GENESIS, authorities=[], chain_id=CHAIN_ID)


def test_sign_header_sets_the_author() -> None:
    header = sign_header(GENESIS, KEYS[0])
    assert header.author == AUTHORITIES[0]
    assert header_signer(header) == AUTHORITIES[0]
    assert len(header.signature) == 65 and header.signature[64] in (0, 1)
