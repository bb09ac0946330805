"""A simulated federation for the fork-choice tests: real :class:`Consensus` nodes and real BLS
signatures, a network whose deliveries, duplicates and drops the test chooses, and faulty
authorities that withhold everything or equivocate (two blocks per slot, approving anything).

Each honest node carries out its actions as the chain actor will: ``Validate`` is answered at
once (a block's ``valid`` flag stands for the chain's checks), ``ImportBlock`` appends to its
chain and calls ``on_imported``, ``Author`` builds and signs a block, ``RequestSync`` sends the
peer's certified blocks back as a later message (imported as the chain imports sync's blocks),
``SaveLock`` keeps the lock as the node's data dir would (:meth:`Federation.restart` starts a
node again from it).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass

from alys_fast.consensus import (
    Approval,
    Author,
    BlockRef,
    Consensus,
    Equivocation,
    Gossip,
    ImportBlock,
    Lock,
    Penalize,
    Prevote,
    Proposal,
    RequestSync,
    SaveLock,
    SecretKey,
    Validate,
    sign_approval,
    sign_prevote,
)
from alys_fast.consensus.approvals import AggregateApproval, verify

KEYS = [SecretKey.from_bytes((i + 101).to_bytes(32, "big")) for i in range(4)]
PUBLIC = [key.public_key() for key in KEYS]
GENESIS = BlockRef(root=b"\x00" * 32, parent_root=b"\x00" * 32, height=0, slot=0)
WITHHOLD, EQUIVOCATE = "withhold", "equivocate"


@dataclass(frozen=True)
class SimBlock:
    """The chain's block, as far as consensus cares: valid or not."""

    valid: bool = True


def child(parent: BlockRef, slot: int, tag: bytes = b"") -> BlockRef:
    root = hashlib.sha256(parent.root + slot.to_bytes(8, "big") + tag).digest()
    return BlockRef(root, parent.root, parent.height + 1, slot)


@dataclass
class Message:
    destination: int
    sender: int
    payload: Proposal | Approval | Prevote | tuple[str, int]  # ("sync", from height)


