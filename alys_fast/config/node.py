"""The node's configuration file (TOML), validated into a frozen struct with clear errors.

Example::

    data_dir = "/var/lib/alys-fast"
    chain = "dev"                       # or the path of a chain spec (.toml / .json)
    authority_key_file = "/etc/alys-fast/authority.key"   # omit on a non-authority node
    sync_writes = false                 # fsync every block (survives power loss, slower)
    archive = false                     # keep every block's state (default: the last 128)
    stall_slots = 3                     # /health fails an authority this many slots behind

    [rpc]
    host = "127.0.0.1"
    port = 8545
    cors = ["http://localhost:3000"]    # browser origins allowed to call the RPC; "*": any
    max_body = 5242880
    max_batch = 1000
    ip_connections = 64                 # per client address; ip_rate (requests/s), ip_batches,
    unsent_budget = 268435456           # unsent bytes, all connections (module server's doc)
    api = ["eth", "net", "web3", "txpool"]   # namespaces served without credentials
    jwt_secret_file = "jwtsecret"       # default: <data_dir>/jwtsecret, made on first start
    jwt_namespaces = ["*"]              # what a JWT grants
    tls_cert = "rpc.crt"                # PEM; with tls_key, the port speaks HTTPS / WSS
    tls_key = "rpc.key"

    [[rpc.api_keys]]                    # `alys-fast keys api` prints these
    id = "ops"
    sha256 = "…"                        # of the key, never the key
    namespaces = ["admin", "debug"]

    [consensus_rpc]                     # Alys's mining RPC (createauxblock, submitauxblock)
    host = "127.0.0.1"
    port = 3000                         # default 3000; any free port when [rpc] port is 0

    [pool]                              # geth's legacy pool limits (chain/txpool.py)
    max_txs = 65536                     # pending and queued together
    max_executable_per_sender = 1024
    max_queued_per_sender = 64
    max_queued = 1024
    queue_lifetime = 10800              # seconds a sender's queued txs live without news
    price_bump = 10                     # % a replacement must raise fee cap and tip
    journal = true                      # keep accepted txs in <data_dir>/transactions.rlp
    rejournal = 3600                    # seconds between rewrites of the journal

    [network]                           # peers (omit the table: a node that talks to no one)
    listen = "0.0.0.0:55444"            # host:port for peers (port 0: any free port)
    advertise = "203.0.113.7:55444"     # host:port peers should dial (default: the bound one)
    bootnodes = ["alys://<64 hex digits>@203.0.113.8:55444"]   # dialed, kept, redialed
    max_peers = 64

    [execution]                         # an external execution client (omit: the embedded EVM)
    engine_url = "http://127.0.0.1:8551"   # geth's Engine API (--authrpc.*)
    jwt_secret_file = "jwtsecret.hex"   # geth's --authrpc.jwtsecret
    rpc_url = "http://127.0.0.1:8547"   # geth's public RPC, where state/tx methods are forwarded
    timeout = 8                         # seconds per Engine API call

The node key (``<data_dir>/network.key``, CURVE) is created on first start; its id (public key,
hex) is what ``bootnodes`` addresses and the chain spec's ``node_keys`` list.

``examples/node.toml`` is a complete, commented one; :mod:`alys_fast.rpc.auth` says what the
namespaces and credentials do.

Relative paths are resolved against the file's directory. Unknown keys are errors, so a typo
fails at start instead of being silently ignored.
"""

from __future__ import annotations

import ssl
import tomllib
from pathlib import Path
from typing import Annotated

import msgspec
from msgspec import Meta

from alys_fast.chain.aura import STALL_SLOTS
from alys_fast.chain.journal import JournalSettings
from alys_fast.chain.spec import ChainSpec, SpecError, dev_spec, load_spec
from alys_fast.chain.txpool import TxPoolLimits
from alys_fast.consensus import BlsError, SecretKey
from alys_fast.engine.external import ExecutionSettings
from alys_fast.keyfiles import KeyFileError, keep_private
from alys_fast.network.peers import PeerLimits, parse_enode
from alys_fast.network.service import NetworkSettings
from alys_fast.rpc import Limits
from alys_fast.rpc.auth import ALL_NAMESPACES, PUBLIC_NAMESPACES, ApiKey, check_namespaces
from alys_fast.rpc.server import cors_origins

