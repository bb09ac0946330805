"""``alys-fast dev`` (a one-authority development chain) and ``alys-fast run --config FILE``."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import msgspec

from alys_fast.chain.mining import DevMining
from alys_fast.chain.spec import (
    DEV_AUTHORITY_KEY,
    DEV_CHAIN_ID,
    DEV_MNEMONIC,
    ETHER,
    SpecError,
    dev_accounts,
    dev_spec,
)
from alys_fast.config import ConfigError, NodeConfig, load_config
from alys_fast.config.node import NETWORK_PORT, NetworkConfig, consensus_port, tls_context
from alys_fast.engine.errors import EngineError
from alys_fast.engine.external import ExecutionSettings
from alys_fast.engine.geth import GethError, GethProcess, find_geth
from alys_fast.network.service import NetworkSettings
from alys_fast.node.keys import JWT_SECRET_FILE, load_jwt_secret
from alys_fast.node.node import Node, NodeStartError
from alys_fast.node.settings import NodeSettings
from alys_fast.rpc.auth import (
    ALL_NAMESPACES,
    PUBLIC_NAMESPACES,
    ApiKey,
    AuditLog,
    Authenticator,
    check_namespaces,
)
from alys_fast.rpc.server import Limits, cors_origins
from alys_fast.validation.transactions import MAX_CHAIN_ID

MAX_DEV_ACCOUNTS = 1000  # each is a BIP-32 derivation at start and a line of the banner


def register(sub: argparse._SubParsersAction) -> None:
    dev = sub.add_parser(
        "dev", help="run a development chain: one authority, funded unlocked accounts, JSON-RPC")
    dev.add_argument("--data-dir", type=Path,
                     help="keep the chain here (default: a temporary directory, deleted on exit)")
    dev.add_argument("--block-time", type=float, default=0.0, metavar="SECONDS",
                     help="mine a block every SECONDS (default 0: automine, a block as soon as "
                          "transactions arrive, as anvil and hardhat do)")
    dev.add_argument("--no-mining", action="store_true",
                     help="make blocks only when asked (evm_mine, anvil_mine)")
    dev.add_argument("--gas-limit", type=int, default=None,
                     help="block gas limit (default 30,000,000)")
    dev.add_argument("--accounts", type=int, default=10, metavar="N",
                     help="how many accounts to fund and unlock (default 10)")
    dev.add_argument("--balance", default="10000", metavar="ETH",
                     help="each account's balance in ETH (default 10000)")
    dev.add_argument("--mnemonic", default=DEV_MNEMONIC,
                     help="BIP-39 mnemonic of the accounts, derived at m/44'/60'/0'/0/i as "
                          "anvil and hardhat do (default: their \"test test ... junk\")")
    dev.add_argument("--chain-id", type=int, default=DEV_CHAIN_ID,
                     help=f"the chain id (default {DEV_CHAIN_ID})")
    dev.add_argument("--mine", action="store_true",
                     help="merge-mine the chain with a CPU miner (`alys-fast miner`) against "
                          "the consensus RPC, paying the first dev account, as Alys's --dev does")
    dev.add_argument("--auth", action="store_true",
                     help="require credentials (a JWT signed with <data dir>/jwtsecret) for the "
                          "namespaces beyond --http-api, as `run` does (default: all open)")
    dev.add_argument("--execution", choices=("embedded", "geth"), default="embedded",
                     help="the EVM: embedded (revm, default), or geth started as a child "
                          "process over the Engine API (its genesis and JWT secret written to "
                          "the data dir; blocks every --block-time, default 1 s)")
    dev.add_argument("--geth", metavar="PATH",
                     help="the geth binary for --execution geth (default: $ALYS_GETH, geth on "
                          "PATH, ~/go/bin/geth; tools/install_geth.sh installs it)")
    _rpc_args(dev)
    dev.set_defaults(handler=_dev)
    run = sub.add_parser("run", help="run a node from a configuration file")
    run.add_argument("--config", type=Path, required=True, help="node config (TOML)")
    run.add_argument("--execution", choices=("embedded", "engine-api"),
                     help="the EVM: embedded (revm) or an execution client over the Engine API "
                          "(default: engine-api if the config has [execution], else embedded)")
    run.add_argument("--engine-url", metavar="URL",
                     help="the execution client's Engine API, e.g. http://127.0.0.1:8551")
    run.add_argument("--jwt-secret", metavar="FILE",
                     help="the Engine API's JWT secret (hex), as geth's --authrpc.jwtsecret")
    run.add_argument("--engine-rpc-url", metavar="URL",
                     help="the execution client's public JSON-RPC, where state and transaction "
                          "methods are forwarded (default: through the Engine API port)")
    run.add_argument("--listen", metavar="HOST:PORT",
                     help=f"listen for peers here (default: [network] listen, or "
                          f"127.0.0.1:{NETWORK_PORT} when peers are configured)")
    run.add_argument("--bootnode", action="append", default=[], metavar="ALYS_ADDRESS",
                     help="a peer to dial, alys://<node id>@host:port (repeatable; added to "
                          "[network] bootnodes)")
    run.add_argument("--max-peers", type=int, metavar="N", help="peers at most (default 64)")
    _rpc_args(run, defaults=False)
    run.set_defaults(handler=_run)


def _rpc_args(parser: argparse.ArgumentParser, defaults: bool = True) -> None:
    parser.add_argument("--host", default="127.0.0.1" if defaults else None,
                        help="JSON-RPC listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8545 if defaults else None,
                        help="JSON-RPC port, 0 for any free one (default 8545)")
    parser.add_argument(
        "--cors", default="*" if defaults else None, metavar="ORIGINS",
        help="browser origins allowed to call the RPC, comma-separated, * for any (default: "
             + ("*" if defaults else "the config's [rpc] cors, else none") + ")")
    parser.add_argument(
        "--http-api", metavar="NAMESPACES",
        help="namespaces served without credentials, comma-separated (default: "
             + ("all, unless --auth: " if defaults else "the config's [rpc] api, else ")
             + ",".join(PUBLIC_NAMESPACES) + ")")
    parser.add_argument("--ip-connections", type=int, metavar="N",
                        help="connections one client address may hold (default "
                             + ("64" if defaults else "the config's [rpc] ip_connections") + ")")
    parser.add_argument("--ip-rate", type=float, metavar="N",
                        help="requests per second one client address may send, loopback "
                             "exempt (default " + ("2000" if defaults else
                                                   "the config's [rpc] ip_rate") + ")")
    parser.add_argument("--unsent-budget-mib", type=int, metavar="MIB",
                        help="unsent answers and notifications all connections may hold "
                             "before the slowest are dropped (default "
                             + ("256" if defaults else "the config's [rpc] unsent_budget") + ")")
    parser.add_argument("--tls-cert", type=Path, metavar="PEM",
                        help="serve HTTPS and WSS with this certificate (with --tls-key)")
    parser.add_argument("--tls-key", type=Path, metavar="PEM",
                        help="the private key of --tls-cert")
    parser.add_argument(
        "--consensus-rpc-port", type=int, default=None, metavar="PORT",
        help="port of Alys's consensus RPC for merge miners (createauxblock, submitauxblock); "
             "default " + ("3000" if defaults else "the config's [consensus_rpc] port, else 3000")
             + ", any free one when --port is 0")
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")


def _rpc_limits(args: argparse.Namespace, limits: Limits) -> Limits:
    """``limits`` with what the command line sets instead."""
    from alys_fast.errors import CliError

    given = {"ip_connections": args.ip_connections, "ip_rate": args.ip_rate,
             "unsent_budget": None if args.unsent_budget_mib is None
             else args.unsent_budget_mib * 1024 * 1024}
    for name, value in given.items():
        if value is not None and value <= 0:
            raise CliError(f"--{name.replace('_', '-')} must be positive, got {value}")
    return dataclasses.replace(
        limits, **{name: value for name, value in given.items() if value is not None})


def _log_to_stderr(level: str) -> None:
    """Before anything is read: what reading the config logs obeys ``--log-level`` too."""
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _dev(args: argparse.Namespace) -> int:
    from alys_fast.errors import CliError

    _log_to_stderr(args.log_level)
    if not (args.block_time == 0 or 0.001 <= args.block_time <= 3600):
        raise CliError(f"--block-time must be 0 (automine) or 0.001 to 3600 seconds, got "
                       f"{args.block_time}")
    if args.no_mining and args.block_time:
        raise CliError("--no-mining and --block-time exclude each other")
    if not 0 <= args.accounts <= MAX_DEV_ACCOUNTS:
        raise CliError(f"--accounts must be 0 to {MAX_DEV_ACCOUNTS}, got {args.accounts}")
    if not 1 <= args.chain_id <= MAX_CHAIN_ID:
        raise CliError(f"--chain-id must be 1 to {MAX_CHAIN_ID}, got {args.chain_id}")
    balance = _wei(args.balance)
    try:
        accounts = dev_accounts(args.mnemonic, args.accounts)
    except SpecError as exc:
        raise CliError(f"--mnemonic: {exc}") from None
    interval_ms = round(args.block_time * 1000)
    geth_binary = None if args.execution == "embedded" else _geth_binary(args.geth)
    if geth_binary is not None and not args.no_mining:
        if interval_ms == 0:
            interval_ms = 1000  # geth builds from its own pool: blocks by time, not automine
        if interval_ms < 1000:
            raise CliError("--execution geth needs a --block-time of at least 1 s: geth takes "
                           "only strictly increasing whole-second timestamps")
    mining = DevMining(mode="off" if args.no_mining else "interval" if interval_ms else "auto",
                       interval_ms=interval_ms or 1000)
    try:
        # Slots are the block time when mining by interval, else a second: one block's
        # timestamp step, as anvil's and hardhat's.
        spec = dev_spec(slot_ms=interval_ms or 1000, accounts=[a for a, _ in accounts],
                        balance=balance, chain_id=args.chain_id)
        if args.gas_limit is not None:
            if not 21_000 <= args.gas_limit < 2**63:
                raise CliError(f"--gas-limit must be at least 21000, got {args.gas_limit}")
            spec = msgspec.structs.replace(spec, gas_limit=args.gas_limit)
    except SpecError as exc:
        raise CliError(str(exc)) from None
    temporary = args.data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="alys-fast-dev-")) if temporary else args.data_dir
    access = None
    if args.auth or args.http_api is not None:
        access = _access(
            data_dir, _http_api(args.http_api) if args.http_api else PUBLIC_NAMESPACES,
            jwt_secret_file=data_dir / JWT_SECRET_FILE if args.auth else None)
    node_settings = NodeSettings(
        spec=spec,
        data_dir=data_dir,
        authority_key=bytes.fromhex(DEV_AUTHORITY_KEY[2:]),
        rpc_host=args.host,
        rpc_port=args.port,
        rpc_cors=_cors(args.cors),
        rpc_limits=_rpc_limits(args, Limits()),
        rpc_access=access,
        rpc_tls=_tls(args.tls_cert, args.tls_key),
        consensus_rpc_host=args.host,
        consensus_rpc_port=consensus_port(args.consensus_rpc_port, args.port),
        # Dev chains keep every block's state: evm_revert unwinds through it.
        archive=True,
        dev_mining=mining,
        dev_keys=tuple(bytes.fromhex(key[2:]) for _, key in accounts),
    )
    geth = None
    if geth_binary is not None:
        geth = GethProcess(geth_binary, data_dir / "geth", spec)
        node_settings = dataclasses.replace(node_settings, execution=geth.execution_settings())
    try:
        return _serve(node_settings,
                      banner=lambda url: _banner(node_settings, url, accounts, args.balance,
                                                 args.mnemonic),
                      miner=_fee_recipient(accounts, spec.fee_recipient) if args.mine else None,
                      geth=geth)
    finally:
        if temporary:
            shutil.rmtree(data_dir, ignore_errors=True)


def _fee_recipient(accounts: tuple[tuple[str, str], ...], fallback: str) -> str:
    """Whom the dev miner pays: the first dev account, else ``fallback`` (the chain's fee
    recipient: a BLS authority has no address)."""
    return accounts[0][0] if accounts else fallback


def _run(args: argparse.Namespace) -> int:
    from alys_fast.errors import CliError

    _log_to_stderr(args.log_level)
    try:
        config: NodeConfig = load_config(args.config)
        rpc = config.rpc
        data_dir = Path(config.data_dir)
        access = _access(
            data_dir, rpc.api if args.http_api is None else _http_api(args.http_api),
            api_keys=rpc.api_keys, jwt_namespaces=rpc.jwt_namespaces,
            jwt_secret_file=(data_dir / JWT_SECRET_FILE if rpc.jwt_secret_file is None
                             else Path(rpc.jwt_secret_file)))
        node_settings = NodeSettings(
            spec=config.spec(),
            data_dir=Path(config.data_dir),
            authority_key=config.authority_key(),
            rpc_host=args.host or config.rpc.host,
            rpc_port=config.rpc.port if args.port is None else args.port,
            rpc_limits=_rpc_limits(args, config.rpc.limits()),
            rpc_cors=config.rpc.cors if args.cors is None else _cors(args.cors),
            rpc_access=access,
            rpc_tls=(_tls(args.tls_cert, args.tls_key) if args.tls_cert or args.tls_key
                     else _tls(rpc.tls_cert, rpc.tls_key)),
            consensus_rpc_host=config.consensus_rpc.host,
            consensus_rpc_port=consensus_port(
                config.consensus_rpc.port if args.consensus_rpc_port is None
                else args.consensus_rpc_port,
                config.rpc.port if args.port is None else args.port),
            stall_slots=config.stall_slots,
            sync_writes=config.sync_writes,
            archive=config.archive,
            pool_limits=config.pool.limits(),
            pool_journal=config.pool.journal_settings(),
            network_settings=_network(args, config),
            execution=_execution(args, config),
        )
    except (ConfigError, SpecError) as exc:
        raise CliError(str(exc)) from None
    return _serve(node_settings)


def _execution(args: argparse.Namespace, config: NodeConfig) -> ExecutionSettings | None:
    """The external execution client the command line and ``[execution]`` name (None: the
    embedded engine), its JWT secret checked now."""
    given = config.execution
    if args.execution == "embedded" or (
            given is None and args.execution is None and args.engine_url is None):
        return None
    engine_url = args.engine_url or (given and given.engine_url)
    secret = args.jwt_secret or (given and given.jwt_secret_file)
    if not engine_url or not secret:
        raise ConfigError("--execution engine-api needs --engine-url and --jwt-secret (or "
                          "[execution] engine_url and jwt_secret_file)")
    settings = ExecutionSettings(
        engine_url, secret, args.engine_rpc_url or (given and given.rpc_url) or None,
        **({} if given is None else {"timeout": given.timeout}))
    try:
        settings.jwt_secret()
    except EngineError as exc:
        raise ConfigError(str(exc)) from None
    return settings


def _geth_binary(given: str | None) -> str:
    """The geth binary (``--geth``, else :func:`find_geth`'s places)."""
    from alys_fast.errors import CliError

    try:
        return find_geth(given)
    except GethError as exc:
        raise CliError(str(exc)) from None


def _network(args: argparse.Namespace, config: NodeConfig) -> NetworkSettings | None:
    """The config's ``[network]`` with the command line's changes; None when neither asks
    for peers (the node talks to no one, as before the network existed)."""
    network = config.network
    if network is None and args.listen is None and not args.bootnode \
            and args.max_peers is None:
        return None
    given = {"listen": args.listen, "max_peers": args.max_peers,
             "bootnodes": (*(network.bootnodes if network else ()), *args.bootnode)}
    try:
        network = msgspec.convert(
            {**msgspec.to_builtins(network or NetworkConfig()),
             **{k: v for k, v in given.items() if v is not None}},
            NetworkConfig, strict=True)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"--listen/--bootnode/--max-peers: {exc}") from None
    return network.settings(config.spec().member_ids())


