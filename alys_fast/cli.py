"""The ``alys-fast`` command line: one sub-command group per subsystem.

Each subsystem owns its own ``cli.py`` with a ``register(subparsers)`` function, so this module
only wires them together and turns expected errors into a message and a non-zero exit.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import import_module

from alys_fast import __version__
from alys_fast.errors import CliError

# Sub-command groups, each a module with ``register(subparsers) -> None``.
COMMAND_MODULES = (
    "alys_fast.merged_mining.cli",
    "alys_fast.engine.cli",
    "alys_fast.node.cli",
    "alys_fast.node.devnet",
    "alys_fast.node.keys",
    "alys_fast.system.cli",
    "alys_fast.validation.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alys-fast",
        description="alys-fast: a node for the Alys Bitcoin sidechain.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    version = sub.add_parser("version", help="print the version and exit")
    version.set_defaults(handler=lambda _args: print(f"alys-fast {__version__}") or 0)
    for name in COMMAND_MODULES:
        import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except CliError as exc:
        print(f"alys-fast: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
