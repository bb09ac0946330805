"""The ZeroMQ CURVE transport on 127.0.0.1: node keys, who may say what, handshakes that must
fail, and a reconnect after a peer restarts. A handful of nodes, every wait bounded."""

from __future__ import annotations

import os

import pytest
import zmq
import zmq.asyncio

from alys_fast.network import wire
from alys_fast.network.transport import NODE_KEY_FILE, NodeKey, NodeKeyError, load_node_key
from alys_fast.network.wire import Approval, Transactions
from tests.actors.helpers import eventually, run
from tests.network.helpers import Node, enode, setup

pytestmark = pytest.mark.timeout(60)

KINDS = frozenset({"approval", "transactions", "status"})
APPROVAL = Approval(b"\x07" * 32, 5, 0, b"\x99" * 96)
LOOPBACK = "tcp://127.0.0.1:0"


def test_node_key_is_created_once_private_and_reloaded(tmp_path):
    key = load_node_key(tmp_path)
    path = tmp_path / NODE_KEY_FILE
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert load_node_key(tmp_path) == key
    assert len(key.id) == 64 and NodeKey.from_secret(key.secret).public == key.public


def test_node_key_file_problems_are_explained(tmp_path, caplog):
    path = tmp_path / NODE_KEY_FILE
    key = load_node_key(tmp_path)
    path.chmod(0o644)  # as a fresh git clone has it: git keeps no modes
    assert load_node_key(tmp_path) == key
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert "could be read by other users (mode 644): made 600" in caplog.text
    path.write_bytes(b"not a key\n")
    with pytest.raises(NodeKeyError, match="does not hold a node key"):
        load_node_key(tmp_path)


async def pair(member_key: NodeKey, other_key: NodeKey, *, other_member: bool):
    """A member listening on loopback and a second node dialing it; both introduced."""
    members = [member_key.id] + ([other_key.id] if other_member else [])
    a = await Node(setup(member_key, listen=LOOPBACK, members=members)).start(KINDS)
    b = Node(setup(other_key, listen=LOOPBACK, members=members,
                   bootnodes=[enode(member_key, a.network.endpoint)]))
    await b.start(KINDS)
    await eventually(lambda: a.id in b.network.book.peers
                     and b.network.book.peers[a.id].status is not None
                     and b.id in a.network.book.peers
                     and a.network.book.peers[b.id].status is not None, timeout=10)
    return a, b


def test_members_and_full_nodes_over_curve():
    async def main():
        a, full = await pair(NodeKey.generate(), NodeKey.generate(), other_member=False)
        # The member's approval reaches the full node; the full node's does not count.
        a.client.broadcast(APPROVAL)
        await eventually(lambda: any(r.message == APPROVAL for r in full.got), timeout=10)
        assert await full.client.send_to(a.id, APPROVAL)
        assert await full.client.send_to(a.id, Transactions([b"\x02tx"]))
        await eventually(lambda: any(type(r.message) is Transactions for r in a.got), timeout=10)
        assert a.network.book.penalties == {"UNAUTHORIZED": 1}
        assert not any(type(r.message) is Approval for r in a.got)
        assert all(r.peer == full.id for r in a.got)        # the key CURVE proved
        [info] = await a.client.peers()
        assert not info.member and info.messages_in >= 3 and info.messages_out >= 2
        await full.stop()
        await a.stop()
    run(main())


def test_bursts_both_ways_at_once_all_arrive():
    """Sends go through plain sockets beside the asyncio ones that receive; a send may take the
    fd's edge for a message waiting on the same socket. Both nodes sending 300 batches while
    receiving the other's must still get every one (a lost edge leaves them stuck)."""
    async def main():
        a, b = await pair(NodeKey.generate(), NodeKey.generate(), other_member=True)
        for i in range(300):
            a.client.broadcast(Transactions([b"\x02a" + i.to_bytes(2, "big")]))
            b.client.broadcast(Transactions([b"\x02b" + i.to_bytes(2, "big")]))

        def batches(node: Node) -> int:
            return sum(type(r.message) is Transactions for r in node.got)
        await eventually(lambda: batches(a) == 300 and batches(b) == 300, timeout=20)
        await b.stop()
        await a.stop()
    run(main())


def test_plaintext_and_impostor_clients_never_reach_the_node():
    async def main():
        key = NodeKey.generate()
        a = await Node(setup(key, listen=LOOPBACK, members=[key.id])).start(KINDS)
        context = zmq.asyncio.Context()
        plain = context.socket(zmq.DEALER)
        plain.connect(a.network.endpoint)
        # An impostor presents the member's public key without its secret.
        impostor = context.socket(zmq.DEALER)
        impostor.curve_publickey = key.public
        impostor.curve_secretkey = NodeKey.generate().secret
        impostor.curve_serverkey = key.public
        impostor.connect(a.network.endpoint)
        frame = wire.encode(APPROVAL)
        for sock in (plain, impostor):
            sock.linger = 0
            await sock.send(frame)
        failures = a.network.handshake_failures
        await eventually(lambda: failures["protocol"] >= 2, timeout=10)
        assert a.got == [] and a.network.book.peers == {}
        plain.close()
        impostor.close()
        context.term()
        await a.stop()
    run(main())


def test_a_banned_key_fails_the_handshake():
    async def main():
        a, b = await pair(NodeKey.generate(), NodeKey.generate(), other_member=True)
        b_key = b.network.key
        await b.stop()
        a.network.book.ban(b_key.id)
        again = Node(setup(b_key, listen=LOOPBACK, members=[a.id, b_key.id],
                           bootnodes=[enode(a.network.key, a.network.endpoint)]))
        await again.start(KINDS)
        await eventually(lambda: a.network.handshake_failures["auth"] >= 1, timeout=10)
        assert b_key.id not in {p.key for p in a.network.book.connected()}
        await again.stop()
        await a.stop()
    run(main())


def test_reconnects_after_the_peer_restarts():
    async def main():
        b_key = NodeKey.generate()
        b = await Node(setup(b_key, listen=LOOPBACK, members=[b_key.id])).start(KINDS)
        endpoint = b.network.endpoint
        a_key = NodeKey.generate()
        members = [a_key.id, b_key.id]
        b.network.book.members = frozenset(members)
        a = await Node(setup(a_key, listen=LOOPBACK, members=members,
                             bootnodes=[enode(b_key, endpoint)])).start(KINDS)
        await eventually(lambda: b.id in {p.key for p in a.network.book.connected()}, timeout=10)
        await b.stop()
        await eventually(lambda: not a.network.book.peers[b.id].connected, timeout=10)
        # The same node key on the same port: a restarted process.
        b = await Node(setup(b_key, listen=endpoint, members=members)).start(KINDS)
        await eventually(lambda: a.network.book.peers[b.id].connected
                         and a.network.book.peers[b.id].status is not None, timeout=15)
        a.client.broadcast(APPROVAL)
        await eventually(lambda: any(r.message == APPROVAL for r in b.got), timeout=10)
        await a.stop()
        await b.stop()
    run(main())