def _access(data_dir: Path, public: tuple[str, ...], *, api_keys: tuple[ApiKey, ...] = (),
            jwt_secret_file: Path | None = None,
            jwt_namespaces: tuple[str, ...] = (ALL_NAMESPACES,)) -> Authenticator:
    """The port's policy, its JWT secret (made on first start) and audit log in ``data_dir``."""
    from alys_fast.errors import CliError

    try:
        secret = None if jwt_secret_file is None else load_jwt_secret(jwt_secret_file)
        data_dir.mkdir(parents=True, exist_ok=True)
        audit = AuditLog(data_dir / "audit.log")
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"audit log in {data_dir}: {exc.strerror}") from None
    try:
        return Authenticator(public, api_keys=api_keys, jwt_secret=secret,
                             jwt_namespaces=jwt_namespaces, audit=audit)
    except ValueError as exc:
        audit.close()
        raise CliError(str(exc)) from None


def _http_api(names: str) -> tuple[str, ...]:
    """``--http-api``: the comma-separated namespaces, checked."""
    from alys_fast.errors import CliError

    namespaces = tuple(name.strip() for name in names.split(",") if name.strip())
    try:
        check_namespaces(namespaces)
    except ValueError as exc:
        raise CliError(f"--http-api: {exc}") from None
    return namespaces


