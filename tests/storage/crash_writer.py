"""Subprocess for the crash test: writes synthetic blocks forever, printing each number once
write_block has returned. Block n has 200 transactions; account 0xaa.. has nonce n."""

from __future__ import annotations

import sys

from alys_fast.engine.interface import Receipt
from alys_fast.engine.state import Account
from alys_fast.storage import BlockRecord, ChainStore

TXS = 200


def block_hash(n: int) -> bytes:
    return n.to_bytes(32, "big")


def make(n: int) -> tuple[BlockRecord, list[Receipt], dict[bytes, Account | None]]:
    txs = tuple(n.to_bytes(8, "big") + i.to_bytes(4, "big") + b"\x01" * 100 for i in range(TXS))
    receipts = [
        Receipt(n.to_bytes(28, "big") + i.to_bytes(4, "big"), 2, 1, 21_000, 21_000 * (i + 1), 7)
        for i in range(TXS)
    ]
    parent = block_hash(n - 1) if n else bytes(32)
    changes: dict[bytes, Account | None] = {b"\xaa" * 20: Account(n, 10**22 - n)}
    changes.update({i.to_bytes(20, "big"): Account(0, n + 1) for i in range(1, 100)})
    return BlockRecord(n, block_hash(n), parent, b"h" * 500, txs), receipts, changes


def main(path: str) -> None:
    store = ChainStore(path)
    head = store.head()
    n = 0 if head is None else head[0] + 1
    while True:
        store.write_block(*make(n))
        print(n, flush=True)
        n += 1


if __name__ == "__main__":
    main(sys.argv[1])
