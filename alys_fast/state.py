"""The state the engine executes on, as Python sees it: accounts, diffs, misses and loads.

State is Ethereum's: a secure Merkle-Patricia trie of accounts ``rlp([nonce, balance,
storageRoot, codeHash])`` keyed by ``keccak(address)``, each contract's storage a trie of
``rlp(value)`` keyed by ``keccak(slot)``; the header's state root is that trie's root, the one
geth and anvil compute. The tries live in the compiled engine (``cext/evm``); what crosses to
Python is below: the accounts and slots a block changed (:class:`StateDiff`, what storage
writes and history keeps) and the data the engine asks for (:data:`Miss`) and gets
(:class:`Loaded`).

A module of its own, below both: the engine produces these and the store persists them, and
the engine's actor reads the store, so neither package can hold them for the other.
"""

from __future__ import annotations

import msgspec

from alys_fast._cext import require

keccak256 = require("hashing").keccak256
_evm = require("evm")

EMPTY_CODE_HASH = keccak256(b"")
EMPTY_ROOT: bytes = _evm.EMPTY_ROOT


class Account(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One account: nonce, balance in wei, its storage root and the Keccak-256 of its code."""

    nonce: int = 0
    balance: int = 0
    code_hash: bytes = EMPTY_CODE_HASH
    storage_root: bytes = EMPTY_ROOT

    def is_empty(self) -> bool:
        """EIP-161 emptiness: such an account is the same as no account."""
        return self.nonce == 0 and self.balance == 0 and self.code_hash == EMPTY_CODE_HASH


EMPTY_ACCOUNT = Account()


class StorageDiff(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One contract's storage changes in a block: ``wiped`` means every slot was cleared first
    (the account was destroyed or created anew); ``slots`` are (slot, new value, value before),
    a new value of 0 deleting the slot."""

    address: bytes
    wiped: bool
    slots: tuple[tuple[int, int, int], ...]


class StateDiff(msgspec.Struct, frozen=True):
    """What a block changed: new accounts (None: deleted), storage, new code.

    ``previous`` holds each changed account as it was before the block (None: absent), so
    history can answer reads at older blocks.
    """

    accounts: dict[bytes, Account | None]
    storage: tuple[StorageDiff, ...] = ()
    code: tuple[bytes, ...] = ()
    previous: dict[bytes, Account | None] = {}


# What the compiled engine can ask for: ("account", address), ("storage", address, None) for a
# contract's whole storage at the head or ("storage", address, slot word) for one slot at an
# older block, ("code", code hash), ("blockhash", number).
Miss = tuple


class Loaded(msgspec.Struct):
    """Answers to misses, in the shapes the engine takes them."""

    accounts: list[tuple[bytes, Account | None]] = msgspec.field(default_factory=list)
    # (address, [(slot, value)], complete): complete means every non-zero slot of the contract.
    storage: list[tuple[bytes, list[tuple[int, int]], bool]] = msgspec.field(
        default_factory=list
    )
    code: list[bytes] = msgspec.field(default_factory=list)
    block_hashes: list[tuple[int, bytes]] = msgspec.field(default_factory=list)


def word(value: int) -> bytes:
    """A 256-bit integer as the engine's 32-byte big-endian word."""
    return value.to_bytes(32, "big")


def account_from_record(record: tuple) -> Account:
    """An :class:`Account` from the engine's ``(nonce, balance word, code hash, storage root)``."""
    nonce, balance, code_hash, storage_root = record
    return Account(nonce, int.from_bytes(balance, "big"), code_hash, storage_root)


def storage_root(slots: dict[int, int]) -> bytes:
    """The storage root of a contract holding ``slots`` (zero values are absent)."""
    return _evm.storage_root([(word(k), word(v)) for k, v in slots.items() if v])
