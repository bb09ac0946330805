"""Each fork-choice rule of ``alys_fast/consensus/forkchoice.py``, one scenario at a time."""

from __future__ import annotations

from alys_fast.consensus import (
    AggregateApproval,
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
    Validate,
    sign_approval,
    sign_prevote,
)
from alys_fast.consensus.forkchoice import MAX_EARLY_PER_HEIGHT
from tests.consensus.federation import GENESIS, KEYS, PUBLIC, Federation, SimBlock, child


def _node(index: int | None = 0, n: int = 4) -> Consensus:
    return Consensus(PUBLIC[:n], GENESIS, secret_key=None if index is None else KEYS[index])


def _proposal(parent, slot, n=4, tag=b"", signers=()) -> Proposal:
    ref = child(parent, slot, tag)
    approvals = AggregateApproval()
    for i in (slot % n, *signers):
        approvals = approvals.add(i, KEYS[i].sign(ref.root))
    return Proposal(SimBlock(), ref, approvals)


def _accept(node: Consensus, proposal: Proposal, peer="p") -> list:
    actions = node.on_block(proposal, peer)
    assert actions == [Validate(proposal)]
    return node.on_validated(proposal.ref.root, True)


def _approval(index, proposal):
    return sign_approval(KEYS[index], index, proposal.ref.height, proposal.ref.root)


def _prevote(index, proposal, round_=1):
    return sign_prevote(KEYS[index], index, proposal.ref.height, proposal.ref.root, round_)


def _approved(index, proposal):
    """What an authority returns when it approves ``proposal``: its lock, then its approval."""
    ref = proposal.ref
    return [SaveLock(Lock(ref.height, ref.slot, ref.root)), Gossip(_approval(index, proposal))]


def test_refusals_name_the_rule():
    node = _node(index=None)
    good = _proposal(GENESIS, 1)
    unsigned = Proposal(good.block, good.ref, AggregateApproval())
    assert node.on_block(unsigned, "p") == [
        Penalize("p", "block 1 is not signed by slot 1's author 1")
    ]
    forged = Proposal(good.block, good.ref, AggregateApproval().add(1, KEYS[2].sign(good.ref.root)))
    assert node.on_block(forged, "p") == [Penalize("p", "the approvals of block 1 do not verify")]
    other_genesis = BlockRef(b"\x01" * 32, b"\x00" * 32, 0, 0)
    elsewhere = _proposal(other_genesis, 1)
    assert node.on_block(elsewhere, "p") == [Penalize("p", "block 1 is not on block 0")]
    _accept(node, good)
    node.on_approval(_approval(2, good), "p")
    (imported,) = node.on_approval(_approval(3, good), "p")
    node.on_imported(imported.proposal.ref)
    assert node.on_block(_proposal(GENESIS, 2), "p") == []  # old: no penalty
    assert node.stats["old_blocks"] == 1


def test_a_block_is_imported_at_threshold_with_its_certificate():
    node = _node(index=None)  # a full node follows, never approves
    block = _proposal(GENESIS, 1)
    assert _accept(node, block) == []
    assert node.on_approval(_approval(2, block), "p") == []
    actions = node.on_approval(_approval(3, block), "q")
    assert [type(a) for a in actions] == [ImportBlock]
    assert list(actions[0].proposal.approvals.indices()) == [1, 2, 3]
    assert node.on_approval(_approval(0, block), "r") == []  # imported once
    node.on_imported(block.ref)
    assert node.head == block.ref


def test_an_authority_prevotes_approves_with_q_supporters_then_holds_its_lock():
    node = _node(index=0)
    first = _proposal(GENESIS, 1)
    # supporters: the author's approval and this node: 2 of q = 3, so a preference only
    assert _accept(node, first) == [Gossip(_prevote(0, first))]
    assert node.on_prevote(_prevote(3, first), "p") == _approved(0, first)
    higher = _proposal(GENESIS, 2)
    assert _accept(node, higher) == []  # locked on slot 1: no second approval
    # one authority seen on the higher block is not proof: f = 1 of 4 may still approve slot 1
    assert node.on_approval(_approval(3, higher), "p") == []
    gathered = first.approvals.add(0, KEYS[0].sign(first.ref.root))
    assert node.on_slot(4) == [Gossip(Proposal(first.block, first.ref, gathered))]  # re-gossip


