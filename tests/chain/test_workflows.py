"""Block building and import: authored blocks import through the same workflow as anyone's;
every failure names its step, only storage faults are retried, and the head is published only
once the block is stored and committed."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import pytest

from alys_fast.chain.aura import slot_timestamp
from alys_fast.chain.genesis import genesis_alloc, genesis_diff, genesis_header
from alys_fast.chain.spec import DEV_AUTHORITY_KEY, ChainSpec, dev_spec
from alys_fast.chain.txpool import TxPool, state_reader
from alys_fast.chain.workflows import (
    BlockImportError,
    BlockImportWorkflow,
    HeaderMismatch,
    ImportedBlock,
    ImportState,
    build_block,
    child_base_fee,
)
from alys_fast.consensus import SecretKey
from alys_fast.engine import BlockEnv, BlockExecution, RevmEngine, StateDiff
from alys_fast.state import Loaded
from alys_fast.storage import BlockRecord, ChainStore, StorageError
from alys_fast.validation import (
    Block,
    Header,
    InvalidBlock,
    Transaction,
    header_approvals,
    ordered_trie_root,
    sign_header,
)
from alys_fast.validation.receipts import Receipt, receipts_root
from tests.engine.conftest import ADDRS, KEYS, sign
from tests.engine.contracts import calldata, creation_code, hex_address, mapping_slot, runtime_code

AUTHORITY = SecretKey.from_bytes(bytes.fromhex(DEV_AUTHORITY_KEY[2:]))
OUTSIDER = SecretKey.from_bytes(b"\x07" * 32)  # a BLS key no spec here lists
S = ImportState
HAPPY = [S.WAITING_FOR_BLOCK, S.VALIDATING, S.EXECUTING, S.STORING, S.FINALIZING, S.COMPLETED]
T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


class FlakyStore(ChainStore):
    """A store whose database fails ``failures`` writes, before or after the batch lands."""

    def __init__(self, path: Path, *, failures: int = 0, after_write: bool = False) -> None:
        super().__init__(path)
        self.failures = failures
        self.after_write = after_write
        self.calls = 0

    def write_block(self, block, receipts, diff, meta=None) -> None:  # type: ignore[override]
        self.calls += 1
        if self.failures and self.after_write:
            super().write_block(block, receipts, diff, meta)
        if self.failures:
            self.failures -= 1
            raise OSError("IO error: No space left on device")
        super().write_block(block, receipts, diff, meta)


class InlineEngine:
    """The sync revm engine behind the async ExecutionClient interface; counts calls.

    Committing also makes the block's hash BLOCKHASH-visible, as the engine actor does."""

    def __init__(self, engine: RevmEngine) -> None:
        self.engine = engine
        self.executed = 0
        self.committed = 0

    async def execute_block(
        self,
        parent_state_root: bytes,
        env: BlockEnv,
        txs: Sequence[Transaction],
        *,
        skip_invalid: bool = False,
        header: Header | None = None,
    ) -> BlockExecution:
        self.executed += 1
        return self.engine.execute_block(parent_state_root, env, txs, skip_invalid=skip_invalid)

    async def commit(self, execution: BlockExecution, block_hash: bytes) -> None:
        self.committed += 1
        self.engine.commit(execution)
        self.engine.put(Loaded(block_hashes=[(execution.env.number, block_hash)]))


class InlineStore:
    """A sync ChainStore behind the async BlockStore interface (looked up at each call)."""

    def __init__(self, store: ChainStore) -> None:
        self.store = store

    async def head(self) -> tuple[int, bytes] | None:
        return self.store.head()

    async def write_block(
        self,
        block: BlockRecord,
        receipts: Sequence[Receipt],
        diff: StateDiff,
        meta: dict[bytes, bytes] | None = None,
    ) -> None:
        self.store.write_block(block, receipts, diff, meta)


