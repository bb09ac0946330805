"""Alys block headers and blocks: wire format, hashes, authority approvals, stateless checks.

Header wire format, an RLP list of 15 items (integers canonical, no leading zero bytes):

====  ==================  ============  ==============================================
 idx  field               type          meaning
====  ==================  ============  ==============================================
   0  parent_hash         32 bytes      ``hash`` of the parent header
   1  number              uint64        parent's number + 1
   2  slot                uint64        Aura slot; strictly increasing along the chain
   3  timestamp           uint64        seconds since the Unix epoch, not below the parent's
   4  author              20 bytes      the fee recipient: the EVM's ``COINBASE`` and eth
                                        RPC's ``miner`` (the chain spec's ``fee_recipient``,
                                        checked on import; Alys's payload ``fee_recipient``)
   5  state_root          32 bytes      state trie root after the block
   6  transactions_root   32 bytes      ordered trie of the transactions (``trie.py``)
   7  receipts_root       32 bytes      ordered trie of the receipts
   8  logs_bloom          256 bytes     bloom filter over the receipts' logs
   9  gas_limit           uint64
  10  gas_used            uint64        at most ``gas_limit``
  11  base_fee_per_gas    uint256       every transaction's fee cap must reach it
  12  extra_data          <= 32 bytes
  13  auxpow              list          the AuxPoW header below, or the empty list
  14  signature           98 bytes      the approvals: Alys's ``AggregateApproval``
                                        (``consensus/approvals.py``), authorities' BLS
                                        signatures of ``hash``, aggregated
====  ==================  ============  ==============================================

The AuxPoW header (Alys's ``AuxPowHeader``, ALYS-PROTOCOL §1.3), an RLP list of 7 items:

====  ==================  ============  ==============================================
 idx  field               type          meaning
====  ==================  ============  ==============================================
   0  range_start         32 bytes      hash of the first block the proof finalizes
   1  range_end           32 bytes      hash of the last one
   2  bits                uint32        compact target the proof met
   3  chain_id            uint32        AuxPoW chain id (the spec's chain id)
   4  height              uint64        number of the previous PoW block + 1
   5  auxpow              1..64 KiB     the proof, Namecoin format, strictly parsed
   6  fee_recipient       20 bytes      the miner's EVM address
====  ==================  ============  ==============================================

``hash``, the Keccak-256 of the RLP of items 0-13, is both the block's identity (what children,
proofs and the store refer to) and what authorities sign: Alys's ``signing_root``, which covers
the block's message and not its approvals. Approvals gathered after publication therefore never
change a block's hash; the author publishes its block with its own signature alone and the
stored copy carries the aggregate that reached the threshold.

As in Alys, a proof travels in the header of a block after the ones it finalizes (it commits
to their hashes, so it cannot be in them): the author of that block signs it like any field.

Aura: authority ``authorities[slot % len(authorities)]`` owns ``slot``. A block is imported
only when its approvals include that author's (Alys commented this check out; here it stays, so
a slot's rotation means something and an author's two blocks for one slot are equivocation) and
hold at least ``(2n + 2) // 3`` of the ``n`` authorities, verified with one fast aggregate
verify per block. A gossiped candidate needs only its author's signature, which the fork
choice verified when it took the block (``min_approvals=0``: not checked again).

Item 14's size and bit-list delimiter are checked wherever a header is decoded; the signature's
curve point (about 0.1 ms to check) when the approvals are used (:func:`header_approvals`:
``validate_block``, and ``decode_block``, the form blocks travel in), so reading stored headers
for RPC stays cheap.

Block wire format: ``rlp([header, [tx, ...]])`` where each transaction is its consensus encoding
as a byte string (typed and legacy alike), exactly the bytes the transactions root commits to.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from alys_fast._cext import require
from alys_fast.auxpow import AuxPowError, parse_auxpow
from alys_fast.consensus.approvals import (
    AGGREGATE_SIZE,
    AggregateApproval,
    ApprovalError,
    threshold,
)
from alys_fast.consensus.bls import PublicKey, SecretKey
from alys_fast.validation.errors import InvalidBlock, InvalidRLP, InvalidTransaction
from alys_fast.validation.transactions import Fork, Transaction, recover_transactions
from alys_fast.validation.trie import ordered_trie_root

_rlp = require("rlp")
_hashing = require("hashing")

MAX_EXTRA_DATA = 32
# Item 14 of a header nobody signed yet (genesis, a block being built): no bits, the empty
# aggregate, as Alys's ``AggregateApproval::new()``.
NO_APPROVALS = AggregateApproval().encode()
# The aggregation bits' length delimiter (bit 15 of the little-endian 2-byte bit list).
_DELIMITER_BYTE, _DELIMITER_BIT = 1, 0x80
# A parent coinbase plus two merkle branches (at most 30 hashes each) and an 80-byte header:
# real proofs are a few hundred bytes; the bound keeps a hostile header small.
MAX_AUXPOW_SIZE = 64 * 1024


class AuxPowHeader(msgspec.Struct, frozen=True, kw_only=True):
    """A merged-mining proof finalizing ``range_start..range_end`` (see the module docstring)."""

    range_start: bytes
    range_end: bytes
    bits: int
    chain_id: int
    height: int
    auxpow: bytes
    fee_recipient: bytes

    def items(self) -> list[Any]:
        """The RLP items (item 13 of a header)."""
        return list(msgspec.structs.astuple(self))

    def encode(self) -> bytes:
        """``rlp(items())``: the form a proof is gossiped in."""
        return _rlp.encode(self.items())


class Header(msgspec.Struct, frozen=True, kw_only=True):
    """A block header; field order is the wire order (see the module docstring)."""

    parent_hash: bytes
    number: int
    slot: int
    timestamp: int
    author: bytes
    state_root: bytes
    transactions_root: bytes
    receipts_root: bytes
    logs_bloom: bytes
    gas_limit: int
    gas_used: int
    base_fee_per_gas: int
    extra_data: bytes = b""
    auxpow: AuxPowHeader | None = None
    signature: bytes = NO_APPROVALS

    def items(self) -> list[Any]:
        """The 15 RLP items of the header."""
        items = list(msgspec.structs.astuple(self))
        items[13] = [] if self.auxpow is None else self.auxpow.items()
        return items

    @property
    def hash(self) -> bytes:
        """Keccak-256 of items 0-13: the block's identity and what authorities sign (the
        AuxPoW header included, the approvals not)."""
        return _hashing.keccak256(_rlp.encode(self.items()[:14]))

    def encode(self) -> bytes:
        """The header's wire encoding (all 15 items)."""
        return _rlp.encode(self.items())


