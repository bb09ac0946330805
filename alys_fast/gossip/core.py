"""Pure pieces of the gossip glue: transaction batches and the consensus <-> wire forms.

Transactions a node's clients submit are gossiped in batches (:class:`TxBatcher`): a batch
leaves when it holds :data:`BATCH_TXS` transactions or :data:`~alys_fast.network.wire.
MAX_BATCH_BYTES` bytes, or when the gossip actor's timer flushes what waits (every
``flush_seconds``), so one transaction waits at most that long and a busy node sends a few
large frames instead of many small ones. The network deduplicates batches (a batch's id is
its payload's hash) and the pool refuses transactions it already holds, without gossiping them
again (they came from a peer: the network's flood already carries them on).
"""

from __future__ import annotations

from collections.abc import Iterable

from alys_fast.consensus import Approval, Prevote, Signature
from alys_fast.network import wire

BATCH_TXS = 256


class TxBatcher:
    """Raw transactions waiting to be gossiped, cut into bounded batches."""

    def __init__(self, max_txs: int = BATCH_TXS, max_bytes: int = wire.MAX_BATCH_BYTES) -> None:
        if not 1 <= max_txs <= wire.MAX_BATCH_TXS:
            raise ValueError(f"a batch holds 1 to {wire.MAX_BATCH_TXS} transactions")
        self.max_txs = max_txs
        self.max_bytes = max_bytes
        self.waiting: list[bytes] = []
        self.size = 0

    def add(self, raws: Iterable[bytes]) -> list[wire.Transactions]:
        """Queue ``raws``; the batches that filled up (ready to send)."""
        full = []
        for raw in raws:
            if self.waiting and (len(self.waiting) == self.max_txs
                                 or self.size + len(raw) > self.max_bytes):
                full.append(self._cut())
            self.waiting.append(raw)
            self.size += len(raw)
        if len(self.waiting) == self.max_txs:
            full.append(self._cut())
        return full

    def flush(self) -> wire.Transactions | None:
        """What waits, as one batch (None: nothing)."""
        return self._cut() if self.waiting else None

    def _cut(self) -> wire.Transactions:
        batch = wire.Transactions(self.waiting)
        self.waiting, self.size = [], 0
        return batch


def approval_to_wire(approval: Approval) -> wire.Approval:
    return wire.Approval(approval.root, approval.height, approval.index,
                         approval.signature.to_bytes())


def prevote_to_wire(prevote: Prevote) -> wire.Prevote:
    return wire.Prevote(prevote.root, prevote.height, prevote.index, prevote.round,
                        prevote.signature.to_bytes())


def prevote_from_wire(message: wire.Prevote) -> Prevote:
    """The consensus form; :class:`~alys_fast.consensus.BlsError` as for an approval."""
    return Prevote(message.height, message.block_hash, message.authority_index, message.round,
                   Signature.from_bytes(message.signature))


def approval_from_wire(message: wire.Approval) -> Approval:
    """The consensus form; :class:`~alys_fast.consensus.BlsError` if the signature is not a
    point of G2's subgroup."""
    return Approval(message.height, message.block_hash, message.authority_index,
                    Signature.from_bytes(message.signature))