class Federation:
    def __init__(self, n: int, faulty: dict[int, str] | None = None) -> None:
        self.n = n
        self.faulty = faulty or {}
        self.honest = [i for i in range(n) if i not in self.faulty]
        self.nodes = {
            i: Consensus(PUBLIC[:n], GENESIS, secret_key=KEYS[i]) for i in self.honest
        }
        self.chains: dict[int, list[Proposal]] = {i: [] for i in self.honest}
        self.inflight: list[Message] = []
        self.slot = 0
        self.imported: dict[int, set[bytes]] = defaultdict(set)
        self.penalties: list[tuple[int, Penalize]] = []
        self.equivocations: list[Equivocation] = []
        self.saved_locks: dict[int, Lock] = {}
        self.faulty_rounds: dict[int, int] = defaultdict(int)

    # --- time and network -------------------------------------------------------------------

    def tick(self) -> None:
        self.slot += 1
        author = self.slot % self.n
        for i in self.honest:
            self._carry_out(i, self.nodes[i].on_slot(self.slot))
        if self.faulty.get(author) == EQUIVOCATE:
            self._equivocate(author)

    def deliver(self, position: int, *, keep: bool = False) -> None:
        """Deliver the message at ``position`` (``keep``: and leave a duplicate in flight)."""
        message = self.inflight[position] if keep else self.inflight.pop(position)
        i, payload = message.destination, message.payload
        if i in self.faulty:
            if self.faulty[i] == EQUIVOCATE and isinstance(payload, Proposal):
                self._approve_anything(i, payload)
            return
        node, peer = self.nodes[i], str(message.sender)
        if isinstance(payload, Proposal):
            self._carry_out(i, node.on_block(payload, peer))
        elif isinstance(payload, Approval):
            self._carry_out(i, node.on_approval(payload, peer))
        elif isinstance(payload, Prevote):
            self._carry_out(i, node.on_prevote(payload, peer))
        else:
            for proposal in self.chains.get(message.sender, [])[payload[1] - 1 :]:
                self._sync_import(i, proposal)

    def _sync_import(self, i: int, proposal: Proposal) -> None:
        """What the chain does with a block from sync: imports it when it extends the head and
        carries a certificate (the import workflow's full threshold), then tells fork choice."""
        head = self.nodes[i].head
        ref = proposal.ref
        if ref.height == head.height + 1 and ref.parent_root == head.root \
                and verify(proposal.approvals, ref.root, PUBLIC[: self.n]):
            self._carry_out(i, [ImportBlock(proposal)])

    def drain(self, order: list[int] | None = None) -> None:
        """Deliver everything in flight (new messages too), in ``order`` while it lasts."""
        order = list(order or [])
        for _ in range(10_000):
            if not self.inflight:
                return
            position = order.pop() % len(self.inflight) if order else 0
            self.deliver(position)
        raise AssertionError("the federation kept talking")

    def sync_all(self) -> None:
        """Every honest node asks every other for what it lacks (the sync actor's status poll)."""
        for i in self.honest:
            for j in self.honest:
                if i != j:
                    height = self.nodes[i].head.height + 1
                    self.inflight.append(Message(i, j, ("sync", height)))

    def restart(self, i: int) -> None:
        """Honest node ``i`` starts again from its chain and its saved lock (what it held in
        memory is lost; messages to it in flight still arrive)."""
        head = self.chains[i][-1].ref if self.chains[i] else GENESIS
        self.nodes[i] = Consensus(PUBLIC[: self.n], head, secret_key=KEYS[i],
                                  lock=self.saved_locks.get(i))

    # --- a node carrying out its actions ----------------------------------------------------

    def _send(self, sender: int, payload: Proposal | Approval | Prevote) -> None:
        for i in range(self.n):
            if i != sender:
                self.inflight.append(Message(i, sender, payload))

    def _carry_out(self, i: int, actions: list) -> None:
        node = self.nodes[i]
        for action in actions:
            if isinstance(action, Validate):
                ok = action.proposal.block.valid
                self._carry_out(i, node.on_validated(action.proposal.ref.root, ok, "bad state"))
            elif isinstance(action, ImportBlock):
                ref = action.proposal.ref
                self.chains[i].append(action.proposal)
                self.imported[ref.height].add(ref.root)
                assert len(self.imported[ref.height]) == 1, f"fork at height {ref.height}"
                self._carry_out(i, node.on_imported(ref))
            elif isinstance(action, Gossip):
                self._send(i, action.message)
            elif isinstance(action, SaveLock):
                self.saved_locks[i] = action.lock
            elif isinstance(action, Author):
                ref = child(action.parent, action.slot)
                self.saved_locks[i] = Lock(ref.height, ref.slot, ref.root)
                proposal = Proposal(SimBlock(), ref, node.sign(ref))
                self._carry_out(i, node.on_block(proposal, None))
                self._send(i, proposal)
            elif isinstance(action, RequestSync):
                # The peer has a block at action.height: sync asks for everything after our head.
                height = node.head.height + 1
                self.inflight.append(Message(i, int(action.peer), ("sync", height)))
            elif isinstance(action, Penalize):
                self.penalties.append((i, action))
            elif isinstance(action, Equivocation):
                self.equivocations.append(action)

    # --- faulty authorities -----------------------------------------------------------------

    def _equivocate(self, author: int) -> None:
        """Two blocks for this slot on the highest honest head, each to half the nodes."""
        parent = max((self.nodes[i].head for i in self.honest), key=lambda ref: ref.height)
        for tag in (b"a", b"b"):
            ref = child(parent, self.slot, tag)
            signed = AggregateApproval().add(author, KEYS[author].sign(ref.root))
            proposal = Proposal(SimBlock(), ref, signed)
            for i in range(self.n):
                if i != author and (i % 2 == 0) == (tag == b"a"):
                    self.inflight.append(Message(i, author, proposal))
            self._approve_anything(author, proposal)

    def _approve_anything(self, author: int, proposal: Proposal) -> None:
        """Approve and prevote (each time a later round) whatever arrives."""
        ref = proposal.ref
        self._send(author, sign_approval(KEYS[author], author, ref.height, ref.root))
        self.faulty_rounds[author] += 1
        round_ = self.faulty_rounds[author]
        self._send(author, sign_prevote(KEYS[author], author, ref.height, ref.root, round_))

    # --- what the tests look at -------------------------------------------------------------

    def chain_roots(self, i: int) -> list[bytes]:
        return [proposal.ref.root for proposal in self.chains[i]]