def _tls(cert: Path | str | None, key: Path | str | None) -> ssl.SSLContext | None:
    """The TLS context of ``--tls-cert``/``--tls-key`` (or the config's), None without."""
    from alys_fast.errors import CliError

    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise CliError("--tls-cert and --tls-key go together")
    try:
        return tls_context(cert, key)
    except ConfigError as exc:
        raise CliError(str(exc)) from None


def _cors(origins: str) -> tuple[str, ...]:
    """``--cors``: the comma-separated origins, checked."""
    from alys_fast.errors import CliError

    try:
        return cors_origins(o for o in origins.split(",") if o.strip())
    except ValueError as exc:
        raise CliError(f"--cors: {exc}") from None


def _wei(ether: str) -> int:
    """``--balance`` (ETH, decimals allowed) in wei."""
    from alys_fast.errors import CliError

    try:
        amount = Decimal(ether) * ETHER
    except ArithmeticError:  # decimal's InvalidOperation, Overflow
        raise CliError(f"--balance must be a number of ETH, got '{ether}'") from None
    if not amount.is_finite() or amount < 0 or amount != amount.to_integral_value() \
            or amount >= 2**256:
        raise CliError(f"--balance must be 0 or more ETH, in whole wei and below 2**256 wei, "
                       f"got '{ether}'")
    return int(amount)


