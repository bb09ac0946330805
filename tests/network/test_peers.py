"""The peer book's rules, on an injected clock."""

from __future__ import annotations

import pytest

from alys_fast.network.peers import (
    Backoff,
    BadAddress,
    Offence,
    PeerBook,
    PeerLimits,
    SeenSet,
    SendQueue,
    format_enode,
    parse_enode,
)
from alys_fast.network.wire import Status

A, B, C = "aa" * 32, "bb" * 32, "cc" * 32
STATUS = Status(1, b"\x01" * 32, 0, b"\x01" * 32, 0, "full", "")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def book(members=(A,), **limits) -> tuple[PeerBook, Clock]:
    clock = Clock()
    return PeerBook(members, PeerLimits(**limits), clock), clock


def test_enode_addresses():
    assert parse_enode(f"alys://{A}@127.0.0.1:30303") == (A, "tcp://127.0.0.1:30303")
    assert format_enode(A, "tcp://10.0.0.1:9") == f"alys://{A}@10.0.0.1:9"
    for bad in (f"alys://{A[:-2]}@h:1", f"alys://{A}@h:0", f"alys://{A}@h:65536",
                f"enode://{A}@h:1", f"alys://{A.upper()}@h:1", "", f"alys://{A}@h"):
        with pytest.raises(BadAddress, match="alys://<64 hex digits>@host:port"):
            parse_enode(bad)


def test_backoff_doubles_up_to_the_cap_and_resets():
    backoff = Backoff(0.5, 4.0)
    assert [backoff.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    backoff.reset()
    assert backoff.next_delay() == 0.5


def test_a_silent_bootnode_is_dialed_with_capped_backoff():
    peers, clock = book(backoff_first=1.0, backoff_cap=4.0)
    peers.add_bootnode(B, "tcp://h:1")
    dials = []
    for _ in range(160):  # 16 s in 0.1 s steps
        if peers.tick().dial:
            dials.append(round(clock.now - 1000.0, 1))
        clock.now += 0.1
    assert dials == [0.0, 1.0, 3.0, 7.0, 11.0, 15.0]


def test_status_resets_the_backoff_and_silence_loses_the_peer():
    peers, clock = book(ping_interval=5.0, dead_after=20.0, backoff_first=1.0)
    peer = peers.add_bootnode(B, "tcp://h:1")
    for _ in range(3):
        assert peers.tick().dial == [peer]
        clock.now += 10
    assert peer.backoff.attempts == 3
    peers.heard(B, 10)
    assert peers.introduced(peer, STATUS, None)
    assert peer.backoff.attempts == 0 and peer.connected
    clock.now += 5
    assert peers.tick().ping == [peer]
    clock.now += 16
    due = peers.tick()
    assert due.lost == [peer] and due.dial == [peer]   # a bootnode: dialed again at once
    assert not peer.connected


def test_a_lost_inbound_peer_is_forgotten():
    peers, clock = book(dead_after=20.0)
    peers.heard(C, 10)
    clock.now += 21
    assert [p.key for p in peers.tick().lost] == [C]
    assert C not in peers.peers


def test_offences_add_up_to_a_timed_ban_by_key_and_address():
    peers, clock = book(ban_threshold=-100, ban_seconds=60, recover_per_second=0.0)
    peer = peers.heard(C, 10)
    peers.introduced(peer, STATUS, "tcp://evil:1")
    assert not peers.charge(C, Offence.MALFORMED)
    assert not peers.charge(C, Offence.OVERSIZED)
    assert peers.charge(C, Offence.UNAUTHORIZED)          # 25 + 50 + 25 = 100
    assert peers.banned(C) and not peers.admits(C)
    assert peers.heard(C, 10) is None and peers.refused == 1
    assert peers.address_banned("tcp://evil:1")
    assert peers.penalties == {"MALFORMED": 1, "OVERSIZED": 1, "UNAUTHORIZED": 1}
    # Another key at the banned address is banned as soon as it says where it listens.
    other = peers.heard(B, 10)
    assert not peers.introduced(other, STATUS, "tcp://evil:1") and peers.banned(B)
    clock.now += 61
    assert peers.admits(C) and not peers.address_banned("tcp://evil:1")
    assert peers.bans_total == 2


def test_the_score_recovers_with_time():
    peers, clock = book(ban_threshold=-100, recover_per_second=1.0)
    peers.heard(C, 1)
    peers.charge(C, Offence.OVERSIZED)
    clock.now += 30
    assert not peers.charge(C, Offence.OVERSIZED)            # -20 - 50
    assert peers.peers[C].score == -70
    assert peers.charge(C, Offence.OVERSIZED)                # no time passed: -120


def test_wrong_network_bans_at_once_and_a_banned_bootnode_is_not_dialed():
    peers, _ = book()
    peers.add_bootnode(B, "tcp://h:1")
    assert peers.charge(B, Offence.WRONG_NETWORK)
    assert peers.tick().dial == []
    assert B in peers.peers                                   # kept: dialed again after the ban


def test_no_room_for_more_peers():
    peers, _ = book(max_peers=2)
    assert peers.heard(B, 1) and peers.heard(C, 1)
    assert peers.heard("dd" * 32, 1) is None
    assert peers.heard(B, 1) is not None                      # known peers still get in


def test_traffic_is_counted_per_peer():
    peers, _ = book()
    peer = peers.heard(B, 100)
    peers.heard(B, 50)
    peers.sent(peer, 7)
    t = peer.traffic
    assert (t.messages_in, t.bytes_in, t.messages_out, t.bytes_out) == (2, 150, 1, 7)


def test_send_queue_is_bounded_and_counts_drops():
    queue = SendQueue(2)
    assert queue.put(b"1", "approval") and queue.put(b"2", "approval")
    assert not queue.put(b"3", "approval")
    assert len(queue) == 2 and queue.dropped == 1


def test_send_queue_sends_blocks_and_approvals_before_transactions():
    """A block queued behind transaction batches leaves first; each lane keeps its order and
    its own bound, so a flood of batches cannot crowd out an approval."""
    queue = SendQueue(2)
    assert queue.put(b"tx1", "transactions") and queue.put(b"tx2", "transactions")
    assert not queue.put(b"tx3", "transactions")
    assert queue.put(b"block", "new_block", 1.5) and queue.put(b"vote", "approval")
    taken = [queue.take() for _ in range(5)]
    assert [t.frame if t else None for t in taken] == [b"block", b"vote", b"tx1", b"tx2", None]
    assert taken[0].kind == "new_block" and taken[0].queued_at == 1.5
    assert queue.dropped == 1 and len(queue) == 0


def test_seen_set_dedupes_and_forgets_the_oldest():
    seen = SeenSet(3)
    assert all(seen.add(bytes([i])) for i in range(3))
    assert not seen.add(b"\x00")
    assert seen.add(b"\x03") and len(seen) == 3
    assert seen.add(b"\x00")                                  # forgotten, so new again


def test_flood_rules():
    peers, _ = book(members=(A, B))
    for key in (A, B, C):
        peers.heard(key, 1)
    assert {p.key for p in peers.forward_to("approval", A, self_member=True)} == {B, C}
    assert peers.forward_to("approval", A, self_member=False) == []
    assert {p.key for p in peers.forward_to("transactions", C, self_member=False)} == {A, B}
    assert len(peers.forward_to("new_block", None, self_member=True)) == 3
    assert peers.first_copy(b"id") and not peers.first_copy(b"id") and peers.duplicates == 1