class Block(msgspec.Struct, frozen=True):
    """A header and the consensus encodings of its transactions, in block order."""

    header: Header
    transactions: tuple[bytes, ...] = ()

    @property
    def hash(self) -> bytes:
        return self.header.hash

    def encode(self) -> bytes:
        """``rlp([header items, [tx, ...]])``."""
        return _rlp.encode([self.header.items(), list(self.transactions)])


_FIELDS = msgspec.structs.fields(Header)
_AUXPOW_FIELDS = msgspec.structs.fields(AuxPowHeader)
# Per field: ("uint", bits), ("size", allowed lengths), ("max", longest length), ("approvals",
# size) for item 14 or ("auxpow", None) for the nested AuxPoW header.
_SHAPES: dict[str, tuple[str, Any]] = {
    "parent_hash": ("size", (32,)),
    "number": ("uint", 64),
    "slot": ("uint", 64),
    "timestamp": ("uint", 64),
    "author": ("size", (20,)),
    "state_root": ("size", (32,)),
    "transactions_root": ("size", (32,)),
    "receipts_root": ("size", (32,)),
    "logs_bloom": ("size", (256,)),
    "gas_limit": ("uint", 64),
    "gas_used": ("uint", 64),
    "base_fee_per_gas": ("uint", 256),
    "extra_data": ("max", MAX_EXTRA_DATA),
    "auxpow": ("auxpow", None),
    "signature": ("approvals", AGGREGATE_SIZE),
}
_AUXPOW_SHAPES: dict[str, tuple[str, Any]] = {
    "range_start": ("size", (32,)),
    "range_end": ("size", (32,)),
    "bits": ("uint", 32),
    "chain_id": ("uint", 32),
    "height": ("uint", 64),
    "auxpow": ("proof", MAX_AUXPOW_SIZE),
    "fee_recipient": ("size", (20,)),
}


def _malformed(field: str, reason: str, value: object) -> InvalidBlock:
    return InvalidBlock("malformed header", field=field, reason=reason, value=value)


def _check_shapes(struct: msgspec.Struct, shapes: dict[str, tuple[str, Any]], prefix: str) -> None:
    for name, (kind, bound) in shapes.items():
        value = getattr(struct, name)
        field = prefix + name
        if kind == "auxpow":
            if value is not None:
                if type(value) is not AuxPowHeader:
                    raise _malformed(field, "not an AuxPoW header", type(value).__name__)
                _check_shapes(value, _AUXPOW_SHAPES, "auxpow.")
        elif kind == "uint":
            if type(value) is not int or not 0 <= value < 1 << bound:
                raise _malformed(field, f"not a {bound}-bit unsigned integer", value)
        elif type(value) is not bytes:
            raise _malformed(field, "not bytes", value)
        elif kind == "approvals":
            if len(value) != bound:
                raise _malformed(field, f"approvals are {bound} bytes", len(value))
            if not value[_DELIMITER_BYTE] & _DELIMITER_BIT:
                raise _malformed(field, "the aggregation bits lack their delimiter", value[:2])
        elif kind == "size" and len(value) not in bound:
            raise _malformed(field, f"expected {' or '.join(map(str, bound))} bytes", value)
        elif kind == "max" and len(value) > bound:
            raise _malformed(field, f"longer than {bound} bytes", value)
        elif kind == "proof":
            if not 0 < len(value) <= bound:
                raise _malformed(field, f"a proof is 1 to {bound} bytes", len(value))
            try:
                parse_auxpow(value)
            except AuxPowError as exc:
                raise _malformed(field, f"not a proof: {exc.message}", exc.code) from None


