"""Fork choice and approvals as a pure state machine: messages in, actions out.

:class:`Consensus` is one node's view of the federation. The chain actor feeds it what happens
(a slot starts, a block, an approval or a prevote arrives, the chain validated or imported a
block) and carries out the actions it returns (:data:`Action`); it does no I/O, keeps no clock
and never blocks, so every rule below is tested without actors or sockets.

Terms: ``n`` authorities, ``q = (2n + 2) // 3`` approvals make a block *certified*, at most
``f = ceil(n/3) - 1`` of them may be faulty. The *head* is the last imported block; the *open
height* is head + 1, the only height where blocks are approved. A block's proposer signs its
root when it publishes it: that signature is its first approval.

Rules, one per case:

1. Which block a block is: blocks are compared by root. A proposal is refused when it is at or
   below the head's height ("old block", no penalty: gossip arrives late), when its slot is not
   after the head's, when its aggregate lacks the slot author's bit (``slot % n``), or when the
   aggregate's signature does not verify (the sending peer is penalized for the last three). A
   proposal above the open height is kept in a bounded buffer and sync is requested from its
   sender; the buffer is replayed when the head reaches its parent.
2. Validity: a proposal at the open height on the head is returned as ``Validate``; the chain
   checks it against its parent (ALYS-PROTOCOL §1.6, execution included) and answers
   :meth:`Consensus.on_validated`. An invalid block penalizes its sender and is never approved.
3. Which block an honest authority approves. An *approval* is a share of a certificate, so it is
   a commitment: at the open height an authority approves at most one block at a time, its
   *lock*, and only a block of a higher slot than its last approval. Its own proposal is an
   approval (proposing locks it). An authority without a live lock *prefers* the valid block
   with the most approvals seen (ties: the higher slot) among those above its last approved
   slot, and approves it only when its *supporters* reach ``q``: the authorities seen
   approving it or whose latest :class:`Prevote` is for it, this node included. Until then it
   gossips a prevote for it — a signed preference, not a commitment: a later prevote (a higher
   ``round``) replaces it, so a split of preferences costs nothing. A node's rounds at a
   height increase, and start at ``256 * slot`` of the latest slot it saw, so a restarted
   node's prevotes still replace those it sent before (unless it changed its preference over
   256 times in a slot). An authority proposes only when it has no live lock and prefers no
   block (rule 4); with a lock its slot re-gossips the locked block, with a preference the
   preferred one.
   With ``n <= 3`` the first validator completes ``q`` with the author's approval and its own,
   so it approves at once and sends no prevote: the happy path of 1-3 authorities is unchanged.
4. Liveness (why rule 3 gathers preferences first): approvals never split among honest
   authorities by the order blocks arrived in. Two blocks proposed at one height (a 2-2 split
   of 4: authors A and C, validators B and D preferring each its first) are only preferred:
   each validator's preference moves to the higher slot (ties in approvals), its supporters
   reach ``q`` and both validators approve it. With approvals given at once (the earlier rule)
   that split was two approvals each, neither block could be proved dead (below) and the
   height stalled. What remains: blocks proposed by more than ``n + 1 - q`` authorities at
   one height (3 of 4), each unseen by the others when proposed (a partition across that
   many slots), leave every block with too few possible approvers (its author and the
   unlocked authorities); with ``f >= 1`` none can be proved dead, and no rule can approve
   safely, because every approval is a certificate share and proposing is approving.
   Lock release (as Alys, a higher slot replaces the candidate, but only on proof): a lock
   ``X`` is *dead* when it can no longer be certified, i.e. ``n - |O| + f < q`` where ``O``
   is the authorities seen approving a block of a higher slot than ``X``'s that are not seen
   approving ``X``. An honest authority never approves a lower slot after a higher one, so
   only faulty members of ``O`` could still approve ``X``. A dead lock is released
   (``stats["lock_releases"]``) and the node prefers and approves by rule 3 among the blocks
   above it. Approvals gathered for a replaced block are kept: a block that reaches ``q`` is
   imported whatever this node approved. Locks survive a restart: every approval is first
   returned as :class:`SaveLock` (the driver writes it durably before it sends anything after
   it), and :class:`Consensus` takes the saved lock back (``lock=``).
5. Approvals and prevotes: each is verified when it arrives (a bad one penalizes its sender, an
   authority index out of range too); duplicates (for prevotes: a round not above the
   sender's latest) are ignored before verifying, late ones (at or below the head) counted.
   Prevotes are kept per height, one per authority (its latest), for the next
   :data:`MAX_HEIGHTS_AHEAD` heights. An approval for a block not seen yet is queued: at most
   :data:`MAX_EARLY_PER_HEIGHT` per height and only for the next :data:`MAX_HEIGHTS_AHEAD`
   heights (beyond: dropped, counted). Both are dropped when their height is imported.
6. Equivocation: a second, different block for a slot already seen at the open height is
   refused, counted (``stats["equivocations"]``) and both blocks are kept in :attr:`evidence`;
   the relaying peer is not penalized (an honest peer may have seen the other block first).
   A block of another slot than those seen at the open height is a *rival*
   (``stats["rival_blocks"]``): not a fault, what rules 3-4 resolve.
7. Import: a valid block at the open height whose verified approvals reach ``q`` is returned as
   ``ImportBlock`` with that aggregate (its certificate), once. The chain imports it through
   ``BlockImportWorkflow`` and calls :meth:`Consensus.on_imported`, which moves the head,
   clears the open height and replays buffered proposals. Blocks from sync are imported by
   the chain alone, through the same workflow with the full threshold as their certificate
   check, and each is then told here by :meth:`Consensus.on_imported` too.
8. Syncing: while :attr:`syncing` a node neither authors nor approves; gossiped approvals and
   prevotes are dropped (counted), gossiped blocks are held (the last
   :data:`HELD_WHILE_SYNCING`) and taken as if just received when syncing ends — an author
   re-gossips its lock unchanged, which the network deduplicates, so a block dropped here would
   never come back and a quorum could wait for an approval that never comes; only certified
   sync blocks are imported.

Invariants (``tests/consensus/test_forkchoice_properties.py``): two honest nodes never import
different blocks at one height while at most ``f`` authorities are faulty. Proof: two quorums
of ``q`` share at least ``2q - n >= f + 1`` authorities, so an honest one approved both blocks;
its approvals at a height are in increasing slot order and it approved the later one only once
the earlier was dead, which the first such release proves: the honest members of its ``O``
had approved no ``X`` (else they were locked on it and could not have approved higher without
an earlier release), so ``X`` can gather at most ``n - |O| + f < q`` approvals. Prevotes play
no part in this: they only decide *when* an honest node approves, never *whether* rule 3 lets
it. With every honest message delivered, honest nodes end with the same chain, and a split of
preferences (not of approvals) resolves at the next block that gathers ``q`` supporters.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from alys_fast.consensus.approvals import (
    AggregateApproval,
    Approval,
    Prevote,
    sign_approval,
    sign_prevote,
    threshold,
)
from alys_fast.consensus.bls import PublicKey, SecretKey

__all__ = [
    "MAX_BLOCKS_PER_HEIGHT",
    "MAX_EARLY_PER_HEIGHT",
    "MAX_HEIGHTS_AHEAD",
    "Action",
    "Author",
    "BlockRef",
    "Consensus",
    "Equivocation",
    "Gossip",
    "ImportBlock",
    "Lock",
    "Penalize",
    "Proposal",
    "RequestSync",
    "SaveLock",
    "Validate",
]

MAX_BLOCKS_PER_HEIGHT = 16
MAX_EARLY_PER_HEIGHT = 64
MAX_HEIGHTS_AHEAD = 16
HELD_WHILE_SYNCING = 16  # blocks gossiped while syncing, taken when it ends (rule 8)
ROUNDS_PER_SLOT = 256  # a prevote's round starts at this many times the slot (rule 3)

Peer = str | None  # None: this node


@dataclass(frozen=True, slots=True)
class BlockRef:
    """What fork choice needs of a block: its root (identity and signed message), parent's
    root, height and Aura slot."""

    root: bytes
    parent_root: bytes
    height: int
    slot: int


@dataclass(frozen=True, slots=True)
class Proposal:
    """A block as gossiped: the chain's block (opaque here), its ref and its approvals."""

    block: Any
    ref: BlockRef
    approvals: AggregateApproval


