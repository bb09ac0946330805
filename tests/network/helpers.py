"""Network nodes for tests: a NetworkActor in its own small actor system, over any transport."""

from __future__ import annotations

from dataclasses import dataclass, field

from alys_fast.actors import Actor, ActorRef, ActorSystem, ChildSpec, Strategy, SupervisorSpec
from alys_fast.network.faults import FaultNetwork
from alys_fast.network.peers import PeerLimits
from alys_fast.network.service import (
    NETWORK,
    NetworkActor,
    NetworkClient,
    NetworkSettings,
    NetworkSetup,
    Received,
)
from alys_fast.network.transport import NodeKey
from alys_fast.network.wire import Status

CHAIN_ID = 212121
GENESIS = b"\x01" * 32
STATUS = Status(CHAIN_ID, GENESIS, 0, GENESIS, 0, "full", "")
#: Quick to notice a dead peer and to dial again, so tests finish soon.
FAST = PeerLimits(ping_interval=0.2, dead_after=1.0, backoff_first=0.05, backoff_cap=0.4)


class Inbox(Actor):
    """A subscriber: keeps every Received it is told."""

    def __init__(self, got: list[Received]) -> None:
        self.got = got

    def receive(self, message: Received) -> None:
        self.got.append(message)


@dataclass
class Node:
    """One node's network (the host the actor is built with) and what it received."""

    network: NetworkSetup
    system: ActorSystem | None = None
    got: list[Received] = field(default_factory=list)

    def ref(self, path: str) -> ActorRef:
        assert self.system is not None
        return self.system.ref(path)

    @property
    def id(self) -> str:
        return self.network.node_id

    @property
    def client(self) -> NetworkClient:
        return NetworkClient(self)

    def kinds(self) -> list[str]:
        return [type(r.message).__struct_config__.tag for r in self.got]

    async def start(self, subscribe: frozenset[str] = frozenset()) -> Node:
        spec = SupervisorSpec("alys", Strategy.ONE_FOR_ONE, (
            SupervisorSpec("network", Strategy.REST_FOR_ONE, (
                ChildSpec("network", NetworkActor, args=(self,)),
                ChildSpec("inbox", Inbox, args=(self.got,)),
            )),
        ))
        self.system = await ActorSystem(spec).start()
        if subscribe:
            await self.client.subscribe(subscribe, self.ref("network/inbox"))
        return self

    async def stop(self) -> None:
        if self.system is not None:
            await self.system.stop()
            self.system = None


def setup(key: NodeKey, *, listen: str, members=(), bootnodes=(), factory=None,
          limits: PeerLimits = FAST) -> NetworkSetup:
    settings = NetworkSettings(listen=listen, bootnodes=tuple(bootnodes),
                               members=frozenset(members), limits=limits, tick=0.05)
    extra = {} if factory is None else {"transport_factory": factory}
    return NetworkSetup.create(settings, key, STATUS, **extra)


def fault_factory(net: FaultNetwork):
    return lambda s: net.transport(s.node_id, s.settings.listen, s.book.admits)


def enode(key: NodeKey, listen: str) -> str:
    return f"alys://{key.id}@{listen.removeprefix('tcp://')}"


__all__ = ["FAST", "NETWORK", "STATUS", "Inbox", "Node", "enode", "fault_factory", "setup"]
