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
from rocksdict import Options, Rdict

from alys_fast.chain.genesis import genesis_alloc, genesis_diff
from alys_fast.chain.spec import dev_spec
from alys_fast.engine import BlockEnv, RevmEngine, StateDiff, StorageDiff
from alys_fast.state import Account, Loaded, Miss, keccak256, storage_root
from alys_fast.storage import BlockRecord, ChainStore, StorageError, TxLocation
from alys_fast.storage.actor import resolve
from alys_fast.storage.store import BLOCK_FORMAT, COLUMN_FAMILIES, STATE_SCHEME, StatePruned
from alys_fast.validation.receipts import Log, Receipt, bloom_of
from tests.engine.conftest import ADDRS, KEYS, sign
from tests.engine.contracts import TRANSFER, calldata, creation_code, hex_address, runtime_code
from tests.storage import crash_writer

ROOT = Path(__file__).resolve().parents[2]
COINBASE = b"\xcc" * 20
GWEI = 10**9
SUPPLY = 10**24


def _genesis(store: ChainStore) -> BlockRecord:
    block = BlockRecord(0, keccak256(b"genesis"), bytes(32), b"genesis-header", ())
    store.write_block(block, [], genesis_diff(dev_spec()))
    return block


def _block(n: int, parent: BlockRecord, state_root: bytes, txs) -> BlockRecord:
    return BlockRecord(n, keccak256(parent.hash + state_root), parent.hash, b"header %d" % n,
                       tuple(t.raw for t in txs), tuple(t.sender for t in txs))


class StoreSource:
    """Answers an engine's misses from a store, as the node's storage actor does."""

    def __init__(self, store: ChainStore) -> None:
        self.store = store
        self.misses: list[Miss] = []

    def load(self, misses) -> Loaded:
        self.misses.extend(misses)
        return resolve(self.store, misses)


def _engine_from(store: ChainStore) -> tuple[RevmEngine, StoreSource]:
    """An engine restarted from the store: every account, storage and code on demand."""
    source = StoreSource(store)
    spec = dev_spec()
    engine = RevmEngine(fork=spec.fork, chain_id=spec.chain_id, source=source)
    engine.put(Loaded(accounts=list(store.load_state().items())))
    return engine, source


def test_engine_blocks_round_trip_across_reopen(tmp_path: Path) -> None:
    """Transfers, a contract creation (code, storage, a log) and token transfers (slots
    changed and added, logs, a failed call with revert data) survive a reopen, and an
    engine restarted from the store continues on them."""
    spec = dev_spec()
    engine = RevmEngine.from_alloc(genesis_alloc(spec), chain_id=spec.chain_id)
    written = []
    token = None
    with ChainStore(tmp_path / "db") as store:
        parent = _genesis(store)
        for n in range(1, 21):
            txs = [sign(KEYS[i], to=ADDRS[(i + 1) % 10], value=n, nonce=n - 1, gasPrice=2 * GWEI)
                   for i in range(1, 5)]
            if n == 1:
                txs.append(sign(KEYS[0], to=None, gas=2_000_000, gasPrice=2 * GWEI,
                                data=creation_code("Token", ["uint256"], [SUPPLY])))
            else:
                to = hex_address(ADDRS[n % 10])
                txs.append(sign(KEYS[0], to=token, gas=100_000, nonce=n - 1, gasPrice=2 * GWEI,
                                data=calldata("Token", "transfer(address,uint256)", to, n)))
            if n == 2:  # more than ADDRS[5] has: reverts with InsufficientBalance(0, 10**30)
                txs.append(sign(KEYS[5], to=token, gas=100_000, gasPrice=2 * GWEI,
                                data=calldata("Token", "transfer(address,uint256)",
                                              hex_address(ADDRS[0]), 10**30)))
            env = BlockEnv(n, n, COINBASE, 30_000_000, GWEI)
            out = engine.execute_block(engine.state_root, env, txs)
            engine.commit(out)
            if n == 1:
                token = out.receipts[-1].contract_address
                assert token is not None
            block = _block(n, parent, out.state_root, txs)
            store.write_block(block, out.receipts, out.changes)
            written.append((block, out.receipts))
            parent = block
    _, first = written[0]
    assert first[-1].contract_address == token and first[-1].logs[0].topics[0] == TRANSFER
    _, second = written[1]
    assert second[-1].status == 0 and second[-1].output[:4] == bytes.fromhex("cf479181")
    with ChainStore(tmp_path / "db") as store:
        assert store.head() == (20, parent.hash)
        for block, receipts in written:
            assert store.block_hash(block.number) == block.hash
            assert store.block(block.hash) == block
            assert store.receipts(block.hash) == receipts  # logs, bloom, address, output
            for i, r in enumerate(receipts):
                loc = store.tx_location(r.tx_hash)
                assert loc == TxLocation(block.hash, block.number, i)
        assert store.block_hash(21) is None and store.block(b"x" * 32) is None
        assert store.tx_location(b"y" * 32) is None
        state = store.load_state()
        assert state == {address: engine.account(address) for address in state}
        assert set(state) == {*ADDRS, COINBASE, token}
        # The contract: code by hash, every slot, and the storage root the account names.
        account = store.account(token)
        assert account == engine.account(token) and account.nonce == 1
        assert store.code(account.code_hash) == runtime_code("Token")
        assert store.code(keccak256(b"no such code")) is None
        slots = store.contract_storage(token)
        assert slots == sorted(slots) and (0, SUPPLY) in slots
        assert len(slots) == 1 + 1 + 9  # totalSupply, the deployer, nine recipients
        assert storage_root(dict(slots)) == account.storage_root
        assert store.contract_storage(ADDRS[0]) == []
        for slot, value in slots:
            assert finish_storage(engine, token, slot) == value
        # An engine restarted from the store has the same root and runs on the contract,
        # loading its storage and code from the store when the block first touches them.
        restarted, source = _engine_from(store)
        assert restarted.state_root == engine.state_root
        tx = sign(KEYS[0], to=token, gas=100_000, nonce=20, gasPrice=2 * GWEI,
                  data=calldata("Token", "transfer(address,uint256)", hex_address(COINBASE), 1))
        env = BlockEnv(21, 21, COINBASE, 30_000_000, GWEI)
        again = restarted.execute_block(restarted.state_root, env, [tx])
        assert again.receipts[0].status == 1
        assert ("storage", token, None) in source.misses
        assert ("code", account.code_hash) in source.misses
        assert again == engine.execute_block(engine.state_root, env, [tx])


