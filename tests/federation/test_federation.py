"""A federation of 3 authorities and a full node (issue 12's proofs), in one process over the
seeded fault transport (four authorities split 2-2: ``test_split.py``)."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from alys_fast.consensus import SecretKey, sign_approval
from alys_fast.network import wire
from alys_fast.validation import Block, Header
from alys_fast.validation.blocks import sign_header
from tests.federation.harness import SLOT_MS, Federation, authority_secret, send_raw, transfers

pytestmark = pytest.mark.timeout(180)


def test_three_authorities_and_a_full_node_make_one_chain_with_everyone_s_transactions(tmp_path):
    async def scenario() -> None:
        federation = Federation(tmp_path)
        await federation.start()
        try:
            await federation.wait_for(2)
            raws = transfers(12)
            async with aiohttp.ClientSession() as session:
                for i, raw in enumerate(raws):  # round-robin over all four nodes
                    member = federation.members[i % 4]
                    answer = await send_raw(session, member.node.url, raw)
                    assert "result" in answer, answer
            head = (await federation.members[0].head()).number
            await federation.wait_for(head + 6)
            common = await federation.assert_one_chain()
            assert common >= head + 6
            nonce = await _nonce(federation)
            assert nonce == 12  # every transfer, whichever node it was sent to, is in the chain
            _assert_blocks_timed(federation)
        finally:
            await federation.stop()

    asyncio.run(scenario())


def _assert_blocks_timed(federation: Federation) -> None:
    """Every authority timed each stage of the blocks it saw (what /metrics exports): its own
    until their approvals, its peers' from the network to their import, each hop between."""
    for member in federation.members[:3]:
        node = member.node
        assert node is not None and node.network is not None
        chain = node.stats["chain"]
        for stage in ("approvals_seconds", "wait_seconds", "approval_wait_seconds",
                      "lookup_seconds", "validate_seconds", "certify_seconds"):
            assert chain[stage].count > 0, stage
        timed = node.network.latencies.histograms
        for stage in (("outbound", "new_block"), ("inbound", "new_block"),
                      ("handoff", "new_block"), ("handoff", "approval")):
            assert timed[stage].count > 0, stage


async def _nonce(federation: Federation) -> int:
    from alys_fast.chain.spec import DEV_ACCOUNTS
    from alys_fast.engine.actor import EngineClient

    node = federation.members[3].node
    assert node is not None
    account = await EngineClient(node.directory).account(bytes.fromhex(DEV_ACCOUNTS[0][0][2:]))
    return account.nonce


def test_one_authority_down_the_chain_continues_and_it_catches_up_on_return(tmp_path):
    async def scenario() -> None:
        federation = Federation(tmp_path, full=0)
        await federation.start()
        try:
            await federation.wait_for(2)
            await federation.stop(2)
            head = (await federation.members[0].head()).number
            await federation.wait_for(head + 5)  # two of three: still a quorum
            await federation.start(2)  # restarted from its data dir: it syncs and follows
            await federation.wait_for(head + 8)
            assert await federation.assert_one_chain() >= head + 8
        finally:
            await federation.stop()

    asyncio.run(scenario())


def test_two_of_three_down_halts_without_forking_and_resumes(tmp_path):
    async def scenario() -> None:
        federation = Federation(tmp_path)
        await federation.start()
        try:
            await federation.wait_for(2)
            await federation.stop(1, 2)
            await asyncio.sleep(0.5)  # a block certified just before may still land
            halted = await federation.heads()
            await asyncio.sleep(12 * SLOT_MS / 1000)
            assert await federation.heads() == halted  # one authority of three: no quorum
            await federation.assert_one_chain()
            await federation.start(1, 2)
            await federation.wait_for(max(halted) + 3)
            await federation.assert_one_chain()
        finally:
            await federation.stop()

    asyncio.run(scenario())


def test_a_partition_without_a_quorum_halts_and_the_chain_advances_after_it_heals(tmp_path):
    async def scenario() -> None:
        federation = Federation(tmp_path, seed=7)
        await federation.start()
        try:
            await federation.wait_for(2)
            ids = [m.id for m in federation.members]
            assert federation.net is not None
            federation.net.partition([ids[0], ids[3]], [ids[1]], [ids[2]])
            await asyncio.sleep(0.5)
            split = await federation.heads()
            await asyncio.sleep(8 * SLOT_MS / 1000)
            assert max(await federation.heads()) <= max(split) + 1
            federation.net.heal()
            await federation.wait_for(max(split) + 4, timeout=30)
            await federation.assert_one_chain()
        finally:
            await federation.stop()

    asyncio.run(scenario())


def test_over_zeromq_curve_on_loopback(tmp_path):
    async def scenario() -> None:
        federation = Federation(tmp_path, links="zmq")
        await federation.start()
        try:
            await federation.wait_for(4, timeout=60)
            assert await federation.assert_one_chain() >= 4
        finally:
            await federation.stop()

    asyncio.run(scenario())


def test_a_byzantine_authority_is_penalized_and_changes_nothing(tmp_path):
    """Authority 2's keys in a liar's hands: garbage, an oversized frame, a forged approval and
    two blocks for one of its slots; the honest two keep one chain and charge it."""

    async def scenario() -> None:
        federation = Federation(tmp_path, full=0)
        await federation.start(0, 1)
        liar = federation.members[2]
        assert federation.net is not None
        transport = federation.net.transport(liar.id, "tcp://liar:1")
        await transport.start()
        honest = federation.members[0]
        try:
            await federation.wait_for(2)
            transport.dial(honest.id, honest.ctx_args["network_settings"].listen)
            head = await honest.head()
            secret = SecretKey.from_bytes(authority_secret(2))
            other_root = sign_approval(secret, 2, head.number + 1, b"\x01" * 32).signature
            forged = wire.Approval(b"\x02" * 32, head.number + 1, 2, other_root.to_bytes())
            slot = next(s for s in range(head.slot + 1, head.slot + 10) if s % 3 == 2)
            twins = [_block_on(head, slot, secret, extra) for extra in (b"a", b"b")]
            frames = [b"\x93garbage", b"\x00" * (wire.MAX_FRAME + 1), wire.encode(forged),
                      *(wire.encode(wire.NewBlock(block.encode())) for block in twins)]
            for frame in frames:
                assert await transport.send(honest.id, frame)
            await federation.wait_for(head.number + 4)
            assert await federation.assert_one_chain() >= head.number + 4
            penalties = honest.node.network.book.penalties
            assert penalties["MALFORMED"] >= 1 and penalties["OVERSIZED"] >= 1
            assert penalties["BAD_CONSENSUS"] >= 1
            health = honest.node.system.health()
            assert health["state"] == "running"
        finally:
            transport.close()
            await federation.stop()

    asyncio.run(scenario())


def _block_on(parent, slot: int, secret, extra: bytes) -> Block:
    header = Header(parent_hash=parent.hash, number=parent.number + 1, slot=slot,
                    timestamp=slot * SLOT_MS // 1000, author=bytes(20), state_root=bytes(32),
                    transactions_root=bytes(32), receipts_root=bytes(32), logs_bloom=bytes(256),
                    gas_limit=parent.gas_limit, gas_used=0, base_fee_per_gas=1, extra_data=extra)
    return Block(sign_header(header, secret, 2))
