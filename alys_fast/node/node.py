"""Start and stop one node: build each service's settings and the supervision tree, wait until
it serves.

``Node.start`` returns once the RPC port is bound (every actor it depends on is up by then),
or raises :class:`NodeStartError` with the reason if the tree gives up first. What can be
checked before any actor runs is checked first, so a wrong setup fails at once with its own
message: the data directory is opened (a directory of another chain is refused) and every
actor is constructed (an authority key that is not in the spec is refused).
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import PlatformCollector, ProcessCollector

from alys_fast.actors import ActorSystem, Directory, StartFailed
from alys_fast.actors.worker import tune_interpreter
from alys_fast.chain.actor import ChainSettings
from alys_fast.chain.genesis import genesis_header, store_genesis
from alys_fast.chain.pool_actor import PoolSettings
from alys_fast.engine.actor import EngineSettings
from alys_fast.gossip.service import ChainActorLink
from alys_fast.merged_mining.service import (
    ConsensusRpcEndpoint,
    ConsensusRpcSettings,
    FinalityCollector,
)
from alys_fast.metrics.stats import NodeStats
from alys_fast.network.service import NetworkCollector, NetworkSetup
from alys_fast.network.transport import NodeKeyError, load_node_key
from alys_fast.network.wire import Status
from alys_fast.node.metrics import NodeCollector
from alys_fast.node.settings import NodeSettings
from alys_fast.paths import RECOVERY
from alys_fast.rpc.health import HealthCheck, HealthSettings
from alys_fast.rpc.settings import RpcEndpoint, RpcSettings
from alys_fast.storage.actor import StorageSettings, StoreClient, open_store
from alys_fast.storage.store import StorageError
from alys_fast.sync.service import StoreBlocks, SyncCollector, SyncSettings, SyncSetup
from alys_fast.system.tree import build_spec

if TYPE_CHECKING:
    from alys_fast.actors import ActorRef

class NodeStartError(RuntimeError):
    """The node could not come up; the message says why."""


def _check_port(host: str, port: int) -> None:
    """Fail now, with the reason, if the RPC cannot listen there (taken, not an address…)."""
    if not 0 <= port <= 65535:
        raise NodeStartError(f"RPC port {port} is not in 0..65535")
    if port == 0:
        return
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise NodeStartError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _network_setup(settings: NodeSettings) -> NetworkSetup:
    """The network's setup for a node with peers, unless given (a test's fault transport);
    the node key is made in the data dir on first start."""
    assert settings.network_settings is not None
    if settings.network is not None:
        return settings.network
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        key = load_node_key(settings.data_dir)
    except (OSError, NodeKeyError) as exc:
        raise NodeStartError(f"node key in {settings.data_dir}: {exc}") from None
    genesis = genesis_header(settings.spec).hash
    status = Status(settings.spec.chain_id, genesis, 0, genesis, 0, "full", "")
    return NetworkSetup.create(settings.network_settings, key, status)


@dataclass(frozen=True)
class PeerHost:
    """What the network, sync and gossip actors are built with (sync's ``SyncHost``): their
    setups, which outlive the actors' restarts, and how to reach actors by path."""

    network: NetworkSetup
    sync: SyncSetup
    directory: Directory

    def ref(self, path: str) -> ActorRef:
        return self.directory.ref(path)


class Node:
    """One running node: ``await Node(settings).start()``, then ``url``, ``wait()``,
    ``stop()``.

    It builds each service's settings from ``settings`` and keeps what the services report:
    ``rpc`` and ``consensus_rpc`` (bound ports, the server to drain; ``rpc_settings``: what the
    RPC serves), ``stats`` (the
    counters), ``network`` and ``sync`` (a node with peers), the actor ``system`` and its
    ``directory``."""

    def __init__(self, settings: NodeSettings) -> None:
        self.settings = settings
        spec = settings.spec
        self.directory = directory = Directory()
        self.stats = stats = NodeStats()
        self.rpc = RpcEndpoint()
        self.consensus_rpc = ConsensusRpcEndpoint()
        self.storage = StorageSettings(settings.data_dir, store_genesis(spec),
                                       settings.sync_writes, settings.archive)
        self.network: NetworkSetup | None = None
        self.sync: SyncSetup | None = None
        if settings.network_settings is not None:
            self.network = _network_setup(settings)
            self.sync = SyncSetup(SyncSettings(), ChainActorLink(directory),
                                  StoreBlocks(StoreClient(directory)))
        sync = self.sync
        syncing = None if sync is None else (lambda: sync.syncing)
        pool = PoolSettings(spec, settings.data_dir, settings.pool_limits, settings.pool_journal,
                            gossip=self.network is not None)
        health = HealthSettings(spec, settings.authority_key is not None, settings.stall_slots,
                                settings.dev_mining)
        self.rpc_settings = rpc = RpcSettings(
            spec, settings.data_dir, settings.authority_key, settings.rpc_host,
            settings.rpc_port, settings.rpc_limits, settings.rpc_cors, settings.rpc_access,
            settings.rpc_tls, settings.dev_mining, settings.dev_keys, settings.execution,
            settings.registry)
        args: dict[str, tuple] = {
            "storage": (self.storage,),
            "metrics": (stats, directory),
            "engine": (EngineSettings(spec.fork, spec.chain_id, settings.execution), directory,
                       stats),
            "txpool": (pool, directory),
            "chain": (ChainSettings(spec, settings.authority_key, settings.dev_mining, syncing,
                                    settings.data_dir),
                      directory, stats),
            "auxpow": (ConsensusRpcSettings(settings.consensus_rpc_host,
                                            settings.consensus_rpc_port),
                       self.consensus_rpc, directory),
            "rpc": (rpc, self.rpc, directory, stats,
                    HealthCheck(health, directory, stats, self.network, syncing)),
            **{path.rpartition("/")[2]: (spec.chain_id,) for path in RECOVERY},
        }
        if self.network is not None and self.sync is not None:
            host = PeerHost(self.network, self.sync, directory)
            args |= {"network": (host,), "sync": (host,), "gossip": (spec.chain_id, host)}
        self.system = ActorSystem(build_spec(args), directory=directory)
        registry = settings.registry
        registry.register(self.system.metrics)
        registry.register(NodeCollector(stats, pool, self.rpc, health))
        registry.register(FinalityCollector(stats))
        if self.network is not None and self.sync is not None:
            registry.register(NetworkCollector(self.network))
            registry.register(SyncCollector(self.sync))
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)

    async def start(self, timeout: float = 60.0) -> Node:
        settings = self.settings
        ready = self.rpc.ready
        tune_interpreter()
        _check_port(settings.rpc_host, settings.rpc_port)
        if settings.consensus_rpc_port is not None:
            _check_port(settings.consensus_rpc_host, settings.consensus_rpc_port)
        try:
            open_store(self.storage).close()
        except (StorageError, OSError) as exc:
            raise NodeStartError(str(exc)) from None
        try:
            await self.system.start()
        except StartFailed as exc:  # its words, not the exception's repr
            raise NodeStartError(f"{exc.path}: {exc.error or type(exc.error).__name__}") \
                from None
        waiting = asyncio.ensure_future(ready.wait())
        stopping = asyncio.ensure_future(self.system.until_stopping())
        done, _ = await asyncio.wait({waiting, stopping}, timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        stopping.cancel()
        if waiting in done:
            return self
        reason = self.system.exit_reason if done else f"not serving after {timeout:.0f}s"
        await self.system.stop("start failed", 1)
        raise NodeStartError(reason)

    @property
    def url(self) -> str:
        scheme = "http" if self.settings.rpc_tls is None else "https"
        return f"{scheme}://{self.settings.rpc_host}:{self.rpc.bound}/"

    @property
    def ws_url(self) -> str:
        scheme = "ws" if self.settings.rpc_tls is None else "wss"
        return f"{scheme}://{self.settings.rpc_host}:{self.rpc.bound}/"

    async def wait(self) -> int:
        """Until the node stops (``stop`` or an escalation); its exit code."""
        return await self.system.wait()

    async def stop(self, grace: float = 2.0) -> int:
        """Stop serving first, letting answers in flight finish (up to ``grace`` s, while the
        actors they wait on still run), then stop the tree."""
        server = self.rpc.server
        if server is not None:
            await server.stop(grace)
        code = await self.system.stop()
        if self.settings.rpc_access is not None:
            self.settings.rpc_access.close()  # the audit log's last lines reach the file
        return code
