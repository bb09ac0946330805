"""What one node is built from: the chain spec, the data dir, keys and every service's options,
as the ``dev``/``run`` commands (and tests) give them.

The node (:class:`~alys_fast.node.node.Node`) turns these into each service's own settings
(``StorageSettings``, ``EngineSettings``, ``PoolSettings``, ``ChainSettings``,
``RpcSettings``, ``ConsensusRpcSettings``...), so no service sees more than it reads and none
imports the node; what the services report back (the bound ports, the counters, the actor
system) lives on the node.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry

from alys_fast.chain.aura import STALL_SLOTS
from alys_fast.chain.journal import JournalSettings
from alys_fast.chain.mining import DevMining
from alys_fast.chain.spec import ChainSpec
from alys_fast.chain.txpool import TxPoolLimits
from alys_fast.engine.external import ExecutionSettings
from alys_fast.network.service import NetworkSettings, NetworkSetup
from alys_fast.rpc import Limits
from alys_fast.rpc.auth import Authenticator


@dataclass(frozen=True)
class NodeSettings:
    """One node's options.

    ``authority_key`` is this node's block-signing secret (None: it never authors). ``rpc_port``
    0 binds an ephemeral port; the bound one is in ``Node.rpc.bound`` once the RPC actor is up.
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
    # binds an ephemeral port, the bound one is in ``Node.consensus_rpc.bound`` once it is up.
    consensus_rpc_host: str = "127.0.0.1"
    consensus_rpc_port: int | None = None
    stall_slots: int = STALL_SLOTS
    sync_writes: bool = False
    archive: bool = False  # keep every block's state readable, not only the last 128
    pool_limits: TxPoolLimits = field(default_factory=TxPoolLimits)
    pool_journal: JournalSettings = field(default_factory=JournalSettings)
    # A development chain's mining mode and clock (None: Aura slots on the wall clock). Kept
    # by the node, not the chain actor, so that an actor restart keeps them.
    dev_mining: DevMining | None = None
    # A dev chain's unlocked accounts, as secrets: eth_accounts, eth_sendTransaction and the
    # signing methods use them (served only with dev_mining set, so never by `alys-fast run`).
    dev_keys: tuple[bytes, ...] = ()
    # An external execution client (geth over the Engine API); None: the embedded revm engine.
    execution: ExecutionSettings | None = None
    # Peers (the config's [network]); None: a node that talks to no one (``dev``, a lone
    # authority). ``network``: a network setup made beforehand (a test's fault transport);
    # None: the node makes it from ``network_settings`` and the node key in the data dir.
    network_settings: NetworkSettings | None = None
    network: NetworkSetup | None = None
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