@dataclass
class Chain:
    """A dev chain at genesis: spec, engine, store, pool, and the head header.

    ``engine`` and ``store`` are the sync objects the assertions read; ``client`` and
    ``blocks`` are the async adapters the workflow and the builder talk to.
    """

    spec: ChainSpec
    engine: RevmEngine
    store: FlakyStore
    pool: TxPool
    head: Header
    published: list[ImportedBlock] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.client = InlineEngine(self.engine)
        self.blocks = InlineStore(self.store)

    def workflow(self, **kwargs) -> BlockImportWorkflow:
        kwargs.setdefault("on_head", self.published.append)
        return BlockImportWorkflow(
            self.head, spec=self.spec, engine=self.client, store=self.blocks, **kwargs
        )

    def build_with_execution(
        self, slot: int | None = None, key: SecretKey = AUTHORITY
    ) -> tuple[Block, BlockExecution]:
        slot = self.head.slot + 1 if slot is None else slot
        candidates = self.pool.best(self.spec.gas_limit, child_base_fee(self.spec, self.head))
        return run(
            build_block(self.spec, self.head, candidates, self.client, slot, key.to_bytes()))

    def build(self, slot: int | None = None, key: SecretKey = AUTHORITY) -> Block:
        return self.build_with_execution(slot, key)[0]

    def run(self, block: Block, **kwargs) -> ImportedBlock:
        """Import ``block`` with a fresh workflow (``kwargs``: receive's)."""
        return run(self.workflow().run(block, **kwargs))

    def advance(self, imported: ImportedBlock) -> None:
        """What the chain actor does with a published head: move on, prune the pool."""
        self.head = imported.header
        self.pool.remove_included(
            imported.execution.transactions,
            state_reader(self.engine),
            base_fee=child_base_fee(self.spec, self.head),
        )


def _open_chain(path: Path, spec: ChainSpec | None = None, **store_args) -> Chain:
    spec = dev_spec() if spec is None else spec
    engine = RevmEngine.from_alloc(genesis_alloc(spec), fork=spec.fork, chain_id=spec.chain_id)
    head = genesis_header(spec)
    assert head.state_root == engine.state_root
    store = FlakyStore(path, **store_args)
    genesis = BlockRecord(0, head.hash, head.parent_hash, head.encode(), ())
    store.write_block(genesis, [], genesis_diff(spec))
    store.calls = 0
    pool = TxPool(
        spec.chain_id,
        spec.gas_limit,
        state_reader(engine),
        base_fee=child_base_fee(spec, head),
    )
    return Chain(spec, engine, store, pool, head)


@pytest.fixture
def chain(tmp_path: Path):
    c = _open_chain(tmp_path / "db")
    yield c
    c.store.close()


def _transfers(chain: Chain, count: int = 3, value: int = 1000) -> None:
    for i in range(count):
        nonce = chain.pool.pending_nonce(ADDRS[i])
        chain.pool.add(sign(KEYS[i], to=ADDRS[9], value=value, nonce=nonce, gasPrice=2 * 10**9))


def _resign(block: Block, key: SecretKey = AUTHORITY, **changes) -> Block:
    """``block`` changed and signed again by the dev chain's one authority (index 0)."""
    return Block(
        sign_header(msgspec.structs.replace(block.header, **changes), key, 0), block.transactions
    )


def _assert_untouched(chain: Chain, workflow: BlockImportWorkflow) -> None:
    """A failed import leaves the engine head, the stored head and the subscribers alone."""
    assert workflow.state is S.FAILED and workflow.result is None
    assert chain.engine.state_root == chain.head.state_root
    assert chain.store.head() == (chain.head.number, chain.head.hash)
    assert chain.published == []


# --- the happy path -------------------------------------------------------------------------


def test_built_blocks_import_through_the_workflow(chain: Chain) -> None:
    before = chain.engine.account(ADDRS[9]).balance
    for n in range(1, 4):
        _transfers(chain)
        block = chain.build()
        assert len(block.transactions) == 3
        workflow = chain.workflow()
        imported = run(workflow.run(block))
        assert [state for state, _ in workflow.history] == HAPPY
        assert workflow.retries == 0 and workflow.error is None
        assert imported.block == block and chain.published[-1] is imported
        chain.advance(imported)
        assert chain.store.head() == (n, block.hash)
        assert chain.engine.state_root == block.header.state_root
        assert len(chain.pool) == 0
        stored = chain.store.block(block.hash)
        assert stored is not None and stored.transactions == block.transactions
        assert stored.header == block.header.encode()
        receipts = chain.store.receipts(block.hash)
        assert receipts == imported.execution.receipts
        assert receipts_root(receipts) == block.header.receipts_root
    assert chain.engine.account(ADDRS[9]).balance == before + 3 * 3 * 1000
    assert chain.engine.account(ADDRS[0]).nonce == 3
    assert chain.head.gas_used == 3 * 21_000


