"""The chain's RocksDB store: one atomic write batch per block.

Column families (keys -> values, values msgpack unless noted):

- ``headers``:   block hash -> [number, parent hash, header bytes] (header bytes: the block's
  consensus encoding, opaque here)
- ``blocks``:    block hash -> [raw transaction, ...]
- ``receipts``:  block hash -> [receipt (with its logs), ...]
- ``txindex``:   tx hash -> [block hash, block number, index in block]
- ``canonical``: block number (8 bytes big-endian) -> block hash
- ``state``:     address (20 bytes) -> account [nonce, balance, code hash, storage root]
- ``storage``:   address (20) || slot (32) -> value (big-endian, no leading zeros; 0 is absent)
- ``code``:      code hash -> code (raw bytes)
- ``history``:   ``a`` || address || N (8) -> the account before block N (msgpack, nil: absent);
  ``s`` || address || slot || N -> the slot before block N (big-endian, empty: 0)
- ``changesets``: N (8) -> the ``history`` keys block N wrote (msgpack), to prune them
- ``edits``:     N (8) -> a dev chain's state edits made ahead of block N, as they left the
  accounts ([address, nonce, balance, code hash]) and slots ([address, slot, value]), so block N
  can be replayed on its parent's state plus them (tracing)
- ``meta``:      ``b"head"`` -> [number, hash]; ``b"state-scheme"`` -> :data:`STATE_SCHEME`;
  ``b"block-format"`` -> :data:`BLOCK_FORMAT`; other keys are the owner's (:meth:`ChainStore.meta`,
  or written with a block or an unwind: their ``meta`` argument)

This is the flat state (what the engine loads); the Merkle-Patricia tries over it live in the
engine, rebuilt from it: accounts at start, a contract's storage the first time it is touched.

History answers reads at older blocks (Erigon's layout): each block writes, for every account
and slot it changes, the value before it, keyed by the block's number; the value at block B is
the first history entry after B, or the flat state if there is none. Without ``archive`` only
the last :data:`HISTORY_BLOCKS` blocks stay readable: each block write deletes the changesets
that fell out of that window (a bounded number per block, so a store that was archived catches
up gradually); ``meta`` ``b"history-oldest"`` names the oldest readable block.

:meth:`ChainStore.write_block` puts a block, its receipts, its tx index entries, its state
diff and the new head in ONE WriteBatch, so after any crash the head names a block whose
every part is present, and the state matches that head. Writes go through RocksDB's WAL;
without ``sync=True`` they survive the process being killed (the OS holds them) but not a power
cut; with it, each block is fsynced before ``write_block`` returns.

Balances and fees can exceed msgpack's 64-bit integers, so they are stored as big-endian bytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import msgspec
from rocksdict import Options, Rdict, WriteBatch, WriteOptions

from alys_fast._cext import require
from alys_fast.state import Account, StateDiff
from alys_fast.validation.receipts import Log, Receipt, bloom_of

MEMTABLE_BUDGET = 64 * 1024 * 1024
COLUMN_FAMILIES = (
    "headers", "blocks", "receipts", "txindex", "canonical", "state", "storage", "code",
    "history", "changesets", "edits", "meta",
)
# States readable without archive: the head and the 127 blocks before it (geth's default).
HISTORY_BLOCKS = 128
# Changesets one block write prunes at most: catching up after archive mode stays gradual.
PRUNE_PER_BLOCK = 64
_OLDEST = b"history-oldest"
_EDITED = b"edited-root"
_HEAD = b"head"
_SCHEME = b"state-scheme"
# What the state root commits to. Directories written before it existed used a bucketed
# commitment (not Ethereum's trie) and are refused at open.
STATE_SCHEME = b"ethereum-mpt-1"
_FORMAT = b"block-format"
# The header layout blocks are stored (and hashed) with. Directories written before headers
# carried the AuxPoW header, or BLS approvals (``auxpow-header-1``: one secp256k1 signature),
# hold blocks whose hashes and signatures no longer verify, and are refused at open.
BLOCK_FORMAT = b"bls-approvals-1"


class StorageError(Exception):
    """A store that is inconsistent or used out of order; the message says what."""


class StatePruned(StorageError):
    """A state read at a block older than the history kept; ``oldest`` is the oldest readable."""

    def __init__(self, number: int, oldest: int) -> None:
        super().__init__(
            f"the state at block {number} is not kept: the oldest block with state is {oldest} "
            f"(an archive node, --archive, keeps all)"
        )
        self.number = number
        self.oldest = oldest


class BlockRecord(msgspec.Struct, frozen=True):
    """What the store keeps of a block: its identity, encoded header, raw transactions and
    their senders (recovered once, on import: readers rebuild transactions without the ~45 us
    key recovery, and a dev chain's impersonated senders, which no signature names, stay)."""

    number: int
    hash: bytes
    parent_hash: bytes
    header: bytes
    transactions: tuple[bytes, ...]
    senders: tuple[bytes, ...] = ()


class TxLocation(msgspec.Struct, frozen=True, array_like=True):
    """Where a transaction was included."""

    block_hash: bytes
    block_number: int
    index: int


_keccak256 = require("hashing").keccak256


def _big(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


_encode = msgspec.msgpack.Encoder().encode
_decode_header = msgspec.msgpack.Decoder(tuple[int, bytes, bytes]).decode
_decode_body = msgspec.msgpack.Decoder(tuple[tuple[bytes, ...], tuple[bytes, ...]]).decode
_decode_receipts = msgspec.msgpack.Decoder(
    tuple[
        tuple[bytes, int, int, int, int, bytes, tuple[tuple[bytes, tuple[bytes, ...], bytes], ...],
              bytes | None, bytes],
        ...,
    ]
).decode
_decode_location = msgspec.msgpack.Decoder(TxLocation).decode
_decode_account = msgspec.msgpack.Decoder(tuple[int, bytes, bytes, bytes]).decode
_decode_head = msgspec.msgpack.Decoder(tuple[int, bytes]).decode
_decode_previous = msgspec.msgpack.Decoder(tuple[int, bytes, bytes, bytes] | None).decode
_decode_keys = msgspec.msgpack.Decoder(list[bytes]).decode
_decode_edits = msgspec.msgpack.Decoder(
    tuple[list[tuple[bytes, int, bytes, bytes]], list[tuple[bytes, bytes, bytes]]]
).decode


def _number_key(number: int) -> bytes:
    return number.to_bytes(8, "big")


class ChainStore:
    """Blocks, receipts, the tx index, state and the head, in one RocksDB directory.

    Opening an existing directory continues where it stopped (:meth:`head`, :meth:`load_state`).
    Blocks must be written in order: each one's parent is the current head (or there is no head
    yet and it is the genesis). ``archive`` keeps the state of every block readable, else the
    last :data:`HISTORY_BLOCKS`.
    """

    def __init__(self, path: str | Path, *, sync: bool = False, archive: bool = False) -> None:
        self.archive = archive
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        options.create_missing_column_families(True)
        # Memtables are RocksDB's main memory use; cap them for all column families together so
        # the node's footprint stays flat however long it runs (RocksDB's default is 64 MB per
        # column family, twice over).
        options.set_db_write_buffer_size(MEMTABLE_BUDGET)
        column_options = Options(raw_mode=True)
        column_options.set_write_buffer_size(MEMTABLE_BUDGET // 4)
        self._db = Rdict(
            str(path),
            options,
            column_families={name: column_options for name in COLUMN_FAMILIES},
        )
        write_options = WriteOptions()
        write_options.sync = sync
        self._db.set_write_options(write_options)
        self._cf = {name: self._db.get_column_family(name) for name in COLUMN_FAMILIES}
        self._handles = {name: self._db.get_column_family_handle(name) for name in COLUMN_FAMILIES}
        meta = self._cf["meta"]
        scheme = meta.get(_SCHEME)
        if scheme is None and meta.get(_HEAD) is not None:
            self.close()
            raise StorageError(
                f"{path} was written by an older alys-fast whose state root is a bucketed "
                "commitment, not Ethereum's state trie; it cannot be read: start with a new "
                "data dir (or delete this one)"
            )
        if scheme is None:
            meta[_SCHEME] = STATE_SCHEME
        elif scheme != STATE_SCHEME:
            self.close()
            raise StorageError(f"{path} uses state scheme {scheme!r}, not {STATE_SCHEME!r}")
        block_format = meta.get(_FORMAT)
        if block_format is None and meta.get(_HEAD) is not None:
            self.close()
            raise StorageError(
                f"{path} was written by an older alys-fast whose block headers carry no AuxPoW "
                "header: block hashes changed with the new rules, so its blocks cannot be "
                "imported again; start with a new data dir (or delete this one)"
            )
        if block_format is None:
            meta[_FORMAT] = BLOCK_FORMAT
        elif block_format != BLOCK_FORMAT:
            self.close()
            raise StorageError(
                f"{path} holds blocks in format {block_format.decode(errors='replace')}, not "
                f"{BLOCK_FORMAT.decode()}: it was written by an older alys-fast (before blocks "
                "carried BLS approvals, when authorities signed with secp256k1), so its blocks "
                "cannot be imported again; start with a new data dir (or delete this one)"
            )
        head = self.head()
        if head is not None and meta.get(_OLDEST) is None:
            # Written before history was kept: only the head's state can be read.
            meta[_OLDEST] = _encode(head[0])

    def close(self) -> None:
        """Flush and close the database; the store is unusable afterwards."""
        # The column-family views hold the database open: close them first, or the directory
        # stays locked for the rest of the process.
        for cf in self._cf.values():
            cf.close()
        self._cf.clear()
        self._handles.clear()
        self._db.close()

    def __enter__(self) -> ChainStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def head(self) -> tuple[int, bytes] | None:
        """(number, hash) of the last block written, or None for an empty store."""
        raw = self._cf["meta"].get(_HEAD)
        return None if raw is None else _decode_head(raw)

    def write_block(
        self,
        block: BlockRecord,
        receipts: Sequence[Receipt],
        diff: StateDiff,
        meta: Mapping[bytes, bytes] | None = None,
    ) -> None:
        """Persist a block with everything it implies and make it the head, atomically, with
        the owner's ``meta`` entries that change with it (e.g. the finalized block)."""
        head = self.head()
        if head is None:
            if block.number != 0:
                raise StorageError(f"the first block written must be number 0, got {block.number}")
        elif (block.number, block.parent_hash) != (head[0] + 1, head[1]):
            raise StorageError(
                f"block {block.number} (parent {block.parent_hash.hex()}) does not extend the "
                f"head {head[0]} ({head[1].hex()})"
            )
        if len(receipts) != len(block.transactions):
            raise StorageError(
                f"block {block.number} has {len(block.transactions)} transactions but "
                f"{len(receipts)} receipts"
            )
        h = self._handles
        batch = WriteBatch(raw_mode=True)
        header = (block.number, block.parent_hash, block.header)
        batch.put(block.hash, _encode(header), h["headers"])
        if len(block.senders) != len(block.transactions):
            raise StorageError(
                f"block {block.number} has {len(block.transactions)} transactions but "
                f"{len(block.senders)} senders"
            )
        batch.put(block.hash, _encode((block.transactions, block.senders)), h["blocks"])
        batch.put(
            block.hash,
            _encode(
                [
                    (r.tx_hash, r.tx_type, r.status, r.gas_used, r.cumulative_gas_used,
                     _big(r.effective_gas_price), r.logs, r.contract_address, r.output)
                    for r in receipts
                ]
            ),
            h["receipts"],
        )
        for index, receipt in enumerate(receipts):
            location = TxLocation(block.hash, block.number, index)
            batch.put(receipt.tx_hash, _encode(location), h["txindex"])
        batch.put(_number_key(block.number), block.hash, h["canonical"])
        history = self._write_state(batch, diff, block.number)
        if history:
            batch.put(_number_key(block.number), _encode(history), h["changesets"])
        batch.delete(_EDITED, h["meta"])
        if not self.archive:
            self._prune(batch, block.number)
        self._put_meta(batch, meta)
        batch.put(_HEAD, _encode((block.number, block.hash)), h["meta"])
        self._db.write(batch)

    def _put_meta(self, batch: WriteBatch, meta: Mapping[bytes, bytes] | None) -> None:
        for key, value in (meta or {}).items():
            if key in (_HEAD, _SCHEME, _FORMAT, _OLDEST, _EDITED):
                raise StorageError(f"meta key {key!r} is the store's own")
            batch.put(key, value, self._handles["meta"])

    def _write_state(self, batch: WriteBatch, diff: StateDiff, number: int) -> list[bytes]:
        """Add ``diff`` (made by block ``number``) to ``batch``: the flat state, the code, and
        for every account and slot it changes the value before, as history; -> the block's
        changeset (its history keys). A key a state edit already wrote for this block keeps
        the edit's value, the one before the edit (see :meth:`write_edit`)."""
        h = self._handles
        suffix = _number_key(number)
        history = self._edited_keys(number)
        kept = set(history)

        def remember(key: bytes, value: bytes) -> None:
            if key not in kept:
                history.append(key)
                batch.put(key, value, h["history"])

        for address, account in diff.accounts.items():
            if number:
                before = (diff.previous[address] if address in diff.previous
                          else self.account(address))
                remember(b"a" + address + suffix, _encode(_account_value(before)))
            if account is None:
                batch.delete(address, h["state"])
            else:
                batch.put(address, _encode(_account_value(account)), h["state"])
        for change in diff.storage:
            if change.wiped:
                if number:
                    # The wipe erases slots the block never touched: history keeps them too.
                    touched = {slot for slot, _, _ in change.slots}
                    for slot, value in self.contract_storage(change.address):
                        if slot not in touched:
                            key = change.address + slot.to_bytes(32, "big")
                            remember(b"s" + key + suffix, _big(value))
                batch.delete_range(change.address, change.address + b"\xff" * 32, h["storage"])
                batch.delete(change.address + b"\xff" * 32, h["storage"])
            for slot, value, before in change.slots:
                key = change.address + slot.to_bytes(32, "big")
                if number:
                    remember(b"s" + key + suffix, _big(before))
                if value:
                    batch.put(key, _big(value), h["storage"])
                else:
                    batch.delete(key, h["storage"])
        for code in diff.code:
            batch.put(_keccak256(code), code, h["code"])
        return history

    def _edited_keys(self, number: int) -> list[bytes]:
        """The history keys state edits wrote ahead of block ``number`` (none, usually)."""
        if self._cf["meta"].get(_EDITED) is None:
            return []
        return _decode_keys(self._cf["changesets"].get(_number_key(number)) or _encode([]))

    def write_edit(self, diff: StateDiff, state_root: bytes) -> None:
        """A dev chain's state edit between blocks (``anvil_setBalance``...), atomically: the
        flat state changes as if the next block had made it, and its history is recorded under
        the next block's number, so reads at the head's number still see the head's state and
        unwinding that block (or to the head) undoes the edit too. ``state_root`` is the
        edited state's, kept until the next block (:meth:`edited_root`)."""
        head = self.head()
        if head is None:
            raise StorageError("a state edit needs a chain to edit")
        batch = WriteBatch(raw_mode=True)
        number = _number_key(head[0] + 1)
        history = self._write_state(batch, diff, head[0] + 1)
        batch.put(number, _encode(history), self._handles["changesets"])
        # What the edits made, kept apart from the block's history (which records the values
        # before them): later edits of the same account or slot replace earlier ones.
        accounts, slots = self.edits(head[0] + 1)
        for address, account in diff.accounts.items():
            if account is not None:
                accounts[address] = account
        for change in diff.storage:
            for slot, value, _ in change.slots:
                slots[(change.address, slot)] = value
        batch.put(number, _encode((
            [(a, x.nonce, _big(x.balance), x.code_hash) for a, x in accounts.items()],
            [(a, slot.to_bytes(32, "big"), _big(v)) for (a, slot), v in slots.items()],
        )), self._handles["edits"])
        batch.put(_EDITED, state_root, self._handles["meta"])
        self._db.write(batch)

    def edits(self, number: int) -> tuple[dict[bytes, Account], dict[tuple[bytes, int], int]]:
        """The state edits made ahead of block ``number``, as they left accounts and slots."""
        raw = self._cf["edits"].get(_number_key(number))
        if raw is None:
            return {}, {}
        accounts, slots = _decode_edits(raw)
        return (
            {a: Account(nonce, int.from_bytes(balance, "big"), code_hash)
             for a, nonce, balance, code_hash in accounts},
            {(a, int.from_bytes(slot, "big")): int.from_bytes(v, "big") for a, slot, v in slots},
        )

    def edited_root(self) -> bytes | None:
        """The state root after state edits since the head block (None: no edit since)."""
        return self._cf["meta"].get(_EDITED)

    def _prune(self, batch: WriteBatch, head: int) -> None:
        """Add to ``batch`` the deletion of changesets that fall out of the history window."""
        oldest = self.oldest_state()
        target = min(head - HISTORY_BLOCKS + 1, oldest + PRUNE_PER_BLOCK)
        if target <= oldest:
            return
        changesets = self._cf["changesets"]
        for number in range(oldest + 1, target + 1):
            key = _number_key(number)
            keys = changesets.get(key)
            if keys is not None:
                for entry in _decode_keys(keys):
                    batch.delete(entry, self._handles["history"])
                batch.delete(key, self._handles["changesets"])
            batch.delete(key, self._handles["edits"])
        batch.put(_OLDEST, _encode(target), self._handles["meta"])

    def oldest_state(self) -> int:
        """The oldest block whose state can be read."""
        raw = self._cf["meta"].get(_OLDEST)
        return 0 if raw is None else msgspec.msgpack.decode(raw, type=int)

    def _readable(self, number: int) -> None:
        head = self.head()
        if head is None or number > head[0]:
            raise StorageError(f"block {number} is beyond the head")
        oldest = self.oldest_state()
        if number < oldest:
            raise StatePruned(number, oldest)

    def _before_next(self, prefix: bytes, number: int) -> bytes | None:
        """The value of the first history entry of ``prefix`` after block ``number``, i.e. the
        value at ``number`` if it changed since, else None."""
        for key, value in self._cf["history"].items(from_key=prefix + _number_key(number + 1)):
            return value if key[:-8] == prefix else None
        return None

    def account_at(self, address: bytes, number: int) -> Account | None:
        """The account at ``address`` as of block ``number`` (StatePruned if not kept)."""
        self._readable(number)
        raw = self._before_next(b"a" + address, number)
        if raw is None:
            return self.account(address)
        before = _decode_previous(raw)
        return None if before is None else _account(before)

    def storage_at(self, address: bytes, slot: int, number: int) -> int:
        """A storage slot as of block ``number`` (StatePruned if not kept)."""
        self._readable(number)
        raw = self._before_next(b"s" + address + slot.to_bytes(32, "big"), number)
        return self.slot(address, slot) if raw is None else int.from_bytes(raw, "big")

    def slot(self, address: bytes, slot: int) -> int:
        """A storage slot of the head state (0 if absent)."""
        raw = self._cf["storage"].get(address + slot.to_bytes(32, "big"))
        return 0 if raw is None else int.from_bytes(raw, "big")

    def unwind(self, number: int, meta: Mapping[bytes, bytes] | None = None) -> None:
        """Make block ``number`` the head again, atomically: the blocks after it, their
        receipts and tx index entries go, and the flat state goes back to block ``number``'s
        by applying their history in reverse (so that history must still be kept); the
        owner's ``meta`` entries are written with it."""
        head = self.head()
        if head is None or number > head[0]:
            raise StorageError(f"cannot unwind to block {number}: it is beyond the head")
        oldest = self.oldest_state()
        if number < oldest:
            raise StatePruned(number, oldest)
        h, cf = self._handles, self._cf
        batch = WriteBatch(raw_mode=True)
        # Newest block first, so each key ends with the value before the oldest block undone.
        accounts: dict[bytes, bytes] = {}
        slots: dict[bytes, bytes] = {}
        # From the state edits made since the head (recorded ahead of the next block).
        for n in range(head[0] + 1, number, -1):
            key = _number_key(n)
            for entry in _decode_keys(cf["changesets"].get(key) or _encode([])):
                value = cf["history"][entry]
                if entry[:1] == b"a":
                    accounts[entry[1:21]] = value
                else:
                    slots[entry[1:53]] = value
                batch.delete(entry, h["history"])
            batch.delete(key, h["changesets"])
            batch.delete(key, h["edits"])
            block_hash = cf["canonical"].get(key)
            if block_hash is None:  # the edits' own changeset: no block yet
                continue
            for receipt in self.receipts(block_hash) or ():
                batch.delete(receipt.tx_hash, h["txindex"])
            for family in ("headers", "blocks", "receipts"):
                batch.delete(block_hash, h[family])
            batch.delete(key, h["canonical"])
        for address, raw in accounts.items():
            if _decode_previous(raw) is None:
                batch.delete(address, h["state"])
            else:  # history keeps accounts in the state's own encoding
                batch.put(address, raw, h["state"])
        for key, raw in slots.items():
            if raw:
                batch.put(key, raw, h["storage"])
            else:
                batch.delete(key, h["storage"])
        batch.put(_HEAD, _encode((number, self.block_hash(number))), h["meta"])
        batch.delete(_EDITED, h["meta"])
        self._put_meta(batch, meta)
        self._db.write(batch)

    def meta(self, key: bytes) -> bytes | None:
        """A value the store's owner keeps beside the chain (e.g. the spec it was made with)."""
        if key == _HEAD:
            raise StorageError("the head is written only with its block")
        return self._cf["meta"].get(key)

    def set_meta(self, key: bytes, value: bytes) -> None:
        if key == _HEAD:
            raise StorageError("the head is written only with its block")
        self._cf["meta"][key] = value

    def block_hash(self, number: int) -> bytes | None:
        """The hash of the block at ``number``, or None past the head."""
        return self._cf["canonical"].get(_number_key(number))

    def block_hashes(self, first: int, last: int) -> list[bytes]:
        """The hashes of blocks ``first..last`` (inclusive), oldest first; StorageError if one
        is missing."""
        hashes = []
        for key, value in self._cf["canonical"].items(from_key=_number_key(first)):
            if len(hashes) > last - first:
                break
            if key != _number_key(first + len(hashes)):
                break
            hashes.append(value)
        if len(hashes) != max(0, last - first + 1):
            raise StorageError(f"blocks {first}..{last} are not all stored")
        return hashes

    def block(self, block_hash: bytes) -> BlockRecord | None:
        """The block with this hash, or None."""
        header = self._cf["headers"].get(block_hash)
        if header is None:
            return None
        number, parent_hash, encoded = _decode_header(header)
        body = self._cf["blocks"].get(block_hash)
        if body is None:
            raise StorageError(f"block {block_hash.hex()} has a header but no body")
        return BlockRecord(number, block_hash, parent_hash, encoded, *_decode_body(body))

    def receipts(self, block_hash: bytes) -> tuple[Receipt, ...] | None:
        """The receipts of the block with this hash, in transaction order, or None."""
        raw = self._cf["receipts"].get(block_hash)
        if raw is None:
            return None
        out = []
        for tx_hash, tx_type, status, used, cumulative, price, logs, created, output in (
            _decode_receipts(raw)
        ):
            entries = tuple(Log(*log) for log in logs)
            out.append(Receipt(
                tx_hash, tx_type, status, used, cumulative, int.from_bytes(price, "big"),
                entries, bloom_of(entries), created, output,
            ))
        return tuple(out)

    def tx_location(self, tx_hash: bytes) -> TxLocation | None:
        """Where the transaction with this hash was included, or None."""
        raw = self._cf["txindex"].get(tx_hash)
        return None if raw is None else _decode_location(raw)

    def account(self, address: bytes) -> Account | None:
        """The stored account at ``address`` (as of the head), or None."""
        raw = self._cf["state"].get(address)
        return None if raw is None else _account(raw)

    def load_state(self) -> dict[bytes, Account]:
        """Every stored account (the state at the head), to rebuild the engine's account trie."""
        return {address: _account(raw) for address, raw in self._cf["state"].items()}

    def contract_storage(self, address: bytes) -> list[tuple[int, int]]:
        """Every non-zero slot of the contract at ``address`` (head), in slot order."""
        out = []
        for key, value in self._cf["storage"].items(from_key=address):
            if key[:20] != address:
                break
            out.append((int.from_bytes(key[20:], "big"), int.from_bytes(value, "big")))
        return out

    def code(self, code_hash: bytes) -> bytes | None:
        """The code with this Keccak-256, or None."""
        return self._cf["code"].get(code_hash)


def _account(raw: bytes | tuple[int, bytes, bytes, bytes]) -> Account:
    fields = _decode_account(raw) if type(raw) is bytes else raw
    nonce, balance, code_hash, storage_root = fields
    return Account(nonce, int.from_bytes(balance, "big"), code_hash, storage_root)


def _account_value(account: Account | None) -> tuple[int, bytes, bytes, bytes] | None:
    """An account in the stored shape (balance as bytes: it can exceed 64 bits)."""
    if account is None:
        return None
    return (account.nonce, _big(account.balance), account.code_hash, account.storage_root)
