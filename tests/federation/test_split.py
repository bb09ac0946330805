"""Four authorities (q = 3) in one process, split 2-2 by a partition: each half's author
proposes a block the other half never sees, so each block has two supporters and no quorum.
With approvals given at once, that was two approvals each and a height stalled for good;
with preferences first (``alys_fast/consensus/forkchoice.py``, rules 3-4) the split resolves
once the partition heals, and every node keeps one chain."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from alys_fast.chain.federation import LOCK_FILE, LockFile
from tests.federation.harness import SLOT_MS, Federation

pytestmark = pytest.mark.timeout(180)


def test_a_two_two_split_of_four_authorities_resolves_after_the_partition_heals(tmp_path):
    async def scenario() -> None:
        federation = Federation(tmp_path, authorities=4, full=0, seed=3)
        await federation.start()
        try:
            await federation.wait_for(2)
            net = federation.net
            assert net is not None
            ids = [m.id for m in federation.members]
            net.partition(ids[:2], ids[2:])
            await asyncio.sleep(0.5)  # a block certified just before may still land
            split = max(await federation.heads())
            await asyncio.sleep(8 * SLOT_MS / 1000)  # both halves' authors propose
            assert max(await federation.heads()) <= split + 1  # two of four: no quorum
            net.heal()
            await federation.wait_for(split + 4, timeout=60)
            assert await federation.assert_one_chain() >= split + 4
            async with aiohttp.ClientSession() as session:
                rivals = [await _rival_blocks(session, m.node.url) for m in federation.members]
            assert sum(rivals) >= 1  # the halves' blocks met at one height (in /metrics)
            for member in federation.members:  # every authority approved, and kept it
                lock = LockFile(member.ctx_args["data_dir"] / LOCK_FILE).load()
                assert lock is not None and lock.height >= split
        finally:
            await federation.stop()

    asyncio.run(scenario())


async def _rival_blocks(session: aiohttp.ClientSession, url: str) -> float:
    async with session.get(url + "metrics") as response:
        text = await response.text()
    for line in text.splitlines():
        if line.startswith('alys_consensus_events_total{event="rival_blocks"}'):
            return float(line.split()[-1])
    return 0.0
