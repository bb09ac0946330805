"""Headers and blocks: wire format, the hash, BLS approvals, and validate_block rule by rule."""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import pytest
from eth_account import Account

from alys_fast._cext import rlp
from alys_fast._cext.hashing import keccak256
from alys_fast.consensus import approvals as approvals_module
from alys_fast.consensus.approvals import AggregateApproval
from alys_fast.consensus.bls import SecretKey
from alys_fast.validation import (
    Block,
    Header,
    InvalidBlock,
    InvalidTransaction,
    address_of,
    check_approvals,
    decode_block,
    decode_header,
    header_approvals,
    ordered_trie_root,
    recover_transaction,
    sign_header,
    validate_block,
)
from alys_fast.validation.blocks import NO_APPROVALS, AuxPowHeader
from alys_fast.validation.trie import EMPTY_TRIE_ROOT
from tests.auxpow.proofs import mine

CHAIN_ID = 212121
# Three authorities: a block is imported with (2 * 3 + 2) // 3 = 2 approvals.
KEYS = [SecretKey.from_bytes(bytes([i]) * 32) for i in (1, 2, 3)]
AUTHORITIES = [key.public_key() for key in KEYS]
OUTSIDER = SecretKey.from_bytes(b"\x09" * 32)
SENDER_KEY = b"\x42" * 32


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
    """A correctly built child of ``parent``, signed by its slot's author and approved by the
    next authority too (the threshold of 3); ``fields`` override before signing."""
    slot = parent.slot + 1 if slot is None else slot
    header = msgspec.structs.replace(
        parent,
        parent_hash=parent.hash,
        number=parent.number + 1,
        slot=slot,
        timestamp=parent.timestamp + 2,
        transactions_root=ordered_trie_root(list(txs)),
        gas_used=21000 * len(txs),
        signature=NO_APPROVALS,
    )
    header = msgspec.structs.replace(header, **fields)
    author = slot % len(KEYS)
    return approve(Block(sign_header(header, KEYS[author], author), txs), (author + 1) % 3)


def approve(block: Block, *indices: int, key: SecretKey | None = None) -> Block:
    """``block`` with the approvals of authorities ``indices`` added (signed by ``key`` if
    given, else by each authority's own key)."""
    approvals = header_approvals(block.header)
    for index in indices:
        signature = (key or KEYS[index]).sign(block.hash)
        approvals = approvals.add(index, signature)
    return _replace(block, signature=approvals.encode())


def check(block: Block, parent: Header = GENESIS):
    return validate_block(block, parent, authorities=AUTHORITIES, chain_id=CHAIN_ID)


def _replace(block: Block, **fields) -> Block:
    return Block(msgspec.structs.replace(block.header, **fields), block.transactions)


def test_valid_block_returns_its_transactions() -> None:
    txs = tuple(transfer(i) for i in range(3))
    block = child(GENESIS, txs)
    result = check(block)
    assert [tx.nonce for tx in result] == [0, 1, 2]
    assert {tx.sender for tx in result} == {address_of(SENDER_KEY)}
    assert list(header_approvals(block.header).indices()) == [1, 2]  # slot 1's author, then 2
    # A chain of two: the child of the child validates against it.
    assert check(child(block.header), block.header) == ()


def test_many_transactions_use_the_parallel_path() -> None:
    txs = tuple(transfer(i) for i in range(80))
    assert len(check(child(GENESIS, txs))) == 80


def test_one_aggregate_verify_per_block_whatever_its_transactions(monkeypatch) -> None:
    calls = []
    verify = approvals_module.fast_aggregate_verify

    def counted(*args):
        calls.append(len(args[0]))
        return verify(*args)

    monkeypatch.setattr(approvals_module, "fast_aggregate_verify", counted)
    check(child(GENESIS, tuple(transfer(i) for i in range(40))))
    assert calls == [2]  # one call, over the two signers' keys


def _auxpow_header() -> AuxPowHeader:
    return AuxPowHeader(range_start=b"\x01" * 32, range_end=b"\x02" * 32, bits=0x207FFFFF,
                        chain_id=121212, height=1, auxpow=mine(b"\x03" * 32, 0x207FFFFF),
                        fee_recipient=b"\x04" * 20)


def test_the_hash_covers_the_message_and_not_the_approvals() -> None:
    block = child(GENESIS)
    header = block.header
    # The AuxPoW header is signed with the rest (Alys's: it is part of the signed block).
    assert msgspec.structs.replace(header, auxpow=_auxpow_header()).hash != header.hash
    assert msgspec.structs.replace(header, extra_data=b"x").hash != header.hash
    # Approvals added later (the stored copy's certificate) keep the block's identity.
    third = approve(block, 0)
    assert third.header.signature != header.signature and third.hash == header.hash
    assert msgspec.structs.replace(header, signature=NO_APPROVALS).hash == header.hash
    assert sign_header(header, KEYS[1], 1).hash == header.hash


def test_sign_header_holds_the_author_signature_alone() -> None:
    header = sign_header(approve(child(GENESIS), 0).header, KEYS[1], 1)
    approvals = header_approvals(header)
    assert list(approvals.indices()) == [1]  # earlier approvals replaced
    assert approvals.signature_valid(header.hash, AUTHORITIES)
    assert header.author == GENESIS.author  # the fee recipient is not the signer's to set