def test_an_empty_block_imports(chain: Chain) -> None:
    block = chain.build()
    assert block.transactions == () and block.header.gas_used == 0
    chain.advance(chain.run(block))
    assert chain.store.head() == (1, block.hash)


def test_each_step_is_observable(chain: Chain) -> None:
    _transfers(chain, 1)
    block = chain.build()
    workflow = chain.workflow()
    assert workflow.state is S.WAITING_FOR_BLOCK and not workflow.done
    with pytest.raises(RuntimeError, match="nothing to step"):
        run(workflow.step())
    workflow.receive(block)
    assert workflow.state is S.VALIDATING
    assert run(workflow.step()) is S.EXECUTING
    assert run(workflow.step()) is S.STORING
    assert chain.store.head() == (0, chain.head.hash)  # executed, nothing written yet
    assert run(workflow.step()) is S.FINALIZING
    assert chain.store.head() == (1, block.hash)
    assert chain.engine.state_root == chain.head.state_root  # stored, engine not yet moved
    assert chain.published == []
    assert run(workflow.step()) is S.COMPLETED and workflow.done
    assert chain.engine.state_root == block.header.state_root
    assert [imported.block for imported in chain.published] == [block]
    assert workflow.history[-1] == (S.COMPLETED, f"head 1 0x{block.hash.hex()}")
    with pytest.raises(RuntimeError, match="already has a block"):
        workflow.receive(block)


def test_head_is_published_only_after_store_and_commit(chain: Chain) -> None:
    seen = []

    def on_head(imported: ImportedBlock) -> None:
        seen.append((chain.store.head(), chain.engine.state_root))

    _transfers(chain)
    block = chain.build()
    run(chain.workflow(on_head=on_head).run(block))
    assert seen == [((1, block.hash), block.header.state_root)]


def test_a_failing_subscriber_does_not_undo_the_import(chain: Chain) -> None:
    def on_head(imported: ImportedBlock) -> None:
        raise ValueError("subscriber bug")

    block = chain.build()
    workflow = chain.workflow(on_head=on_head)
    with pytest.raises(ValueError, match="subscriber bug"):
        run(workflow.run(block))
    assert workflow.state is S.COMPLETED and workflow.result is not None
    assert chain.store.head() == (1, block.hash)


def test_builder_leaves_out_what_the_engine_rejects(chain: Chain) -> None:
    """A stale pool (its transactions already included) costs the next block nothing."""
    _transfers(chain, 2)
    chain.head = chain.run(chain.build()).header  # the pool is not told
    chain.pool.add(sign(KEYS[2], to=ADDRS[9], value=1, nonce=0, gasPrice=2 * 10**9))
    assert len(chain.pool.best(chain.spec.gas_limit, chain.head.base_fee_per_gas)) == 3
    block = chain.build()
    assert len(block.transactions) == 1  # the two included nonce-0 transactions were skipped
    chain.run(block)
    assert chain.store.head() == (2, block.hash)


# --- invalid blocks: FAILED at once, never retried -----------------------------------------


def _fails(
    chain: Chain, block: Block, step: ImportState, match: str, **kwargs
) -> BlockImportError:
    """Import ``block`` (``kwargs``: receive's), expecting it to fail at once in ``step``."""
    workflow = chain.workflow()
    with pytest.raises(BlockImportError, match=match) as info:
        run(workflow.run(block, **kwargs))
    assert info.value is workflow.error and info.value.step is step
    assert workflow.retries == 0
    assert [state for state, _ in workflow.history] == [*HAPPY[: HAPPY.index(step) + 1], S.FAILED]
    _assert_untouched(chain, workflow)
    return info.value