def test_a_dead_lock_is_replaced_by_the_highest_slot():
    node = _node(index=0, n=3)  # n=3: q=2, f=0
    (author,) = node.on_slot(3)
    mine = Proposal(SimBlock(), child(GENESIS, author.slot), node.sign(child(GENESIS, 3)))
    assert node.on_block(mine, None) == [Validate(mine)]
    assert node.on_validated(mine.ref.root, True) == []  # our own block: already our approval
    later, latest = _proposal(GENESIS, 4, n=3), _proposal(GENESIS, 5, n=3)
    assert _accept(node, later) == []  # authority 1 on slot 4 alone does not kill slot 3
    # authorities 1 and 2 both past slot 3: slot 3 can reach only 1 of 2; approve slot 5
    assert _accept(node, latest) == [*_approved(0, latest), ImportBlock(
        Proposal(latest.block, latest.ref, latest.approvals.add(0, KEYS[0].sign(latest.ref.root)))
    )]
    assert node.stats["lock_releases"] == 1


def test_a_certified_block_is_imported_whatever_this_node_approved():
    node = _node(index=1)
    locked, other = _proposal(GENESIS, 1), _proposal(GENESIS, 2)  # locked: this node's own
    _accept(node, locked)
    _accept(node, other)
    assert node.stats["rival_blocks"] == 1
    node.on_approval(_approval(3, other), "p")
    actions = node.on_approval(_approval(1, other), "p")  # authority 1 approves both
    assert [type(a) for a in actions] == [ImportBlock]
    assert actions[0].proposal.ref == other.ref


def test_equivocation_is_counted_kept_and_refused():
    node = _node()
    first, second = _proposal(GENESIS, 1, tag=b"a"), _proposal(GENESIS, 1, tag=b"b")
    _accept(node, first)
    actions = node.on_block(second, "p")
    assert actions == [Equivocation(1, first.ref, second.ref)]
    assert node.evidence == actions and node.stats["equivocations"] == 1
    assert second.ref.root not in node._blocks


def test_invalid_block_penalizes_its_sender_and_is_not_approved():
    node = _node()
    block = _proposal(GENESIS, 1)
    assert node.on_block(block, "p") == [Validate(block)]
    assert node.on_validated(block.ref.root, False, "state root mismatch") == [
        Penalize("p", "invalid block: state root mismatch")
    ]


def test_early_approvals_wait_for_their_block_and_are_bounded():
    node = _node(index=None)
    block = _proposal(GENESIS, 1)
    for i in (2, 3):
        assert node.on_approval(_approval(i, block), "p") == []
    assert [type(a) for a in node.on_block(block, "p")] == [Validate]
    assert [type(a) for a in node.on_validated(block.ref.root, True)] == [ImportBlock]
    node.on_imported(block.ref)
    spam = [_proposal(block.ref, s) for s in range(2, 2 + MAX_EARLY_PER_HEIGHT + 2)]
    for p in spam:
        node.on_approval(_approval(p.ref.slot % 4, p), "p")
    assert node.stats["early_approvals_dropped"] == 2
    node.on_imported(spam[0].ref)
    assert not node._early  # the height was imported: its queue went with it


def test_bad_approval_and_foreign_index_are_penalized():
    node = _node()
    block = _proposal(GENESIS, 1)
    forged = sign_approval(KEYS[2], 3, 1, block.ref.root)
    refused = [Penalize("p", "approval by authority 3 does not verify")]
    assert node.on_approval(forged, "p") == refused
    outsider = sign_approval(KEYS[3], 3, 1, block.ref.root)
    assert _node(n=3).on_approval(outsider, "q") == [
        Penalize("q", "approval by authority 3 does not verify")
    ]


def test_future_block_buffers_and_requests_sync():
    node = _node(index=None)
    one = _proposal(GENESIS, 1, signers=(2, 3))
    two = _proposal(one.ref, 2)
    assert node.on_block(two, "p") == [RequestSync("p", 2)]
    assert node.on_imported(one.ref) == [Validate(two)]  # synced by the chain, then replayed


def test_a_syncing_node_stays_quiet():
    node = _node(index=0)
    node.set_syncing(True)
    assert node.on_slot(4) == []
    block = _proposal(GENESIS, 1)
    assert node.on_block(block, "p") == [] and node.on_approval(_approval(2, block), "p") == []


def test_a_block_gossiped_while_syncing_is_taken_when_sync_ends():
    """Its author re-gossips it unchanged, which the network deduplicates: dropped here, it
    would never come back, and a quorum could wait for this node's approval for good."""
    node = _node(index=0)
    node.set_syncing(True)
    block = _proposal(GENESIS, 1)
    assert node.on_block(block, "p") == []
    assert node.set_syncing(False) == [Validate(block)]
    assert node.set_syncing(True) == [] and node.set_syncing(False) == []  # taken once


def test_author_only_in_own_slot_and_after_the_head():
    node = _node(index=2)
    assert node.on_slot(5) == []
    assert node.on_slot(6) == [Author(6, GENESIS)]
    solo = Consensus(PUBLIC[:1], GENESIS, secret_key=KEYS[0])
    (author,) = solo.on_slot(1)
    ref = child(author.parent, author.slot)
    actions = solo.on_block(Proposal(SimBlock(), ref, solo.sign(ref)), None)
    assert [type(a) for a in solo.on_validated(ref.root, True)] == [ImportBlock]
    assert actions == [Validate(Proposal(SimBlock(), ref, solo.sign(ref)))]


