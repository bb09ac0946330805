"""The network actor over the in-process fault transport: gossip, the sender checks, scores,
bans and metrics. Bounded: every wait has a deadline, a few nodes, a few dozen messages."""

from __future__ import annotations

import time

import msgspec
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from alys_fast.network import wire
from alys_fast.network.faults import FaultNetwork, LinkFaults
from alys_fast.network.service import Broadcast, NetworkCollector
from alys_fast.network.transport import NodeKey
from alys_fast.network.wire import Approval, Goodbye, Hello, NewBlock, Status, Transactions
from tests.actors.helpers import eventually, run
from tests.network.helpers import STATUS, Node, enode, fault_factory, setup

pytestmark = pytest.mark.timeout(60)

KINDS = frozenset({"approval", "new_block", "transactions", "status", "hello"})
APPROVAL = Approval(b"\x07" * 32, 5, 1, b"\x99" * 96)


def federation(net: FaultNetwork, members: int = 3, full: int = 1) -> list[Node]:
    """Members 0..n-1 and full nodes after them; node 0 is everyone's bootnode, and member 2
    also dials member 1, so the members form a triangle (two paths for every message)."""
    keys = [NodeKey.generate() for _ in range(members + full)]
    listens = [f"tcp://n{i}:1" for i in range(len(keys))]
    member_ids = [k.id for k in keys[:members]]
    nodes = []
    for i, key in enumerate(keys):
        boot = [] if i == 0 else [enode(keys[0], listens[0])]
        if i == 2:
            boot.append(enode(keys[1], listens[1]))
        nodes.append(Node(setup(key, listen=listens[i], members=member_ids, bootnodes=boot,
                                factory=fault_factory(net))))
    return nodes


async def started(nodes: list[Node]) -> list[Node]:
    for node in nodes:
        await node.start(KINDS)

    def introduced():  # every link has carried a Status both ways
        return all(p.status is not None for n in nodes for p in n.network.book.connected()) \
            and len(nodes[0].network.book.connected()) == len(nodes) - 1
    await eventually(introduced, timeout=10)
    return nodes


async def stopped(nodes: list[Node]) -> None:
    for node in nodes:
        await node.stop()


def received(node: Node, kind: str) -> list:
    return [r for r in node.got if wire.kind_of(r.message) == kind]


def test_gossip_reaches_every_node_once():
    async def main():
        net = FaultNetwork(seed=1)
        nodes = await started(federation(net))
        a, b, c, full = nodes
        assert await a.ref("network/network").ask(Broadcast(APPROVAL)) == 3
        await eventually(lambda: all(received(n, "approval") for n in (b, c, full)))
        # The copies over the second path arrive and are dropped as duplicates.
        await eventually(lambda: b.network.book.duplicates + c.network.book.duplicates >= 2)
        for node in (b, c, full):
            [got] = received(node, "approval")
            assert got.message == APPROVAL
        assert received(b, "approval")[0].peer in (a.id, c.id)
        assert received(a, "approval") == []                 # never back to its author
        await stopped(nodes)
    run(main())


def test_dedupe_holds_on_links_that_duplicate_and_reorder():
    async def main():
        net = FaultNetwork(seed=11)
        nodes = await started(federation(net, members=3, full=0))
        net.set_faults(LinkFaults(duplicate=0.5, reorder=0.3))
        a, _b, c = nodes
        blocks = [NewBlock(i.to_bytes(4, "big") * 100) for i in range(20)]
        for block in blocks:
            a.client.broadcast(block)
        await eventually(lambda: len(received(c, "new_block")) == 20)
        await eventually(lambda: net.counts["duplicated"] > 0 and net.counts["reordered"] > 0)
        assert sorted(r.message.block for r in received(c, "new_block")) == \
            sorted(b.block for b in blocks)
        await stopped(nodes)
    run(main())


