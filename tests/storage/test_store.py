"""ChainStore: blocks from the real engine round-trip through a reopen; kill -9 mid-write
leaves a head whose block, receipts, tx index and state are all present."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from alys_fast.chain.spec import dev_spec
from alys_fast.engine import BlockEnv, EmbeddedEngine, State
from alys_fast.engine.state import Account, keccak256
from alys_fast.storage import BlockRecord, ChainStore, StorageError, TxLocation
from tests.engine.conftest import ADDRS, KEYS, sign
from tests.storage import crash_writer

ROOT = Path(__file__).resolve().parents[2]


def _genesis(store: ChainStore, engine: EmbeddedEngine) -> BlockRecord:
    block = BlockRecord(0, keccak256(b"genesis"), bytes(32), b"genesis-header", ())
    store.write_block(block, [], dict(engine.state.items()))
    return block


def test_engine_blocks_round_trip_across_reopen(tmp_path: Path) -> None:
    engine = EmbeddedEngine.from_spec(dev_spec())
    written = []
    with ChainStore(tmp_path / "db") as store:
        parent = _genesis(store, engine)
        for n in range(1, 21):
            txs = [sign(KEYS[i], to=ADDRS[(i + 1) % 10], value=n, nonce=n - 1) for i in range(5)]
            env = BlockEnv(n, n, b"\xcc" * 20, 30_000_000, 10**9)
            out = engine.execute_block(engine.state_root, env, txs)
            engine.commit(out)
            block = BlockRecord(n, keccak256(parent.hash + out.state_root), parent.hash,
                                b"header %d" % n, tuple(t.raw for t in txs))
            store.write_block(block, out.receipts, out.changes)
            written.append((block, out.receipts))
            parent = block
    with ChainStore(tmp_path / "db") as store:
        assert store.head() == (20, parent.hash)
        for block, receipts in written:
            assert store.block_hash(block.number) == block.hash
            assert store.block(block.hash) == block
            assert store.receipts(block.hash) == receipts
            for i, r in enumerate(receipts):
                loc = store.tx_location(r.tx_hash)
                assert loc == TxLocation(block.hash, block.number, i)
        assert store.block_hash(21) is None and store.block(b"x" * 32) is None
        assert store.tx_location(b"y" * 32) is None
        state = store.load_state()
        assert state == dict(engine.state.items())
        assert State(state).root == engine.state_root  # the engine restarts at the same root
        assert store.account(ADDRS[0]) == engine.state.get(ADDRS[0])
        assert store.account(b"\xcc" * 20) is None  # no tips (gas price = base fee)


def test_blocks_must_extend_the_head(tmp_path: Path) -> None:
    with ChainStore(tmp_path / "db") as store:
        with pytest.raises(StorageError, match="number 0"):
            store.write_block(BlockRecord(1, b"a" * 32, bytes(32), b"", ()), [], {})
        store.write_block(BlockRecord(0, b"a" * 32, bytes(32), b"", ()), [], {})
        with pytest.raises(StorageError, match="does not extend"):
            store.write_block(BlockRecord(1, b"b" * 32, b"z" * 32, b"", ()), [], {})
        with pytest.raises(StorageError, match="receipts"):
            store.write_block(BlockRecord(1, b"b" * 32, b"a" * 32, b"", (b"tx",)), [], {})
        assert store.head() == (0, b"a" * 32)


def test_deleted_accounts_are_removed(tmp_path: Path) -> None:
    with ChainStore(tmp_path / "db") as store:
        store.write_block(BlockRecord(0, b"a" * 32, bytes(32), b"", ()), [],
                          {b"\x01" * 20: Account(1, 2**200)})
        store.write_block(BlockRecord(1, b"b" * 32, b"a" * 32, b"", ()), [], {b"\x01" * 20: None})
        assert store.load_state() == {}


def _check_consistent(store: ChainStore) -> int:
    head = store.head()
    assert head is not None
    number, head_hash = head
    for n in range(number + 1):
        expected, receipts, _ = crash_writer.make(n)
        assert store.block_hash(n) == expected.hash
        assert store.block(expected.hash) == expected
        assert store.receipts(expected.hash) == tuple(receipts)
        assert store.tx_location(receipts[-1].tx_hash).block_number == n
    assert head_hash == crash_writer.block_hash(number)
    assert store.block_hash(number + 1) is None
    # The state is exactly the head's: no half-applied later block.
    state = store.load_state()
    assert state[b"\xaa" * 20] == Account(number, 10**22 - number)
    assert all(state[i.to_bytes(20, "big")].balance == number + 1 for i in range(1, 100))
    return number


def test_kill_9_while_writing_leaves_a_complete_head(tmp_path: Path) -> None:
    path = tmp_path / "db"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for round_ in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.storage.crash_writer", str(path)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True,
        )
        acked = []
        assert proc.stdout is not None
        deadline = time.monotonic() + 10
        while len(acked) < 15 + 10 * round_ and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            acked.append(int(line))
        time.sleep(0.013 * (round_ + 1))  # land the kill somewhere inside a later write
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert acked, "the writer printed nothing"
        with ChainStore(path) as store:
            head = _check_consistent(store)
        assert head >= acked[-1], "a block reported written was lost"