def _serve(node_settings: NodeSettings, *,
           banner: Callable[[str], str] | None = None, miner: str | None = None,
           geth: GethProcess | None = None) -> int:
    """Run the node until a signal stops it; print ``banner(url)``, or only the URL. With
    ``miner`` (a fee recipient) a CPU merge miner runs beside it, as its own process."""
    from alys_fast.actors.runtime import run
    from alys_fast.errors import CliError

    async def main() -> int:
        if geth is None:
            return await serve()
        await _start_geth(geth)
        try:
            return await serve()
        finally:
            await geth.stop()

    async def serve() -> int:
        node = Node(node_settings)
        try:
            await node.start()
        except NodeStartError as exc:
            raise CliError(f"the node did not start: {exc}") from None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, lambda: asyncio.ensure_future(node.stop()))
        if node_settings.authority_key is None:
            print("full node: no authority key (authority_key_file), so it will not author "
                  "blocks", flush=True)
        print(f"JSON-RPC   {node.url}" if banner is None else banner(node.url), flush=True)
        mining = None
        if node.consensus_rpc.bound is not None:
            consensus = f"http://{node_settings.consensus_rpc_host}:{node.consensus_rpc.bound}/"
            print(f"Consensus  {consensus} (merged mining: createauxblock, submitauxblock)",
                  flush=True)
            if miner is not None:
                mining = subprocess.Popen([sys.executable, "-m", "alys_fast", "miner", "--rpc",
                                           consensus, "--address", miner])
                print(f"Miner      pid {mining.pid}, paying {miner}", flush=True)
        try:
            return await node.wait()
        finally:
            if mining is not None:
                mining.terminate()
                await asyncio.to_thread(mining.wait, 10)

    return run(main())


