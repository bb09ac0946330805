"""The storage actor: the only owner of the node's :class:`ChainStore`.

It opens the RocksDB directory when it starts (writing the genesis block into an empty one,
and refusing a directory that holds another chain), answers reads, and writes each block in
one atomic batch when the chain asks. A restarted instance reopens the same directory, so a
crash of this actor loses nothing that was written. Block writes (tens of milliseconds for a
full block) run on the actor's worker thread, so the event loop keeps serving meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec

from alys_fast.actors import Actor, Directory
from alys_fast.actors.worker import Worker
from alys_fast.paths import STORAGE
from alys_fast.state import Account, Loaded, Miss, StateDiff
from alys_fast.storage.store import (
    BlockRecord,
    ChainStore,
    StorageError,
    TxLocation,
)
from alys_fast.validation import Header, decode_header
from alys_fast.validation.receipts import Receipt

log = logging.getLogger(__name__)

_SPEC = b"spec"


class WriteBlock(msgspec.Struct, frozen=True):
    """Persist a block with its receipts and state diff and make it the head; ``meta``
    entries (the chain's finality) are written in the same batch."""

    block: BlockRecord
    receipts: Sequence[Receipt]
    changes: StateDiff
    meta: dict[bytes, bytes] = {}


class GetMeta(msgspec.Struct, frozen=True):
    """-> the chain's meta value at ``key`` (e.g. its finality), or None."""

    key: bytes


class GetHashes(msgspec.Struct, frozen=True):
    """-> the hashes of blocks ``first..last``, oldest first (StorageError if one is missing)."""

    first: int
    last: int


class WriteEdit(msgspec.Struct, frozen=True):
    """Persist a dev chain's state edit between blocks (see ``ChainStore.write_edit``)."""

    changes: StateDiff
    state_root: bytes


class GetEdits(msgspec.Struct, frozen=True):
    """-> the state edits made ahead of block ``number``: ([(address, account, code)],
    {(address, slot): value}), as they left the accounts (with their code) and slots."""

    number: int


class GetEditedRoot(msgspec.Struct, frozen=True):
    """-> the state root after the state edits since the head block, or None."""


class GetHead(msgspec.Struct, frozen=True):
    """-> (number, hash) of the head, or None."""


class GetHeadHeader(msgspec.Struct, frozen=True):
    """-> the head's decoded Header."""


class GetBlock(msgspec.Struct, frozen=True):
    """-> the BlockRecord with this number or hash (exactly one of them), or None."""

    number: int | None = None
    hash: bytes | None = None


class GetReceipts(msgspec.Struct, frozen=True):
    """-> the receipts of the block with this hash, or None."""

    block_hash: bytes


class GetTxLocation(msgspec.Struct, frozen=True):
    """-> where the transaction with this hash was included, or None."""

    tx_hash: bytes


class LoadState(msgspec.Struct, frozen=True):
    """-> every account at the head, {address: Account}."""


class Unwind(msgspec.Struct, frozen=True):
    """-> None, or the StorageError refusing it: block ``number`` becomes the head again, its
    state restored from history (a dev chain's ``evm_revert``), with ``meta`` entries."""

    number: int
    meta: dict[bytes, bytes] = {}


class Resolve(msgspec.Struct, frozen=True):
    """-> a :class:`Loaded` answering the engine's misses from the state at block ``at``
    (None: the head), or the StatePruned error if that state is not kept."""

    misses: Sequence[Miss]
    at: int | None = None


StorageMessage = WriteBlock | GetHead | GetHeadHeader | GetBlock | GetReceipts | GetTxLocation
StorageMessage |= LoadState | Resolve | Unwind | WriteEdit | GetEditedRoot | GetEdits
StorageMessage |= GetMeta | GetHashes


@dataclass(frozen=True)
class StoreGenesis:
    """What makes a data directory this chain's: block 0 (its header and state, written into
    an empty store) and the chain's rules as stored bytes (compared with those a store was made
    with). The node derives it from the chain spec; the store only compares and writes it."""

    header: Header
    state: StateDiff
    rules: bytes  # the chain spec, JSON-encoded


@dataclass(frozen=True)
class StorageSettings:
    """What the storage actor is built with: its directory (the store is ``data_dir/chain``),
    the genesis it checks the store against, and how it writes (``sync_writes``: fsync each
    batch; ``archive``: keep every block's state, not only the last 128 blocks')."""

    data_dir: Path
    genesis: StoreGenesis
    sync_writes: bool = False
    archive: bool = False


def open_store(settings: StorageSettings) -> ChainStore:
    """Open the node's store, writing genesis into an empty one.

    StorageError if the directory holds another chain (its block 0 is not this spec's
    genesis) or was made with other consensus rules (e.g. another slot length, which genesis
    does not commit to but which decides who authors every later slot).
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = ChainStore(settings.data_dir / "chain", sync=settings.sync_writes,
                       archive=settings.archive)
    try:
        _check_chain(store, settings)
    except StorageError:
        store.close()
        raise
    return store


def _check_chain(store: ChainStore, settings: StorageSettings) -> None:
    genesis = settings.genesis.header
    spec = settings.genesis.rules
    data_dir = settings.data_dir
    stored = store.block_hash(0)
    if stored is None:
        record = BlockRecord(0, genesis.hash, genesis.parent_hash, genesis.encode(), ())
        store.write_block(record, (), settings.genesis.state)
        log.info("wrote genesis 0x%s to %s", genesis.hash.hex(), data_dir)
    elif stored != genesis.hash:
        raise StorageError(
            f"{data_dir} holds another chain: its genesis is 0x{stored.hex()}, "
            f"the spec's is 0x{genesis.hash.hex()}"
        )
    known = store.meta(_SPEC)
    if known is None:
        store.set_meta(_SPEC, spec)
    elif known != spec:
        before = msgspec.json.decode(known)
        after = msgspec.json.decode(spec)
        changed = ", ".join(
            f"{key} {before.get(key)!r} -> {after.get(key)!r}"
            for key in sorted(set(before) | set(after)) if before.get(key) != after.get(key)
        )
        raise StorageError(
            f"{data_dir} was made with other chain rules ({changed}); use the same spec "
            f"(e.g. the same --block-time) or another data dir"
        )


class StorageActor(Actor):
    """Owns the RocksDB store at ``<data dir>/chain``; see the module docstring."""

    def __init__(self, settings: StorageSettings) -> None:
        self.settings = settings
        self.store: ChainStore | None = None
        self.worker = Worker("storage")

    def started(self) -> None:
        self.store = open_store(self.settings)

    async def receive(self, message: StorageMessage) -> object:
        store = self.store
        assert store is not None
        if type(message) is WriteBlock:
            # A failed write is the writer's answer, not this actor's crash: the batch was not
            # applied, the database is fine, and the chain's workflow decides about retrying.
            try:
                await self.worker.run(
                    store.write_block, message.block, message.receipts, message.changes,
                    message.meta,
                )
            except Exception as exc:
                return exc
            return None
        if type(message) is WriteEdit:
            try:
                await self.worker.run(store.write_edit, message.changes, message.state_root)
            except Exception as exc:  # as a block write's: the editor's answer
                return exc
            return None
        if type(message) is GetEditedRoot:
            return store.edited_root()
        if type(message) is GetMeta:
            return store.meta(message.key)
        if type(message) is GetHashes:
            try:
                return await self.worker.run(store.block_hashes, message.first, message.last)
            except StorageError as exc:
                return exc
        if type(message) is GetEdits:
            accounts, slots = store.edits(message.number)
            return [(a, x, store.code(x.code_hash) or b"") for a, x in accounts.items()], slots
        if type(message) is GetBlock:
            block_hash = message.hash
            if block_hash is None:
                assert message.number is not None
                block_hash = store.block_hash(message.number)
                if block_hash is None:
                    return None
            return store.block(block_hash)
        if type(message) is GetReceipts:
            return store.receipts(message.block_hash)
        if type(message) is GetTxLocation:
            return store.tx_location(message.tx_hash)
        if type(message) is GetHead:
            return store.head()
        if type(message) is GetHeadHeader:
            return _head_header(store)
        if type(message) is Resolve:
            try:
                return await self.worker.run(resolve, store, message.misses, message.at)
            except StorageError as exc:  # e.g. StatePruned: the asker's answer, not a crash
                return exc
        if type(message) is LoadState:
            return await self.worker.run(store.load_state)
        if type(message) is Unwind:
            try:
                return await self.worker.run(store.unwind, message.number, message.meta)
            except StorageError as exc:
                return exc
        raise TypeError(f"storage: unexpected message {message!r}")

    def pre_restart(self, error: BaseException) -> None:
        self._close()

    def stopped(self) -> None:
        self._close()

    def _close(self) -> None:
        self.worker.close(wait=True)  # a block write in flight finishes before the DB closes
        # RocksDB locks its directory: the next instance can only open it once this one closed.
        if self.store is not None:
            self.store.close()
            self.store = None


def resolve(store: ChainStore, misses: Sequence[Miss], at: int | None = None) -> Loaded:
    """Answer the engine's misses at the head, or at block ``at`` (see ``alys_fast.state``)."""
    loaded = Loaded()
    for miss in misses:
        kind = miss[0]
        if kind == "account":
            account = store.account(miss[1]) if at is None else store.account_at(miss[1], at)
            loaded.accounts.append((miss[1], account))
        elif kind == "storage" and miss[2] is None and at is None:
            loaded.storage.append((miss[1], store.contract_storage(miss[1]), True))
        elif kind == "storage" and miss[2] is not None:
            slot = int.from_bytes(miss[2], "big")
            value = store.slot(miss[1], slot) if at is None else store.storage_at(miss[1], slot, at)
            loaded.storage.append((miss[1], [(slot, value)], False))
        elif kind == "code":
            code = store.code(miss[1])
            if code is None:
                raise StorageError(f"code 0x{miss[1].hex()} is referenced but not stored")
            loaded.code.append(code)
        elif kind == "blockhash":
            block_hash = store.block_hash(miss[1])
            if block_hash is None:
                raise StorageError(f"block {miss[1]} is not stored")
            loaded.block_hashes.append((miss[1], block_hash))
        else:
            raise StorageError(f"cannot answer {miss!r} at block {at}")
    return loaded


def _head_header(store: ChainStore) -> Header:
    head = store.head()
    if head is None:
        raise StorageError("the store has no head")
    block = store.block(head[1])
    if block is None:
        raise StorageError(f"the head 0x{head[1].hex()} has no stored block")
    return decode_header(block.header)


class StoreClient:
    """The :class:`~alys_fast.chain.workflows.BlockStore` the chain's workflows write through."""

    def __init__(self, directory: Directory, timeout: float = 30.0) -> None:
        self.directory = directory
        self.timeout = timeout

    async def head(self) -> tuple[int, bytes] | None:
        return await self.directory.ref(STORAGE).ask(GetHead(), self.timeout)

    async def write_block(
        self, block: BlockRecord, receipts: Sequence[Receipt], diff: StateDiff,
        meta: dict[bytes, bytes] | None = None,
    ) -> None:
        failure = await self.directory.ref(STORAGE).ask(
            WriteBlock(block, receipts, diff, meta or {}), self.timeout
        )
        if failure is not None:
            raise failure

    async def meta(self, key: bytes) -> bytes | None:
        return await self.directory.ref(STORAGE).ask(GetMeta(key), self.timeout)

    async def block_hashes(self, first: int, last: int) -> list[bytes]:
        """The hashes of blocks ``first..last``, oldest first."""
        hashes = await self.directory.ref(STORAGE).ask(GetHashes(first, last), self.timeout)
        if isinstance(hashes, StorageError):
            raise hashes
        return hashes

    async def write_edit(self, diff: StateDiff, state_root: bytes) -> None:
        failure = await self.directory.ref(STORAGE).ask(WriteEdit(diff, state_root), self.timeout)
        if failure is not None:
            raise failure

    async def edits(self, number: int
                    ) -> tuple[list[tuple[bytes, Account, bytes]], dict[tuple[bytes, int], int]]:
        return await self.directory.ref(STORAGE).ask(GetEdits(number), self.timeout)

    async def edited_root(self) -> bytes | None:
        return await self.directory.ref(STORAGE).ask(GetEditedRoot(), self.timeout)

    async def head_header(self) -> Header:
        return await self.directory.ref(STORAGE).ask(GetHeadHeader(), self.timeout)

    async def block(self, *, number: int | None = None, hash: bytes | None = None
                    ) -> BlockRecord | None:
        return await self.directory.ref(STORAGE).ask(GetBlock(number, hash), self.timeout)

    async def receipts(self, block_hash: bytes) -> tuple[Receipt, ...] | None:
        return await self.directory.ref(STORAGE).ask(GetReceipts(block_hash), self.timeout)

    async def tx_location(self, tx_hash: bytes) -> TxLocation | None:
        return await self.directory.ref(STORAGE).ask(GetTxLocation(tx_hash), self.timeout)

    async def load_state(self) -> dict[bytes, Account]:
        return await self.directory.ref(STORAGE).ask(LoadState(), self.timeout)

    async def unwind(self, number: int, meta: dict[bytes, bytes] | None = None) -> None:
        """Make block ``number`` the head again (StorageError if its history is gone), with
        ``meta`` entries written in the same batch."""
        result = await self.directory.ref(STORAGE).ask(Unwind(number, meta or {}), self.timeout)
        if isinstance(result, StorageError):
            raise result

    async def resolve(self, misses: Sequence[Miss], at: int | None = None) -> Loaded:
        """Load what the engine missed, at the head or at block ``at`` (StatePruned if that
        block's state is not kept, StorageError if it is beyond the head)."""
        loaded = await self.directory.ref(STORAGE).ask(Resolve(misses, at), self.timeout)
        if isinstance(loaded, StorageError):
            raise loaded
        return loaded
