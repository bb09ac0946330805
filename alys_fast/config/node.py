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

``examples/node.toml`` is a complete, commented one.

Relative paths are resolved against the file's directory. Unknown keys are errors, so a typo
fails at start instead of being silently ignored.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated

import msgspec
from msgspec import Meta

from alys_fast.chain.spec import ChainSpec, SpecError, dev_spec, load_spec
from alys_fast.node.context import STALL_SLOTS
from alys_fast.rpc import Limits
from alys_fast.rpc.server import cors_origins

Port = Annotated[int, Meta(ge=0, le=65535)]
# The defaults come from an instance: on the slotted Limits class, ``Limits.max_body`` is the
# slot's member descriptor, not its default value.
_LIMITS = Limits()


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the file and the field."""


class RpcConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where JSON-RPC listens, how much one client may send, which browser origins may call."""

    host: str = "127.0.0.1"
    port: Port = 8545
    max_body: Annotated[int, Meta(ge=1024)] = _LIMITS.max_body
    max_batch: Annotated[int, Meta(ge=1)] = _LIMITS.max_batch
    max_connections: Annotated[int, Meta(ge=1)] = _LIMITS.max_connections
    cors: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        cors_origins(self.cors)  # its ValueError names the bad origin

    def limits(self) -> Limits:
        return Limits(
            max_body=self.max_body, max_batch=self.max_batch,
            max_connections=self.max_connections,
        )


class NodeConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A node's settings; see the module docstring."""

    data_dir: str
    chain: str = "dev"
    authority_key_file: str | None = None
    sync_writes: bool = False
    archive: bool = False
    stall_slots: Annotated[int, Meta(ge=1)] = STALL_SLOTS
    rpc: RpcConfig = RpcConfig()

    def spec(self) -> ChainSpec:
        """The chain spec this config names (``dev`` is built in)."""
        return dev_spec() if self.chain == "dev" else load_spec(self.chain)

    def authority_key(self) -> bytes | None:
        """The block-signing key from ``authority_key_file`` (hex, 32 bytes), if any."""
        if self.authority_key_file is None:
            return None
        path = Path(self.authority_key_file)
        try:
            text = path.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"authority_key_file {path}: {exc.strerror}") from None
        return parse_key(text, f"authority_key_file {path}")


def parse_key(text: str, where: str) -> bytes:
    """A 32-byte secp256k1 secret from hex (with or without ``0x``)."""
    body = text[2:] if text.startswith("0x") else text
    try:
        key = bytes.fromhex(body)
    except ValueError:
        raise ConfigError(f"{where}: not a hex private key") from None
    if len(key) != 32:
        raise ConfigError(f"{where}: a private key is 32 bytes, got {len(key)}")
    return key


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
    )
    try:
        config.spec()
    except SpecError as exc:
        raise ConfigError(f"{path}: chain: {exc}") from None
    return config
