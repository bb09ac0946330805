"""Signed Ethereum transactions: the typed results and the stateless validity check.

The work happens in the compiled core (``cext/txcore.pyx``, whose docstring lists the three wire
formats). This module names the result types, one frozen Struct per transaction type, and is the
typed-transaction dispatch table handed to the core: ``TRANSACTION_TYPES = {type: class}``.

What "valid" means here is everything that needs no state (no balances, no nonces on chain):
canonical encoding, field widths (nonce < 2^64 - 1 per EIP-2681, 64-bit gas limit, 256-bit
values and fees), a 20-byte or empty ``to``, tip <= max fee, gas limit x fee < 2^256, the chain
id (EIP-155 for legacy ``v``), low-s signatures (EIP-2), a recoverable sender, the EIP-3860
initcode limit and intrinsic gas <= gas limit (plus the EIP-7623 calldata floor from Prague).
Pre-EIP-155 legacy transactions (``v`` 27/28) are valid and have ``chain_id is None``; whether to
accept them is pool policy, not validity.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from enum import IntEnum
from functools import cache
from typing import ClassVar

import msgspec
from coincurve import PrivateKey

from alys_fast._cext import require
from alys_fast.validation.errors import InvalidTransaction

_txcore = require("txcore")
_keccak256 = require("hashing").keccak256

# Largest chain id whose EIP-155 v (2 * id + 36) still fits the 64-bit core; EIP-2294's bound.
MAX_CHAIN_ID = 2**63 - 37

AccessList = tuple[tuple[bytes, tuple[bytes, ...]], ...]


class Fork(IntEnum):
    """Rule sets that change transaction validity (the core compares ordinals)."""

    LONDON = 0  # EIP-1559 and EIP-2930 types, EIP-2028 calldata pricing
    SHANGHAI = 1  # + EIP-3860 initcode size limit and word cost
    CANCUN = 2  # no change for types 0-2 (type 3 blobs are not supported here)
    PRAGUE = 3  # + EIP-7623 calldata floor (type 4 set-code is not supported here)


class Transaction(msgspec.Struct, frozen=True, tag_field="type"):
    """Fields every signed transaction has, plus what validation derived from it.

    ``raw`` is the consensus encoding (what the transactions trie stores), ``hash`` its
    Keccak-256, ``sender`` the recovered 20-byte address, ``to`` is None for contract creation
    and ``v`` is the signature value as sent (27/28 or EIP-155 for legacy, y parity otherwise).
    """

    type: ClassVar[int]
    _fee_cap_field: ClassVar[str]
    raw: bytes
    hash: bytes
    sender: bytes
    intrinsic_gas: int
    chain_id: int | None
    nonce: int
    gas_limit: int
    to: bytes | None
    value: int
    data: bytes
    v: int
    r: int
    s: int

    @property
    def fee_cap(self) -> int:
        """The most the sender pays per gas: the gas price, or EIP-1559's max fee per gas."""
        return getattr(self, self._fee_cap_field)


class LegacyTransaction(Transaction, frozen=True, tag=0):
    """Type 0: a bare RLP list with a single gas price."""

    type: ClassVar[int] = 0
    _fee_cap_field: ClassVar[str] = "gas_price"
    gas_price: int


class AccessListTransaction(Transaction, frozen=True, tag=1):
    """Type 1 (EIP-2930): a gas price plus pre-declared addresses and storage keys."""

    type: ClassVar[int] = 1
    _fee_cap_field: ClassVar[str] = "gas_price"
    gas_price: int
    access_list: AccessList


class DynamicFeeTransaction(Transaction, frozen=True, tag=2):
    """Type 2 (EIP-1559): a fee cap and a priority fee instead of a gas price."""

    type: ClassVar[int] = 2
    _fee_cap_field: ClassVar[str] = "max_fee_per_gas"
    max_priority_fee_per_gas: int
    max_fee_per_gas: int
    access_list: AccessList