def finish_storage(engine: RevmEngine, address: bytes, slot: int) -> int:
    steps = engine.storage_steps(address, slot)
    try:
        next(steps)
    except StopIteration as done:
        return done.value
    raise AssertionError("a standalone engine holds all its storage")


def test_blocks_must_extend_the_head(tmp_path: Path) -> None:
    empty = StateDiff({})
    with ChainStore(tmp_path / "db") as store:
        with pytest.raises(StorageError, match="number 0"):
            store.write_block(BlockRecord(1, b"a" * 32, bytes(32), b"", ()), [], empty)
        store.write_block(BlockRecord(0, b"a" * 32, bytes(32), b"", ()), [], empty)
        with pytest.raises(StorageError, match="does not extend"):
            store.write_block(BlockRecord(1, b"b" * 32, b"z" * 32, b"", ()), [], empty)
        with pytest.raises(StorageError, match="receipts"):
            store.write_block(BlockRecord(1, b"b" * 32, b"a" * 32, b"", (b"tx",), (A,)), [],
                              empty)
        receipt = Receipt(b"\x0a" * 32, 2, 1, 21_000, 21_000, 1, (), bloom_of(()), None, b"")
        with pytest.raises(StorageError, match="senders"):
            store.write_block(BlockRecord(1, b"b" * 32, b"a" * 32, b"", (b"tx",)), [receipt],
                              empty)
        assert store.head() == (0, b"a" * 32)


def test_deleted_accounts_are_removed(tmp_path: Path) -> None:
    a = b"\x01" * 20
    with ChainStore(tmp_path / "db") as store:
        store.write_block(BlockRecord(0, b"a" * 32, bytes(32), b"", ()), [],
                          StateDiff({a: Account(1, 2**200, keccak256(b"c"), b"\x07" * 32)}))
        assert store.account(a) == Account(1, 2**200, keccak256(b"c"), b"\x07" * 32)
        store.write_block(BlockRecord(1, b"b" * 32, b"a" * 32, b"", ()), [],
                          StateDiff({a: None}))
        assert store.load_state() == {} and store.account(a) is None


B = b"\x0b" * 20
# Neighbours of A in key order: the wipe of A must not reach them.
A = bytes.fromhex("10" * 19 + "42")
BEFORE_A = bytes.fromhex("10" * 19 + "41")
AFTER_A = bytes.fromhex("10" * 19 + "43")
TOP = 2**256 - 1