def check_header_shape(header: Header) -> None:
    """Raise InvalidBlock unless every field has its wire type and size (the AuxPoW header's
    proof must parse, every byte consumed)."""
    _check_shapes(header, _SHAPES, "")


def _values(items: list[Any], fields: tuple[Any, ...], shapes: dict[str, tuple[str, Any]],
            prefix: str) -> dict[str, object]:
    values: dict[str, object] = {}
    for field, item in zip(fields, items, strict=True):
        kind = shapes[field.name][0]
        if kind == "auxpow":
            values[field.name] = _auxpow_from_items(item)
            continue
        if not isinstance(item, bytes):
            raise _malformed(prefix + field.name, "expected a byte string", item)
        if kind == "uint":
            if item[:1] == b"\x00":
                raise _malformed(prefix + field.name, "leading zero byte in an integer", item)
            values[field.name] = int.from_bytes(item, "big")
        else:
            values[field.name] = item
    return values


def _auxpow_from_items(item: object) -> AuxPowHeader | None:
    if item == []:
        return None
    if not isinstance(item, list) or len(item) != len(_AUXPOW_FIELDS):
        reason = f"expected an empty list or {len(_AUXPOW_FIELDS)} items"
        raise _malformed("auxpow", reason, len(item) if isinstance(item, list) else "bytes")
    return AuxPowHeader(**_values(item, _AUXPOW_FIELDS, _AUXPOW_SHAPES, "auxpow."))  # type: ignore[arg-type]


def _header_from_items(items: object) -> Header:
    if not isinstance(items, list) or len(items) != len(_FIELDS):
        count = len(items) if isinstance(items, list) else "not a list"
        raise InvalidBlock("malformed header", reason="expected 15 items", got=count)
    header = Header(**_values(items, _FIELDS, _SHAPES, ""))  # type: ignore[arg-type]
    check_header_shape(header)
    return header


def _decode_list(raw: bytes) -> list[Any]:
    try:
        return _rlp.decode_list(raw)
    except InvalidRLP as exc:
        raise InvalidBlock(exc.rule, **exc.values) from exc


def decode_header(raw: bytes) -> Header:
    """Parse a header's wire encoding; raise InvalidBlock if it is malformed."""
    return _header_from_items(_decode_list(raw))


def decode_auxpow_header(raw: bytes) -> AuxPowHeader:
    """Parse an AuxPoW header's own encoding (``rlp(items())``, as gossiped); InvalidBlock if
    it is malformed."""
    header = _auxpow_from_items(_decode_list(raw))
    if header is None:
        raise InvalidBlock("malformed auxpow", reason="an empty list")
    return header


def decode_block(raw: bytes) -> Block:
    """Parse a block's wire encoding, its approvals' signature included (a block from a peer or
    sync is refused here, before anything uses it); raise InvalidBlock if it is malformed."""
    return decode_block_with_approvals(raw)[0]


def decode_block_with_approvals(raw: bytes) -> tuple[Block, AggregateApproval]:
    """:func:`decode_block` and the approvals it decoded (a gossiped block's, which the fork
    choice takes: their curve point is checked once)."""
    items = _decode_list(raw)
    if len(items) != 2 or not isinstance(items[1], list):
        raise InvalidBlock("malformed block", reason="expected [header, [transactions]]")
    if not all(isinstance(tx, bytes) for tx in items[1]):
        raise InvalidBlock("malformed block", reason="a transaction is not a byte string")
    header = _header_from_items(items[0])
    return Block(header, tuple(items[1])), header_approvals(header)


def header_approvals(header: Header) -> AggregateApproval:
    """Item 14 strictly decoded (the signature a point of G2's subgroup); InvalidBlock if not."""
    try:
        return AggregateApproval.decode(header.signature)
    except ApprovalError as exc:
        raise _malformed("signature", str(exc), len(header.signature)) from None


def sign_header(header: Header, secret_key: SecretKey, index: int) -> Header:
    """``header`` as its author publishes it: approvals holding only authority ``index``'s
    (``secret_key``'s) signature of its hash; any previous approvals are replaced.

    The signature covers ``hash``, which excludes item 14, so the block keeps its identity as
    approvals are added to it.
    """
    check_header_shape(header)
    approvals = AggregateApproval().add(index, secret_key.sign(header.hash))
    return msgspec.structs.replace(header, signature=approvals.encode())