class BlobTransaction(Transaction, frozen=True, tag=3):
    """Type 3 (EIP-4844): EIP-1559 fees plus blob hashes and a blob fee cap.

    This chain carries no blobs, so the wire decoder refuses type 3 ("transaction type not
    supported"); the type exists so the EVM can run blob transactions built from fields, as the
    Ethereum state tests do (``alys-fast evm statetest``).
    """

    type: ClassVar[int] = 3
    _fee_cap_field: ClassVar[str] = "max_fee_per_gas"
    max_priority_fee_per_gas: int
    max_fee_per_gas: int
    access_list: AccessList
    max_fee_per_blob_gas: int
    blob_versioned_hashes: tuple[bytes, ...]


TRANSACTION_TYPES: dict[int, type[Transaction]] = {
    0: LegacyTransaction,
    1: AccessListTransaction,
    2: DynamicFeeTransaction,
}
_txcore.bind(TRANSACTION_TYPES)


def _check_chain_id(chain_id: int) -> None:
    if not 1 <= chain_id <= MAX_CHAIN_ID:
        raise ValueError(f"chain id must be in 1..{MAX_CHAIN_ID}, got {chain_id}")


def recover_transaction(raw: bytes, chain_id: int, fork: Fork = Fork.CANCUN) -> Transaction:
    """Validate one raw transaction (consensus encoding) and recover its sender.

    Raises InvalidTransaction naming the broken rule, with the offending values.
    """
    _check_chain_id(chain_id)
    return _txcore.recover(raw, chain_id, fork)


# Below this many transactions per thread, handing work to other threads costs more than it saves.
_MIN_PER_THREAD = 16


def address_of(private_key: bytes) -> bytes:
    """The 20-byte address whose transactions the secp256k1 ``private_key`` signs."""
    public = PrivateKey(private_key).public_key.format(compressed=False)
    return _keccak256(public[1:])[12:]


def with_sender(raw: bytes, sender: bytes, chain_id: int, fork: Fork = Fork.CANCUN) -> Transaction:
    """:func:`recover_transaction` for a transaction whose sender another process recovered
    from these same bytes: every rule is checked again, only the key recovery is skipped
    (about 1.5 µs instead of 45). Raises InvalidTransaction like :func:`recover_transaction`."""
    _check_chain_id(chain_id)
    return _txcore.with_sender(raw, sender, chain_id, fork)


def intrinsic_gas(
    data: bytes, access_list: AccessList = (), *, create: bool = False, fork: Fork = Fork.CANCUN
) -> int:
    """Gas a transaction with this calldata and access list pays before running any code
    (the rule admission enforces; ``eth_estimateGas`` answers with it for transfers)."""
    keys = sum(len(slots) for _, slots in access_list)
    return _txcore.intrinsic_gas(data, len(access_list), keys, create, fork)


@cache
def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, read once), the default batch
    parallelism."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@cache
def _pool() -> ThreadPoolExecutor:
    """One pool for the process, sized to the usable cores; made on first parallel batch."""
    return ThreadPoolExecutor(max_workers=usable_cores(), thread_name_prefix="tx-recover")


def recover_transactions(
    raws: Sequence[bytes],
    chain_id: int,
    fork: Fork = Fork.CANCUN,
    *,
    threads: int | None = None,
) -> list[Transaction | InvalidTransaction]:
    """Validate many raw transactions, one result per input in the same order.

    A bad transaction does not stop the others: its slot holds the InvalidTransaction that
    :func:`recover_transaction` would have raised (test with ``isinstance``). The C part of each
    transaction runs without the GIL, so ``threads`` workers (default and maximum: the usable
    cores) run signature recovery in parallel; threads beat a process pool here because inputs
    and results need no pickling (see ``benches/bench_validation.py``).
    """
    _check_chain_id(chain_id)
    batch = list(raws)
    out: list[Transaction | InvalidTransaction] = [None] * len(batch)  # type: ignore[list-item]
    cores = usable_cores()
    workers = max(1, min(threads or cores, cores, len(batch) // _MIN_PER_THREAD))
    if workers == 1:
        _txcore.recover_into(batch, out, 0, 1, chain_id, fork)
        return out
    jobs = [
        _pool().submit(_txcore.recover_into, batch, out, start, workers, chain_id, fork)
        for start in range(workers)
    ]
    for job in jobs:
        job.result()
    return out
