"""Account state and its commitment, updated incrementally block by block.

The commitment (the ``state_root`` in headers) is NOT Ethereum's Merkle-Patricia root. It is a
fixed-shape, three-level hash tree that costs O(touched accounts) per block:

- key(a)      = keccak256(a)                       for a 20-byte address a
- leaf(a)     = keccak256(a || rlp([nonce, balance, code_hash]))
- bucket[i]   = keccak256(leaf_1 || … || leaf_k)   over the accounts whose key starts with the
                two bytes i (0..65535), leaves ordered by key; 32 zero bytes if the bucket is empty
- group[j]    = keccak256(bucket[256j] || … || bucket[256j + 255]); zero bytes if all are zero
- state_root  = keccak256(group[0] || … || group[255])

It is deterministic (a function of the account set only, not of history), collision-resistant
as keccak is, and a block rehashes only its dirty buckets, their groups and the root. Empty
accounts (nonce 0, balance 0, no code) do not exist (EIP-161): writing one deletes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import msgspec

from alys_fast._cext import require
from alys_fast.engine.steps import Steps, finish

keccak256 = require("hashing").keccak256
_rlp_encode = require("rlp").encode

EMPTY_CODE_HASH = keccak256(b"")
ZERO_HASH = bytes(32)
_ZERO_GROUP = ZERO_HASH * 256


class Account(msgspec.Struct, frozen=True, array_like=True):
    """One account: nonce, balance in wei, and the Keccak-256 of its code."""

    nonce: int = 0
    balance: int = 0
    code_hash: bytes = EMPTY_CODE_HASH

    def is_empty(self) -> bool:
        """EIP-161 emptiness: such an account is the same as no account."""
        return self.nonce == 0 and self.balance == 0 and self.code_hash == EMPTY_CODE_HASH


EMPTY_ACCOUNT = Account()


def leaf_hash(address: bytes, account: Account) -> bytes:
    """The commitment leaf of one account (see the module docstring)."""
    return keccak256(address + _rlp_encode([account.nonce, account.balance, account.code_hash]))


@dataclass(frozen=True, slots=True)
class StateUpdate:
    """A state change with its new commitment computed, not yet applied.

    Made by :meth:`State.prepare`; :meth:`State.apply` installs it only on the state root it was
    computed from, so an engine can execute a block, publish its root and commit later.
    """

    base_root: bytes
    root: bytes
    changes: Mapping[bytes, Account | None]  # None: the account is deleted
    buckets: Mapping[int, dict[bytes, bytes]]  # dirty bucket -> {key: leaf}
    bucket_hashes: Mapping[int, bytes]
    group_hashes: Mapping[int, bytes]


class State:
    """All accounts in memory plus the commitment tree over them."""

    __slots__ = ("_accounts", "_bucket_hashes", "_buckets", "_group_hashes", "_root")

    def __init__(self, accounts: Mapping[bytes, Account] | None = None) -> None:
        self._accounts: dict[bytes, Account] = {}
        self._buckets: dict[int, dict[bytes, bytes]] = {}
        self._bucket_hashes = [ZERO_HASH] * 65536
        self._group_hashes = [ZERO_HASH] * 256
        self._root = keccak256(ZERO_HASH * 256)
        if accounts:
            self.apply(self.prepare(accounts))

    @property
    def root(self) -> bytes:
        """The current state commitment."""
        return self._root

    def get(self, address: bytes) -> Account:
        """The account at ``address`` (the empty account if there is none)."""
        return self._accounts.get(address, EMPTY_ACCOUNT)

    def __len__(self) -> int:
        return len(self._accounts)

    def items(self) -> Iterable[tuple[bytes, Account]]:
        """Every (address, account) pair, in no particular order."""
        return self._accounts.items()

    def prepare(self, changes: Mapping[bytes, Account | None]) -> StateUpdate:
        """Compute the commitment after ``changes`` without touching this state."""
        return finish(self.prepare_steps(changes))

    def prepare_steps(
        self, changes: Mapping[bytes, Account | None], chunk: int = 256
    ) -> Steps[StateUpdate]:
        """:meth:`prepare`, pausing after every ``chunk`` accounts (see ``engine.steps``)."""
        normalized: dict[bytes, Account | None] = {}
        buckets: dict[int, dict[bytes, bytes]] = {}
        for position, (address, account) in enumerate(changes.items(), 1):
            if position % chunk == 0:
                yield
            if account is not None and account.is_empty():
                account = None
            normalized[address] = account
            key = keccak256(address)
            index = (key[0] << 8) | key[1]
            bucket = buckets.get(index)
            if bucket is None:
                bucket = buckets[index] = dict(self._buckets.get(index, ()))
            if account is None:
                bucket.pop(key, None)
            else:
                bucket[key] = leaf_hash(address, account)
        bucket_hashes: dict[int, bytes] = {}
        for position, (i, b) in enumerate(buckets.items(), 1):
            if position % chunk == 0:
                yield
            bucket_hashes[i] = keccak256(b"".join(b[k] for k in sorted(b))) if b else ZERO_HASH
        group_hashes: dict[int, bytes] = {}
        for position, group in enumerate({i >> 8 for i in bucket_hashes}, 1):
            if position % 32 == 0:
                yield
            start = group << 8
            joined = b"".join(
                bucket_hashes.get(i, self._bucket_hashes[i]) for i in range(start, start + 256)
            )
            group_hashes[group] = ZERO_HASH if joined == _ZERO_GROUP else keccak256(joined)
        root = keccak256(
            b"".join(group_hashes.get(g, self._group_hashes[g]) for g in range(256))
        )
        return StateUpdate(self._root, root, normalized, buckets, bucket_hashes, group_hashes)

    def apply(self, update: StateUpdate) -> None:
        """Install a prepared update; it must have been prepared on the current root."""
        if update.base_root != self._root:
            raise ValueError(
                f"state update prepared on root {update.base_root.hex()}, "
                f"state is at {self._root.hex()}"
            )
        for address, account in update.changes.items():
            if account is None:
                self._accounts.pop(address, None)
            else:
                self._accounts[address] = account
        for index, bucket in update.buckets.items():
            if bucket:
                self._buckets[index] = bucket
            else:
                self._buckets.pop(index, None)
        for index, digest in update.bucket_hashes.items():
            self._bucket_hashes[index] = digest
        for index, digest in update.group_hashes.items():
            self._group_hashes[index] = digest
        self._root = update.root


def reference_root(accounts: Mapping[bytes, Account]) -> bytes:
    """The commitment recomputed from scratch, the slow obvious way (for tests and audits)."""
    buckets: dict[int, list[tuple[bytes, bytes]]] = {}
    for address, account in accounts.items():
        if account.is_empty():
            continue
        key = keccak256(address)
        buckets.setdefault((key[0] << 8) | key[1], []).append((key, leaf_hash(address, account)))
    groups = []
    for g in range(256):
        hashes = []
        for i in range(g << 8, (g + 1) << 8):
            leaves = sorted(buckets.get(i, []))
            hashes.append(keccak256(b"".join(leaf for _, leaf in leaves)) if leaves else ZERO_HASH)
        joined = b"".join(hashes)
        groups.append(ZERO_HASH if joined == _ZERO_GROUP else keccak256(joined))
    return keccak256(b"".join(groups))