def test_a_full_node_cannot_send_consensus_messages():
    async def main():
        net = FaultNetwork(seed=2)
        nodes = await started(federation(net))
        a, b, _c, full = nodes
        assert await full.ref("network/network").ask(Broadcast(APPROVAL)) == 0
        # Sent anyway (as a modified node would): dropped and charged by the member.
        assert await full.client.send_to(a.id, APPROVAL)
        assert await full.client.send_to(a.id, Transactions([b"\x02raw"]))
        await eventually(lambda: received(b, "transactions"))  # a forwards what it may
        assert a.network.book.penalties == {"UNAUTHORIZED": 1}
        assert a.network.book.peers[full.id].score == -25
        assert not any(received(n, "approval") for n in nodes)
        await stopped(nodes)
    run(main())


def raw_peer(net: FaultNetwork):
    """A transport with no node behind it: sends whatever bytes a test gives it."""
    key = NodeKey.generate()
    raw = net.transport(key.id, "tcp://raw:1")
    return key, raw


def metrics(node: Node) -> str:
    registry = CollectorRegistry()
    registry.register(NetworkCollector(node.network))
    return generate_latest(registry).decode()


def test_malformed_and_oversized_frames_are_charged_then_banned():
    async def main():
        net = FaultNetwork(seed=3)
        nodes = await started(federation(net, members=2, full=0))
        a, b = nodes
        key, raw = raw_peer(net)
        await raw.start()
        raw.dial(a.id, a.network.settings.listen)
        oversized = msgspec.msgpack.encode(
            [wire.PROTOCOL_VERSION, msgspec.Raw(msgspec.msgpack.encode(
                ["transactions", [b"\x02"] * 1025]))])
        for frame in (b"junk", oversized, b"\x92\x01"):
            assert await raw.send(a.id, frame)
        await eventually(lambda: a.network.book.penalties["MALFORMED"] == 2)
        assert a.network.book.penalties["OVERSIZED"] == 1
        assert -100 < a.network.book.peers[key.id].score < -99   # 100 points, a little recovered
        assert not a.network.book.banned(key.id)
        assert await raw.send(a.id, b"\xc1")                      # one more: banned
        await eventually(lambda: a.network.book.banned(key.id))
        # It was told why; what it sends now never arrives.
        await eventually(lambda: not raw.inbox.empty())
        told = [wire.decode(raw.inbox.get_nowait()[1]) for _ in range(raw.inbox.qsize())]
        assert Goodbye("banned: malformed") in told
        lost = net.counts["lost"]
        assert await raw.send(a.id, wire.encode(Transactions([b"\x02x"])))
        assert net.counts["lost"] == lost + 1
        # The node goes on with its honest peer.
        a.client.broadcast(APPROVAL)
        await eventually(lambda: received(b, "approval"))
        text = metrics(a)
        assert 'alys_network_penalties_total{offence="malformed"} 3.0' in text
        assert 'alys_network_penalties_total{offence="oversized"} 1.0' in text
        assert "alys_network_bans_total 1.0" in text
        assert 'alys_network_peers{role="authority"} 1.0' in text
        assert f'alys_network_peer_messages_total{{direction="in",peer="{b.id[:16]}"}}' in text
        await stopped(nodes)
    run(main())


def test_a_peer_of_another_chain_is_banned_at_once():
    async def main():
        net = FaultNetwork(seed=4)
        [a] = await started(federation(net, members=1, full=0))
        key, raw = raw_peer(net)
        await raw.start()
        raw.dial(a.id, a.network.settings.listen)
        other = msgspec.structs.replace(STATUS, chain_id=1)
        await raw.send(a.id, wire.encode(Hello(*msgspec.structs.astuple(other))))
        await eventually(lambda: a.network.book.banned(key.id))
        assert a.network.book.penalties == {"WRONG_NETWORK": 1}
        await a.stop()
    run(main())


