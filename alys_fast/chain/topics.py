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
from alys_fast.engine.state import Account
from alys_fast.validation import Header


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


NEW_HEAD = Topic("chain.new_head", NewHead)
FINALIZED = Topic("chain.finalized", Finalized)
STATE_EDITED = Topic("chain.state_edited", StateEdited)
