"""``alys-fast system``: print the declared supervision tree, or run the supervision demo."""

from __future__ import annotations

import argparse
import logging

from alys_fast.system.tree import render_table


def register(sub: argparse._SubParsersAction) -> None:
    system = sub.add_parser("system", help="the supervision tree: print it or run a demo")
    system.add_argument("--demo", action="store_true", help="same as `system demo`")
    system.add_argument("--seconds", type=float, default=3.0, help="demo length (default 3)")
    system.set_defaults(handler=_group)
    inner = system.add_subparsers(dest="system_command", metavar="SUBCOMMAND")
    tree = inner.add_parser("tree", help="print the declared supervision tree")
    tree.set_defaults(handler=_tree)
    demo = inner.add_parser("demo", help="run the tree with a crashing worker under load")
    demo.add_argument("--seconds", type=float, default=3.0, help="how long to load it")
    demo.set_defaults(handler=_demo)


def _group(args: argparse.Namespace) -> int:
    return _demo(args) if args.demo else _tree(args)


def _tree(_args: argparse.Namespace) -> int:
    print(render_table())
    return 0


def _demo(args: argparse.Namespace) -> int:
    from alys_fast.actors.runtime import run
    from alys_fast.system.demo import print_demo, run_demo

    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    print_demo(run(run_demo(args.seconds)))
    return 0
