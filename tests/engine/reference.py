"""Ethereum state roots computed the slow, obvious way, to check the engine's tries against.

The tries are built with the validation core's one-pass trie root (``validation.trie``, itself
checked against published vectors and the Yellow Paper in ``tests/validation/test_trie.py``),
a separate implementation from the engine's Rust tries; the account and storage encodings are
spelled out here with the reference ``rlp`` package.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import rlp
from eth_utils import keccak

from alys_fast.engine import Account, AllocAccount
from alys_fast.validation.trie import EMPTY_TRIE_ROOT, trie_root

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


class BadProof(ValueError):
    """A proof that does not lead from the root to an answer."""


def _nibbles(key: bytes) -> list[int]:
    return [n for byte in key for n in (byte >> 4, byte & 15)]


def proven_value(root: bytes, key: bytes, proof: list[bytes]) -> bytes:
    """Walk an EIP-1186 proof (the nodes from the root down) for ``keccak(key)``: the value
    stored there, or b"" if the proof shows the key is absent. BadProof otherwise."""
    if root == EMPTY_TRIE_ROOT:
        return b""  # nothing is in the empty trie (its proof may name no node)
    nodes = {keccak(node): node for node in proof}
    path = _nibbles(keccak(key))
    ref: Any = root
    at = 0
    while True:
        if isinstance(ref, bytes):
            if ref not in nodes:
                raise BadProof(f"node {ref.hex()} is not in the proof")
            node = rlp.decode(nodes[ref])
        else:
            node = ref  # a child under 32 bytes, inline in its parent
        if len(node) == 17:
            if at == len(path):
                return node[16]
            ref = node[path[at]]
            at += 1
            if ref == b"":
                return b""
            continue
        if len(node) != 2:
            raise BadProof(f"a node of {len(node)} items")
        encoded = _nibbles(node[0])
        flag = encoded[0]
        rest = encoded[2:] if flag in (0, 2) else encoded[1:]
        if flag >= 2:  # a leaf
            return node[1] if path[at:] == rest else b""
        if path[at:at + len(rest)] != rest:
            return b""
        at += len(rest)
        ref = node[1]
