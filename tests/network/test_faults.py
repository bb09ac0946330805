"""The fault-injecting transport: per-link drop, duplicate, reorder, delay and partitions,
deterministic with a seed."""

from __future__ import annotations

import asyncio

from alys_fast.network.faults import FaultNetwork, LinkFaults
from tests.actors.helpers import run

A, B, C = "aa" * 32, "bb" * 32, "cc" * 32


async def linked(net: FaultNetwork, *keys: str):
    transports = [net.transport(k, f"tcp://{k[:2]}:1") for k in keys]
    for t in transports:
        await t.start()
    transports[0].dial(keys[1], "tcp://bb:1")
    return transports


def drain(transport) -> list[bytes]:
    out = []
    while not transport.inbox.empty():
        out.append(transport.inbox.get_nowait()[1])
    return out


async def send_all(sender, peer: str, n: int) -> None:
    for i in range(n):
        assert await sender.send(peer, i.to_bytes(2, "big"))


def fates(seed: int, faults: LinkFaults, n: int = 200) -> list[int]:
    async def main():
        net = FaultNetwork(seed)
        a, b = await linked(net, A, B)
        net.set_faults(faults)
        await send_all(a, B, n)
        await asyncio.sleep(faults.reorder_window * 2)
        return [int.from_bytes(f, "big") for f in drain(b)]
    return run(main())


def test_clean_links_deliver_in_order_both_ways():
    async def main():
        net = FaultNetwork()
        a, b = await linked(net, A, B)
        await send_all(a, B, 5)
        assert await b.send(A, b"back")                   # the dialed side answers on the link
        assert [f for f in drain(b)] == [i.to_bytes(2, "big") for i in range(5)]
        assert drain(a) == [b"back"]
        assert b.inbox.empty()
    run(main())


def test_no_link_without_a_dial_or_once_closed():
    async def main():
        net = FaultNetwork()
        a, b, c = await linked(net, A, B, C)
        assert not await a.send(C, b"x") and not await c.send(A, b"x")
        b.close()
        assert not await a.send(B, b"x")
        a.dial(B, "tcp://bb:1")                           # nobody listens there any more
        assert not await a.send(B, b"x")
    run(main())


def test_drop_is_deterministic_per_seed():
    drop = LinkFaults(drop=0.3)
    first = fates(7, drop)
    assert first == fates(7, drop)
    assert first != fates(8, drop)
    assert 100 < len(first) < 180 and first == sorted(first)


def test_duplicates_arrive_twice():
    got = fates(3, LinkFaults(duplicate=0.2))
    assert sorted(set(got)) == list(range(200))
    assert 10 < len(got) - 200 < 80


def test_reorder_swaps_neighbours_and_loses_nothing():
    got = fates(5, LinkFaults(reorder=0.2))
    assert sorted(got) == list(range(200))
    assert got != list(range(200))
    assert all(abs(v - i) <= 3 for i, v in enumerate(got))
    assert got == fates(5, LinkFaults(reorder=0.2))


def test_delay_holds_frames_back():
    async def main():
        net = FaultNetwork()
        a, b = await linked(net, A, B)
        net.set_faults(LinkFaults(delay=0.05), A, B)
        await send_all(a, B, 3)
        assert b.inbox.empty()
        frames = [(await asyncio.wait_for(b.recv(), 5))[1] for _ in range(3)]
        assert frames == [i.to_bytes(2, "big") for i in range(3)]
    run(main())


def test_partition_and_heal():
    async def main():
        net = FaultNetwork()
        a, b, c = await linked(net, A, B, C)
        c.dial(A, "tcp://aa:1")
        net.partition([A], [B, C])
        assert await a.send(B, b"lost") and await c.send(A, b"lost")
        assert drain(b) == [] and drain(a) == []
        assert net.counts["partitioned"] == 2
        net.heal()
        assert await a.send(B, b"ok")
        assert drain(b) == [b"ok"]
    run(main())


def test_a_refused_sender_is_not_delivered():
    async def main():
        net = FaultNetwork()
        a = net.transport(A, "tcp://aa:1")
        b = net.transport(B, "tcp://bb:1", admit=lambda key: key != A)
        await a.start()
        await b.start()
        a.dial(B, "tcp://bb:1")
        assert await a.send(B, b"x")
        assert drain(b) == [] and net.counts["lost"] == 1
    run(main())
