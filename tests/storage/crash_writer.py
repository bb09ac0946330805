"""Subprocess for the crash test: writes synthetic blocks forever, printing each number once
write_block has returned. Block n has 200 transactions, each receipt one log; account 0xaa..
has nonce n; contract 0xbb.. gets slot 0 set to n + 1 and a new slot 1000 + n holding n + 1
(see :func:`contract_slots`), and its account names the storage root of those slots."""

from __future__ import annotations

import sys

from alys_fast.state import Account, StateDiff, StorageDiff, keccak256, storage_root
from alys_fast.storage import BlockRecord, ChainStore
from alys_fast.validation.receipts import Log, Receipt, bloom_of

TXS = 200
CONTRACT = b"\xbb" * 20
CODE = b"\x60\x00\x60\x00\xfd"  # PUSH1 0 PUSH1 0 REVERT


def block_hash(n: int) -> bytes:
    return n.to_bytes(32, "big")


def contract_slots(n: int) -> dict[int, int]:
    """The contract's storage once block n is written."""
    return {0: n + 1, **{1000 + k: k + 1 for k in range(n + 1)}}


def make(n: int) -> tuple[BlockRecord, list[Receipt], StateDiff]:
    txs = tuple(n.to_bytes(8, "big") + i.to_bytes(4, "big") + b"\x01" * 100 for i in range(TXS))
    receipts = []
    for i in range(TXS):
        logs = (Log(CONTRACT, (n.to_bytes(32, "big"), i.to_bytes(32, "big")), b"\x02" * 40),)
        receipts.append(Receipt(
            n.to_bytes(28, "big") + i.to_bytes(4, "big"), 2, 1, 21_000, 21_000 * (i + 1), 7,
            logs, bloom_of(logs),
        ))
    parent = block_hash(n - 1) if n else bytes(32)
    accounts: dict[bytes, Account | None] = {
        b"\xaa" * 20: Account(n, 10**22 - n),
        CONTRACT: Account(1, 0, keccak256(CODE), storage_root(contract_slots(n))),
    }
    accounts.update({i.to_bytes(20, "big"): Account(0, n + 1) for i in range(1, 100)})
    slots = ((0, n + 1, n), (1000 + n, n + 1, 0))
    diff = StateDiff(
        accounts,
        storage=(StorageDiff(CONTRACT, n == 0, slots),),
        code=(CODE,) if n == 0 else (),
    )
    senders = tuple(bytes(20) for _ in txs)
    return BlockRecord(n, block_hash(n), parent, b"h" * 500, txs, senders), receipts, diff


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
