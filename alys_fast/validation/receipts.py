"""Receipts and logs as Ethereum commits to them: the types, the consensus encoding, the bloom.

A bottom-layer module: the engine produces these, storage keeps them, the RPC formats them and
filters logs by them, so none of those layers owns the types. The encoding is Ethereum's
(``[type ||] rlp([status, cumulative gas, bloom, logs])``), so a receipts root means here what
it means on Ethereum.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec

from alys_fast._cext import require
from alys_fast.validation.trie import ordered_trie_root

_keccak256 = require("hashing").keccak256
_rlp_encode = require("rlp").encode

EMPTY_BLOOM = bytes(256)


class Log(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One event: the emitting contract, up to four 32-byte topics and the data."""

    address: bytes
    topics: tuple[bytes, ...]
    data: bytes


class Receipt(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One transaction's outcome, in the fields ``eth_getTransactionReceipt`` reports.

    ``logs_bloom`` is the 256-byte bloom of ``logs`` (:func:`bloom_of`); ``contract_address``
    the address a creation was given, whether or not it succeeded, as geth reports (None
    for calls);
    ``output`` the return data, i.e. the revert data when ``status`` is 0 (not committed to
    by the receipts root, kept for ``eth_call``-style error reports).
    """

    tx_hash: bytes
    tx_type: int
    status: int
    gas_used: int
    cumulative_gas_used: int
    effective_gas_price: int
    logs: tuple[Log, ...] = ()
    logs_bloom: bytes = EMPTY_BLOOM
    contract_address: bytes | None = None
    output: bytes = b""


def _bloom_add(bloom: int, item: bytes) -> int:
    digest = _keccak256(item)
    for i in (0, 2, 4):
        bloom |= 1 << (((digest[i] << 8) | digest[i + 1]) & 2047)
    return bloom


def bloom_of(logs: Iterable[Log]) -> bytes:
    """The 2048-bit bloom of ``logs`` (Yellow Paper §4.3.1): each address and topic sets 3 bits."""
    bloom = 0
    for log in logs:
        bloom = _bloom_add(bloom, log.address)
        for topic in log.topics:
            bloom = _bloom_add(bloom, topic)
    return bloom.to_bytes(256, "big")


def combine_blooms(blooms: Iterable[bytes]) -> bytes:
    """The bitwise OR of blooms: a block's bloom from its receipts' blooms."""
    out = 0
    for bloom in blooms:
        out |= int.from_bytes(bloom, "big")
    return out.to_bytes(256, "big")


def encode_logs(logs: Sequence[Log]) -> bytes:
    """``rlp([[address, [topics...], data], ...])``: what receipts and ``logsHash`` commit to."""
    return _rlp_encode([[log.address, list(log.topics), log.data] for log in logs])


def logs_hash(logs: Sequence[Log]) -> bytes:
    """Keccak-256 of :func:`encode_logs` (the state tests' ``logs`` field)."""
    return _keccak256(encode_logs(logs))


def encode_receipt(receipt: Receipt) -> bytes:
    """Ethereum's consensus receipt encoding: ``[type ||] rlp([status, cumulative, bloom,
    logs])``, what the receipts root commits to."""
    body = _rlp_encode([
        receipt.status,
        receipt.cumulative_gas_used,
        receipt.logs_bloom,
        [[log.address, list(log.topics), log.data] for log in receipt.logs],
    ])
    return bytes([receipt.tx_type]) + body if receipt.tx_type else body


def receipts_root(receipts: Sequence[Receipt]) -> bytes:
    """The ordered trie root of the receipts' consensus encodings (the header's receiptsRoot)."""
    return ordered_trie_root([encode_receipt(r) for r in receipts])
