"""Range sync's rules, one test per case, then Hypothesis over random peer behaviours: blocks
are imported strictly in order with no gap and no duplicate, only the true blocks, honest peers
are never charged, and sync finishes whenever one honest peer has the blocks."""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alys_fast.network.wire import BlocksRequest
from alys_fast.sync.core import (
    Became,
    Charge,
    Failure,
    Import,
    Offence,
    PeerLedger,
    RangeSync,
    Rate,
    Send,
    ServeLimiter,
    SyncLimits,
    SyncState,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def block(height: int) -> bytes:
    return b"block %d" % height


def blocks(start: int, count: int) -> list[bytes]:
    return [block(h) for h in range(start, start + count)]


SMALL = SyncLimits(range_blocks=10, per_peer=2, in_flight=4, window=100, import_batch=5,
                   request_timeout=1.0, sync_distance=3, startup_grace=2.0)


def of(kind, actions):
    return [a for a in actions if isinstance(a, kind)]


def syncing_from(head: int = 0, limits: SyncLimits = SMALL) -> tuple[RangeSync, Clock]:
    clock = Clock()
    return RangeSync(head, limits, clock=clock), clock


def test_a_node_starts_syncing_and_asks_several_peers_in_parallel():
    sync, _ = syncing_from()
    assert sync.syncing and sync.state is SyncState.STARTING
    actions = sync.on_status("a", 35) + sync.on_status("b", 35)
    assert of(Became, actions) == [Became(SyncState.SYNCING, True)]
    sent = [(s.peer, s.request.start, s.request.count) for s in of(Send, actions)]
    # a's first two (its limit), then b's; at most 4 in flight in all.
    assert sent == [("a", 1, 10), ("a", 11, 10), ("b", 21, 10), ("b", 31, 5)]
    assert sync.in_flight() == 4 and sync.target == 35 and sync.distance == 35


def test_out_of_order_responses_wait_and_import_in_order_then_following():
    sync, _ = syncing_from()
    sent = of(Send, sync.on_status("a", 12) + sync.on_status("b", 12))
    first, second = (s.request for s in sent)
    assert (first.start, second.start) == (1, 11)
    assert of(Import, sync.on_response("a", second.request_id, 11, blocks(11, 2))) == []
    assert sync.buffered_bytes == sum(map(len, blocks(11, 2)))
    [batch] = of(Import, sync.on_response("a", first.request_id, 1, blocks(1, 10)))
    assert batch == Import(1, tuple(blocks(1, 5)))          # import_batch = 5
    [batch] = of(Import, sync.on_imported(5, 5))
    assert batch.start == 6
    [batch] = of(Import, sync.on_imported(5, 10))
    assert batch == Import(11, tuple(blocks(11, 2)))
    assert sync.syncing                                     # an import is running
    actions = sync.on_imported(2, 12)
    assert actions == [Became(SyncState.FOLLOWING, False)] and not sync.syncing


def test_a_partial_response_leaves_the_rest_to_ask_again():
    sync, _ = syncing_from(limits=SyncLimits(range_blocks=10, per_peer=1, in_flight=1))
    [send] = of(Send, sync.on_status("a", 10))
    [again] = of(Send, sync.on_response("a", send.request.request_id, 1, blocks(1, 4)))
    assert (again.request.start, again.request.count) == (5, 6)


def test_timeouts_charge_and_ask_another_peer():
    sync, clock = syncing_from(limits=SyncLimits(per_peer=1, in_flight=1, request_timeout=1.0))
    [send] = of(Send, sync.on_status("a", 10) + sync.on_status("b", 10))
    assert send.peer == "a"
    clock.now = 1.0
    actions = sync.tick()
    assert of(Charge, actions) == [Charge("a", Offence.TIMEOUT, False)]
    [retry] = of(Send, actions)
    assert retry.peer == "b" and retry.request.start == 1
    # a's late answer is dropped uncharged; a duplicate of b's answer too.
    assert sync.on_response("a", send.request.request_id, 1, blocks(1, 10)) == []
    imported = of(Import, sync.on_response("b", retry.request.request_id, 1, blocks(1, 10)))
    assert imported
    assert of(Charge, sync.on_response("b", retry.request.request_id, 1, blocks(1, 10))) == []
    assert sync.counters.late == 2


def test_a_peer_banned_by_one_timeout_loses_its_other_timed_out_requests_with_it():
    limits = SyncLimits(range_blocks=10, per_peer=2, in_flight=2, request_timeout=1.0,
                        ban_threshold=-10)  # one timeout bans
    sync, clock = syncing_from(limits=limits)
    sent = of(Send, sync.on_status("a", 20))
    assert [s.peer for s in sent] == ["a", "a"]
    clock.now = 1.0
    actions = sync.tick()  # both time out at once: one charge, the ban, nothing left in flight
    assert of(Charge, actions) == [Charge("a", Offence.TIMEOUT, True)]
    assert sync.in_flight() == 0 and sync.ledger.banned("a")


def test_unsolicited_and_mismatched_responses_are_charged():
    sync, _ = syncing_from(limits=SyncLimits(per_peer=1, in_flight=2))
    sends = of(Send, sync.on_status("a", 2000) + sync.on_status("b", 2000))
    by_peer = {s.peer: s.request for s in sends}
    assert of(Charge, sync.on_response("a", 999, 1, blocks(1, 1))) == \
        [Charge("a", Offence.UNSOLICITED, False)]
    # b answering a's request id is unsolicited too: ids are matched with their peer.
    assert of(Charge, sync.on_response("b", by_peer["a"].request_id, 1, blocks(1, 1))) == \
        [Charge("b", Offence.UNSOLICITED, False)]
    actions = sync.on_response("a", by_peer["a"].request_id, 2, blocks(2, 3))
    assert of(Charge, actions) == [Charge("a", Offence.MISMATCHED, False)]
    assert not of(Import, actions) and 1 not in sync.buffer
    [again] = of(Send, actions)     # asked again, of a (b is busy, its one slot used)
    assert again.request.start == 1


def test_an_empty_answer_lowers_the_peers_head():
    sync, _ = syncing_from(limits=SyncLimits(per_peer=1))
    [send] = of(Send, sync.on_status("a", 50))
    actions = sync.on_response("a", send.request.request_id, 1, [])
    assert of(Charge, actions) == [Charge("a", Offence.EMPTY, False)]
    assert sync.target == 0 and sync.state is SyncState.FOLLOWING


def test_a_refused_block_bans_its_sender_and_its_heights_are_asked_elsewhere():
    sync, _ = syncing_from()
    sends = of(Send, sync.on_status("liar", 20) + sync.on_status("honest", 20))
    requests = {s.request.start: s for s in sends}
    lie = blocks(1, 10)
    lie[3] = b"forged"
    sync.on_response("liar", requests[1].request.request_id, 1, lie)
    sync.on_response("liar", requests[11].request.request_id, 11, blocks(11, 10))
    actions = sync.on_imported(3, 3, Failure.INVALID)   # 1-3 went in, "forged" at 4 refused
    assert sync.head == 3
    assert sync.ledger.banned("liar") and "liar" not in sync.peers
    assert not sync.buffer                          # nothing of the liar's is kept
    assert of(Charge, actions) == [Charge("liar", Offence.BAD_BLOCK, True)]
    resent = of(Send, actions)
    assert {s.peer for s in resent} == {"honest"} and resent[0].request.start == 4
    assert sync.ledger.penalties[Offence.BAD_BLOCK] == 1


def test_a_local_import_failure_charges_nobody_and_retries_later():
    sync, clock = syncing_from()
    [send, *_] = of(Send, sync.on_status("a", 5))
    [batch] = of(Import, sync.on_response("a", send.request.request_id, 1, blocks(1, 5)))
    actions = sync.on_imported(2, 2, Failure.UNAVAILABLE)
    assert not of(Charge, actions) and not of(Import, actions)
    assert sorted(sync.buffer) == [3, 4, 5]
    clock.now = SMALL.retry_delay
    [again] = of(Import, sync.tick())
    assert again == Import(3, tuple(blocks(3, 3)))
    assert batch.start == 1


def test_following_until_a_peer_is_far_ahead_or_a_parent_is_unknown():
    sync, clock = syncing_from(head=100)
    assert of(Became, sync.on_status("a", 100)) == [Became(SyncState.FOLLOWING, False)]
    assert sync.on_status("a", 102) == []           # less than sync_distance (3): gossip
    actions = sync.on_status("a", 103)
    assert of(Became, actions) == [Became(SyncState.SYNCING, True)]
    assert of(Send, actions)[0].request.start == 101
    follower, _ = syncing_from(head=100)
    follower.on_status("a", 100)
    assert follower.on_unknown_parent("b", 101) == []       # its parent is our head
    actions = follower.on_unknown_parent("b", 102)
    assert of(Became, actions) == [Became(SyncState.SYNCING, True)]
    [send] = of(Send, actions)
    assert (send.peer, send.request.start, send.request.count) == ("b", 101, 1)
    alone, clock = syncing_from(head=7)
    assert alone.tick() == []
    clock.now = SMALL.startup_grace
    assert alone.tick() == [Became(SyncState.FOLLOWING, False)]


def test_a_node_that_follows_for_want_of_peers_syncs_from_any_peer_ahead():
    # Hypothesis's length=1 case: the only peer went away mid-sync, the node followed at 0 and
    # peers back at head 1 (under sync_distance) must still be synced from: no gossip brings it.
    sync, _ = syncing_from()
    [send] = of(Send, sync.on_status("a", 1))
    assert sync.on_peer_gone("a") == [Became(SyncState.FOLLOWING, False)]
    actions = sync.on_status("b", 1)
    assert of(Became, actions) == [Became(SyncState.SYNCING, True)]
    [again] = of(Send, actions)
    assert (again.peer, again.request.start, again.request.count) == ("b", 1, 1)
    assert of(Import, sync.on_response("a", send.request.request_id, 1, blocks(1, 1))) == []
    [batch] = of(Import, sync.on_response("b", again.request.request_id, 1, blocks(1, 1)))
    assert batch == Import(1, (block(1),))
    assert sync.on_imported(1, 1) == [Became(SyncState.FOLLOWING, False)]
    # Caught up with b: a lead under sync_distance is gossip's again.
    assert sync.on_status("b", 2) == []
    # Alone after the startup grace, then a peer one block ahead: synced from too.
    alone, clock = syncing_from(head=7)
    clock.now = SMALL.startup_grace
    assert alone.tick() == [Became(SyncState.FOLLOWING, False)]
    assert of(Became, alone.on_status("c", 8)) == [Became(SyncState.SYNCING, True)]
    # A caught-up node left alone is no longer caught up: its returning peer is synced from.
    assert sync.on_peer_gone("b") == []
    assert of(Send, sync.on_status("b", 2)) == [Send("b", BlocksRequest(3, 2, 1))]
    # A head lowered by an empty answer is not one the node caught up with (Hypothesis:
    # length=1, others=['empty'], seed=74).
    emptied, _ = syncing_from()
    [send] = of(Send, emptied.on_status("e", 1))
    emptied.on_response("e", send.request.request_id, 1, [])
    assert emptied.state is SyncState.FOLLOWING
    assert of(Send, emptied.on_status("h", 1)) == [Send("h", BlocksRequest(2, 1, 1))]


def test_a_peer_that_goes_away_loses_its_requests_uncharged():
    sync, _ = syncing_from(limits=SyncLimits(per_peer=1, in_flight=2))
    sync.on_status("a", 10)
    actions = sync.on_status("b", 10)
    assert sync.in_flight("a") == 1
    actions = sync.on_peer_gone("a")
    assert not of(Charge, actions) and sync.in_flight("a") == 0
    assert sync.ledger.penalties == {}
    assert sync.target == 10


def test_the_buffer_is_bounded():
    limits = SyncLimits(range_blocks=4, per_peer=4, in_flight=4, buffer_bytes=20,
                        request_timeout=1.0)
    sync, clock = syncing_from(limits=limits)
    sends = of(Send, sync.on_status("a", 100))
    assert len(sends) == 4
    by_start = {s.request.start: s.request for s in sends}
    # Heights 5.. arrive before 1..4: buffered, over the byte budget, and nothing more is
    # asked but the height the import needs next.
    for start in (5, 9, 13):
        assert of(Send, sync.on_response("a", by_start[start].request_id, start,
                                         [b"x" * 10] * 4)) == []
    assert sync.buffered_bytes == 120
    clock.now = 1.0
    assert of(Send, sync.tick()) == [Send("a", BlocksRequest(5, 1, 4))]


def test_limits_are_checked():
    with pytest.raises(ValueError, match="range_blocks must be 1 to 1024"):
        SyncLimits(range_blocks=1025)
    with pytest.raises(ValueError, match="per_peer must be at least 1"):
        SyncLimits(per_peer=0)


def test_ledger_scores_recover_and_bans_expire():
    clock = Clock()
    ledger = PeerLedger(SyncLimits(recover_per_second=1.0, ban_seconds=5.0), clock)
    assert not ledger.charge("p", Offence.MISMATCHED)
    clock.now = 10.0
    assert ledger.score("p") == -15.0
    assert ledger.charge("p", Offence.BAD_BLOCK) and ledger.banned("p")
    clock.now = 15.0
    assert not ledger.banned("p") and ledger.score("p") == 0.0
    assert ledger.bans_total == 1


def test_serve_limiter_grants_what_the_bucket_holds():
    clock = Clock()
    limiter = ServeLimiter(rate=100.0, burst=150, clock=clock)
    assert limiter.take("p", 1024) == 150
    assert limiter.take("p", 10) == 0 and limiter.wait("p") == pytest.approx(0.01)
    assert limiter.take("q", 10) == 10           # per peer
    clock.now = 0.5
    assert limiter.take("p", 1024) == 50
    rate = Rate(window=2.0, clock=clock)
    rate.add(10)
    clock.now = 1.5
    rate.add(30)
    assert rate.per_second() == 20.0
    clock.now = 3.0
    assert rate.per_second() == 15.0


# --- random peers -----------------------------------------------------------------------------

BEHAVIOURS = ("honest", "slow", "liar", "duplicate", "partial", "unsolicited", "disconnect",
              "silent", "empty")


@dataclass(order=True)
class _Event:
    at: float
    seq: int
    what: tuple = field(compare=False)


class World:
    """A node syncing from simulated peers over links with random delays; the chain imports
    a block only if it is the true block at head + 1 (what signature and parent checks do)."""

    def __init__(self, length: int, behaviours: list[str], seed: int,
                 limits: SyncLimits) -> None:
        self.rng = random.Random(seed)
        self.length = length
        self.clock = Clock()
        self.sync = RangeSync(0, limits, clock=self.clock)
        self.behaviours = {f"p{i}-{b}": b for i, b in enumerate(behaviours)}
        self.events: list[_Event] = []
        self.seq = 0
        self.chain: list[bytes] = []
        self.importing = False
        self.refused = 0
        self.charged: list[Charge] = []
        self.max_buffered = 0
        for peer in self.behaviours:
            self.at(self.rng.uniform(0, 0.5), ("status", peer))

    def at(self, delay: float, what: tuple) -> None:
        self.seq += 1
        heapq.heappush(self.events, _Event(self.clock.now + delay, self.seq, what))

    def run(self, until: float) -> None:
        self.at(0.25, ("tick",))
        while self.events and self.clock.now < until:
            event = heapq.heappop(self.events)
            self.clock.now = event.at
            self.carry_out(self.handle(event.what))
            self.max_buffered = max(self.max_buffered, self.sync.buffered_bytes)
            if self.done():
                return

    def done(self) -> bool:
        return len(self.chain) == self.length and not self.sync.syncing

    def handle(self, what: tuple) -> list:
        kind = what[0]
        sync = self.sync
        if kind == "tick":
            self.at(0.25, ("tick",))
            return sync.tick()
        if kind == "status":
            return sync.on_status(what[1], self.length)
        if kind == "gone":
            self.at(self.rng.uniform(0.5, 2), ("status", what[1]))
            return sync.on_peer_gone(what[1])
        if kind == "response":
            return sync.on_response(*what[1:])
        assert kind == "imported"
        self.importing = False
        return sync.on_imported(*what[1:])

    def carry_out(self, actions: list) -> None:
        for action in actions:
            if isinstance(action, Send):
                self.serve(action.peer, action.request)
            elif isinstance(action, Import):
                self.chain_import(action)
            elif isinstance(action, Charge):
                self.charged.append(action)

    def chain_import(self, batch: Import) -> None:
        assert not self.importing, "one import at a time"
        assert batch.start == len(self.chain) + 1, "imported strictly in order, no gap"
        self.importing = True
        failure, imported = None, 0
        for offset, raw in enumerate(batch.blocks):
            if self.rng.random() < 0.02:
                failure = Failure.UNAVAILABLE
                break
            if raw != block(batch.start + offset):
                failure = Failure.INVALID
                self.refused += 1
                break
            self.chain.append(raw)
            imported += 1
        self.at(self.rng.uniform(0, 0.05), ("imported", imported, len(self.chain), failure))

    def serve(self, peer: str, request: BlocksRequest) -> None:
        behaviour, rng = self.behaviours[peer], self.rng
        start, count = request.start, request.count
        answer = blocks(start, min(count, self.length - start + 1))
        delay = rng.uniform(0.01, 0.4)
        if behaviour == "silent" or (behaviour == "slow" and rng.random() < 0.5):
            delay += 1.5                                  # past the timeout
        elif behaviour == "liar" and rng.random() < 0.7:
            answer[rng.randrange(len(answer))] = b"forged"
        elif behaviour == "partial":
            answer = answer[:rng.randint(1, len(answer))]
        elif behaviour == "empty" and rng.random() < 0.5:
            answer = []
        elif behaviour == "unsolicited":
            self.at(delay / 2, ("response", peer, request.request_id + 7, start, answer))
        elif behaviour == "disconnect" and rng.random() < 0.3:
            self.at(delay / 2, ("gone", peer))
            return
        self.at(delay, ("response", peer, request.request_id, start, answer))
        if behaviour == "duplicate" or rng.random() < 0.05:   # links duplicate too
            self.at(delay + rng.uniform(0, 0.2), ("response", peer, request.request_id, start,
                                                  answer))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    length=st.integers(1, 300),
    others=st.lists(st.sampled_from(BEHAVIOURS), max_size=4),
    seed=st.integers(0, 2**32),
)
def test_sync_imports_the_true_chain_in_order_whatever_the_peers_do(length, others, seed):
    world = World(length, ["honest", *others], seed, SMALL)
    world.run(until=3_000.0)
    assert world.chain == blocks(1, length), "every block imported, in order, once"
    assert world.done()
    honest = {p for p, b in world.behaviours.items() if b in ("honest", "partial", "duplicate")}
    assert not [c for c in world.charged if c.peer in honest], "an honest peer was charged"
    for charge in world.charged:
        if charge.offence is Offence.BAD_BLOCK:
            assert world.behaviours[charge.peer] == "liar"
    # A liar is banned by its first refused block: it costs one import at most.
    assert world.refused <= others.count("liar")
    assert world.max_buffered <= SMALL.max_buffered_bytes