def _slots(address: bytes, *slots: tuple[int, int, int], wiped: bool = False) -> StorageDiff:
    return StorageDiff(address, wiped, slots)


def test_contract_storage_slots_wiped_and_not(tmp_path: Path) -> None:
    with ChainStore(tmp_path / "db") as store:
        first = StateDiff(
            {},
            storage=(
                _slots(BEFORE_A, (TOP, 1, 0)),
                _slots(A, (0, 5, 0), (1, 2**255, 0), (TOP, 7, 0), wiped=True),
                _slots(AFTER_A, (0, 3, 0)),
            ),
        )
        store.write_block(BlockRecord(0, b"a" * 32, bytes(32), b"", ()), [], first)
        assert store.contract_storage(A) == [(0, 5), (1, 2**255), (TOP, 7)]
        # Not wiped: a slot changes, one is deleted (new value 0), one is added.
        second = StateDiff({}, storage=(_slots(A, (0, 6, 5), (1, 0, 2**255), (9, 9, 0)),))
        store.write_block(BlockRecord(1, b"b" * 32, b"a" * 32, b"", ()), [], second)
        assert store.contract_storage(A) == [(0, 6), (9, 9), (TOP, 7)]
        # Wiped (destroyed, or created anew): every old slot goes, the new ones stay.
        third = StateDiff({}, storage=(_slots(A, (3, 4, 0), wiped=True),))
        store.write_block(BlockRecord(2, b"c" * 32, b"b" * 32, b"", ()), [], third)
        assert store.contract_storage(A) == [(3, 4)]
        fourth = StateDiff({}, storage=(_slots(A, wiped=True),))
        store.write_block(BlockRecord(3, b"d" * 32, b"c" * 32, b"", ()), [], fourth)
        assert store.contract_storage(A) == []
        assert store.contract_storage(BEFORE_A) == [(TOP, 1)]
        assert store.contract_storage(AFTER_A) == [(0, 3)]
    with ChainStore(tmp_path / "db") as store:
        assert store.contract_storage(A) == []
        assert store.contract_storage(BEFORE_A) == [(TOP, 1)]
        assert store.contract_storage(AFTER_A) == [(0, 3)]


def test_code_is_stored_by_its_hash(tmp_path: Path) -> None:
    code = runtime_code("Token")
    with ChainStore(tmp_path / "db") as store:
        store.write_block(BlockRecord(0, b"a" * 32, bytes(32), b"", ()), [],
                          StateDiff({}, code=(code, b"\x00")))
        assert store.code(keccak256(code)) == code
        assert store.code(keccak256(b"\x00")) == b"\x00"
        assert store.code(keccak256(b"\x01")) is None


def test_receipts_with_logs_round_trip(tmp_path: Path) -> None:
    logs = (
        Log(b"\x01" * 20, (), b""),
        Log(b"\x02" * 20, (b"\x03" * 32, b"\x04" * 32, b"\x05" * 32, b"\x06" * 32), b"d" * 300),
    )
    receipts = [
        Receipt(b"\x0a" * 32, 2, 1, 60_000, 60_000, 2**70, logs, bloom_of(logs), None, b"\x01"),
        Receipt(b"\x0b" * 32, 0, 1, 100_000, 160_000, 7, (), bloom_of(()), b"\x0c" * 20, b""),
        Receipt(b"\x0d" * 32, 1, 0, 30_000, 190_000, 7, (), bloom_of(()), None, b"revert"),
    ]
    block = BlockRecord(0, b"a" * 32, bytes(32), b"", (b"t1", b"t2", b"t3"), (A, B, A))
    with ChainStore(tmp_path / "db") as store:
        store.write_block(block, receipts, StateDiff({}))
    with ChainStore(tmp_path / "db") as store:
        assert store.block(block.hash) == block
        assert store.receipts(block.hash) == tuple(receipts)
        assert store.receipts(b"z" * 32) is None
    assert receipts[0].logs_bloom != bytes(256)


def _meta(path: Path, change) -> None:
    """Edit the meta column family of a closed store directly (as an older version left it)."""
    options = Options(raw_mode=True)
    db = Rdict(str(path), options,
               column_families={name: Options(raw_mode=True) for name in COLUMN_FAMILIES})
    meta = db.get_column_family("meta")
    change(meta)
    meta.close()
    db.close()