def test_signature_by_someone_else_fails_validation(chain: Chain) -> None:
    block = chain.build()
    other = sign_header(block.header, OUTSIDER, 0)
    forged = Block(msgspec.structs.replace(block.header, signature=other.signature))
    error = _fails(chain, forged, S.VALIDATING, "approvals do not verify")
    assert isinstance(error.__cause__, InvalidBlock)


def test_a_key_not_in_the_spec_cannot_author(chain: Chain) -> None:
    _fails(chain, chain.build(key=OUTSIDER), S.VALIDATING, "approvals do not verify")


def test_author_must_be_the_spec_fee_recipient(chain: Chain) -> None:
    block = _resign(chain.build(), author=b"\x01" * 20)
    _fails(chain, block, S.VALIDATING, "author not the spec's fee recipient")


FEDERATION = [SecretKey.from_bytes(bytes([i]) * 32) for i in (1, 2, 3)]


def _federation_chain(path: Path) -> Chain:
    """A chain of three authorities (threshold 2) paying fees to a non-zero recipient."""
    spec = msgspec.structs.replace(
        dev_spec(),
        authorities=tuple("0x" + k.public_key().to_bytes().hex() for k in FEDERATION),
        fee_recipient="0x" + "fe" * 20,
    )
    return _open_chain(path, spec)


def test_a_federation_block_imports_with_the_threshold_of_approvals(tmp_path: Path) -> None:
    chain = _federation_chain(tmp_path / "db")
    try:
        _transfers(chain, 1)
        block, execution = chain.build_with_execution(slot=4, key=FEDERATION[1])  # 4 % 3 == 1
        assert block.header.author == b"\xfe" * 20  # the EVM's coinbase
        assert list(header_approvals(block.header).indices()) == [1]
        # As published, with its author's signature alone: 1 of 3 is below the threshold.
        _fails(chain, block, S.VALIDATING, "too few approvals", execution=execution)
        # Another authority's approval of the same hash certifies it; the hash is unchanged.
        approvals = header_approvals(block.header).add(2, FEDERATION[2].sign(block.hash))
        certified = Block(
            msgspec.structs.replace(block.header, signature=approvals.encode()),
            block.transactions,
        )
        assert certified.hash == block.hash
        imported = chain.run(certified, execution=execution)
        assert chain.store.head() == (1, block.hash)
        assert imported.block.header.signature == approvals.encode()  # the stored certificate
    finally:
        chain.store.close()


def test_a_federation_block_needs_its_slot_author(tmp_path: Path) -> None:
    chain = _federation_chain(tmp_path / "db")
    try:
        block = chain.build(slot=4, key=FEDERATION[0])  # signs as slot 4's author, index 1
        approved = header_approvals(block.header).add(2, FEDERATION[2].sign(block.hash))
        posing = Block(msgspec.structs.replace(block.header, signature=approved.encode()))
        _fails(chain, posing, S.VALIDATING, "approvals do not verify")
        approvals = header_approvals(sign_header(block.header, FEDERATION[0], 0))
        approvals = approvals.add(2, FEDERATION[2].sign(block.hash))  # a quorum, not the author
        quorum = Block(msgspec.structs.replace(block.header, signature=approvals.encode()))
        _fails(chain, quorum, S.VALIDATING, "not approved by the slot's author")
    finally:
        chain.store.close()


def test_wrong_parent_fails_validation(chain: Chain) -> None:
    block = _resign(chain.build(), parent_hash=b"\x11" * 32)
    _fails(chain, block, S.VALIDATING, "unknown parent")


def test_tampered_transactions_fail_validation(chain: Chain) -> None:
    _transfers(chain, 2)
    block = chain.build()
    tampered = Block(block.header, block.transactions[:1])
    _fails(chain, tampered, S.VALIDATING, "transactions root mismatch")


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"base_fee_per_gas": 10**9}, "wrong base fee"),
        ({"gas_limit": 29_000_000}, "gas limit not the spec's"),
    ],
)
def test_header_rules_of_the_spec(chain: Chain, changes: dict, match: str) -> None:
    _fails(chain, _resign(chain.build(), **changes), S.VALIDATING, match)


