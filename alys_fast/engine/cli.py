"""``alys-fast evm``: run the EVM against Ethereum's reference tests.

``evm statetest PATH...`` runs GeneralStateTests files (JSON files, directories of them, or a
``.tar.xz`` archive such as the vendored ``tests/data/state-tests.tar.xz``) on the revm engine
under Cancun rules and prints one JSON verdict per case, then ``N passed, M failed``; exit
status 0 if every case passed, 1 if any failed.
"""

from __future__ import annotations

import argparse
import sys
import tarfile

import msgspec

from alys_fast.engine.statetest import StateTestError, read_sources, run_sources
from alys_fast.errors import CliError


def _statetest(args: argparse.Namespace) -> int:
    passed = failed = 0
    try:
        for result in run_sources(read_sources(args.paths), args.only):
            if result.passed:
                passed += 1
            else:
                failed += 1
            if not (args.quiet and result.passed):
                sys.stdout.write(msgspec.json.encode(result.to_json()).decode() + "\n")
    except (OSError, tarfile.TarError, StateTestError) as exc:
        raise CliError(str(exc)) from None
    except ImportError as exc:  # the compiled engine is not built
        raise CliError(f"the revm engine is unavailable: {exc}") from None
    if passed + failed == 0:
        matching = f" with {args.only!r} in their name" if args.only else ""
        raise CliError(f"no Cancun state tests{matching} in {' '.join(args.paths)}")
    sys.stdout.write(f"{passed} passed, {failed} failed\n")
    return 0 if failed == 0 else 1


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``evm`` command group to the top-level parser."""
    evm = sub.add_parser(
        "evm",
        help="run the EVM against Ethereum's reference tests",
        description="Run the revm execution engine against Ethereum's reference tests.",
    )
    commands = evm.add_subparsers(dest="evm_command", metavar="COMMAND", required=True)

    statetest = commands.add_parser(
        "statetest",
        help="run GeneralStateTests (Cancun) and print one JSON verdict per case",
        description="Run Ethereum GeneralStateTests under Cancun rules and print one JSON "
        "verdict per case, then a summary. Exit status 0 if all cases pass, 1 if any fails.",
    )
    statetest.add_argument(
        "paths",
        metavar="PATH",
        nargs="+",
        help="a test file, a directory searched recursively for *.json, or a .tar.xz of them",
    )
    statetest.add_argument(
        "--only", metavar="NAME_SUBSTRING", help="run only tests whose name contains this"
    )
    statetest.add_argument(
        "--quiet", action="store_true", help="print only failing cases and the summary"
    )
    statetest.set_defaults(handler=_statetest)
