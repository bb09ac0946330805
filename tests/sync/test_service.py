"""The sync actor between real storage and engine actors over the fault-injecting transport: an
empty node syncs 10,000 blocks to the source's head hash through the import workflow, a forging
peer is banned without a wrong import, and a gossiped block with an unknown parent makes a
following node sync. Bounded: two or three nodes, every wait has a generous deadline."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from alys_fast.chain.spec import dev_spec
from alys_fast.network.faults import FaultNetwork, LinkFaults
from alys_fast.storage.store import ChainStore
from alys_fast.sync.core import SyncLimits, SyncState
from alys_fast.sync.service import StoreBlocks, SyncCollector, SyncSettings
from tests.actors.helpers import eventually, run
from tests.sync.stack import SyncNode, build_chain

pytestmark = pytest.mark.timeout(300)

SPEC = dev_spec()
#: Short timeouts, so a dropped frame costs a second, not fifteen.
QUICK = SyncSettings(limits=SyncLimits(request_timeout=2.0, startup_grace=0.2), tick=0.1,
                     peer_poll=0.2)


@pytest.fixture(scope="module")
def source_chain(tmp_path_factory) -> tuple[Path, list[bytes]]:
    """A data dir holding 10,000 signed empty blocks, and every block's hash."""
    directory = tmp_path_factory.mktemp("source")
    build_chain(directory, SPEC, ([] for _ in range(10_000)))
    with ChainStore(directory / "chain") as store:
        return directory, store.block_hashes(0, 10_000)


def hashes(node: SyncNode, last: int) -> list[bytes]:
    with ChainStore(node.storage.data_dir / "chain") as store:
        return store.block_hashes(0, last)


def fault_transport(net: FaultNetwork):
    return lambda setup: net.transport(setup.node_id, setup.settings.listen, setup.book.admits)


def node(net: FaultNetwork, directory: Path, name: str, bootnodes=(), settings=QUICK,
         ) -> SyncNode:
    return SyncNode.create(directory, SPEC, listen=f"tcp://{name}:1", bootnodes=bootnodes,
                           transport=fault_transport(net), settings=settings)


def metrics(node: SyncNode) -> str:
    registry = CollectorRegistry()
    registry.register(SyncCollector(node.sync))
    return generate_latest(registry).decode()


def test_an_empty_node_syncs_ten_thousand_blocks_over_a_faulty_link(source_chain, tmp_path):
    directory, truth = source_chain

    async def main():
        net = FaultNetwork(seed=12)
        source = await node(net, directory, "source").start()
        empty = await node(net, tmp_path / "empty", "empty", [source.enode]).start()
        net.set_faults(LinkFaults(drop=0.01, duplicate=0.05, reorder=0.1, jitter=0.01))

        def caught_up():
            return empty.chain.header is not None and empty.chain.header.hash == truth[-1] \
                and not empty.sync.syncing
        await eventually(caught_up, timeout=240, interval=0.1)
        text = metrics(empty)
        status = await empty.client.status()
        assert (status.state, status.head, status.target) == ("following", 10_000, 10_000)
        assert status.requests_in_flight == 0
        # Syncing while it caught up (no authoring, no approving), then following.
        assert empty.chain.transitions == [True, False]
        assert "alys_sync_blocks_imported_total 10000.0" in text
        assert "alys_sync_syncing 0.0" in text and "alys_sync_distance 0.0" in text
        assert source.sync.counters["served_blocks"] >= 10_000
        assert source.sync.state is SyncState.FOLLOWING and not source.chain.transitions[-1]
        # It told its peers of its head as it went (their sync's target).
        assert empty.statuses[-1] == 10_000
        await empty.stop()
        await source.stop()
        assert hashes(empty, 10_000) == truth

    run(main())


class Forging(StoreBlocks):
    """Serves its store's blocks with one byte of every tenth block changed."""

    async def blocks(self, start: int, count: int, budget: int) -> list[bytes]:
        found = await super().blocks(start, count, budget)
        for index in range(0, len(found), 10):
            raw = bytearray(found[index])
            raw[len(raw) // 2] ^= 0x01
            found[index] = bytes(raw)
        return found


def test_a_forging_peer_is_banned_and_never_causes_a_wrong_import(source_chain, tmp_path):
    directory, truth = source_chain
    forger_dir = tmp_path / "forger"   # the same chain (signing is deterministic)
    assert build_chain(forger_dir, SPEC, ([] for _ in range(10_000))).hash == truth[-1]

    async def main():
        net = FaultNetwork(seed=3)
        honest = await node(net, directory, "honest").start()
        forger = node(net, forger_dir, "forger")
        forger.sync.source = Forging(forger.sync.source.store)  # type: ignore[attr-defined]
        await forger.start()
        empty = await node(net, tmp_path / "empty", "empty",
                           [honest.enode, forger.enode]).start()

        def caught_up():
            return empty.chain.header is not None and empty.chain.header.hash == truth[-1]
        await eventually(caught_up, timeout=240, interval=0.1)
        assert empty.sync.ledger.banned(forger.id)
        assert not empty.sync.ledger.banned(honest.id)
        assert 'alys_sync_penalties_total{offence="bad_block"} 1.0' in metrics(empty)
        assert "alys_sync_bans_total 1.0" in metrics(empty)
        for each in (empty, forger, honest):
            await each.stop()
        assert hashes(empty, 10_000) == truth

    run(main())


def test_a_block_with_an_unknown_parent_makes_a_following_node_sync(source_chain, tmp_path):
    directory, truth = source_chain
    patient = SyncSettings(limits=SyncLimits(sync_distance=1_000_000, startup_grace=0.2),
                           tick=0.1, peer_poll=0.2)

    async def main():
        net = FaultNetwork(seed=5)
        source = node(net, directory, "source")
        twin = await node(net, tmp_path / "twin", "twin", settings=patient).start()
        follower = await node(net, tmp_path / "follower", "follower",
                              [twin.enode, f"alys://{source.id}@source:1"],
                              settings=patient).start()
        # Caught up with a peer at its own head: it follows, trusting gossip for what is near.
        await eventually(lambda: follower.sync.state is SyncState.FOLLOWING
                         and follower.sync.core is not None
                         and twin.id in follower.sync.core.peers, timeout=30)
        # The source comes up far ahead, but less than this node's sync distance.
        await source.start()
        await eventually(lambda: follower.sync.core is not None
                         and follower.sync.core.target == 10_000, timeout=30)
        assert follower.sync.state is SyncState.FOLLOWING
        assert follower.chain.header is None or follower.chain.header.number == 0
        # Gossip brings block 10,001 from the source: its parent is unknown here.
        follower.client.sync_from(source.id, 10_001)
        await eventually(lambda: follower.chain.header is not None
                         and follower.chain.header.hash == truth[-1]
                         and not follower.sync.syncing, timeout=240, interval=0.1)
        assert follower.chain.transitions == [True, False, True, False]
        for each in (follower, twin, source):
            await each.stop()

    run(main())