def test_another_protocol_version_gets_a_goodbye_uncharged():
    async def main():
        net = FaultNetwork(seed=5)
        [a] = await started(federation(net, members=1, full=0))
        key, raw = raw_peer(net)
        await raw.start()
        raw.dial(a.id, a.network.settings.listen)
        future = msgspec.msgpack.encode([wire.PROTOCOL_VERSION + 1,
                                         msgspec.Raw(msgspec.msgpack.encode(["ping", 1]))])
        await raw.send(a.id, future)
        frame = (await raw.recv())[1]
        assert wire.decode(frame) == Goodbye(f"protocol version {wire.PROTOCOL_VERSION} only")
        assert not a.network.book.penalties and not a.network.book.banned(key.id)
        await a.stop()
    run(main())


def test_status_reaches_peers_and_subscribers():
    async def main():
        net = FaultNetwork(seed=6)
        nodes = await started(federation(net, members=2, full=0))
        a, b = nodes
        head = msgspec.structs.replace(STATUS, head_number=5, head_hash=b"\x05" * 32)
        a.client.set_status(head)

        def b_knows_the_head():
            status = b.network.book.peers[a.id].status
            return status is not None and status.head_number == 5
        await eventually(b_knows_the_head)
        [info] = [p for p in await b.client.peers() if p.key == a.id]
        assert info.head_number == 5 and info.member and info.connected
        statuses = [r.message for r in received(b, "status") if r.peer == a.id]
        assert statuses[-1].head_number == 5 and statuses[-1].role == "authority"
        assert statuses[-1].listen == a.network.enode
        assert type(statuses[-1]) is Status
        await stopped(nodes)
    run(main())


def test_subscribe_refuses_unknown_kinds():
    async def main():
        net = FaultNetwork()
        [a] = await started(federation(net, members=1, full=0))
        with pytest.raises(ValueError, match="no such message kinds: blocks"):
            await a.client.subscribe({"blocks"}, a.ref("network/inbox"))
        await a.stop()
    run(main())


def test_where_a_frame_spends_its_time_is_exported_by_kind():
    """A gossiped approval is timed on its way out (queued -> handed to the transport) at its
    sender and on its way in at each receiver, whose subscribers get the arrival time."""
    async def main():
        net = FaultNetwork(seed=5)
        nodes = await started(federation(net, members=2, full=0))
        a, b = nodes
        assert await a.ref("network/network").ask(Broadcast(APPROVAL)) == 1
        await eventually(lambda: received(b, "approval"))
        [got] = received(b, "approval")
        assert 0 < got.arrived <= time.perf_counter()
        sent = a.network.latencies.histograms["outbound", "approval"]
        taken = b.network.latencies.histograms["inbound", "approval"]
        assert sent.count == 1 and taken.count == 1
        assert ("outbound", "transactions") not in a.network.latencies.histograms
        await eventually(lambda: ("loop_lag", "") in b.network.latencies.histograms)
        text = metrics(b)
        assert 'alys_network_inbound_seconds_count{kind="approval"} 1.0' in text
        assert "alys_network_loop_lag_seconds_count" in text
        assert 'alys_network_outbound_seconds_count{kind="approval"} 1.0' in metrics(a)
        await stopped(nodes)
    run(main())


def test_a_subscriber_subscribing_again_is_told_once():
    """A restarted subscriber subscribes again; each message still reaches it once."""
    async def main():
        net = FaultNetwork(seed=7)
        a, b = await started(federation(net, members=2, full=0))
        await b.client.subscribe(KINDS, b.ref("network/inbox"))
        assert await a.ref("network/network").ask(Broadcast(APPROVAL)) == 1
        await eventually(lambda: received(b, "approval"))
        assert await a.ref("network/network").ask(Broadcast(NewBlock(b"\x01"))) == 1
        await eventually(lambda: received(b, "new_block"))
        assert len(received(b, "approval")) == 1
        await stopped([a, b])
    run(main())
