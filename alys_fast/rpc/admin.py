"""The operator's methods (the ``admin`` namespace, served only with credentials where the port
has an access policy, :mod:`alys_fast.rpc.auth`), and geth's ``rpc_modules``, always public.

- ``admin_nodeInfo``: the node's version, chain id, head, authority (its BLS public key as the
  chain spec lists it; null on a full node), RPC endpoints and data directory.
- ``admin_datadir``: the data directory, as geth answers it.
- ``rpc_modules``: the namespaces this port serves without credentials, ``{name: "1.0"}`` as
  geth's; with no policy (a dev chain), every namespace of the table.
"""

from __future__ import annotations

from typing import Any

from alys_fast import __version__
from alys_fast.consensus import SecretKey
from alys_fast.rpc.auth import namespace_of
from alys_fast.rpc.dispatch import Methods
from alys_fast.rpc.eth import CLIENT_VERSION, EthApi
from alys_fast.rpc.formats import hexdata
from alys_fast.rpc.settings import RpcEndpoint, RpcSettings

MODULE_VERSION = "1.0"  # what geth's rpc_modules says of every namespace


class AdminApi:
    """``admin_*`` and ``rpc_modules`` over one node; see the module docstring."""

    def __init__(self, settings: RpcSettings, endpoint: RpcEndpoint, eth: EthApi) -> None:
        self.settings = settings
        self.endpoint = endpoint
        self.eth = eth
        key = settings.authority_key
        self.authority = (
            None if key is None else hexdata(SecretKey.from_bytes(key).public_key().to_bytes()))

    def register(self, methods: Methods) -> None:
        """Add the methods to ``methods``; ``rpc_modules`` lists that table's namespaces."""
        methods.add("admin_nodeInfo", self.node_info)
        methods.add("admin_datadir", self.datadir)
        methods.add("rpc_modules", lambda: self.modules(methods))

    def node_info(self) -> dict[str, Any]:
        settings = self.settings
        head = self.eth.head
        secure = settings.tls is not None
        address = f"{settings.host}:{self.endpoint.bound or settings.port}/"
        return {
            "name": CLIENT_VERSION,
            "version": __version__,
            "chainId": hex(settings.spec.chain_id),
            "head": {"number": hex(head.number), "hash": hexdata(head.hash)},
            "authority": self.authority,
            "rpc": {"http": ("https://" if secure else "http://") + address,
                    "ws": ("wss://" if secure else "ws://") + address},
            "dataDir": self.datadir(),
        }

    def datadir(self) -> str:
        return str(self.settings.data_dir.resolve())

    def modules(self, methods: Methods) -> dict[str, str]:
        access = methods.access
        served = {namespace_of(name) for name in methods
                  if access is None or access.anonymous.allows(name)}
        return dict.fromkeys(sorted(served), MODULE_VERSION)
