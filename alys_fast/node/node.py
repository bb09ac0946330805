"""Start and stop one node: build the context and the supervision tree, wait until it serves.

``Node.start`` returns once the RPC port is bound (every actor it depends on is up by then),
or raises :class:`NodeStartError` with the reason if the tree gives up first. What can be
checked before any actor runs is checked first, so a wrong setup fails at once with its own
message: the data directory is opened (a directory of another chain is refused) and every
actor is constructed (an authority key that is not in the spec is refused).
"""

from __future__ import annotations

import asyncio
import socket

from prometheus_client import PlatformCollector, ProcessCollector

from alys_fast.actors import ActorSystem, StartFailed
from alys_fast.auxpow.service import FinalityCollector
from alys_fast.chain.genesis import genesis_header
from alys_fast.gossip.service import ChainActorLink
from alys_fast.network.service import NetworkCollector, NetworkSetup
from alys_fast.network.transport import NodeKeyError, load_node_key
from alys_fast.network.wire import Status
from alys_fast.node.context import NodeContext
from alys_fast.node.metrics import NodeCollector
from alys_fast.node.offload import tune_interpreter
from alys_fast.storage.actor import StoreClient, open_store
from alys_fast.storage.store import StorageError
from alys_fast.sync.service import StoreBlocks, SyncCollector, SyncSettings, SyncSetup
from alys_fast.system.tree import build_spec


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


def _network_setups(ctx: NodeContext) -> None:
    """The network's and sync's setups for a node with peers, unless given (a test's fault
    transport); the node key is made in the data dir on first start. Their actors run in the
    tree's ``network`` supervisor."""
    assert ctx.network_settings is not None
    if ctx.network is None:
        try:
            ctx.data_dir.mkdir(parents=True, exist_ok=True)
            key = load_node_key(ctx.data_dir)
        except (OSError, NodeKeyError) as exc:
            raise NodeStartError(f"node key in {ctx.data_dir}: {exc}") from None
        genesis = genesis_header(ctx.spec).hash
        status = Status(ctx.spec.chain_id, genesis, 0, genesis, 0, "full", "")
        ctx.network = NetworkSetup.create(ctx.network_settings, key, status)
    if ctx.sync is None:
        ctx.sync = SyncSetup(SyncSettings(), ChainActorLink(ctx), StoreBlocks(StoreClient(ctx)))


class Node:
    """One running node: ``await Node(ctx).start()``, then ``url``, ``wait()``, ``stop()``."""

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        if ctx.network_settings is not None:
            _network_setups(ctx)
        self.system = ActorSystem(build_spec(ctx))
        ctx.system = self.system
        ctx.registry.register(self.system.metrics)
        ctx.registry.register(NodeCollector(ctx))
        ctx.registry.register(FinalityCollector(ctx))
        if ctx.network is not None and ctx.sync is not None:
            ctx.registry.register(NetworkCollector(ctx.network))
            ctx.registry.register(SyncCollector(ctx.sync))
        ProcessCollector(registry=ctx.registry)
        PlatformCollector(registry=ctx.registry)

    async def start(self, timeout: float = 60.0) -> Node:
        ready = self.ctx.rpc_ready = asyncio.Event()
        tune_interpreter()
        _check_port(self.ctx.rpc_host, self.ctx.rpc_port)
        if self.ctx.consensus_rpc_port is not None:
            _check_port(self.ctx.consensus_rpc_host, self.ctx.consensus_rpc_port)
        try:
            open_store(self.ctx).close()
        except (StorageError, OSError) as exc:
            raise NodeStartError(str(exc)) from None
        try:
            await self.system.start()
        except StartFailed as exc:
            raise NodeStartError(str(exc)) from None
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
        scheme = "http" if self.ctx.rpc_tls is None else "https"
        return f"{scheme}://{self.ctx.rpc_host}:{self.ctx.rpc_bound}/"

    @property
    def ws_url(self) -> str:
        scheme = "ws" if self.ctx.rpc_tls is None else "wss"
        return f"{scheme}://{self.ctx.rpc_host}:{self.ctx.rpc_bound}/"

    async def wait(self) -> int:
        """Until the node stops (``stop`` or an escalation); its exit code."""
        return await self.system.wait()

    async def stop(self, grace: float = 2.0) -> int:
        """Stop serving first, letting answers in flight finish (up to ``grace`` s, while the
        actors they wait on still run), then stop the tree."""
        server = self.ctx.rpc_server
        if server is not None:
            await server.stop(grace)
        code = await self.system.stop()
        if self.ctx.rpc_access is not None:
            self.ctx.rpc_access.close()  # the audit log's last lines reach the file
        return code