def check_approvals(
    header: Header, authorities: Sequence[PublicKey], min_approvals: int | None = None
) -> AggregateApproval:
    """The header's approvals if they include its slot author's, count at least
    ``min_approvals`` (default: the threshold, ``(2n + 2) // 3``) and verify as one aggregate
    signature of ``hash`` (a single fast aggregate verify); raise InvalidBlock otherwise."""
    approvals = header_approvals(header)
    author = header.slot % len(authorities)
    if not approvals.has(author):
        raise InvalidBlock("not approved by the slot's author", slot=header.slot, author=author)
    needed = threshold(len(authorities)) if min_approvals is None else min_approvals
    if approvals.count < needed:
        raise InvalidBlock(
            "too few approvals", approvals=approvals.count, needed=needed,
            authorities=len(authorities),
        )
    if not approvals.signature_valid(header.hash, authorities):
        raise InvalidBlock(
            "approvals do not verify", number=header.number, signers=approvals.count
        )
    return approvals


def _recover(
    raws: Sequence[bytes],
    chain_id: int,
    fork: Fork,
    threads: int | None,
    known: Mapping[bytes, Transaction],
) -> list[Transaction | InvalidTransaction]:
    """Recover the transactions of a block, reusing the ``known`` ones."""
    results: list[Transaction | InvalidTransaction | None] = [known.get(raw) for raw in raws]
    missing = [i for i, tx in enumerate(results) if tx is None]
    if missing:
        fresh = recover_transactions([raws[i] for i in missing], chain_id, fork, threads=threads)
        for i, tx in zip(missing, fresh, strict=True):
            results[i] = tx
    return results  # type: ignore[return-value]


def validate_block(
    block: Block,
    parent: Header,
    *,
    authorities: Sequence[PublicKey],
    chain_id: int,
    fork: Fork = Fork.CANCUN,
    threads: int | None = None,
    known: Mapping[bytes, Transaction] | None = None,
    min_approvals: int | None = None,
) -> tuple[Transaction, ...]:
    """Check everything about ``block`` that needs no state; return its recovered transactions.

    ``parent`` must already be valid. Checks, in order: header shape, parent link (hash and
    number), slot and timestamp strictly after the parent's, gas used <= gas limit, the
    approvals (:func:`check_approvals`: the slot's Aura author among them, at least
    ``min_approvals``, default the threshold for import; 0: not checked here, the caller
    verified them, as the fork choice does a gossiped candidate's), the
    transactions root, every transaction (in parallel, see :func:`recover_transactions`) and
    every fee cap against the base fee. Raises InvalidBlock naming the first failed rule; for a
    bad transaction its InvalidTransaction is the cause.

    ``known`` maps raw encodings to transactions this node already validated (its pool's):
    those are not recovered again, since recovery is a pure function of the bytes.
    """
    header = block.header
    check_header_shape(header)
    if header.parent_hash != parent.hash:
        raise InvalidBlock("unknown parent", parent_hash=header.parent_hash, expected=parent.hash)
    if header.number != parent.number + 1:
        raise InvalidBlock("number not parent's + 1", number=header.number, parent=parent.number)
    if header.slot <= parent.slot:
        raise InvalidBlock("slot not after parent's", slot=header.slot, parent_slot=parent.slot)
    # Slots may be shorter than a second, so two blocks can share a timestamp; the slot
    # (strictly increasing) orders them, and the chain spec ties the timestamp to the slot.
    if header.timestamp < parent.timestamp:
        raise InvalidBlock(
            "timestamp before parent's", timestamp=header.timestamp, parent=parent.timestamp
        )
    if header.gas_used > header.gas_limit:
        raise InvalidBlock(
            "gas used above gas limit", gas_used=header.gas_used, gas_limit=header.gas_limit
        )
    if not authorities:
        raise ValueError("the authority set is empty")
    if min_approvals != 0:
        check_approvals(header, authorities, min_approvals)
    root = ordered_trie_root(block.transactions)
    if root != header.transactions_root:
        raise InvalidBlock(
            "transactions root mismatch", computed=root, header=header.transactions_root
        )
    results = _recover(block.transactions, chain_id, fork, threads, known or {})
    for index, tx in enumerate(results):
        if isinstance(tx, InvalidTransaction):
            raise InvalidBlock("invalid transaction", index=index, reason=str(tx)) from tx
        if tx.fee_cap < header.base_fee_per_gas:
            raise InvalidBlock(
                "fee cap below base fee",
                index=index,
                fee_cap=tx.fee_cap,
                base_fee=header.base_fee_per_gas,
            )
    return tuple(results)  # type: ignore[arg-type]