@pytest.mark.parametrize("delta", [1, -1])
def test_timestamp_must_be_the_slots(chain: Chain, delta: int) -> None:
    block = chain.build()
    assert block.header.timestamp == slot_timestamp(block.header.slot, chain.spec.slot_ms) == 1
    # One second early is the parent's timestamp: validate_block allows it, the slot does not.
    wrong = _resign(block, timestamp=block.header.timestamp + delta)
    _fails(chain, wrong, S.VALIDATING, "timestamp not the slot's")


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"state_root": b"\x22" * 32}, "state root mismatch"),
        ({"gas_used": 42_000}, "gas used mismatch: computed 21000, header 42000"),
        ({"receipts_root": b"\x33" * 32}, "receipts root mismatch"),
        ({"logs_bloom": b"\x01" * 256}, "logs bloom mismatch"),
    ],
)
def test_execution_must_match_the_header(chain: Chain, changes: dict, match: str) -> None:
    _transfers(chain, 1)
    error = _fails(chain, _resign(chain.build(), **changes), S.EXECUTING, match)
    assert isinstance(error, HeaderMismatch)


def test_transaction_the_engine_rejects_fails_execution(chain: Chain) -> None:
    block = chain.build()
    gap = sign(KEYS[0], to=ADDRS[1], value=1, nonce=5, gasPrice=2 * 10**9)
    raws = (gap.raw,)
    bad = Block(
        sign_header(
            msgspec.structs.replace(block.header, transactions_root=ordered_trie_root(raws)),
            AUTHORITY,
            0,
        ),
        raws,
    )
    error = _fails(chain, bad, S.EXECUTING, "nonce too high")
    assert type(error.__cause__).__name__ == "TransactionRejected"


# --- storage faults: retried; the store refusing the block: not -----------------------------


@pytest.mark.parametrize(
    ("after_write", "retries", "writes"),
    # Faults before the batch: each retry writes again. A fault after the batch landed: the
    # retry finds the block already the head and does not write it twice.
    [(False, 2, 3), (True, 1, 1)],
)
def test_storage_fault_is_retried_then_completes(
    tmp_path: Path, after_write: bool, retries: int, writes: int
) -> None:
    chain = _open_chain(tmp_path / "db")
    try:
        _transfers(chain)
        block = chain.build()
        chain.store.failures, chain.store.after_write = 2, after_write
        workflow = chain.workflow()
        imported = run(workflow.run(block))
        assert workflow.state is S.COMPLETED and workflow.retries == retries
        storing = [detail for state, detail in workflow.history if state is S.STORING][1:]
        error = "IO error: No space left on device"
        assert storing == [f"retry {n}/3: {error}" for n in range(1, retries + 1)]
        assert [s for s, _ in workflow.history] == [*HAPPY[:4], *[S.STORING] * retries, *HAPPY[4:]]
        assert chain.store.calls == writes
        assert chain.store.head() == (1, block.hash)
        assert chain.published == [imported]
    finally:
        chain.store.close()


def test_persistent_storage_fault_fails_with_retries_counted(tmp_path: Path) -> None:
    chain = _open_chain(tmp_path / "db")
    try:
        _transfers(chain)
        block = chain.build()
        chain.store.failures = 100
        workflow = chain.workflow(max_retries=2)
        with pytest.raises(BlockImportError, match="Storing failed after 2 retries") as info:
            run(workflow.run(block))
        assert info.value.step is S.STORING and info.value.retries == 2
        assert isinstance(info.value.__cause__, OSError)
        assert chain.store.calls == 3
        _assert_untouched(chain, workflow)
        # The engine never committed, so the same block imports once the disk recovers.
        chain.store.failures = 0
        chain.run(block)
        assert chain.store.head() == (1, block.hash)
    finally:
        chain.store.close()


def test_store_refusing_the_block_is_not_retried(chain: Chain) -> None:
    block = chain.build()

    def refuse(*args: object) -> None:
        raise StorageError("block 1 does not extend the head")

    chain.store.write_block = refuse  # type: ignore[method-assign]
    error = _fails(chain, block, S.STORING, "does not extend the head")
    assert isinstance(error.__cause__, StorageError)


