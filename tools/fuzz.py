#!/usr/bin/env python
"""Fuzz one of the RPC port's targets with atheris (libFuzzer): ``http``, ``websocket`` or
``dispatch`` (tests/fuzz/targets.py says what each checks).

    python tools/fuzz.py http --seconds 600          # fuzz for ten minutes
    python tools/fuzz.py dispatch --runs 5000        # or for a number of inputs
    python tools/fuzz.py http fuzz-crashes/http/crash-…   # run saved inputs once

The committed seeds (tests/fuzz/corpus/<target>/) start every run; new inputs worth keeping go
to ``--corpus`` (by default a directory deleted at the end), inputs that break an invariant to
``--crashes`` (default ``fuzz-crashes/<target>/``); a reproducer worth keeping is committed
into the seeds. The exit code is libFuzzer's: 0 when nothing broke.

libFuzzer ends its process without running Python's cleanup, so the fuzzing runs in a child
process (``--worker``) whose temporary files (the dispatch target's node) live in a directory
this process removes.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ("http", "websocket", "dispatch")
# Modules whose Python code atheris instruments for coverage (the C parsers are not Python).
INSTRUMENTED = ["alys_fast", "wsproto", "tests.fuzz"]
INPUT_SECONDS = 30  # one input taking longer is reported as a hang (libFuzzer's -timeout)


def libfuzzer_args(args: argparse.Namespace, corpus: Path) -> list[str]:
    """libFuzzer's command line for a run (or a replay of ``args.inputs``)."""
    crashes = args.crashes or Path("fuzz-crashes") / args.target
    crashes.mkdir(parents=True, exist_ok=True)
    out = [f"-artifact_prefix={crashes}/", f"-timeout={INPUT_SECONDS}", "-print_final_stats=1"]
    words = ROOT / "tests" / "fuzz" / "dicts" / f"{args.target}.dict"
    if words.exists():
        out.append(f"-dict={words}")
    if args.inputs:
        return out + [str(path) for path in args.inputs]
    if args.runs is not None:
        out.append(f"-runs={args.runs}")
    else:
        out.append(f"-max_total_time={args.seconds}")
    if args.seed is not None:
        out.append(f"-seed={args.seed}")
    if args.keep_going:  # child processes: a failing input is saved and fuzzing goes on
        out += ["-fork=1", "-ignore_crashes=1", "-ignore_timeouts=1", "-ignore_ooms=1"]
    return [*out, str(corpus), str(ROOT / "tests" / "fuzz" / "corpus" / args.target)]


def run(args: argparse.Namespace) -> int:
    """Fuzz in a worker process; list what it left in the crash directory."""
    with tempfile.TemporaryDirectory(prefix="alys-fuzz-") as scratch:
        corpus = args.corpus or Path(scratch) / "corpus"
        corpus.mkdir(parents=True, exist_ok=True)
        fuzzer = libfuzzer_args(args, corpus)
        crashes = Path(fuzzer[0].partition("=")[2])
        before = set(crashes.iterdir())
        # A fixed hash seed: with --seed, a run takes the same paths again.
        env = {**os.environ, "TMPDIR": scratch, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "0"}
        code = subprocess.run([sys.executable, __file__, "--worker", args.target, *fuzzer],
                              env=env, check=False).returncode
    for path in sorted(set(crashes.iterdir()) - before):
        print(f"fuzz: {args.target}: new failing input {path}", file=sys.stderr)
    return code


def work(target: str, fuzzer: list[str]) -> None:
    """The worker: instrument, set the target up and hand it to libFuzzer (never returns)."""
    import atheris

    with atheris.instrument_imports(include=INSTRUMENTED):
        from tests.fuzz.targets import TARGETS as SETUPS

    # libFuzzer's -fork runs its first argument through the shell, with its own flags after.
    itself = shlex.join([sys.executable, __file__, "--worker", target])
    with SETUPS[target]() as check:
        atheris.Setup([itself, *fuzzer], check)
        atheris.Fuzz()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        work(argv[1], argv[2:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", choices=TARGETS)
    parser.add_argument("inputs", nargs="*", type=Path,
                        help="run these inputs once instead of fuzzing")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--seconds", type=int, default=60, help="fuzz this long (default 60)")
    budget.add_argument("--runs", type=int, help="or run this many inputs")
    parser.add_argument("--crashes", type=Path,
                        help="where failing inputs go (default fuzz-crashes/TARGET)")
    parser.add_argument("--corpus", type=Path,
                        help="keep the new interesting inputs here (default: discarded)")
    parser.add_argument("--seed", type=int, help="libFuzzer's random seed (default: random)")
    parser.add_argument("--keep-going", action="store_true",
                        help="save each failing input and go on fuzzing (libFuzzer's -fork)")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