@dataclass(frozen=True, slots=True)
class Validate:
    """Check ``proposal`` against its parent (the head), then call ``on_validated``."""

    proposal: Proposal


@dataclass(frozen=True, slots=True)
class ImportBlock:
    """Import ``proposal`` (its approvals are its certificate), then call ``on_imported``."""

    proposal: Proposal


@dataclass(frozen=True, slots=True)
class Gossip:
    """Send ``message`` to the federation."""

    message: Approval | Prevote | Proposal


@dataclass(frozen=True, slots=True)
class Lock:
    """What an authority approved last: the block ``root`` of ``slot`` at ``height``."""

    height: int
    slot: int
    root: bytes


@dataclass(frozen=True, slots=True)
class SaveLock:
    """Store ``lock`` durably before carrying out the next action (an approval of it)."""

    lock: Lock


@dataclass(frozen=True, slots=True)
class Author:
    """Build, sign (:meth:`Consensus.sign`) and hand back (``on_block``) the block of ``slot``
    on ``parent``."""

    slot: int
    parent: BlockRef


@dataclass(frozen=True, slots=True)
class Penalize:
    """Charge ``peer`` for a message that breaks a rule; ``reason`` is for a person."""

    peer: str
    reason: str


@dataclass(frozen=True, slots=True)
class RequestSync:
    """``peer`` sent a block at ``height``, above the open height: sync from it up to there
    (the blocks after the head first)."""

    peer: str
    height: int


