"""Ethereum state roots computed the slow, obvious way, to check the engine's tries against.

The tries are built with the validation core's one-pass trie root (``validation.trie``, itself
checked against published vectors and the Yellow Paper in ``tests/validation/test_trie.py``),
a separate implementation from the engine's Rust tries; the account and storage encodings are
spelled out here with the reference ``rlp`` package.
"""

from __future__ import annotations

from collections.abc import Mapping

import rlp
from eth_utils import keccak

from alys_fast.engine import Account, AllocAccount
from alys_fast.validation.trie import trie_root

EMPTY_CODE_HASH = keccak(b"")


def reference_storage_root(slots: Mapping[int, int]) -> bytes:
    """Root of the secure trie ``keccak(slot word) -> rlp(value)`` (zero values absent)."""
    return trie_root(
        {keccak(k.to_bytes(32, "big")): rlp.encode(v) for k, v in slots.items() if v}
    )


def reference_account(
    nonce: int, balance: int, code_hash: bytes, storage_root: bytes
) -> bytes:
    """An account's state-trie value: ``rlp([nonce, balance, storageRoot, codeHash])``."""
    return rlp.encode([nonce, balance, storage_root, code_hash])


def reference_state_root(alloc: Mapping[bytes, AllocAccount]) -> bytes:
    """The state root of ``alloc``: EIP-161 empty accounts (no nonce, balance or code) absent."""
    items = {}
    for address, a in alloc.items():
        if a.nonce == 0 and a.balance == 0 and not a.code:
            continue
        code_hash = keccak(a.code) if a.code else EMPTY_CODE_HASH
        items[keccak(address)] = reference_account(
            a.nonce, a.balance, code_hash, reference_storage_root(a.storage)
        )
    return trie_root(items)


def reference_accounts_root(accounts: Mapping[bytes, Account]) -> bytes:
    """The state root of these accounts (EIP-161 empty ones absent)."""
    return trie_root({
        keccak(address): reference_account(a.nonce, a.balance, a.code_hash, a.storage_root)
        for address, a in accounts.items()
        if not (a.nonce == 0 and a.balance == 0 and a.code_hash == EMPTY_CODE_HASH)
    })
