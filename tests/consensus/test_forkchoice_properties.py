"""Fork-choice invariants over random message orders, duplicates and drops (Hypothesis).

n in {1, 3, 4} authorities, at most f = ceil(n/3) - 1 of them faulty (withholding, or
equivocating: two blocks per slot, approving and prevoting anything). Honest nodes restart at
random (their saved lock is all they keep). Safety is checked at every import
(``Federation._carry_out`` asserts one root per height among honest nodes); convergence and
progress after every message is delivered.
"""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.consensus.federation import EQUIVOCATE, WITHHOLD, Federation

SETUPS = [
    (1, {}),
    (3, {}),
    (4, {}),
    (4, {3: WITHHOLD}),
    (4, {1: EQUIVOCATE}),
]
STEPS = 60
SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _run_adversarial(fed: Federation, data: st.DataObject, *, drops: bool) -> None:
    """Random interleaving of slots with deliveries, duplicates and (with ``drops``) drops and
    restarts (a restarted node forgets the blocks it held, as a lost message would)."""
    operations = ["deliver", "deliver", "deliver", "duplicate", "tick"]
    operations += ["drop", "restart"] * drops
    for _ in range(STEPS):
        operation = data.draw(st.sampled_from(operations))
        if operation == "restart":
            fed.restart(data.draw(st.sampled_from(fed.honest)))
            continue
        if operation == "tick" or not fed.inflight:
            fed.tick()
            continue
        position = data.draw(st.integers(0, len(fed.inflight) - 1))
        if operation == "drop":
            fed.inflight.pop(position)
        else:
            fed.deliver(position, keep=operation == "duplicate")


@SETTINGS
@given(setup=st.sampled_from(SETUPS), data=st.data())
def test_honest_nodes_never_import_different_blocks_at_a_height(setup, data):
    n, faulty = setup
    fed = Federation(n, faulty)
    _run_adversarial(fed, data, drops=True)
    fed.drain(data.draw(st.lists(st.integers(0, 10**6), max_size=200)))
    for height, roots in fed.imported.items():
        assert len(roots) == 1, f"honest nodes disagree at height {height}"


@SETTINGS
@given(setup=st.sampled_from(SETUPS), data=st.data())
def test_with_every_message_delivered_honest_nodes_converge(setup, data):
    n, faulty = setup
    fed = Federation(n, faulty)
    _run_adversarial(fed, data, drops=False)
    fed.drain(data.draw(st.lists(st.integers(0, 10**6), max_size=200)))
    for _ in range(2 * n):  # slots with prompt delivery, then every node's status poll
        fed.tick()
        fed.drain()
    fed.sync_all()
    fed.drain()
    chains = {tuple(fed.chain_roots(i)) for i in fed.honest}
    assert len(chains) == 1, "honest nodes ended with different chains"
    if not faulty:  # a split of preferences does not stall honest authorities
        before = len(fed.chain_roots(fed.honest[0]))
        for _ in range(n):
            fed.tick()
            fed.drain()
        if len(fed.chain_roots(fed.honest[0])) == before:
            _assert_no_block_can_gather_a_quorum(fed)


def _assert_no_block_can_gather_a_quorum(fed: Federation) -> None:
    """The one stall the rules allow (forkchoice.py, rule 4): more than ``n + 1 - q`` authors
    each approved (proposed) a block of its own at the height, so no block's approvals plus
    the unlocked authorities reach ``q``."""
    locks = [fed.nodes[i].lock for i in fed.honest]
    free = sum(lock is None for lock in locks)
    approvals = Counter(lock.root for lock in locks if lock is not None)
    quorum = fed.nodes[fed.honest[0]].quorum
    assert all(count + free < quorum for count in approvals.values()), "a height stalled"


@settings(max_examples=10, deadline=None)
@given(setup=st.sampled_from(SETUPS))
def test_prompt_delivery_makes_a_block_every_honest_slot(setup):
    n, faulty = setup
    fed = Federation(n, faulty)
    honest_slots = 0
    for _ in range(3 * n):
        fed.tick()
        fed.drain()
        honest_slots += fed.slot % n not in faulty
    lengths = {len(fed.chain_roots(i)) for i in fed.honest}
    if EQUIVOCATE in faulty.values():
        # the equivocator's blocks go to halves: honest nodes refuse one or certify one of them
        assert lengths == {len(fed.chain_roots(fed.honest[0]))} and min(lengths) >= honest_slots
        assert fed.equivocations or not fed.inflight
    else:
        assert lengths == {honest_slots}
