"""What the chain announces, as topics of the actor runtime (:mod:`alys_fast.actors.topics`).

The chain actor publishes; the pool, the RPC, the consensus RPC (and, as they land, network,
sync and bridge) subscribe through ``Actor.subscribes``. The chain never names a subscriber,
and subscribers import these types from here, never the reverse. Delivery is loss-tolerant:
a subscriber that misses a :class:`NewHead` (mailbox full, down) catches up on the next one,
and one that restarts rebuilds from storage.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from alys_fast.actors import Topic
from alys_fast.chain.workflows import ImportedBlock
from alys_fast.consensus import Gossip, Penalize, RequestSync
from alys_fast.state import Account
from alys_fast.validation import Header
from alys_fast.validation.blocks import AuxPowHeader


class NewHead(msgspec.Struct, frozen=True):
    """The head moved: to an imported block (``imported``), or, with ``imported`` None, to a
    head read from storage (a chain actor's start, a dev chain's revert: re-read what you
    keep). ``finalized``: the number of the last finalized block (``finalized``/``safe``)."""

    header: Header
    imported: ImportedBlock | None = None
    finalized: int = 0


class Finalized(msgspec.Struct, frozen=True):
    """Finality advanced to block ``number`` (``block_hash``), by an AuxPoW proof."""

    number: int
    block_hash: bytes


class StateEdited(msgspec.Struct, frozen=True):
    """A dev chain edited the head state without a block: the accounts that changed (None:
    deleted) and the base fee of the next block."""

    changes: Mapping[bytes, Account | None]
    base_fee: int


class ToPeers(msgspec.Struct, frozen=True):
    """A consensus action for the federation's peers, from a chain that has them: ``Gossip``
    an approval, or a proposal whose ``block`` is the encoded block with its approvals so far;
    ``Penalize`` a peer; ``RequestSync`` from a peer."""

    action: Gossip | Penalize | RequestSync


class NewTransactions(msgspec.Struct, frozen=True):
    """Raw transactions the pool admitted from this node's clients (never ones from peers)."""

    raws: tuple[bytes, ...]


class PowQueued(msgspec.Struct, frozen=True):
    """An AuxPoW proof queued from this node's consensus RPC (never one from a peer)."""

    header: AuxPowHeader


NEW_HEAD = Topic("chain.new_head", NewHead)
FINALIZED = Topic("chain.finalized", Finalized)
STATE_EDITED = Topic("chain.state_edited", StateEdited)
TO_PEERS = Topic("chain.to_peers", ToPeers)
NEW_TRANSACTIONS = Topic("chain.new_transactions", NewTransactions)
POW_QUEUED = Topic("chain.pow_queued", PowQueued)
