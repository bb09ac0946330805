"""Ethereum JSON-RPC shapes of the node's blocks, transactions and receipts (as geth answers).

Quantities are ``0x`` hex without leading zeros, data ``0x`` hex of the bytes. ``miner`` is
the fee recipient (Ethereum's coinbase: whoever receives the tips, the chain spec's
``fee_recipient``), not the Aura author who signed the header. Alys headers have no PoW
fields; they are answered with Ethereum's post-merge constants (difficulty 0, zero nonce and
mix hash, empty uncles) so standard clients parse them unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from alys_fast._cext import require
from alys_fast.engine.fees import effective_gas_price
from alys_fast.validation import Header, Transaction
from alys_fast.validation.receipts import Log, Receipt

EMPTY_UNCLES_HASH = "0x1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347"
ZERO_NONCE = "0x0000000000000000"
ZERO_HASH = "0x" + "00" * 32
_keccak256 = require("hashing").keccak256


def hexdata(value: bytes) -> str:
    return "0x" + value.hex()


def checksum_address(address: bytes) -> str:
    """EIP-55's mixed-case hex, as geth writes an address in its messages."""
    body = address.hex()
    digest = _keccak256(body.encode()).hex()
    upper = (c.upper() if d in "89abcdef" else c for c, d in zip(body, digest[:40], strict=True))
    return "0x" + "".join(upper)


def header_json(header: Header, size: int, miner: bytes) -> dict[str, Any]:
    """The header fields of a block object (also the ``newHeads`` notification)."""
    return {
        "number": hex(header.number),
        "hash": hexdata(header.hash),
        "parentHash": hexdata(header.parent_hash),
        "nonce": ZERO_NONCE,
        "mixHash": ZERO_HASH,
        "sha3Uncles": EMPTY_UNCLES_HASH,
        "logsBloom": hexdata(header.logs_bloom),
        "transactionsRoot": hexdata(header.transactions_root),
        "stateRoot": hexdata(header.state_root),
        "receiptsRoot": hexdata(header.receipts_root),
        "miner": hexdata(miner),
        "difficulty": "0x0",
        "totalDifficulty": "0x0",
        "extraData": hexdata(header.extra_data),
        "size": hex(size),
        "gasLimit": hex(header.gas_limit),
        "gasUsed": hex(header.gas_used),
        "timestamp": hex(header.timestamp),
        "baseFeePerGas": hex(header.base_fee_per_gas),
    }


def block_json(
    header: Header,
    size: int,
    miner: bytes,
    transactions: Sequence[str] | Sequence[dict[str, Any]],
) -> dict[str, Any]:
    """A block object: the header fields plus transaction hashes or objects."""
    out = header_json(header, size, miner)
    out["transactions"] = list(transactions)
    out["uncles"] = []
    return out


def transaction_json(
    tx: Transaction,
    *,
    block_hash: bytes | None = None,
    block_number: int | None = None,
    index: int | None = None,
    base_fee: int | None = None,
) -> dict[str, Any]:
    """A transaction object; the block fields are null while it is pending."""
    out: dict[str, Any] = {
        "blockHash": None if block_hash is None else hexdata(block_hash),
        "blockNumber": None if block_number is None else hex(block_number),
        "transactionIndex": None if index is None else hex(index),
        "hash": hexdata(tx.hash),
        "type": hex(tx.type),
        "from": hexdata(tx.sender),
        "to": None if tx.to is None else hexdata(tx.to),
        "nonce": hex(tx.nonce),
        "gas": hex(tx.gas_limit),
        "value": hex(tx.value),
        "input": hexdata(tx.data),
        "v": hex(tx.v),
        "r": hex(tx.r),
        "s": hex(tx.s),
    }
    if tx.chain_id is not None:
        out["chainId"] = hex(tx.chain_id)
    if tx.type == 2:
        out["maxFeePerGas"] = hex(tx.max_fee_per_gas)  # type: ignore[attr-defined]
        out["maxPriorityFeePerGas"] = hex(tx.max_priority_fee_per_gas)  # type: ignore[attr-defined]
        # geth: the price actually paid once included, the fee cap while pending.
        price = tx.fee_cap if base_fee is None else effective_gas_price(tx, base_fee)
        out["gasPrice"] = hex(price)
    else:
        out["gasPrice"] = hex(tx.gas_price)  # type: ignore[attr-defined]
    if tx.type:
        out["accessList"] = [
            {"address": hexdata(a), "storageKeys": [hexdata(k) for k in keys]}
            for a, keys in tx.access_list  # type: ignore[attr-defined]
        ]
        out["yParity"] = hex(tx.v)
    return out


def log_json(
    log: Log, *, block_hash: bytes, block_number: int, tx_hash: bytes, tx_index: int,
    log_index: int, removed: bool = False,
) -> dict[str, Any]:
    """A log object as eth_getLogs and receipts give it (``logIndex`` counts in the block)."""
    return {
        "address": hexdata(log.address),
        "topics": [hexdata(t) for t in log.topics],
        "data": hexdata(log.data),
        "blockHash": hexdata(block_hash),
        "blockNumber": hex(block_number),
        "transactionHash": hexdata(tx_hash),
        "transactionIndex": hex(tx_index),
        "logIndex": hex(log_index),
        "removed": removed,
    }


def receipt_json(
    receipt: Receipt, tx: Transaction, *, block_hash: bytes, block_number: int, index: int,
    first_log_index: int,
) -> dict[str, Any]:
    """A receipt object; ``first_log_index`` is how many logs the block's earlier
    transactions emitted."""
    return {
        "transactionHash": hexdata(receipt.tx_hash),
        "transactionIndex": hex(index),
        "blockHash": hexdata(block_hash),
        "blockNumber": hex(block_number),
        "from": hexdata(tx.sender),
        "to": None if tx.to is None else hexdata(tx.to),
        "cumulativeGasUsed": hex(receipt.cumulative_gas_used),
        "gasUsed": hex(receipt.gas_used),
        "effectiveGasPrice": hex(receipt.effective_gas_price),
        "contractAddress": (
            None if receipt.contract_address is None else hexdata(receipt.contract_address)
        ),
        "logs": [
            log_json(log, block_hash=block_hash, block_number=block_number,
                     tx_hash=receipt.tx_hash, tx_index=index, log_index=first_log_index + i)
            for i, log in enumerate(receipt.logs)
        ],
        "logsBloom": hexdata(receipt.logs_bloom),
        "status": hex(receipt.status),
        "type": hex(receipt.tx_type),
    }
