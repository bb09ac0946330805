"""The gossip service's inbound path for consensus messages (:class:`ChainInbound`): the network
actor calls it, and it tells the chain actor at once. A small actor system whose chain and
network are recorders (what they are told is what is tested), bounded waits."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import pytest

from alys_fast.actors import ActorRef, ActorSystem, ChildSpec, Strategy, SupervisorSpec
from alys_fast.chain.federation import PeerApproval, PeerBlock
from alys_fast.consensus import SecretKey
from alys_fast.gossip.service import ChainInbound
from alys_fast.network import wire
from alys_fast.network.peers import Offence
from alys_fast.network.service import Charge, NetworkSetup, Received
from alys_fast.network.transport import NodeKey
from tests.actors.helpers import eventually
from tests.network.helpers import Inbox, setup

pytestmark = pytest.mark.timeout(30)

ROOT = b"\x07" * 32


@dataclass
class Host:
    """What the gossip service is built with: the network's setup and a way to reach actors."""

    network: NetworkSetup
    system: ActorSystem

    def ref(self, path: str) -> ActorRef:
        return self.system.ref(path)


async def host(chain: list, network: list) -> Host:
    spec = SupervisorSpec("alys", Strategy.ONE_FOR_ONE, (
        SupervisorSpec("chain", Strategy.ONE_FOR_ONE, (ChildSpec("chain", Inbox, args=(chain,)),)),
        SupervisorSpec("network", Strategy.ONE_FOR_ONE,
                       (ChildSpec("network", Inbox, args=(network,)),)),
    ))
    system = await ActorSystem(spec).start()
    return Host(setup(NodeKey.generate(), listen="tcp://n0:1"), system)


def test_blocks_and_approvals_reach_the_chain_with_their_arrival_time():
    async def main():
        chain, network = [], []
        node = await host(chain, network)
        inbound = ChainInbound(node)
        arrived = time.perf_counter()
        signature = SecretKey.from_bytes((7).to_bytes(32, "big")).sign(ROOT).to_bytes()
        inbound.tell(Received("peer-a", wire.NewBlock(b"\xc0"), arrived))
        inbound.tell(Received("peer-b", wire.Approval(ROOT, 3, 1, signature), arrived))
        await eventually(lambda: len(chain) == 2)
        block, approval = chain
        assert block == PeerBlock("peer-a", b"\xc0", arrived)
        assert type(approval) is PeerApproval and approval.arrived == arrived
        assert (approval.peer, approval.approval.root, approval.approval.index) == \
            ("peer-b", ROOT, 1)
        timed = node.network.latencies.histograms
        assert timed["handoff", "new_block"].count == timed["handoff", "approval"].count == 1
        assert network == []
        assert ChainInbound(node) == inbound  # subscribed again by a restarted gossip actor
        await node.system.stop()
    asyncio.run(main())


def test_an_approval_that_is_no_signature_charges_its_sender_and_stays_out():
    async def main():
        chain, network = [], []
        node = await host(chain, network)
        ChainInbound(node).tell(Received("peer-b", wire.Approval(ROOT, 3, 1, b"\x01" * 96), 1.0))
        await eventually(lambda: network)
        [charge] = network
        assert type(charge) is Charge and charge.peer == "peer-b"
        assert charge.offence is Offence.MALFORMED and charge.why.startswith("approval: ")
        assert chain == []
        await node.system.stop()
    asyncio.run(main())
