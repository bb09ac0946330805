"""geth as the node's execution client: its genesis from our chain spec, the JWT secret, and
the child process (init, start, ready, stop).

The EL genesis is Alys's (``etc/config/dev-genesis.json``, ALYS-PROTOCOL §5): every fork
through London at block 0, merged at genesis (``terminalTotalDifficulty`` 0, difficulty 0),
``shanghaiTime`` 0, and for a Cancun chain ``cancunTime`` 0 with the blob schedule geth ≥ 1.15
requires; the spec's chain id, timestamp, gas limit, initial base fee and alloc. geth's
EIP-1559 rules are fixed (elasticity 2, denominator 8), so a spec with others is refused here
rather than forking at block 1.

geth runs as Alys runs it (``scripts/utils/geth.sh``): full sync, the hash state scheme and
archive GC, no discovery, no IPC, and no peers — or, given a ``p2p_port``, the ``static_peers``
(enode URLs, :func:`enode`) as its only peers, over which geths share their pools'
transactions, as Alys's execution clients do (its node key and peer list are written by
``init``); the Engine API (``--authrpc.*``, JWT) and the public
HTTP RPC on 127.0.0.1 ports, the miner's gas limit pinned to the spec's. Its output goes to a
log file. Stopping is three steps: SIGTERM, wait ``grace`` seconds (geth flushes its caches to
disk), SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import msgspec
from coincurve import PrivateKey

from alys_fast.actors.remote import set_death_signal
from alys_fast.engine.engine_api import EngineRpcError, EngineUnavailable, EthRpc
from alys_fast.engine.errors import EngineError
from alys_fast.engine.external import ExecutionSettings
from alys_fast.keyfiles import KeyFileError, hex_secret

GETH_VERSION = "1.17.10"
# geth's (and London's) EIP-1559 parameters; geth takes no others.
GETH_FEE_RULES = (2, 8)
# Cancun's blob schedule (EIP-4844/7691 mainnet values): geth requires an entry per blob fork.
CANCUN_BLOBS = {"target": 3, "max": 6, "baseFeeUpdateFraction": 3338477}
PRE_MERGE_FORKS = (
    "homesteadBlock", "eip150Block", "eip155Block", "eip158Block", "byzantiumBlock",
    "constantinopleBlock", "petersburgBlock", "istanbulBlock", "berlinBlock", "londonBlock",
    "mergeNetsplitBlock",
)


class GethError(EngineError):
    """geth could not be set up, started or reached; the message ends with its log's tail."""


class GethChain(Protocol):
    """What geth's genesis and command line read of a chain: the chain spec's fields (a
    :class:`alys_fast.chain.spec.ChainSpec` is one). Named here, not imported: the engine sits
    below the chain."""

    @property
    def chain_id(self) -> int: ...
    @property
    def fork(self) -> str: ...
    @property
    def gas_limit(self) -> int: ...
    @property
    def genesis_timestamp(self) -> int: ...
    @property
    def fees(self) -> Any: ...  # elasticity_multiplier, max_change_denominator, initial_base_fee
    @property
    def alloc(self) -> Mapping[str, Any]: ...  # address -> balance, nonce, code, storage (hex)


def el_genesis(spec: GethChain) -> dict[str, Any]:
    """geth's genesis JSON for ``spec`` (see the module docstring)."""
    fees = spec.fees
    if (fees.elasticity_multiplier, fees.max_change_denominator) != GETH_FEE_RULES:
        raise GethError(
            f"geth follows EIP-1559 with elasticity 2 and denominator 8; the chain spec has "
            f"{fees.elasticity_multiplier} and {fees.max_change_denominator}")
    if spec.fork not in ("shanghai", "cancun"):
        raise GethError(f"the geth backend runs Shanghai or Cancun chains, not {spec.fork}")
    config: dict[str, Any] = {"chainId": spec.chain_id}
    config |= dict.fromkeys(PRE_MERGE_FORKS, 0)
    config |= {"terminalTotalDifficulty": 0, "shanghaiTime": 0}
    if spec.fork == "cancun":
        config |= {"cancunTime": 0, "blobSchedule": {"cancun": CANCUN_BLOBS}}
    alloc = {}
    for address, account in spec.alloc.items():
        entry: dict[str, Any] = {"balance": hex(account.balance)}
        if account.nonce:
            entry["nonce"] = hex(account.nonce)
        if account.code != "0x":
            entry["code"] = account.code
        if account.storage:
            entry["storage"] = {f"0x{int(k, 16):064x}": f"0x{int(v, 16):064x}"
                                for k, v in account.storage.items()}
        alloc[address.lower()] = entry
    return {
        "config": config,
        "nonce": "0x0",
        "timestamp": hex(spec.genesis_timestamp),
        "extraData": "0x",
        "gasLimit": hex(spec.gas_limit),
        "difficulty": "0x0",
        "mixHash": "0x" + "00" * 32,
        "coinbase": "0x" + "00" * 20,
        "baseFeePerGas": hex(fees.initial_base_fee),
        "alloc": alloc,
    }