def test_a_directory_of_another_state_scheme_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with ChainStore(path) as store:
        assert store.meta(b"state-scheme") == STATE_SCHEME
        _genesis(store)
    with ChainStore(path) as store:  # ours: opens
        assert store.head() is not None

    def drop_scheme(meta) -> None:
        del meta[b"state-scheme"]

    _meta(path, drop_scheme)
    with pytest.raises(StorageError, match="bucketed commitment"):
        ChainStore(path)

    def other_scheme(meta) -> None:
        meta[b"state-scheme"] = b"something-else"

    _meta(path, other_scheme)
    with pytest.raises(StorageError, match="uses state scheme b'something-else'"):
        ChainStore(path)
    # An empty directory is new, whatever wrote it: it takes the current scheme.
    with ChainStore(tmp_path / "fresh") as store:
        assert store.meta(b"state-scheme") == STATE_SCHEME


def test_a_directory_of_secp256k1_signed_blocks_is_refused(tmp_path: Path) -> None:
    """Blocks written before BLS approvals (format ``auxpow-header-1``) hash and verify
    differently: their directory is refused with what to do, never misread."""
    path = tmp_path / "db"
    with ChainStore(path) as store:
        assert store.meta(b"block-format") == BLOCK_FORMAT == b"bls-approvals-1"
        _genesis(store)

    def older_format(meta) -> None:
        meta[b"block-format"] = b"auxpow-header-1"

    _meta(path, older_format)
    with pytest.raises(StorageError) as caught:
        ChainStore(path)
    message = str(caught.value)
    assert "format auxpow-header-1, not bls-approvals-1" in message
    assert "secp256k1" in message and "start with a new data dir" in message


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
    slots = crash_writer.contract_slots(number)
    assert store.contract_storage(crash_writer.CONTRACT) == sorted(slots.items())
    assert state[crash_writer.CONTRACT].storage_root == storage_root(slots)
    assert store.code(state[crash_writer.CONTRACT].code_hash) == crash_writer.CODE
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


# --- history: reads at older blocks -----------------------------------------------------------


def _chain_of_changes(store: ChainStore, blocks: int) -> dict[int, tuple[Account | None, int]]:
    """Blocks 1..blocks each set account B's nonce and slot 7 of contract A to the block's
    number (block 3 deletes B and wipes A); returns (B, A's slot 7) as of every block."""
    b = b"\x0b" * 20
    expected: dict[int, tuple[Account | None, int]] = {0: (None, 0)}
    store.write_block(BlockRecord(0, _hash(0), bytes(32), b"", ()), [], StateDiff({}))
    account: Account | None = None
    slot = 0
    for n in range(1, blocks + 1):
        if n == 3:
            new_account, new_slot = None, 0
            storage = (_slots(A, wiped=True),)
        else:
            new_account, new_slot = Account(nonce=n, balance=n), n
            storage = (_slots(A, (7, n, slot), (100 + n, 1, 0)),)
        store.write_block(BlockRecord(n, _hash(n), _hash(n - 1), b"", ()), [],
                          StateDiff({b: new_account}, storage=storage, previous={b: account}))
        account, slot = new_account, new_slot
        expected[n] = (account, slot)
    return expected


def _hash(n: int) -> bytes:
    return keccak256(b"block %d" % n)


def test_reads_at_every_kept_block_see_that_blocks_state(tmp_path: Path) -> None:
    with ChainStore(tmp_path / "db", archive=True) as store:
        expected = _chain_of_changes(store, 6)
        for n, (account, slot) in expected.items():
            assert store.account_at(b"\x0b" * 20, n) == account, n
            assert store.storage_at(A, 7, n) == slot, n
        # Slot 101 was set in block 1, wiped in block 3 (which never touched it).
        assert [store.storage_at(A, 101, n) for n in range(6)] == [0, 1, 1, 0, 0, 0]
        with pytest.raises(StorageError, match="beyond the head"):
            store.account_at(b"\x0b" * 20, 7)


def test_history_is_pruned_to_its_window_and_says_the_oldest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import alys_fast.storage.store as store_module

    monkeypatch.setattr(store_module, "HISTORY_BLOCKS", 4)
    with ChainStore(tmp_path / "db") as store:
        expected = _chain_of_changes(store, 10)
        assert store.oldest_state() == 7
        for n in range(7, 11):
            assert store.account_at(b"\x0b" * 20, n) == expected[n][0]
            assert store.storage_at(A, 7, n) == expected[n][1]
        with pytest.raises(StatePruned, match="oldest block with state is 7") as refused:
            store.storage_at(A, 7, 6)
        assert refused.value.oldest == 7
        # Pruned history is deleted, not merely hidden.
        history = store._cf["history"]
        assert all(int.from_bytes(key[-8:], "big") > 7 for key, _ in history.items())
    # Reopened as an archive, what was pruned stays pruned; nothing more is.
    with ChainStore(tmp_path / "db", archive=True) as store:
        assert store.oldest_state() == 7


