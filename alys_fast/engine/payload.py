"""How a block of this chain maps to an Engine API execution payload, and back (pure).

Our header carries every execution field of the payload: state root, receipts root, logs bloom,
gas limit and used, base fee, timestamp, extra data, the fee recipient (``author``) and, with
the block, the transactions. What it does not carry is fixed on this chain: PREVRANDAO is zero
(Alys's payloads), there are no withdrawals yet (the peg's mints will be), and on Cancun no
blobs and a zero parent beacon block root. The one thing the payload needs that our block
cannot give is the *EL parent hash*: our block hash (Aura slot, AuxPoW, approvals) is not the
execution client's hash of the same block. So the execution block is a function of our block
and its parent's EL hash (:func:`payload_of`), and the node stores each block's EL hash with it
(the ``el-hash`` meta key of its number, written in the block's batch), which is all import
and replay need: a payload is rebuilt from the stored block and the stored hash of its parent,
and its own hash (:func:`el_block_hash`, keccak of the Ethereum header) checked against the
stored one.

A payload geth builds comes back with geth's own extra data (its version): the node takes it
with ``extra_data`` set to its header's (empty) and the hash recomputed, so every node derives
the same EL block from the same block. geth's receipts (``eth_getBlockReceipts``) become our
:class:`Receipt` (:func:`receipt_of`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from alys_fast._cext import require
from alys_fast.engine.engine_api import (
    ZERO_HASH,
    ExecutionPayload,
    ExecutionPayloadV2,
    ExecutionPayloadV3,
    Fork,
)
from alys_fast.validation import Header, ordered_trie_root
from alys_fast.validation.receipts import EMPTY_BLOOM, Log, Receipt

_rlp = require("rlp")
_hashing = require("hashing")

# keccak(rlp([])): no ommers since the merge.
EMPTY_OMMERS_HASH = bytes.fromhex(
    "1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347")
EL_HASH_PREFIX = b"el-hash/"


def el_hash_key(number: int) -> bytes:
    """The store's meta key of block ``number``'s EL block hash."""
    return EL_HASH_PREFIX + number.to_bytes(8, "big")


def el_block_hash(payload: ExecutionPayload,
                  parent_beacon_block_root: bytes = ZERO_HASH) -> bytes:
    """The execution client's hash of ``payload``: keccak of its Ethereum header's RLP."""
    withdrawals = [_rlp.encode([w.index, w.validator_index, w.address, w.amount])
                   for w in payload.withdrawals]
    items: list[Any] = [
        payload.parent_hash, EMPTY_OMMERS_HASH, payload.fee_recipient, payload.state_root,
        ordered_trie_root(list(payload.transactions)), payload.receipts_root,
        payload.logs_bloom, 0, payload.block_number, payload.gas_limit, payload.gas_used,
        payload.timestamp, payload.extra_data, payload.prev_randao, bytes(8),
        payload.base_fee_per_gas, ordered_trie_root(withdrawals),
    ]
    if isinstance(payload, ExecutionPayloadV3):
        items += [payload.blob_gas_used, payload.excess_blob_gas, parent_beacon_block_root]
    return _hashing.keccak256(_rlp.encode(items))


def payload_of(header: Header, transactions: Sequence[bytes], parent_el_hash: bytes,
               fork: Fork | str) -> ExecutionPayload:
    """The execution payload of our block (``header`` and its raw ``transactions``) on the EL
    block ``parent_el_hash``, its ``block_hash`` computed."""
    fields: dict[str, Any] = {
        "parent_hash": parent_el_hash, "fee_recipient": header.author,
        "state_root": header.state_root, "receipts_root": header.receipts_root,
        "logs_bloom": header.logs_bloom, "prev_randao": ZERO_HASH,
        "block_number": header.number, "gas_limit": header.gas_limit,
        "gas_used": header.gas_used, "timestamp": header.timestamp,
        "extra_data": header.extra_data, "base_fee_per_gas": header.base_fee_per_gas,
        "block_hash": ZERO_HASH, "transactions": tuple(transactions), "withdrawals": (),
    }
    payload: ExecutionPayload
    if Fork(fork) is Fork.CANCUN:
        payload = ExecutionPayloadV3(**fields, blob_gas_used=0, excess_blob_gas=0)
    else:
        payload = ExecutionPayloadV2(**fields)
    return msgspec.structs.replace(payload, block_hash=el_block_hash(payload))


def el_genesis_hash(genesis: Header, fork: Fork | str) -> bytes:
    """The hash of the genesis block geth makes from ``el_genesis`` of the same spec: our
    genesis' fields, but a zero coinbase."""
    el_genesis = msgspec.structs.replace(genesis, author=bytes(20))
    return payload_of(el_genesis, (), ZERO_HASH, fork).block_hash


def normalized(payload: ExecutionPayload, extra_data: bytes) -> ExecutionPayload:
    """A payload geth built, with our header's ``extra_data`` and its hash recomputed."""
    if payload.extra_data == extra_data:
        return payload
    payload = msgspec.structs.replace(payload, extra_data=extra_data)
    return msgspec.structs.replace(payload, block_hash=el_block_hash(payload))


def receipt_of(raw: Any) -> Receipt:
    """One receipt of geth's ``eth_getBlockReceipts`` as ours; ValueError if malformed."""
    if type(raw) is not dict:
        raise ValueError("a receipt is not an object")
    try:
        logs = tuple(Log(_data(entry["address"]), tuple(_data(t) for t in entry["topics"]),
                         _data(entry["data"])) for entry in raw["logs"])
        created = raw.get("contractAddress")
        return Receipt(
            tx_hash=_data(raw["transactionHash"]),
            tx_type=_quantity(raw.get("type", "0x0")),
            status=_quantity(raw["status"]),
            gas_used=_quantity(raw["gasUsed"]),
            cumulative_gas_used=_quantity(raw["cumulativeGasUsed"]),
            effective_gas_price=_quantity(raw["effectiveGasPrice"]),
            logs=logs,
            logs_bloom=_data(raw.get("logsBloom", "0x" + EMPTY_BLOOM.hex())),
            contract_address=None if created is None else _data(created),
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"a receipt lacks a field ({exc})") from None


def _data(value: Any) -> bytes:
    if type(value) is not str or not value.startswith("0x"):
        raise ValueError("expected hex data")
    return bytes.fromhex(value[2:])


def _quantity(value: Any) -> int:
    if type(value) is not str or not value.startswith("0x"):
        raise ValueError("expected a hex quantity")
    return int(value, 16)
