"""The fuzz targets of :mod:`tests.fuzz.targets`: every committed seed holds its target's
invariants, each target survives a bounded atheris run (``tools/fuzz.py`` in a subprocess,
as libFuzzer ends the process it runs in), and the dispatch oracle catches broken answers.

The atheris runs use a fixed libFuzzer seed so that a failure in CI replays the same way; the
input that broke an invariant is printed with its traceback (``python tools/fuzz.py TARGET
FILE`` runs it again). Longer runs: ``python tools/fuzz.py TARGET --seconds 600``.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from tests.conftest import ROOT
from tests.fuzz.targets import TARGETS, check_answer, corpus_dir, split_stream

# Inputs per target in CI: about 10 s each on the 2-core machine (the dispatch target also
# starts a dev node).
RUNS = {"http": 10_000, "websocket": 8_000, "dispatch": 10_000}


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_seeds_hold_the_invariants(target: str) -> None:
    seeds = sorted(corpus_dir(target).iterdir())
    assert len(seeds) >= 30
    with TARGETS[target]() as check:
        for seed in seeds:
            try:
                check(seed.read_bytes())
            except AssertionError as exc:
                raise AssertionError(f"seed {seed.name}: {exc}") from exc


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None,
                    reason="atheris is not installed (pip install atheris: a cp311 wheel)")
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_fuzz_run_finds_nothing(target: str, tmp_path: Path) -> None:
    crashes = tmp_path / "crashes"
    run = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "fuzz.py"), target, "--runs", str(RUNS[target]),
         "--seed", "1", "--crashes", str(crashes)],
        capture_output=True, text=True, timeout=110, check=False)
    found = sorted(crashes.iterdir())
    assert run.returncode == 0 and not found, (
        f"{target}: {[path.name for path in found]}\n{run.stderr[-4000:]}")
    assert f"Done {RUNS[target]} runs" in run.stderr


def test_split_stream_cuts_as_the_first_byte_says() -> None:
    assert split_stream(b"\x02\x00\x02abcdefg") == (b"abcdefg", [b"a", b"bcd", b"e", b"fg"])
    assert split_stream(b"\x00abc") == (b"abc", [b"a", b"b", b"c"])
    assert split_stream(b"") == (b"", [])


REQUEST = {"jsonrpc": "2.0", "id": 7, "method": "None"}


def _answer(**member: object) -> bytes:
    return msgspec.json.encode({"jsonrpc": "2.0", "id": 7, **member})


@pytest.mark.parametrize("answer, broken", [
    (_answer(error={"code": -32603, "message": "internal error"}), "internal error"),
    (_answer(error={"code": -32602, "message": "invalid address b'\\x01'"}), "Python repr"),
    (_answer(error={"code": -32602, "message": "bad {'a': 1}"}), "Python repr"),
    (_answer(result="0x1", error={"code": 1, "message": "x"}), "members"),
    (msgspec.json.encode({"jsonrpc": "2.0", "id": 8, "result": 1}), "id 8"),
    (msgspec.json.encode({"id": 7, "result": 1}), "jsonrpc"),
    (b"[" + _answer(result=1) + b"]", "not an object"),
    (b'{"jsonrpc":"2.0",', "not JSON"),
    (None, "no answer"),
])
def test_dispatch_oracle_refuses_a_broken_answer(answer: bytes | None, broken: str) -> None:
    with pytest.raises(AssertionError, match=broken):
        check_answer(msgspec.json.encode(REQUEST), answer, max_batch=10)


def test_dispatch_oracle_takes_a_correct_answer() -> None:
    body = msgspec.json.encode(REQUEST)
    not_found = _answer(error={"code": -32601,
                               "message": "the method None does not exist/is not available"})
    check_answer(body, not_found, max_batch=10)  # the client's own word is no repr
    batch = msgspec.json.encode([REQUEST, {"jsonrpc": "2.0", "method": "x"}, 5])
    not_object = msgspec.json.encode(
        {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "not an object"}})
    answer = b"[" + not_found + b"," + not_object + b"]"
    check_answer(batch, answer, max_batch=10)
    with pytest.raises(AssertionError, match="batch of 3 with 2 to answer"):
        check_answer(batch, b"[" + not_found + b"]", max_batch=10)
    with pytest.raises(AssertionError, match="not JSON answered"):
        check_answer(b"[" * 65 + b"]" * 65, not_object, max_batch=10)
