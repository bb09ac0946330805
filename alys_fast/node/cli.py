"""``alys-fast dev`` (a one-authority development chain) and ``alys-fast run --config FILE``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import signal
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
from alys_fast.node.context import NodeContext
from alys_fast.node.node import Node, NodeStartError
from alys_fast.rpc.server import cors_origins
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
    _rpc_args(dev)
    dev.set_defaults(handler=_dev)
    run = sub.add_parser("run", help="run a node from a configuration file")
    run.add_argument("--config", type=Path, required=True, help="node config (TOML)")
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
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")


def _dev(args: argparse.Namespace) -> int:
    from alys_fast.cli import CliError

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
    ctx = NodeContext(
        spec=spec,
        data_dir=data_dir,
        authority_key=bytes.fromhex(DEV_AUTHORITY_KEY[2:]),
        rpc_host=args.host,
        rpc_port=args.port,
        rpc_cors=_cors(args.cors),
        # Dev chains keep every block's state: evm_revert unwinds through it.
        archive=True,
        dev_mining=mining,
        dev_keys=tuple(bytes.fromhex(key[2:]) for _, key in accounts),
    )
    try:
        return _serve(ctx, args.log_level,
                      banner=lambda url: _banner(ctx, url, accounts, args.balance, args.mnemonic))
    finally:
        if temporary:
            shutil.rmtree(data_dir, ignore_errors=True)


def _run(args: argparse.Namespace) -> int:
    from alys_fast.cli import CliError

    try:
        config: NodeConfig = load_config(args.config)
        ctx = NodeContext(
            spec=config.spec(),
            data_dir=Path(config.data_dir),
            authority_key=config.authority_key(),
            rpc_host=args.host or config.rpc.host,
            rpc_port=config.rpc.port if args.port is None else args.port,
            rpc_limits=config.rpc.limits(),
            rpc_cors=config.rpc.cors if args.cors is None else _cors(args.cors),
            stall_slots=config.stall_slots,
            sync_writes=config.sync_writes,
            archive=config.archive,
        )
    except (ConfigError, SpecError) as exc:
        raise CliError(str(exc)) from None
    return _serve(ctx, args.log_level)


def _cors(origins: str) -> tuple[str, ...]:
    """``--cors``: the comma-separated origins, checked."""
    from alys_fast.cli import CliError

    try:
        return cors_origins(o for o in origins.split(",") if o.strip())
    except ValueError as exc:
        raise CliError(f"--cors: {exc}") from None


def _wei(ether: str) -> int:
    """``--balance`` (ETH, decimals allowed) in wei."""
    from alys_fast.cli import CliError

    try:
        amount = Decimal(ether) * ETHER
    except ArithmeticError:  # decimal's InvalidOperation, Overflow
        raise CliError(f"--balance must be a number of ETH, got {ether!r}") from None
    if not amount.is_finite() or amount < 0 or amount != amount.to_integral_value() \
            or amount >= 2**256:
        raise CliError(f"--balance must be 0 or more ETH, in whole wei and below 2**256 wei, "
                       f"got {ether!r}")
    return int(amount)


def _serve(ctx: NodeContext, log_level: str, *,
           banner: Callable[[str], str] | None = None) -> int:
    """Run the node until a signal stops it; print ``banner(url)``, or only the URL."""
    from alys_fast.actors.runtime import run
    from alys_fast.cli import CliError

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def main() -> int:
        node = Node(ctx)
        try:
            await node.start()
        except NodeStartError as exc:
            raise CliError(f"the node did not start: {exc}") from None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, lambda: asyncio.ensure_future(node.stop()))
        if ctx.authority_key is None:
            print("full node: no authority key (authority_key_file), so it will not author "
                  "blocks", flush=True)
        print(f"JSON-RPC   {node.url}" if banner is None else banner(node.url), flush=True)
        return await node.wait()

    return run(main())


def _banner(ctx: NodeContext, url: str, accounts: tuple[tuple[str, str], ...], balance: str,
            mnemonic: str) -> str:
    lines = [
        "",
        "alys-fast dev chain",
        "===================",
        f"chain id     {ctx.spec.chain_id}",
        f"mining       {_mining(ctx)}",
        f"gas limit    {ctx.spec.gas_limit:,}",
        f"data dir     {ctx.data_dir}",
        "",
        f"Available accounts ({Decimal(balance):,f} ETH each; mnemonic \"{mnemonic}\")",
    ]
    for i, (address, key) in enumerate(accounts):
        lines.append(f"({i}) {address}  {key}")
    lines += [
        "",
        f"JSON-RPC   {url}",
        f"WebSocket  {url.replace('http://', 'ws://')}",
        f"Metrics    {url}metrics   Health {url}health",
        "",
    ]
    return "\n".join(lines)


def _mining(ctx: NodeContext) -> str:
    mining = ctx.dev_mining
    assert mining is not None
    if mining.mode == "interval":
        return f"a block every {mining.interval_ms / 1000:g} s"
    return "automine (a block per submission)" if mining.mode == "auto" else "off (evm_mine)"