def write_el_genesis(spec: GethChain, path: Path) -> Path:
    path.write_bytes(msgspec.json.format(msgspec.json.encode(el_genesis(spec))))
    return path


def ensure_hex_secret(path: Path, what: str) -> bytes:
    """32 random bytes kept in ``path`` as 64 hex digits (mode 0600, as geth reads its JWT
    secret and node key), made if it is absent; GethError names a file it cannot use."""
    try:
        return hex_secret(path, what)
    except KeyFileError as exc:
        raise GethError(str(exc)) from None


def find_geth(given: str | None = None) -> str:
    """The geth binary: ``given``, else $ALYS_GETH, geth on PATH, or ~/go/bin/geth (where
    ``go install`` puts it); GethError saying how to install it if there is none."""
    found = given or os.environ.get("ALYS_GETH") or shutil.which("geth")
    installed = Path.home() / "go" / "bin" / "geth"
    if found is None and installed.exists():
        found = str(installed)
    if found is None:
        raise GethError("geth not found: install it (tools/install_geth.sh, or go install "
                        f"github.com/ethereum/go-ethereum/cmd/geth@v{GETH_VERSION}) or give --geth")
    return found


def enode(node_key: bytes, port: int) -> str:
    """The enode URL of a geth with ``node_key`` (its ``--nodekey``) listening on 127.0.0.1."""
    public = PrivateKey(node_key).public_key.format(compressed=False)[1:]
    return f"enode://{public.hex()}@127.0.0.1:{port}"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class GethProcess:
    """One geth child process over a data dir (see the module docstring).

    ``datadir`` holds geth's chain (``datadir/geth``), the genesis, the JWT secret and the log
    unless told otherwise. Ports of 0 are chosen free at construction, so a restart on the same
    data dir keeps its URLs.
    """

    def __init__(
        self,
        binary: str | Path,
        datadir: Path,
        spec: GethChain,
        *,
        auth_port: int = 0,
        http_port: int = 0,
        jwt_secret_path: Path | None = None,
        log_path: Path | None = None,
        p2p_port: int | None = None,
        static_peers: tuple[str, ...] = (),
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.binary = str(binary)
        self.datadir = datadir
        self.spec = spec
        self.auth_port = auth_port or free_port()
        self.http_port = http_port or free_port()
        self.jwt_secret_path = jwt_secret_path or datadir / "jwtsecret"
        self.genesis_path = datadir / "genesis.json"
        self.log_path = log_path or datadir / "geth.log"
        self.p2p_port = p2p_port
        self.static_peers = static_peers
        self.node_key_path = datadir / "nodekey"
        self.peers_config_path = datadir / "peers.toml"
        self.extra_args = extra_args
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def auth_url(self) -> str:
        return f"http://127.0.0.1:{self.auth_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def is_alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def jwt_secret(self) -> bytes:
        return ensure_hex_secret(self.jwt_secret_path, "JWT secret")

    def node_key(self) -> bytes:
        """Its p2p node key (``nodekey``: hex, as geth reads it), made on first use."""
        return ensure_hex_secret(self.node_key_path, "node key")

    def execution_settings(self, **limits: float) -> ExecutionSettings:
        """How a node reaches this geth: its Engine API, JWT secret and public RPC
        (``limits``: the breaker's and the timeout, see ExecutionSettings)."""
        return ExecutionSettings(self.auth_url, str(self.jwt_secret_path), self.http_url,
                                 **limits)

    def init(self, timeout: float = 60.0) -> None:
        """Write the genesis and the JWT secret, and ``geth init`` the data dir (idempotent:
        geth accepts the same genesis again, and refuses another with its reason)."""
        self.datadir.mkdir(parents=True, exist_ok=True)
        write_el_genesis(self.spec, self.genesis_path)
        self.jwt_secret()
        if self.p2p_port is not None:
            self.node_key()
            peers = ", ".join(f'"{peer}"' for peer in self.static_peers)
            self.peers_config_path.write_text(f"[Node.P2P]\nStaticNodes = [{peers}]\n")
        command = [self.binary, "--datadir", str(self.datadir), "--state.scheme", "hash",
                   "init", str(self.genesis_path)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise GethError(f"geth init could not run: {exc}") from None
        if done.returncode != 0:
            raise GethError(f"geth init failed ({done.returncode}): "
                            + done.stderr.strip()[-800:])

    def command(self) -> list[str]:
        return [
            self.binary,
            "--datadir", str(self.datadir),
            "--networkid", str(self.spec.chain_id),
            "--syncmode", "full", "--gcmode", "archive", "--state.scheme", "hash",
            "--nodiscover", "--nat", "none", "--ipcdisable", *self._p2p_args(),
            "--authrpc.addr", "127.0.0.1", "--authrpc.port", str(self.auth_port),
            "--authrpc.jwtsecret", str(self.jwt_secret_path),
            "--http", "--http.addr", "127.0.0.1", "--http.port", str(self.http_port),
            "--http.api", "eth,net,web3,txpool",
            "--miner.gaslimit", str(self.spec.gas_limit),
            *self.extra_args,
        ]

    def _p2p_args(self) -> list[str]:
        if self.p2p_port is None:
            return ["--maxpeers", "0", "--port", "0"]
        return ["--maxpeers", str(max(1, len(self.static_peers))), "--port", str(self.p2p_port),
                "--nodekey", str(self.node_key_path), "--config", str(self.peers_config_path)]

    def start(self) -> None:
        """Start geth (the data dir must be initialised); returns at once: see wait_ready."""
        if self.is_alive():
            raise GethError(f"geth is already running (pid {self.pid})")
        with open(self.log_path, "ab") as log:
            # Its own session: a signal to the node's group never reaches geth by accident,
            # and geth's output goes to a file, so nothing blocks on a full pipe. SIGTERM when
            # its starter dies, even by SIGKILL: no geth is left holding the ports.
            self.proc = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=partial(set_death_signal, signal.SIGTERM))

    async def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until geth answers on its HTTP RPC and Engine API ports; GethError (with
        the log's tail) if it exits or does not answer within ``timeout`` seconds."""
        rpc = EthRpc(self.http_url, timeout=2.0, max_connections=1)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while True:
                if not self.is_alive():
                    code = None if self.proc is None else self.proc.returncode
                    raise GethError(f"geth exited ({code}) before it was ready\n{self.log_tail()}")
                try:
                    await rpc.call("eth_chainId", [])
                    await _connects("127.0.0.1", self.auth_port)
                    return
                except (EngineUnavailable, EngineRpcError, OSError):
                    if loop.time() > deadline:
                        raise GethError(f"geth did not answer within {timeout:g} s\n"
                                        + self.log_tail()) from None
                    await asyncio.sleep(0.05)
        finally:
            await rpc.close()

    async def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL if geth is still there after ``grace`` seconds; its exit
        code (None if it was not running)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGCONT)  # a stopped geth cannot handle SIGTERM
                proc.terminate()
            if not await _exited(proc, grace):
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await _exited(proc, 5.0)
        return proc.returncode

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no geth log)"
        return "\n".join(text.splitlines()[-lines:])


async def _exited(proc: subprocess.Popen[bytes], within: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while proc.poll() is None:
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def _connects(host: str, port: int) -> None:
    _, writer = await asyncio.open_connection(host, port)
    writer.close()
