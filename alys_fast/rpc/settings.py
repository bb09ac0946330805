"""What the RPC service is built with (:class:`RpcSettings`) and what it reports back to the
node once it serves (:class:`RpcEndpoint`)."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry

from alys_fast.chain.mining import DevMining
from alys_fast.chain.spec import ChainSpec
from alys_fast.engine.external import ExecutionSettings
from alys_fast.rpc.auth import Authenticator
from alys_fast.rpc.limits import Limits
from alys_fast.rpc.server import RpcServer


@dataclass(frozen=True)
class RpcSettings:
    """The JSON-RPC port and what its methods read of the node.

    ``port`` 0 binds an ephemeral port (the bound one is in :attr:`RpcEndpoint.bound`).
    ``access``: who may call which namespaces, and the audit log (None: every method open to
    everyone, a dev chain's default; the node closes it when it stops). ``tls`` None: plain
    HTTP and WebSocket. ``dev_mining`` set serves a dev chain's methods, and ``dev_keys`` (its
    unlocked accounts, as secrets) eth_accounts, eth_sendTransaction and the signing methods.
    ``execution``: an external execution client the state methods are forwarded to.
    ``registry``: what ``/metrics`` serves.
    """

    spec: ChainSpec
    data_dir: Path
    authority_key: bytes | None = None
    host: str = "127.0.0.1"
    port: int = 8545
    limits: Limits = field(default_factory=Limits)
    cors: tuple[str, ...] = ()  # browser origins allowed to call the RPC ("*": any)
    access: Authenticator | None = None
    tls: ssl.SSLContext | None = None
    dev_mining: DevMining | None = None
    dev_keys: tuple[bytes, ...] = ()
    execution: ExecutionSettings | None = None
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)


@dataclass
class RpcEndpoint:
    """Filled by the RPC actor as it comes up, read by the node: the bound port (kept by a
    restarted actor), ``ready`` once it serves, and the server (a node stop lets its answers in
    flight finish)."""

    bound: int | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    server: RpcServer | None = None

