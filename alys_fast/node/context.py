"""What every actor of one node is built with: the spec, the config and how to reach the others.

Actors never hold each other: they hold the :class:`NodeContext` and look a peer up by path
(:mod:`alys_fast.paths`) at the moment they ask it (:meth:`NodeContext.ref`), so a restarted
peer (a new cell generation, same path) is reached without anyone re-wiring. Notifications
are not told to known paths: the chain publishes them on topics (:mod:`alys_fast.chain.topics`)
that the actors interested subscribe to.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry

from alys_fast.chain.aura import STALL_SLOTS
from alys_fast.chain.journal import JournalSettings
from alys_fast.chain.mining import DevMining
from alys_fast.chain.spec import ChainSpec
from alys_fast.chain.txpool import TxPoolLimits
from alys_fast.engine.external import ExecutionSettings
from alys_fast.network.service import NetworkSettings
from alys_fast.rpc import Limits, RpcServer

if TYPE_CHECKING:
    from alys_fast.actors import ActorRef, ActorSystem
    from alys_fast.network.service import NetworkSetup
    from alys_fast.rpc.auth import Authenticator
    from alys_fast.sync.service import SyncSetup


@dataclass
class NodeContext:
    """One node's shared, read-only setup plus the late-bound actor system.

    ``authority_key`` is this node's block-signing secret (None: it never authors). ``rpc_port``
    0 binds an ephemeral port; the bound one is in ``rpc_bound`` once the RPC actor is up.
    """

    spec: ChainSpec
    data_dir: Path
    authority_key: bytes | None = None
    rpc_host: str = "127.0.0.1"
    rpc_port: int = 8545
    rpc_limits: Limits = field(default_factory=Limits)
    rpc_cors: tuple[str, ...] = ()  # browser origins allowed to call the RPC ("*": any)
    # Who may call which namespaces, and the audit log (None: every method open to everyone,
    # a dev chain's default); the node closes it when it stops.
    rpc_access: Authenticator | None = None
    rpc_tls: ssl.SSLContext | None = None  # None: plain HTTP and WebSocket
    # Alys's consensus RPC for merge miners (createauxblock...): None does not serve it; 0
    # binds an ephemeral port, the bound one is in ``consensus_rpc_bound`` once it is up.
    consensus_rpc_host: str = "127.0.0.1"
    consensus_rpc_port: int | None = None
    stall_slots: int = STALL_SLOTS
    sync_writes: bool = False
    archive: bool = False  # keep every block's state readable, not only the last 128
    pool_limits: TxPoolLimits = field(default_factory=TxPoolLimits)
    pool_journal: JournalSettings = field(default_factory=JournalSettings)
    # A development chain's mining mode and clock (None: Aura slots on the wall clock). Kept
    # here, not in the chain actor, so that an actor restart keeps them.
    dev_mining: DevMining | None = None
    # A dev chain's unlocked accounts, as secrets: eth_accounts, eth_sendTransaction and the
    # signing methods use them (served only with dev_mining set, so never by `alys-fast run`).
    dev_keys: tuple[bytes, ...] = ()
    # An external execution client (geth over the Engine API); None: the embedded revm engine.
    execution: ExecutionSettings | None = None
    # Peers (the config's [network]); None: a node that talks to no one (``dev``, a lone
    # authority). The node builds ``network`` and ``sync`` from it (the actors' setups).
    network_settings: NetworkSettings | None = None
    network: NetworkSetup | None = None
    sync: SyncSetup | None = None
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    system: ActorSystem | None = None
    # Filled by actors as they come up, read by the node and the tests.
    rpc_bound: int | None = None
    consensus_rpc_bound: int | None = None
    rpc_ready: asyncio.Event | None = None
    rpc_server: RpcServer | None = None  # so a node stop can let answers in flight finish
    stats: dict[str, Any] = field(default_factory=dict)

    def ref(self, path: str) -> ActorRef:
        """The current ref of the actor at ``path``."""
        assert self.system is not None, "the node's actor system is not built yet"
        return self.system.ref(path)