@dataclass(frozen=True, slots=True)
class Equivocation:
    """Authority ``author`` signed two blocks for one slot (kept as evidence)."""

    author: int
    first: BlockRef
    second: BlockRef


Action = (
    Validate | ImportBlock | Gossip | Author | Penalize | RequestSync | Equivocation | SaveLock
)


@dataclass(slots=True)
class _Entry:
    """A block at the open height: its proposal, sender, verdict (None: being validated) and
    the verified approvals gathered so far."""

    proposal: Proposal
    peer: Peer
    valid: bool | None = None
    approvals: AggregateApproval = field(default_factory=AggregateApproval)


class Consensus:
    """One node's fork choice (see the module docstring for the rules)."""

    def __init__(
        self,
        authorities: Sequence[PublicKey],
        head: BlockRef,
        *,
        secret_key: SecretKey | None = None,
        syncing: bool = False,
        lock: Lock | None = None,
    ) -> None:
        """``lock``: the last :class:`SaveLock` this authority stored (it holds while the
        head is below its height)."""
        self.authorities = tuple(authorities)
        n = len(self.authorities)
        self.quorum = threshold(n)
        self.faulty = (n + 2) // 3 - 1
        self.secret_key = secret_key
        self.index: int | None = None
        if secret_key is not None:
            me = secret_key.public_key()
            if me not in self.authorities:
                raise ValueError(f"{me} is not an authority")
            self.index = self.authorities.index(me)
        self.head = head
        self.syncing = syncing
        self.evidence: list[Equivocation] = []
        self.stats: Counter[str] = Counter()
        self._early: dict[int, dict[tuple[bytes, int], Approval]] = {}
        self._future: dict[int, dict[bytes, tuple[Proposal, str]]] = {}
        self._held: dict[bytes, tuple[Proposal, Peer]] = {}  # blocks gossiped while syncing
        # Each authority's latest prevote (round, root), per height (rule 5).
        self._prevotes: dict[int, dict[int, tuple[int, bytes]]] = {}
        self._saved = lock
        self._slot = head.slot  # the latest slot seen (on_slot)
        self._open()

    def _open(self) -> None:
        """Start the height after the head: no blocks; no lock unless one was saved for it."""
        self._blocks: dict[bytes, _Entry] = {}
        self._by_slot: dict[int, BlockRef] = {}
        self._lock: bytes | None = None
        self._approved_slot = -1
        self._importing: bytes | None = None
        self._round = 0  # this node's latest prevote round at this height
        self._prevoted: bytes | None = None
        saved = self._saved
        if saved is not None and saved.height == self.head.height + 1:
            self._lock, self._approved_slot = saved.root, saved.slot

    @property
    def lock(self) -> Lock | None:
        """What this node approved last at the open height (None: nothing)."""
        if self._approved_slot < 0 or self._lock is None:
            return None
        return Lock(self.head.height + 1, self._approved_slot, self._lock)

    # --- inputs -------------------------------------------------------------------------------

    def sign(self, ref: BlockRef) -> AggregateApproval:
        """The proposer's aggregate for a block this node authored (its own approval)."""
        assert self.secret_key is not None and self.index is not None
        return AggregateApproval().add(self.index, self.secret_key.sign(ref.root))

    def on_slot(self, slot: int) -> list[Action]:
        """A slot began: author it if it is ours and no live lock binds us (rule 3)."""
        self._slot = max(self._slot, slot)
        index = self.index
        if index is None or self.syncing or slot <= self.head.slot:
            return []
        if slot % len(self.authorities) != index:
            return []
        if self._live_lock():
            lock = self._blocks.get(self._lock) if self._lock is not None else None
            return [] if lock is None else [Gossip(_current(lock))]
        if slot <= self._approved_slot:
            return []
        preferred = self._preferred()
        if preferred is not None:
            return [Gossip(_current(preferred))]
        return [Author(slot, self.head)]

    def on_block(self, proposal: Proposal, peer: Peer) -> list[Action]:
        """A proposal arrived from ``peer`` (None: authored here); see rules 1, 2 and 6."""
        if self.syncing:
            self.stats["held_while_syncing"] += 1
            held = self._held
            held[proposal.ref.root] = (proposal, peer)
            while len(held) > HELD_WHILE_SYNCING:
                del held[next(iter(held))]
            return []
        ref = proposal.ref
        if ref.height <= self.head.height:
            self.stats["old_blocks"] += 1
            return []
        refusal = self._check_proposal(proposal)
        if refusal is not None:
            return self._penalize(peer, refusal)
        if ref.height > self.head.height + 1:
            return self._buffer(proposal, peer)
        if ref.parent_root != self.head.root:
            return self._penalize(peer, f"block {ref.height} is not on block {self.head.height}")
        entry = self._blocks.get(ref.root)
        if entry is not None:
            return self._merge(entry, proposal.approvals)
        first = self._by_slot.get(ref.slot)
        if first is None and self._by_slot:
            self.stats["rival_blocks"] += 1
        if first is not None:
            evidence = Equivocation(ref.slot % len(self.authorities), first, ref)
            self.evidence.append(evidence)
            self.stats["equivocations"] += 1
            return [evidence]
        if len(self._blocks) >= MAX_BLOCKS_PER_HEIGHT:
            self.stats["blocks_dropped"] += 1
            return []
        self._by_slot[ref.slot] = ref
        self._blocks[ref.root] = _Entry(proposal, peer, approvals=proposal.approvals)
        return [Validate(proposal)]

    def on_validated(self, root: bytes, valid: bool, reason: str = "") -> list[Action]:
        """The chain's verdict on a block returned as ``Validate`` (rule 2)."""
        entry = self._blocks.get(root)
        if entry is None or entry.valid is not None:
            return []  # imported past meanwhile, or answered twice
        if not valid:
            entry.valid = False
            self.stats["invalid_blocks"] += 1
            return self._penalize(entry.peer, f"invalid block: {reason}")
        entry.valid = True
        height = entry.proposal.ref.height
        for (approved_root, index), approval in list(self._early.get(height, {}).items()):
            if approved_root == root:
                entry.approvals = entry.approvals.add(index, approval.signature)
                del self._early[height][(approved_root, index)]
        return self._advance()

    def on_approval(self, approval: Approval, peer: Peer) -> list[Action]:
        """An individual approval arrived (rule 5)."""
        if self.syncing:
            self.stats["ignored_while_syncing"] += 1
            return []
        if approval.height <= self.head.height:
            self.stats["late_approvals"] += 1
            return []
        entry = self._blocks.get(approval.root) if approval.height == self.head.height + 1 else None
        queue = self._early.get(approval.height, {})
        if (entry is not None and entry.approvals.has(approval.index)) or (
            (approval.root, approval.index) in queue
        ):
            self.stats["duplicate_approvals"] += 1
            return []
        if not approval.valid(self.authorities):
            return self._penalize(peer, f"approval by authority {approval.index} does not verify")
        if entry is None:
            return self._queue(approval)
        entry.approvals = entry.approvals.add(approval.index, approval.signature)
        return self._advance()

    def on_prevote(self, prevote: Prevote, peer: Peer) -> list[Action]:
        """A prevote arrived (rules 3 and 5)."""
        if self.syncing:
            self.stats["ignored_while_syncing"] += 1
            return []
        height = prevote.height
        if height <= self.head.height:
            self.stats["late_prevotes"] += 1
            return []
        if height > self.head.height + MAX_HEIGHTS_AHEAD:
            self.stats["early_prevotes_dropped"] += 1
            return []
        latest = self._prevotes.get(height, {}).get(prevote.index)
        if latest is not None and latest[0] >= prevote.round:
            self.stats["duplicate_prevotes"] += 1
            return []
        if not prevote.valid(self.authorities):
            return self._penalize(peer, f"prevote by authority {prevote.index} does not verify")
        self._prevotes.setdefault(height, {})[prevote.index] = (prevote.round, prevote.root)
        return self._advance() if height == self.head.height + 1 else []

    def on_imported(self, ref: BlockRef) -> list[Action]:
        """The chain imported ``ref``: it is the head; replay what waited for it (rule 7)."""
        self.head = ref
        self._open()
        for queued in (self._early, self._prevotes):
            for height in [h for h in queued if h <= ref.height]:
                del queued[height]
        actions: list[Action] = []
        for height in sorted(h for h in self._future if h <= ref.height + 1):
            waiting = self._future.pop(height)
            if height == ref.height + 1:
                for proposal, peer in waiting.values():
                    actions += self.on_block(proposal, peer)
        return actions

    def set_syncing(self, syncing: bool) -> list[Action]:
        """Sync began or ended (rule 8); when it ends, the blocks held meanwhile are taken."""
        self.syncing = syncing
        if syncing:
            return []
        held = sorted(self._held.values(), key=lambda item: (item[0].ref.height, item[0].ref.slot))
        self._held.clear()
        actions: list[Action] = []
        for proposal, peer in held:
            actions.extend(self.on_block(proposal, peer))
        return actions

    # --- rules ---------------------------------------------------------------------------------

    def _check_proposal(self, proposal: Proposal) -> str | None:
        """Why ``proposal`` is not signed by its slot's author, or None."""
        ref = proposal.ref
        if ref.slot <= self.head.slot:
            return f"block {ref.height} has slot {ref.slot}, not after the head's {self.head.slot}"
        author = ref.slot % len(self.authorities)
        if not proposal.approvals.has(author):
            return f"block {ref.height} is not signed by slot {ref.slot}'s author {author}"
        if not proposal.approvals.signature_valid(ref.root, self.authorities):
            return f"the approvals of block {ref.height} do not verify"
        return None

    def _merge(self, entry: _Entry, approvals: AggregateApproval) -> list[Action]:
        """A known block again: keep the larger of two verified aggregates (aggregates cannot
        be split into their shares, so a partial overlap keeps ours)."""
        if approvals.bits & ~entry.approvals.bits and not entry.approvals.bits & ~approvals.bits:
            entry.approvals = approvals
            return self._advance()
        self.stats["duplicate_blocks"] += 1
        return []

    def _dead(self, slot: int, approvals: int) -> bool:
        """Whether a block of ``slot`` approved by ``approvals`` (bits) can no longer be
        certified (rule 4)."""
        later = 0
        for other in self._blocks.values():
            if other.proposal.ref.slot > slot:
                later |= other.approvals.bits
        elsewhere = (later & ~approvals).bit_count()
        return len(self.authorities) - elsewhere + self.faulty < self.quorum

    def _live_lock(self) -> bool:
        """Whether this node holds a lock that is not dead (a saved lock whose block has not
        come back yet counts only this node's approval)."""
        if self._lock is None:
            return False
        entry = self._blocks.get(self._lock)
        assert self.index is not None
        approvals = entry.approvals.bits if entry is not None else 1 << self.index
        return not self._dead(self._approved_slot, approvals)

    def _preferred(self) -> _Entry | None:
        """The valid block above the last approved slot with the most approvals, ties to the
        higher slot (rule 3); None if there is none."""
        above = self._approved_slot
        choices = [e for e in self._blocks.values() if e.valid and e.proposal.ref.slot > above]
        if not choices:
            return None
        return max(choices, key=lambda e: (e.approvals.count, e.proposal.ref.slot))

    def _supporters(self, entry: _Entry) -> int:
        """Bits of the authorities seen approving ``entry`` or whose latest prevote is for it."""
        root = entry.proposal.ref.root
        bits = entry.approvals.bits
        for index, (_, prevoted) in self._prevotes.get(entry.proposal.ref.height, {}).items():
            if prevoted == root:
                bits |= 1 << index
        return bits

    def _advance(self) -> list[Action]:
        """Approve what rule 3 allows, then import what rule 7 allows."""
        actions: list[Action] = []
        if self.index is not None:
            actions += self._approve(self.index)
        for entry in self._blocks.values():
            if entry.valid and entry.approvals.count >= self.quorum and self._importing is None:
                self._importing = entry.proposal.ref.root
                actions.append(ImportBlock(replace(entry.proposal, approvals=entry.approvals)))
        return actions

    def _approve(self, index: int) -> list[Action]:
        """Approve or prevote what rule 3 allows."""
        for entry in self._blocks.values():  # a block carrying our signature is one we approved
            slot = entry.proposal.ref.slot
            if entry.valid and entry.approvals.has(index) and slot > self._approved_slot:
                self._lock, self._approved_slot = entry.proposal.ref.root, slot
        if self.syncing:
            return []
        if self._lock is not None:
            if self._live_lock():
                return []
            self._lock = None
            self.stats["lock_releases"] += 1
        chosen = self._preferred()
        if chosen is None:
            return []
        ref = chosen.proposal.ref
        assert self.secret_key is not None
        if (self._supporters(chosen) | 1 << index).bit_count() >= self.quorum:
            approval = sign_approval(self.secret_key, index, ref.height, ref.root)
            chosen.approvals = chosen.approvals.add(index, approval.signature)
            self._lock, self._approved_slot = ref.root, ref.slot
            return [SaveLock(Lock(ref.height, ref.slot, ref.root)), Gossip(approval)]
        if self._prevoted == ref.root:
            return []
        self._round = max(self._round + 1, self._slot * ROUNDS_PER_SLOT)
        self._prevoted = ref.root
        self._prevotes.setdefault(ref.height, {})[index] = (self._round, ref.root)
        return [Gossip(sign_prevote(self.secret_key, index, ref.height, ref.root, self._round))]

    def _queue(self, approval: Approval) -> list[Action]:
        if approval.height > self.head.height + MAX_HEIGHTS_AHEAD:
            self.stats["early_approvals_dropped"] += 1
            return []
        queue = self._early.setdefault(approval.height, {})
        if len(queue) >= MAX_EARLY_PER_HEIGHT:
            self.stats["early_approvals_dropped"] += 1
            return []
        queue[(approval.root, approval.index)] = approval
        return []

    def _buffer(self, proposal: Proposal, peer: Peer) -> list[Action]:
        ref = proposal.ref
        if peer is None:
            return []
        if ref.height <= self.head.height + MAX_HEIGHTS_AHEAD:
            waiting = self._future.setdefault(ref.height, {})
            if len(waiting) < MAX_BLOCKS_PER_HEIGHT:
                waiting[ref.root] = (proposal, peer)
            else:
                self.stats["blocks_dropped"] += 1
        return [RequestSync(peer, ref.height)]

    def _penalize(self, peer: Peer, reason: str) -> list[Action]:
        self.stats["penalties"] += 1
        return [] if peer is None else [Penalize(peer, reason)]


def _current(entry: _Entry) -> Proposal:
    """``entry``'s proposal with the approvals gathered so far (to re-gossip it)."""
    return replace(entry.proposal, approvals=entry.approvals)
