"""The RPC actor: serves JSON-RPC over HTTP and WebSocket for one node.

It owns the :class:`RpcServer` (bound when the actor starts, released when it stops, so a
restart re-binds the same port) and the :class:`EthApi` method table. Requests are answered by
the server's connection tasks, which ask the owning actors; the actor's own mailbox carries the
chain's head announcements (it follows :data:`~alys_fast.chain.topics.NEW_HEAD`), which
move ``latest`` and feed ``newHeads`` subscribers, the block and log filters and the ``logs``
subscribers (the new block's receipts travel in the announcement). Newly pooled transactions
(:attr:`EthApi.on_pending`) feed ``newPendingTransactions`` subscribers and pending-transaction
filters. Filters live with the actor: a restart forgets them, as a geth restart does.

It also serves the operator's views: ``/health`` (:mod:`alys_fast.rpc.health`), the status
page ``status.html`` at ``/`` (package data, read once), and the per-method call counts,
the refusals per limit and the served head's slot that ``/metrics`` exports, kept in
the node's ``stats["rpc"]`` so that they outlive a restart.
"""

from __future__ import annotations

import asyncio
import logging
from functools import cache
from importlib.resources import files
from typing import Any

from alys_fast.actors import Actor, Directory
from alys_fast.chain.topics import NEW_HEAD, NewHead
from alys_fast.chain.workflows import ImportedBlock
from alys_fast.metrics.stats import NodeStats
from alys_fast.rpc.admin import AdminApi
from alys_fast.rpc.auth import Authenticator
from alys_fast.rpc.debug import DebugApi
from alys_fast.rpc.dev import DevApi
from alys_fast.rpc.dispatch import CallStats, Methods
from alys_fast.rpc.eth import EthApi
from alys_fast.rpc.filters import BlockLogs, LogQuery
from alys_fast.rpc.formats import header_json, hexdata
from alys_fast.rpc.health import HealthCheck
from alys_fast.rpc.limits import Refusals
from alys_fast.rpc.server import LOGS, RpcServer
from alys_fast.rpc.settings import RpcEndpoint, RpcSettings
from alys_fast.storage.actor import StoreClient
from alys_fast.validation import Block

log = logging.getLogger(__name__)
# Closings of geth's forwarding clients still under way (the loop keeps only weak references).
_closing: set[asyncio.Task[None]] = set()


def node_methods(settings: RpcSettings, endpoint: RpcEndpoint, directory: Directory,
                 api: EthApi) -> Methods:
    """The node's method table over ``api``: the eth API, geth's tracers, the operator's
    methods, and on a dev chain its own methods and unlocked accounts (one assembly for the
    actor and for tests that walk every method), under the node's access policy."""
    methods = api.methods()
    # A node that is not a dev chain is never left open: without a policy of its own it
    # serves the public namespaces only.
    methods.access = settings.access or (
        None if settings.dev_mining is not None else Authenticator())
    DebugApi(api).register(methods)
    AdminApi(settings, endpoint, api).register(methods)
    if settings.dev_mining is not None:
        DevApi(directory, api).register(methods)
        # Imported here: the accounts need eth-account, which a non-dev node never loads.
        from alys_fast.rpc.accounts import AccountsApi

        AccountsApi(api, settings.dev_keys).register(methods)
    return methods


@cache
def status_page() -> bytes:
    """The status page (one self-contained HTML file shipped in the package)."""
    return files("alys_fast.rpc").joinpath("status.html").read_bytes()


class RpcActor(Actor):
    """JSON-RPC for the node; see the module docstring."""

    subscribes = (NEW_HEAD,)

    def __init__(self, settings: RpcSettings, endpoint: RpcEndpoint, directory: Directory,
                 stats: NodeStats, health: HealthCheck) -> None:
        """``endpoint``: where it reports the bound port and the server; ``stats``: the node's,
        where its counters live (``"rpc"``); ``health``: what ``/health`` answers."""
        self.settings = settings
        self.endpoint = endpoint
        self.directory = directory
        self.node_stats = stats
        self.health = health
        self.api: EthApi | None = None
        self.server: RpcServer | None = None

    async def started(self) -> None:
        settings, endpoint = self.settings, self.endpoint
        head = await StoreClient(self.directory).head_header()
        api = self.api = EthApi(settings.spec, head, self.directory, self.node_stats,
                                settings.execution)
        api.stats["head_slot"] = head.slot
        api.on_pending = self._pending
        methods = node_methods(settings, endpoint, self.directory, api)
        self.server = RpcServer(
            methods,
            host=settings.host,
            port=endpoint.bound or settings.port,  # a restart keeps an ephemeral port
            limits=settings.limits,
            health=self._health,
            registry=settings.registry,
            subscription_criteria={LOGS: LogQuery.parse},
            cors=settings.cors,
            stats=api.stats.setdefault("calls", CallStats()),
            refusals=api.stats.setdefault("refusals", Refusals()),
            status_page=status_page(),
            ssl=settings.tls,
        )
        await self.server.start()
        endpoint.bound = self.server.port
        endpoint.server = self.server
        log.info("JSON-RPC on %s (WebSocket %s)", self.server.url, self.server.ws_url)
        endpoint.ready.set()

    def receive(self, message: NewHead) -> None:
        if type(message) is not NewHead:
            raise TypeError(f"rpc: unexpected message {message!r}")
        assert self.api is not None and self.server is not None
        self.api.head = message.header
        self.api.finalized = message.finalized
        self.api.stats["head_slot"] = message.header.slot
        if self.server.has_subscribers("newHeads"):
            header = message.header
            size = 0
            if message.imported is not None:
                size = len(Block(header, message.imported.block.transactions).encode())
            self.server.publish("newHeads", header_json(header, size, self.api.miner))
        if message.imported is not None:  # None: a restart re-announcing the same head
            self._new_block(message.imported)

    def _new_block(self, imported: ImportedBlock) -> None:
        """The block's hash and logs to the filters, its logs to ``logs`` subscribers."""
        assert self.api is not None and self.server is not None
        header = imported.header
        block = BlockLogs(header.hash, header.number, imported.execution.receipts)
        self.api.filters.add_block(block)
        server = self.server
        for payload, sids in block.notifications(server.subscriptions(LOGS)):
            server.publish(LOGS, payload, to=sids)

    def _pending(self, hashes: list[bytes]) -> None:
        server = self.server
        if server is not None and server.has_subscribers("newPendingTransactions"):
            for tx_hash in hashes:
                server.publish("newPendingTransactions", hexdata(tx_hash))
        if self.api is not None:
            self.api.filters.add_pending(hashes)

    def _health(self) -> dict[str, Any]:
        assert self.api is not None
        return self.health.report(self.api.head)

    def pre_restart(self, error: BaseException) -> None:
        self._release()

    def stopped(self) -> None:
        self._release()

    def _release(self) -> None:
        if self.server is not None:
            self.server.abort()  # a no-op after the node's graceful RpcServer.stop
            if self.endpoint.server is self.server:
                self.endpoint.server = None
            self.server = None
        if self.api is not None and self.api.forwarder is not None:
            # Its kept-alive connections to geth; a restarted actor opens a client of its own.
            closing = asyncio.get_running_loop().create_task(self.api.forwarder.close())
            _closing.add(closing)
            closing.add_done_callback(_closing.discard)
            self.api.forwarder = None