async def _start_geth(geth: GethProcess) -> None:
    """Initialise and start geth (a dev chain's child process), until it answers."""
    from alys_fast.errors import CliError

    try:
        await asyncio.to_thread(geth.init)
        geth.start()
        await geth.wait_ready(60.0)
    except GethError as exc:
        await geth.stop()
        raise CliError(f"geth did not start: {exc}") from None
    print(f"geth       pid {geth.pid}, Engine API {geth.auth_url}, RPC {geth.http_url}, "
          f"log {geth.log_path}", flush=True)


def _banner(node_settings: NodeSettings, url: str, accounts: tuple[tuple[str, str], ...],
            balance: str, mnemonic: str) -> str:
    lines = [
        "",
        "alys-fast dev chain",
        "===================",
        f"chain id     {node_settings.spec.chain_id}",
        f"mining       {_mining(node_settings)}",
        f"gas limit    {node_settings.spec.gas_limit:,}",
        f"data dir     {node_settings.data_dir}",
        f"RPC access   {_access_line(node_settings)}",
        "",
        f"Available accounts ({Decimal(balance):,f} ETH each; mnemonic \"{mnemonic}\")",
    ]
    for i, (address, key) in enumerate(accounts):
        lines.append(f"({i}) {address}  {key}")
    lines += [
        "",
        f"JSON-RPC   {url}",
        f"WebSocket  {url.replace('http', 'ws', 1)}",
        f"Metrics    {url}metrics   Health {url}health",
        "",
    ]
    return "\n".join(lines)


def _access_line(node_settings: NodeSettings) -> str:
    access = node_settings.rpc_access
    if access is None:
        return "every method open (no credentials)"
    public = "every namespace" if access.public is None else ", ".join(sorted(access.public))
    jwt = (f"; the rest with a JWT (alys-fast keys jwt --secret "
           f"{node_settings.data_dir / JWT_SECRET_FILE})" if access.takes_jwt else "")
    return f"{public} open{jwt}; audit log {access.audit.path if access.audit else 'off'}"


def _mining(node_settings: NodeSettings) -> str:
    mining = node_settings.dev_mining
    assert mining is not None
    if mining.mode == "interval":
        return f"a block every {mining.interval_ms / 1000:g} s"
    return "automine (a block per submission)" if mining.mode == "auto" else "off (evm_mine)"