def test_a_candidate_needs_only_its_author_and_an_import_the_threshold() -> None:
    proposed = Block(sign_header(child(GENESIS).header, KEYS[1], 1))
    with pytest.raises(InvalidBlock) as caught:
        check(proposed)
    assert caught.value.rule == "too few approvals"
    assert caught.value.values == {"approvals": 1, "needed": 2, "authorities": 3}
    assert validate_block(
        proposed, GENESIS, authorities=AUTHORITIES, chain_id=CHAIN_ID, min_approvals=1
    ) == ()
    # One authority (the dev chain): the author's own signature is the threshold.
    alone = Block(sign_header(child(GENESIS, slot=3).header, KEYS[0], 0))
    assert validate_block(alone, GENESIS, authorities=AUTHORITIES[:1], chain_id=CHAIN_ID) == ()
    assert check_approvals(alone.header, AUTHORITIES[:1]).count == 1


def test_wire_round_trip_and_ethereum_style_hash() -> None:
    block = child(GENESIS, (transfer(0),), auxpow=_auxpow_header())
    assert decode_block(block.encode()) == block
    assert decode_header(block.header.encode()) == block.header
    items = rlp.decode(block.header.encode())
    assert len(items) == 15 and len(items[13]) == 7 and len(items[14]) == 98
    assert block.hash == keccak256(rlp.encode(items[:14]))
    assert AggregateApproval.decode(items[14]) == header_approvals(block.header)


def _with_item_14(value: bytes) -> bytes:
    items = child(GENESIS).header.items()
    items[14] = value
    return rlp.encode([items, []])


NOT_A_POINT = b"\x00\x80" + b"\xff" * 96  # the bits' delimiter set, the signature no G2 point


@pytest.mark.parametrize(
    ("raw", "rule"),
    [
        (b"\xc0", "malformed block"),
        (b"\x01\x02", "malformed RLP"),
        (rlp.encode([[b"\x00"] * 14, []]), "malformed header"),
        (rlp.encode([[b"\x00" * 32, b"\x00\x01", *[b""] * 13], []]), "malformed header"),
        (rlp.encode([[b"\x00" * 31, *[b""] * 14], []]), "malformed header"),
        (rlp.encode([[b"\x00" * 32, [], *[b""] * 13], []]), "malformed header"),
        (_with_item_14(b""), "malformed header"),
        (_with_item_14(b"\x00" * 65), "malformed header"),
        (_with_item_14(NO_APPROVALS + b"\x00"), "malformed header"),
        (_with_item_14(b"\x00\x00" + NO_APPROVALS[2:]), "malformed header"),  # no delimiter
        (_with_item_14(NOT_A_POINT), "malformed header"),
    ],
)
def test_decode_rejects_malformed(raw: bytes, rule: str) -> None:
    with pytest.raises(InvalidBlock) as caught:
        decode_block(raw)
    assert caught.value.rule == rule


def test_stored_headers_decode_without_checking_the_curve_point() -> None:
    """Reading a header checks item 14's size and delimiter; its point is checked where the
    approvals are used (decode_block, validate_block), not on every RPC read."""
    header = decode_header(rlp.encode(rlp.decode(_with_item_14(NOT_A_POINT))[0]))
    with pytest.raises(InvalidBlock) as caught:
        header_approvals(header)
    assert caught.value.values["field"] == "signature"
    assert "not a BLS signature" in caught.value.values["reason"]


def test_decode_rejects_transactions_given_as_lists() -> None:
    header = child(GENESIS).header
    raw = rlp.encode([header.items(), [[b"\x01"]]])
    with pytest.raises(InvalidBlock, match="not a byte string"):
        decode_block(raw)


def _signed_by(block: Block, *indices: int) -> Block:
    """``block`` approved by exactly the authorities ``indices`` (no author unless listed)."""
    return approve(_replace(block, signature=NO_APPROVALS), *indices)


CASES: dict[str, tuple[Callable[[], Block], str]] = {
    "parent hash": (lambda: child(GENESIS, parent_hash=b"\x01" * 32), "unknown parent"),
    "number": (lambda: child(GENESIS, number=2), "number not parent's + 1"),
    "slot equal": (lambda: child(GENESIS, slot=0), "slot not after parent's"),
    "timestamp earlier": (
        lambda: child(GENESIS, timestamp=GENESIS.timestamp - 1),
        "timestamp before parent's",
    ),
    "gas used": (lambda: child(GENESIS, gas_used=30_000_001), "gas used above gas limit"),
    "no approvals": (
        lambda: _signed_by(child(GENESIS)), "not approved by the slot's author"),
    "quorum without the slot author": (
        lambda: _signed_by(child(GENESIS), 0, 2),  # slot 1's author is authority 1
        "not approved by the slot's author",
    ),
    "author alone": (lambda: _signed_by(child(GENESIS), 1), "too few approvals"),
    "a non-authority signs for an authority": (
        lambda: approve(_signed_by(child(GENESIS), 1), 2, key=OUTSIDER),
        "approvals do not verify",
    ),
    "approvals of another block": (
        lambda: _replace(child(GENESIS), extra_data=b"x"), "approvals do not verify"),
    "a bit beyond the authority set": (
        lambda: approve(child(GENESIS), 5, key=OUTSIDER), "approvals do not verify"),
    "signature not a point": (
        lambda: _replace(child(GENESIS), signature=NOT_A_POINT), "malformed header"),
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