Port = Annotated[int, Meta(ge=0, le=65535)]
CONSENSUS_RPC_PORT = 3000  # Alys's
# The defaults come from an instance: on the slotted Limits class, ``Limits.max_body`` is the
# slot's member descriptor, not its default value.
_LIMITS = Limits()
_POOL = TxPoolLimits()
_JOURNAL = JournalSettings()


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the file and the field."""


class RpcConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where JSON-RPC listens, how much one client may send, which browser origins may call,
    who may call what (:mod:`alys_fast.rpc.auth`) and the port's TLS."""

    host: str = "127.0.0.1"
    port: Port = 8545
    max_body: Annotated[int, Meta(ge=1024)] = _LIMITS.max_body
    max_batch: Annotated[int, Meta(ge=1)] = _LIMITS.max_batch
    max_connections: Annotated[int, Meta(ge=1)] = _LIMITS.max_connections
    # Backpressure and per-client limits (alys_fast.rpc.server's docstring says what each is).
    idle_timeout: Annotated[float, Meta(gt=0)] = _LIMITS.idle_timeout
    max_ws_buffer: Annotated[int, Meta(ge=65536)] = _LIMITS.max_ws_buffer
    unsent_budget: Annotated[int, Meta(ge=65536)] = _LIMITS.unsent_budget
    ip_connections: Annotated[int, Meta(ge=1)] = _LIMITS.ip_connections
    ip_rate: Annotated[float, Meta(gt=0)] = _LIMITS.ip_rate
    ip_burst: Annotated[float, Meta(ge=1)] = _LIMITS.ip_burst
    ip_batches: Annotated[int, Meta(ge=1)] = _LIMITS.ip_batches
    rate_limit_loopback: bool = _LIMITS.rate_limit_loopback
    reserved_connections: Annotated[int, Meta(ge=0)] = _LIMITS.reserved_connections
    probe_timeout: Annotated[float, Meta(gt=0)] = _LIMITS.probe_timeout
    cors: tuple[str, ...] = ()
    api: tuple[str, ...] = PUBLIC_NAMESPACES
    api_keys: tuple[ApiKey, ...] = ()
    jwt_secret_file: str | None = None  # None: <data_dir>/jwtsecret
    jwt_namespaces: tuple[str, ...] = (ALL_NAMESPACES,)
    tls_cert: str | None = None
    tls_key: str | None = None

    def __post_init__(self) -> None:
        cors_origins(self.cors)  # its ValueError names the bad origin
        check_namespaces((*self.api, *self.jwt_namespaces))
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")

    def limits(self) -> Limits:
        return Limits(
            max_body=self.max_body, max_batch=self.max_batch,
            max_connections=self.max_connections, idle_timeout=self.idle_timeout,
            max_ws_buffer=self.max_ws_buffer, unsent_budget=self.unsent_budget,
            ip_connections=self.ip_connections, ip_rate=self.ip_rate, ip_burst=self.ip_burst,
            ip_batches=self.ip_batches, rate_limit_loopback=self.rate_limit_loopback,
            reserved_connections=self.reserved_connections, probe_timeout=self.probe_timeout,
        )


class ConsensusRpcConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where Alys's consensus RPC (merge miners' ``createauxblock``...) listens; ``port`` None:
    3000, or any free port when the JSON-RPC port is 0 (``consensus_port``)."""

    host: str = "127.0.0.1"
    port: Port | None = None


def consensus_port(port: int | None, rpc_port: int) -> int:
    """The consensus RPC's port: ``port`` if given, else Alys's 3000, or any free port (0)
    when the JSON-RPC port is (so a node on ephemeral ports takes no fixed one)."""
    if port is not None:
        return port
    return 0 if rpc_port == 0 else CONSENSUS_RPC_PORT


class PoolConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The transaction pool's limits and journal (``[pool]``)."""

    max_txs: Annotated[int, Meta(ge=1)] = _POOL.max_txs
    max_executable_per_sender: Annotated[int, Meta(ge=1)] = _POOL.max_executable_per_sender
    max_queued_per_sender: Annotated[int, Meta(ge=1)] = _POOL.max_queued_per_sender
    max_queued: Annotated[int, Meta(ge=1)] = _POOL.max_queued
    queue_lifetime: Annotated[float, Meta(gt=0)] = _POOL.queue_lifetime
    price_bump: Annotated[int, Meta(ge=0)] = _POOL.price_bump
    journal: bool = _JOURNAL.enabled
    rejournal: Annotated[float, Meta(gt=0)] = _JOURNAL.rejournal

    def limits(self) -> TxPoolLimits:
        return TxPoolLimits(
            max_txs=self.max_txs, max_executable_per_sender=self.max_executable_per_sender,
            max_queued_per_sender=self.max_queued_per_sender, max_queued=self.max_queued,
            queue_lifetime=self.queue_lifetime, price_bump=self.price_bump,
        )

    def journal_settings(self) -> JournalSettings:
        return JournalSettings(enabled=self.journal, rejournal=self.rejournal)


NETWORK_PORT = 55444
HostPort = Annotated[str, Meta(pattern=r"^\S+:\d{1,5}$")]


class NetworkConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where this node listens for peers and whom it dials (``[network]``); the chain spec's
    ``node_keys`` say which of them are federation members."""

    listen: HostPort = f"127.0.0.1:{NETWORK_PORT}"
    advertise: HostPort | None = None
    bootnodes: tuple[str, ...] = ()
    max_peers: Annotated[int, Meta(ge=1, le=1024)] = 64

    def __post_init__(self) -> None:
        for address in (self.listen, *(() if self.advertise is None else (self.advertise,))):
            if not 0 <= int(address.rpartition(":")[2]) <= 65535:
                raise ValueError(f"{address}: the port must be 0 to 65535")
        for bootnode in self.bootnodes:
            parse_enode(bootnode)  # its BadAddress (a ValueError) says what is wrong

    def settings(self, members: frozenset[str]) -> NetworkSettings:
        """The network actor's settings; ``members``: the spec's node ids."""
        return NetworkSettings(
            listen=f"tcp://{self.listen}", advertise=self.advertise, bootnodes=self.bootnodes,
            members=members, limits=PeerLimits(max_peers=self.max_peers))


class ExecutionConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An external execution client (``[execution]``): geth over the Engine API."""

    engine_url: str
    jwt_secret_file: str
    rpc_url: str | None = None
    timeout: Annotated[float, Meta(gt=0, le=120)] = 8.0

    def settings(self) -> ExecutionSettings:
        return ExecutionSettings(self.engine_url, self.jwt_secret_file, self.rpc_url,
                                 self.timeout)


class NodeConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A node's settings; see the module docstring."""

    data_dir: str
    chain: str = "dev"
    authority_key_file: str | None = None
    sync_writes: bool = False
    archive: bool = False
    stall_slots: Annotated[int, Meta(ge=1)] = STALL_SLOTS
    rpc: RpcConfig = RpcConfig()
    consensus_rpc: ConsensusRpcConfig = ConsensusRpcConfig()
    pool: PoolConfig = PoolConfig()
    network: NetworkConfig | None = None
    execution: ExecutionConfig | None = None

    def spec(self) -> ChainSpec:
        """The chain spec this config names (``dev`` is built in)."""
        return dev_spec() if self.chain == "dev" else load_spec(self.chain)

    def authority_key(self) -> bytes | None:
        """The BLS block-signing secret from ``authority_key_file`` (hex, 32 bytes), if any."""
        if self.authority_key_file is None:
            return None
        path = Path(self.authority_key_file)
        try:
            keep_private(path, "authority_key_file")
            text = path.read_text().strip()
        except KeyFileError as exc:
            raise ConfigError(str(exc)) from None
        except OSError as exc:
            raise ConfigError(f"authority_key_file {path}: {exc.strerror}") from None
        return parse_key(text, f"authority_key_file {path}")


def parse_key(text: str, where: str) -> bytes:
    """A 32-byte BLS12-381 secret key from hex (with or without ``0x``), checked to be one."""
    body = text[2:] if text.startswith("0x") else text
    try:
        key = bytes.fromhex(body)
    except ValueError:
        raise ConfigError(f"{where}: not a hex private key") from None
    if len(key) != 32:
        raise ConfigError(f"{where}: a private key is 32 bytes, got {len(key)}")
    try:
        SecretKey.from_bytes(key)
    except BlsError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return key


def tls_context(cert: str | Path, key: str | Path) -> ssl.SSLContext:
    """The RPC port's server-side TLS (stdlib defaults: TLS 1.2 and later) from a PEM
    certificate chain and its private key; a ConfigError says which file is wrong."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    for what, path, marker in (("tls_cert", cert, "CERTIFICATE-----"),
                               ("tls_key", key, "PRIVATE KEY-----")):
        try:
            text = Path(path).read_text(errors="replace")
        except OSError as exc:
            raise ConfigError(f"{what} {path}: {exc.strerror}") from None
        if marker not in text:
            raise ConfigError(f"{what} {path}: not a PEM file with a {marker.rstrip('-')}")
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise ConfigError(f"tls_key {key} is not the key of the certificate {cert}") \
                from None
        raise ConfigError(f"tls_cert {cert} / tls_key {key}: cannot be loaded "
                          f"({exc.reason or exc.strerror})") from None
    return context


def load_config(path: str | Path) -> NodeConfig:
    """Read and validate a node config file; relative paths become relative to it."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        config = msgspec.convert(data, NodeConfig, strict=True)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    base = path.parent

    def resolve(value: str | None) -> str | None:
        return None if value is None else str(base / Path(value).expanduser())

    config = msgspec.structs.replace(
        config,
        data_dir=resolve(config.data_dir),
        authority_key_file=resolve(config.authority_key_file),
        chain=config.chain if config.chain == "dev" else resolve(config.chain),
        rpc=msgspec.structs.replace(
            config.rpc, jwt_secret_file=resolve(config.rpc.jwt_secret_file),
            tls_cert=resolve(config.rpc.tls_cert), tls_key=resolve(config.rpc.tls_key)),
        execution=None if config.execution is None else msgspec.structs.replace(
            config.execution, jwt_secret_file=resolve(config.execution.jwt_secret_file)),
    )
    try:
        config.spec()
    except SpecError as exc:
        raise ConfigError(f"{path}: chain: {exc}") from None
    return config