def test_a_two_two_split_of_four_resolves_to_the_higher_slot():
    """Authors 1 and 2 propose at one height, each block reaching one validator first (0 and
    3): two supporters each, no quorum. Approvals given at once would have split 2-2 for good
    (neither block can be proved dead); preferences move to the higher slot and it is
    certified."""
    fed = Federation(4)
    fed.tick()  # slot 1: authority 1 proposes X
    x, held = _only_to(fed, 0)
    fed.tick()  # slot 2: authority 2 has not seen X and proposes Y
    y, later = _only_to(fed, 3)
    assert x.ref.height == y.ref.height == 1 and x.ref.slot == 1 and y.ref.slot == 2
    assert fed.nodes[0].lock is None and fed.nodes[3].lock is None  # preferences only
    fed.inflight += held + later  # the split: 0 prefers X, 3 prefers Y; now all is delivered
    fed.drain()
    assert {tuple(fed.chain_roots(i)) for i in fed.honest} == {(y.ref.root,)}
    assert fed.nodes[0].stats["rival_blocks"] == 1
    for _ in range(4):  # and the chain goes on
        fed.tick()
        fed.drain()
    assert len(fed.chain_roots(0)) == 5


def _only_to(fed: Federation, destination: int) -> tuple[Proposal, list]:
    """Deliver the proposal just made to ``destination`` alone; the proposal, and every
    message in flight, held back (the other copies, the prevote that delivery caused)."""
    (proposal,) = {m.payload for m in fed.inflight if isinstance(m.payload, Proposal)}
    fed.deliver(next(i for i, m in enumerate(fed.inflight)
                     if m.payload == proposal and m.destination == destination))
    held, fed.inflight = fed.inflight, []
    return proposal, held


def test_a_restarted_authority_keeps_its_lock():
    node = _node(index=0)
    first, higher = _proposal(GENESIS, 1), _proposal(GENESIS, 2)
    _accept(node, first)
    (saved, _) = node.on_prevote(_prevote(3, first), "p")
    assert node.lock == saved.lock
    again = Consensus(PUBLIC[:4], GENESIS, secret_key=KEYS[0], lock=saved.lock)
    assert again.lock == saved.lock
    # without the lock, the higher block's supporters (its author, 1 and this node) reach q
    assert _accept(again, higher) == []
    for index in (1, 3):
        assert again.on_prevote(_prevote(index, higher), "p") == []
    assert again.on_slot(4) == []  # neither a new block nor one it cannot show
    fresh = Consensus(PUBLIC[:4], GENESIS, secret_key=KEYS[0])
    _accept(fresh, higher)
    assert fresh.on_prevote(_prevote(1, higher), "p") == _approved(0, higher)
    imported = Consensus(PUBLIC[:4], first.ref, secret_key=KEYS[0], lock=saved.lock)
    assert imported.lock is None  # a lock below the open height binds nothing


def test_prevotes_are_verified_deduplicated_and_never_approvals():
    node = _node(index=None)
    block = _proposal(GENESIS, 1)
    _accept(node, block)
    approval = _approval(2, block)
    disguised = Prevote(1, block.ref.root, 2, 1, approval.signature)
    assert node.on_prevote(disguised, "p") == [
        Penalize("p", "prevote by authority 2 does not verify")]
    assert node.on_prevote(_prevote(2, block, round_=2), "p") == []
    assert node.on_prevote(_prevote(2, block, round_=1), "p") == []  # older round
    assert node.stats["duplicate_prevotes"] == 1
    node.on_approval(_approval(2, block), "p")
    node.on_approval(_approval(3, block), "p")
    node.on_imported(block.ref)
    assert node.on_prevote(_prevote(3, block), "p") == []
    assert node.on_approval(_approval(0, block), "p") == []
    assert node.stats["late_prevotes"] == 1 and node.stats["late_approvals"] == 1


def test_a_restarted_authority_s_prevotes_replace_those_it_sent_before():
    peer = _node(index=None)
    first, higher = _proposal(GENESIS, 1), _proposal(GENESIS, 2)
    _accept(peer, first)
    _accept(peer, higher)
    node = _node(index=0)
    node.on_slot(2)
    _accept(node, first)
    (before,) = _accept(node, higher)  # it prefers the higher slot
    assert peer.on_prevote(before.message, "p") == []
    restarted = _node(index=0)  # it forgot its rounds
    restarted.on_slot(3)
    (after,) = _accept(restarted, higher)
    assert after.message.round > before.message.round
    assert peer.on_prevote(after.message, "p") == [] and peer.stats["duplicate_prevotes"] == 0
