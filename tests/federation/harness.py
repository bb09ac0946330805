"""A federation in one process: several real nodes (the whole tree: storage, engine, pool,
chain, network, sync, gossip, RPC) on one event loop, linked by the seeded fault transport
(:mod:`alys_fast.network.faults`) or by ZeroMQ on 127.0.0.1.

Authorities hold BLS secrets 1..n (public, test only); every node has a fresh node key, and
the spec lists the authorities' node keys as the federation. Slots are short (``SLOT_MS``), so
a test of a few dozen slots takes seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import msgspec
from eth_account import Account

from alys_fast.chain.genesis import genesis_header
from alys_fast.chain.journal import JournalSettings
from alys_fast.chain.spec import DEV_ACCOUNTS, ChainSpec, dev_spec
from alys_fast.consensus import SecretKey
from alys_fast.network.faults import FaultNetwork
from alys_fast.network.peers import PeerLimits, format_enode
from alys_fast.network.service import NetworkSettings, NetworkSetup
from alys_fast.network.transport import NodeKey, Transport
from alys_fast.network.wire import Status
from alys_fast.node.node import Node
from alys_fast.node.settings import NodeSettings
from alys_fast.storage.actor import StoreClient
from alys_fast.validation import Header

SLOT_MS = 400
#: Quick to notice a dead peer and to dial again, so tests finish soon.
FAST_PEERS = PeerLimits(ping_interval=0.2, dead_after=1.5, backoff_first=0.05, backoff_cap=0.5)


def authority_secret(index: int) -> bytes:
    return (index + 1).to_bytes(32, "big")


def federation_spec(authorities: int, node_keys: list[NodeKey]) -> ChainSpec:
    public = tuple("0x" + SecretKey.from_bytes(authority_secret(i)).public_key().to_bytes().hex()
                   for i in range(authorities))
    return msgspec.structs.replace(dev_spec(slot_ms=SLOT_MS), authorities=public,
                                   node_keys=tuple(k.id for k in node_keys[:authorities]))


@dataclass
class Member:
    """One node of the federation: its settings, key and (while running) its Node."""

    index: int
    ctx_args: dict
    key: NodeKey
    node: Node | None = None

    @property
    def id(self) -> str:
        return self.key.id

    async def start(self, transport: Callable[[NetworkSetup], Transport] | None) -> None:
        settings: NetworkSettings = self.ctx_args["network_settings"]
        spec = self.ctx_args["spec"]
        genesis = genesis_header(spec).hash
        status = Status(spec.chain_id, genesis, 0, genesis, 0, "full", "")
        extra = {} if transport is None else {"transport_factory": transport}
        network = NetworkSetup.create(settings, self.key, status, **extra)
        self.node = await Node(NodeSettings(**self.ctx_args, network=network)).start()

    async def stop(self) -> None:
        if self.node is not None:
            await self.node.stop()
            self.node = None

    async def head(self) -> Header:
        assert self.node is not None
        return await StoreClient(self.node.directory).head_header()

    async def hashes(self, upto: int) -> list[bytes]:
        assert self.node is not None
        return await StoreClient(self.node.directory).block_hashes(0, upto)


@dataclass
class Federation:
    """``authorities`` + ``full`` nodes in ``base`` (a dir each), linked by ``links``
    (``"fault"``: a :class:`FaultNetwork` seeded with ``seed``; ``"zmq"``: CURVE on loopback)."""

    base: Path
    authorities: int = 3
    full: int = 1
    links: str = "fault"
    seed: int = 1
    members: list[Member] = field(default_factory=list)
    net: FaultNetwork | None = None

    def __post_init__(self) -> None:
        count = self.authorities + self.full
        keys = [NodeKey.generate() for _ in range(count)]
        self.spec = federation_spec(self.authorities, keys)
        self.net = FaultNetwork(self.seed) if self.links == "fault" else None
        ports = [_free_port() for _ in range(count)] if self.links == "zmq" else []
        endpoint = (lambda i: f"tcp://node{i}:1") if self.net else (
            lambda i: f"tcp://127.0.0.1:{ports[i]}")
        for i, key in enumerate(keys):
            bootnodes = tuple(format_enode(k.id, endpoint(j)) for j, k in enumerate(keys) if j < i)
            settings = NetworkSettings(listen=endpoint(i), bootnodes=bootnodes,
                                       members=self.spec.member_ids(), limits=FAST_PEERS,
                                       tick=0.05)
            ctx_args = {
                "spec": self.spec, "data_dir": self.base / f"node{i}",
                "authority_key": authority_secret(i) if i < self.authorities else None,
                "rpc_port": 0, "network_settings": settings,
                "pool_journal": JournalSettings(enabled=False),
            }
            self.members.append(Member(i, ctx_args, key))

    def transport(self, member: Member) -> Callable[[NetworkSetup], Transport] | None:
        if self.net is None:
            return None
        net, endpoint = self.net, member.ctx_args["network_settings"].listen
        return lambda setup: net.transport(setup.node_id, endpoint, setup.book.admits)

    async def start(self, *indices: int) -> None:
        for member in [self.members[i] for i in indices] or self.members:
            await member.start(self.transport(member))

    async def stop(self, *indices: int) -> None:
        for member in [self.members[i] for i in indices] or self.members:
            await member.stop()

    def running(self) -> list[Member]:
        return [m for m in self.members if m.node is not None]

    async def heads(self) -> list[int]:
        return [(await m.head()).number for m in self.running()]

    async def wait_for(self, height: int, members: list[Member] | None = None,
                       timeout: float = 60.0) -> None:
        """Until every one of ``members`` (default: the running ones) is at ``height``."""
        members = members or self.running()
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            heads = [(await m.head()).number for m in members]
            if min(heads) >= height:
                return
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"heads {heads} did not all reach {height} in {timeout}s")
            await asyncio.sleep(0.1)

    async def assert_one_chain(self) -> int:
        """Every running node has the same block hash at every height they all have; that
        height."""
        running = self.running()
        common = min([(await m.head()).number for m in running])
        chains = [await m.hashes(common) for m in running]
        for member, chain in zip(running, chains, strict=True):
            assert chain == chains[0], f"node {member.index} forked from node {running[0].index}"
        return common


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def transfers(count: int, start_nonce: int = 0) -> list[str]:
    """``count`` signed transfers (hex) from the first dev account, consecutive nonces."""
    key = DEV_ACCOUNTS[0][1]
    out = []
    for nonce in range(start_nonce, start_nonce + count):
        tx = {"to": DEV_ACCOUNTS[1][0], "value": 1, "gas": 21_000, "maxFeePerGas": 10**10,
              "maxPriorityFeePerGas": 10**9, "nonce": nonce, "chainId": dev_spec().chain_id,
              "type": 2}
        out.append("0x" + Account.sign_transaction(tx, key).raw_transaction.hex())
    return out


async def send_raw(session: aiohttp.ClientSession, url: str, raw: str) -> dict:
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction", "params": [raw]}
    async with session.post(url, json=body) as response:
        return await response.json()