# --- blocks built here: handed in with their execution and their known transactions ---------


def test_a_built_block_with_its_execution_is_not_executed_again(chain: Chain) -> None:
    for n in range(1, 3):
        _transfers(chain)
        block, execution = chain.build_with_execution()
        assert chain.client.executed == n  # the builder's execution
        known = {tx.raw: tx for tx in execution.transactions}
        workflow = chain.workflow()
        imported = run(workflow.run(block, execution=execution, known=known))
        assert chain.client.executed == n and chain.client.committed == n
        assert [state for state, _ in workflow.history] == HAPPY
        assert workflow.history[3] == (
            S.STORING, f"state root 0x{block.header.state_root.hex()} (built)"
        )
        assert imported.execution is execution and chain.published[-1] is imported
        chain.advance(imported)
        assert chain.store.head() == (n, block.hash)
        assert chain.store.receipts(block.hash) == execution.receipts
        assert chain.engine.state_root == block.header.state_root
        assert len(chain.pool) == 0
    assert chain.engine.account(ADDRS[0]).nonce == 2


def _other_signature(block: Block) -> Block:
    other = sign_header(block.header, OUTSIDER, 0)
    return Block(msgspec.structs.replace(block.header, signature=other.signature))


@pytest.mark.parametrize(
    ("tamper", "match"),
    [
        (lambda b: _resign(b, base_fee_per_gas=10**9), "wrong base fee"),
        (lambda b: _resign(b, timestamp=b.header.timestamp + 1), "timestamp not the slot's"),
        (lambda b: Block(b.header, b.transactions[:1]), "transactions root mismatch"),
        (_other_signature, "approvals do not verify"),
    ],
)
def test_a_tampered_built_block_still_fails_validation(chain: Chain, tamper, match: str) -> None:
    _transfers(chain, 2)
    block, execution = chain.build_with_execution()
    known = {tx.raw: tx for tx in execution.transactions}
    _fails(chain, tamper(block), S.VALIDATING, match, execution=execution, known=known)
    assert chain.client.executed == 1 and chain.client.committed == 0


@pytest.mark.parametrize(
    ("changes", "match", "executed"),
    [
        # Same state root, other results: checked against the builder's execution.
        ({"gas_used": 42_000}, "gas used mismatch: computed 21000, header 42000", 1),
        ({"receipts_root": b"\x33" * 32}, "receipts root mismatch", 1),
        ({"logs_bloom": b"\x01" * 256}, "logs bloom mismatch", 1),
        # Not the builder's state root: executed like anyone's block.
        ({"state_root": b"\x22" * 32}, "state root mismatch", 2),
    ],
)
def test_a_built_block_must_still_match_its_execution(
    chain: Chain, changes: dict, match: str, executed: int
) -> None:
    _transfers(chain, 1)
    block, execution = chain.build_with_execution()
    error = _fails(chain, _resign(block, **changes), S.EXECUTING, match, execution=execution)
    assert isinstance(error, HeaderMismatch)
    assert chain.client.executed == executed and chain.client.committed == 0


def test_an_execution_for_another_block_is_not_reused(chain: Chain) -> None:
    """Moved to a later slot the block has another environment (timestamp): executed again."""
    _transfers(chain, 1)
    block, execution = chain.build_with_execution()
    later = _resign(block, slot=3, timestamp=slot_timestamp(3, chain.spec.slot_ms))
    workflow = chain.workflow()
    imported = run(workflow.run(later, execution=execution))
    assert chain.client.executed == 2 and imported.execution is not execution
    assert not workflow.history[3][1].endswith("(built)")
    assert chain.store.head() == (1, later.hash)


