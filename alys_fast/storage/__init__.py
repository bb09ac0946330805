"""Persistence: the chain's RocksDB store (one atomic write batch per block)."""

from alys_fast.storage.store import (
    COLUMN_FAMILIES,
    BlockRecord,
    ChainStore,
    StorageError,
    TxLocation,
)

__all__ = ["COLUMN_FAMILIES", "BlockRecord", "ChainStore", "StorageError", "TxLocation"]