def test_a_store_without_history_reads_its_head_only(tmp_path: Path) -> None:
    with ChainStore(tmp_path / "db") as store:
        _chain_of_changes(store, 3)
        store._cf["meta"].delete(b"history-oldest")  # as written before history was kept
    with ChainStore(tmp_path / "db") as store:
        assert store.oldest_state() == 3
        with pytest.raises(StatePruned):
            store.account_at(b"\x0b" * 20, 2)


def test_unwind_returns_to_an_older_block_exactly(tmp_path: Path) -> None:
    b = b"\x0b" * 20
    with ChainStore(tmp_path / "db", archive=True) as store:
        expected = _chain_of_changes(store, 6)
        store.unwind(2)
        at_two = (store.load_state(), store.contract_storage(A))
        assert store.head() == (2, _hash(2))
        assert store.account(b) == expected[2][0]
        assert store.contract_storage(A) == [(7, 2), (101, 1), (102, 1)]
        for n in range(3, 7):
            assert store.block_hash(n) is None and store.block(_hash(n)) is None
        assert store.account_at(b, 1) == expected[1][0]
        with pytest.raises(StorageError, match="beyond the head"):
            store.account_at(b, 3)
        # The chain goes on from there, and unwinding to where it is changes nothing.
        store.unwind(2)
        assert (store.load_state(), store.contract_storage(A)) == at_two
        store.write_block(BlockRecord(3, _hash(33), _hash(2), b"", ()), [],
                          StateDiff({b: Account(nonce=33)}, previous={b: expected[2][0]}))
        assert store.account_at(b, 2) == expected[2][0]
        assert store.account(b) == Account(nonce=33)
        store.unwind(0)
        assert store.load_state() == {} and store.contract_storage(A) == []


def test_unwind_needs_the_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import alys_fast.storage.store as store_module

    monkeypatch.setattr(store_module, "HISTORY_BLOCKS", 3)
    with ChainStore(tmp_path / "db") as store:
        _chain_of_changes(store, 6)
        with pytest.raises(StatePruned):
            store.unwind(2)
        with pytest.raises(StorageError, match="beyond the head"):
            store.unwind(7)
        assert store.head() == (6, _hash(6))


def test_state_edits_between_blocks_are_history_of_the_next_block(tmp_path: Path) -> None:
    b = b"\x0b" * 20
    with ChainStore(tmp_path / "db", archive=True) as store:
        expected = _chain_of_changes(store, 4)
        edited = Account(nonce=99, balance=7)
        store.write_edit(StateDiff({b: edited}, storage=(_slots(A, (7, 1000, 4)),),
                                   previous={b: expected[4][0]}), b"\x01" * 32)
        assert store.edited_root() == b"\x01" * 32
        assert store.account(b) == edited and store.storage_at(A, 7, 4) == 4
        # A second edit before the block keeps the first one's "before".
        store.write_edit(StateDiff({b: Account(nonce=100)}, previous={b: edited}), b"\x02" * 32)
        assert store.account_at(b, 4) == expected[4][0]
        # What the edits made is kept apart, for replaying block 5 on them.
        assert store.edits(5) == ({b: Account(nonce=100)}, {(A, 7): 1000})
        assert store.edits(4) == ({}, {})
        # An unwind to the head undoes the edits.
        store.unwind(4)
        assert store.edits(5) == ({}, {})
        assert store.account(b) == expected[4][0] and store.edited_root() is None
        assert store.contract_storage(A)[0] == (7, 4)
        # Edit, then a block that changes the same account and slot: reads at the block
        # before see neither, unwinding the block undoes both.
        store.write_edit(StateDiff({b: edited}, previous={b: expected[4][0]}), b"\x01" * 32)
        store.write_block(BlockRecord(5, _hash(5), _hash(4), b"", ()), [],
                          StateDiff({b: Account(nonce=5)}, storage=(_slots(A, (7, 5, 4)),),
                                    previous={b: edited}))
        assert store.edited_root() is None
        assert store.account_at(b, 4) == expected[4][0] and store.account(b) == Account(nonce=5)
        store.unwind(4)
        assert store.account(b) == expected[4][0] and store.storage_at(A, 7, 4) == 4