def test_known_transactions_give_the_same_import(tmp_path: Path) -> None:
    a, b = _open_chain(tmp_path / "a"), _open_chain(tmp_path / "b")
    try:
        for c in (a, b):
            _transfers(c)
        block, execution = a.build_with_execution()
        assert b.build() == block  # building is deterministic
        known = {tx.raw: tx for tx in execution.transactions}
        with_known, without = a.workflow(), b.workflow()
        ia = run(with_known.run(block, known=known))
        ib = run(without.run(block))
        assert a.client.executed == b.client.executed == 2  # known only spares the recovery
        reused = zip(ia.execution.transactions, execution.transactions, strict=True)
        assert all(x is y for x, y in reused)
        assert ia.execution.transactions == ib.execution.transactions
        assert (ia.block, ia.execution.state_root, ia.execution.receipts) == (
            ib.block, ib.execution.state_root, ib.execution.receipts
        )
        assert with_known.history == without.history
        assert a.store.head() == b.store.head() == (1, block.hash)
    finally:
        a.store.close()
        b.store.close()


@pytest.mark.parametrize("with_known", [False, True])
def test_known_transactions_are_still_checked_against_the_base_fee(
    chain: Chain, with_known: bool
) -> None:
    block = chain.build()
    base_fee = block.header.base_fee_per_gas
    cheap = sign(KEYS[0], to=ADDRS[1], value=1, nonce=0, gasPrice=base_fee - 1)
    raws = (cheap.raw,)
    bad = _resign(Block(block.header, raws), transactions_root=ordered_trie_root(raws))
    known = {cheap.raw: cheap} if with_known else None
    _fails(chain, bad, S.VALIDATING, "fee cap below base fee", known=known)


def test_sub_second_slots_may_share_a_timestamp(tmp_path: Path) -> None:
    chain = _open_chain(tmp_path / "db", dev_spec(slot_ms=250))
    try:
        timestamps = []
        for slot in range(1, 6):
            _transfers(chain, 1)
            block, execution = chain.build_with_execution(slot)
            chain.advance(chain.run(block, execution=execution))
            timestamps.append(block.header.timestamp)
        assert timestamps == [0, 0, 0, 1, 1]  # slot * 250 ms, in whole seconds
        assert chain.store.head() == (5, chain.head.hash)
        assert chain.engine.account(ADDRS[0]).nonce == 5
    finally:
        chain.store.close()


def test_contract_blocks_built_here_import_elsewhere_with_the_same_state(tmp_path: Path) -> None:
    """A block creating a token and one calling it (a transfer and a revert): a second node
    that executes them itself reaches the same roots, receipts (logs, the created address,
    the revert data) and stored contract storage and code."""
    a, b = _open_chain(tmp_path / "a"), _open_chain(tmp_path / "b")
    try:
        deploy = sign(KEYS[0], to=None, gas=2_000_000, gasPrice=2 * 10**9,
                      data=creation_code("Token", ["uint256"], [10**24]))
        a.pool.add(deploy)
        block, execution = a.build_with_execution()
        token = execution.receipts[0].contract_address
        assert token is not None and len(execution.receipts[0].logs) == 1
        a.advance(a.run(block, execution=execution))
        b.advance(b.run(block))
        move = calldata("Token", "transfer(address,uint256)", hex_address(ADDRS[1]), 5)
        a.pool.add(sign(KEYS[0], to=token, gas=100_000, nonce=1, gasPrice=2 * 10**9, data=move))
        a.pool.add(sign(KEYS[2], to=token, gas=100_000, gasPrice=2 * 10**9, data=move))  # no tokens
        second, execution = a.build_with_execution()
        assert [r.status for r in execution.receipts] == [1, 0]
        a.advance(a.run(second, execution=execution))
        imported = b.run(second)
        b.advance(imported)
        assert b.client.executed == 2  # b executed both blocks itself
        assert imported.execution.receipts == execution.receipts
        assert imported.execution.changes == execution.changes
        for c in (a, b):
            assert c.store.head() == (2, second.hash)
            assert c.engine.state_root == second.header.state_root
            assert c.store.receipts(second.hash) == execution.receipts
            assert c.store.account(token) == c.engine.account(token)
            assert c.store.code(c.engine.account(token).code_hash) == runtime_code("Token")
            assert dict(c.store.contract_storage(token)) == {
                0: 10**24, mapping_slot(ADDRS[0], 1): 10**24 - 5, mapping_slot(ADDRS[1], 1): 5}
        assert second.header.logs_bloom != bytes(256)
    finally:
        a.store.close()
        b.store.close()
