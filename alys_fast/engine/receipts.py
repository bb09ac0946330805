"""Receipts as Ethereum commits to them: the consensus encoding, the trie root and the bloom.

The engine computes these once per execution (they are outputs of executing a block, as in
the Engine API), so neither building nor importing a block recomputes them.
"""

from __future__ import annotations

from collections.abc import Sequence

from alys_fast._cext import require
from alys_fast.engine.interface import Receipt
from alys_fast.engine.steps import Steps, finish
from alys_fast.validation import ordered_trie_root

_rlp_encode = require("rlp").encode


def encode_receipt(receipt: Receipt) -> bytes:
    """Ethereum's consensus receipt encoding: ``[type ||] rlp([status, cumulative, bloom, logs])``.

    What the receipts root commits to, as in Ethereum, so the root means the same thing here.
    """
    body = _rlp_encode(
        [receipt.status, receipt.cumulative_gas_used, receipt.logs_bloom, list(receipt.logs)]
    )
    return bytes([receipt.tx_type]) + body if receipt.tx_type else body


def receipts_root(receipts: Sequence[Receipt]) -> bytes:
    """The ordered trie root of the receipts' consensus encodings."""
    return finish(receipts_root_steps(receipts))


def receipts_root_steps(receipts: Sequence[Receipt], chunk: int = 256) -> Steps[bytes]:
    """:func:`receipts_root`, pausing after every ``chunk`` encodings (see ``engine.steps``)."""
    encoded = []
    for position, receipt in enumerate(receipts, 1):
        if position % chunk == 0:
            yield
        encoded.append(encode_receipt(receipt))
    yield
    return ordered_trie_root(encoded)


def logs_bloom(receipts: Sequence[Receipt]) -> bytes:
    """The block's bloom: the bitwise OR of its receipts' blooms."""
    bloom = 0
    for receipt in receipts:
        bloom |= int.from_bytes(receipt.logs_bloom, "big")
    return bloom.to_bytes(256, "big")
