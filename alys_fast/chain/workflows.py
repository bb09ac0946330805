"""Block building and block import as plain state machines (no actors, no I/O scheduling).

One import path serves every block: the ones this node authors (:func:`build_block`), peers'
blocks and synced blocks all go through :class:`BlockImportWorkflow`, so an authored block is
checked exactly as a stranger's would be before it becomes the head.

Import states, one sentence each (the seed's names):

- ``WAITING_FOR_BLOCK``: created with its parent and collaborators; :meth:`~BlockImportWorkflow.
  receive` hands it the one block it imports.
- ``VALIDATING``: stateless checks against the parent header (:func:`validate_block`: link, slot,
  the approvals — the slot's Aura author among them, at least ``(2n + 2) // 3``, one fast
  aggregate BLS verify — transactions root, every transaction) plus the header rules that
  need the spec (fee recipient, gas limit, EIP-1559 base fee) and, given the chain's
  :class:`Finality`, the AuxPoW rules (a proof's range and work, or the no-PoW limit:
  ``MissingRequiredPow``).
- ``EXECUTING``: the engine executes the transactions on the parent's state without moving its
  head (a block built here, handed in with its execution, is not executed twice); state root,
  gas used, receipts root and logs bloom must equal the header's.
- ``STORING``: one atomic :meth:`ChainStore.write_block` (block, receipts, tx index, state
  changes, head, and the finality a proof in the block moves). Idempotent: a store whose head
  already is this block counts as written.
- ``FINALIZING``: the engine commits the executed state; only then is the new head published.
- ``COMPLETED``: the block is durable, the engine's head, and published (terminal).
- ``FAILED``: ``error`` names the step and the reason (terminal).

The engine and the store are reached through async interfaces (:class:`ExecutionClient`,
:class:`BlockStore`): in the node they are other actors, asked by message, so every step is a
coroutine; the transitions themselves stay plain and synchronous.

Failure policy (:func:`is_transient`, the only place it is decided): a storage fault (the
database raising anything but :class:`StorageError`) is transient and its step is retried, up
to ``max_retries`` times in all; anything else (an invalid block, a mismatch with the header, a
store refusing the block as out of order, an engine without the parent's state) fails at once,
because retrying the same block cannot change the answer. Retries happen on the caller's next
:meth:`~BlockImportWorkflow.step`, so an actor can put a backoff between them; :meth:`run`
retries immediately.

Ordering: store before commit before publish. A crash after the store write and before the
commit loses nothing: the engine's state is rebuilt from the store (``load_state``) on restart.
"""

from __future__ import annotations

import asyncio
import enum
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any, Protocol

import msgspec

from alys_fast.chain.aura import slot_author_index, slot_timestamp
from alys_fast.chain.finality import Finality
from alys_fast.chain.spec import ChainSpec
from alys_fast.consensus import SecretKey
from alys_fast.engine import BlockEnv, BlockExecution, StateDiff, next_base_fee
from alys_fast.engine.errors import TransactionRejected
from alys_fast.engine.payload import el_hash_key
from alys_fast.storage import BlockRecord, StorageError
from alys_fast.validation import (
    Block,
    Fork,
    Header,
    InvalidBlock,
    Transaction,
    decode_block,
    ordered_trie_root,
    sign_header,
    validate_block,
)
from alys_fast.validation.blocks import AuxPowHeader
from alys_fast.validation.receipts import Receipt

# The store's meta key of the chain's FinalityState.
FINALITY_KEY = b"finality"

DEFAULT_MAX_RETRIES = 3


class ImportState(enum.Enum):
    """Where a :class:`BlockImportWorkflow` is; see the module docstring for each state."""

    WAITING_FOR_BLOCK = "WaitingForBlock"
    VALIDATING = "Validating"
    EXECUTING = "Executing"
    STORING = "Storing"
    FINALIZING = "Finalizing"
    COMPLETED = "Completed"
    FAILED = "Failed"


_TERMINAL = (ImportState.COMPLETED, ImportState.FAILED)


class ExecutionClient(Protocol):
    """The engine as the chain reaches it (Engine API shaped; see ``engine.interface``)."""

    async def execute_block(
        self,
        parent_state_root: bytes,
        env: BlockEnv,
        txs: Sequence[Transaction],
        *,
        skip_invalid: bool = False,
        header: Header | None = None,
    ) -> BlockExecution:
        """``header``: the block's (building: its results still zero), from which an external
        engine makes the Engine API payload; the embedded engine does not need it."""
        ...

    async def commit(self, execution: BlockExecution, block_hash: bytes) -> None: ...


class BlockStore(Protocol):
    """The block store as the chain reaches it (``storage.ChainStore`` behind an actor)."""

    async def head(self) -> tuple[int, bytes] | None: ...

    async def write_block(
        self,
        block: BlockRecord,
        receipts: Sequence[Receipt],
        diff: StateDiff,
        meta: dict[bytes, bytes] | None = None,
    ) -> None: ...


class BlockImportError(Exception):
    """An import that failed: ``step`` is the state it failed in, ``reason`` why.

    ``__cause__`` is the underlying error (InvalidBlock, TransactionRejected, StorageError…).
    """

    def __init__(self, step: ImportState, reason: str, *, number: int, retries: int) -> None:
        self.step = step
        self.reason = reason
        self.number = number
        self.retries = retries
        suffix = f" after {retries} retries" if retries else ""
        super().__init__(f"block {number}: {step.value} failed{suffix}: {reason}")


class HeaderMismatch(BlockImportError):
    """Executing the block did not give what its header claims (state root, gas used…)."""


@dataclass(frozen=True, slots=True)
class ImportedBlock:
    """A block that completed import: what the head publication carries."""

    block: Block
    execution: BlockExecution

    @property
    def header(self) -> Header:
        return self.block.header


def is_transient(step: ImportState, exc: BaseException) -> bool:
    """Whether retrying ``step`` after ``exc`` could succeed (the whole retry policy).

    Only storage faults are: the database failing to write (I/O, a full disk, a lock) may pass.
    A :class:`StorageError` is the store refusing this block (not extending its head), and every
    other step's failure is a property of the block or of the engine's state: both permanent.
    """
    return step is ImportState.STORING and not isinstance(exc, StorageError)


def child_base_fee(spec: ChainSpec, parent: Header) -> int:
    """The EIP-1559 base fee a child of ``parent`` must carry under ``spec``'s fee rules."""
    return next_base_fee(
        parent.base_fee_per_gas,
        parent.gas_used,
        parent.gas_limit,
        spec.fees.elasticity_multiplier,
        spec.fees.max_change_denominator,
    )


def block_env(spec: ChainSpec, header: Header) -> BlockEnv:
    """What executing the block ``header`` heads sees of it (replays and traces see the same);
    its ``author`` is the fee recipient (checked against the spec's on import)."""
    return BlockEnv(
        number=header.number,
        timestamp=header.timestamp,
        fee_recipient=header.author,
        gas_limit=header.gas_limit,
        base_fee=header.base_fee_per_gas,
    )


Offload = Callable[..., Awaitable[Any]]
"""``await offload(fn, *args)`` runs the pure, CPU-heavy ``fn(*args)`` (validating a block,
hashing its transactions) wherever the caller wants: inline by default, on a worker thread in
the node so the event loop keeps serving."""


async def inline(fn: Callable[..., Any], *args: Any) -> Any:
    """The default :data:`Offload`: call ``fn`` right here."""
    return fn(*args)


class BlockImportWorkflow:
    """Imports one block on top of ``parent``: validate, execute, store, commit, publish.

    Drive it with :meth:`run` (to the end) or :meth:`receive` then :meth:`step` (one
    transition per call, e.g. with a backoff between retries). ``state``, ``history`` (every
    (state, detail) entered, in order), ``retries`` and ``error`` make each transition visible.
    ``on_head`` is called with the :class:`ImportedBlock`, synchronously in the caller of
    ``step``/``run``, after the engine commit and the move to COMPLETED; if it raises, the
    exception propagates to that caller and the block stays imported.
    """

    def __init__(
        self,
        parent: Header,
        *,
        spec: ChainSpec,
        engine: ExecutionClient,
        store: BlockStore,
        on_head: Callable[[ImportedBlock], None] | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        fork: Fork = Fork.CANCUN,
        offload: Offload = inline,
        base_fee: int | None = None,
        parent_state_root: bytes | None = None,
        finality: Finality | None = None,
        min_approvals: int | None = None,
    ) -> None:
        self.parent = parent
        # Approvals the block must carry: the import threshold, unless checking a candidate
        # (0: its approvals are the caller's to check, see validate_block).
        self.min_approvals = min_approvals
        # The chain's finality on ``parent``: None skips the AuxPoW rules (tests of the rest).
        self.finality = finality
        # The state the block executes on: the parent's, unless a dev chain edited it since.
        self.parent_state_root = parent_state_root or parent.state_root
        # The base fee the block must have: EIP-1559's unless a dev chain set it.
        self.base_fee = child_base_fee(spec, parent) if base_fee is None else base_fee
        self.spec = spec
        self.engine = engine
        self.store = store
        self.on_head = on_head
        self.max_retries = max_retries
        self.fork = fork
        self.offload = offload
        self.state = ImportState.WAITING_FOR_BLOCK
        self.history: list[tuple[ImportState, str]] = [(self.state, "")]
        self.retries = 0
        self.error: BlockImportError | None = None
        self.block: Block | None = None
        self.result: ImportedBlock | None = None
        self._txs: tuple[Transaction, ...] = ()
        self._known: Mapping[bytes, Transaction] = {}
        self._local: BlockExecution | None = None
        self._execution: BlockExecution | None = None

    @property
    def done(self) -> bool:
        """Whether the workflow is in a terminal state (COMPLETED or FAILED)."""
        return self.state in _TERMINAL

    def receive(
        self,
        block: Block,
        *,
        execution: BlockExecution | None = None,
        known: Mapping[bytes, Transaction] | None = None,
        checked: tuple[Transaction, ...] | None = None,
    ) -> None:
        """Take the block to import: WAITING_FOR_BLOCK -> VALIDATING.

        A block this node built comes with its ``execution`` (from :func:`build_block`, which
        derived the header from it), so it is not executed twice, and with the ``known``
        transactions it was built from, so their signatures are not recovered twice. Every
        other check still runs, unless the block comes ``checked``: its transactions as
        :meth:`execute` returned them for this block on this parent (a candidate certified
        since, whose approvals the fork choice verified one by one): it goes straight to
        EXECUTING, which reuses ``execution``.
        """
        if self.state is not ImportState.WAITING_FOR_BLOCK:
            raise RuntimeError(f"this workflow already has a block (state {self.state.value})")
        self.block = block
        self._local = execution
        self._known = known or {}
        self._enter(ImportState.VALIDATING, f"block {block.header.number} 0x{block.hash.hex()}")
        if checked is not None:
            self._txs = checked
            self._enter(ImportState.EXECUTING, "checked as a candidate")

    async def step(self) -> ImportState:
        """Run the current step once and return the state it leads to.

        A transient failure leaves the state unchanged (the next call retries it) until the
        retries are spent; any other failure moves to FAILED. Raises BlockImportError on FAILED.
        """
        if self.block is None or self.done:
            raise RuntimeError(f"nothing to step in state {self.state.value}")
        step = self.state
        try:
            if step is ImportState.VALIDATING:
                self._txs = await self.offload(self._validate, self.block)
                self._enter(
                    ImportState.EXECUTING, f"{len(self.block.transactions)} transactions valid"
                )
            elif step is ImportState.EXECUTING:
                await self._execute(self.block)
            elif step is ImportState.STORING:
                await self._store(self.block)
            else:
                await self._finalize(self.block)
        except BlockImportError as exc:
            self._fail(exc)
        except Exception as exc:
            if is_transient(step, exc) and self.retries < self.max_retries:
                self.retries += 1
                self.history.append((step, f"retry {self.retries}/{self.max_retries}: {exc}"))
            else:
                self._fail(self._error(step, exc), cause=exc)
        # Outside the try: a failing subscriber must not turn an imported block into FAILED.
        if self.state is ImportState.COMPLETED and self.on_head is not None:
            assert self.result is not None
            self.on_head(self.result)
        return self.state

    async def run(
        self,
        block: Block,
        *,
        execution: BlockExecution | None = None,
        known: Mapping[bytes, Transaction] | None = None,
        checked: tuple[Transaction, ...] | None = None,
    ) -> ImportedBlock:
        """Import ``block`` to the end; return it as published, or raise BlockImportError."""
        self.receive(block, execution=execution, known=known, checked=checked)
        while not self.done:
            await self.step()
        assert self.result is not None
        return self.result

    async def execute(
        self, block: Block, *, known: Mapping[bytes, Transaction] | None = None
    ) -> tuple[BlockExecution, tuple[Transaction, ...]]:
        """Validate and execute ``block`` without storing or committing it (a candidate the
        federation has not approved yet): its execution and transactions, for a later
        :meth:`run` of the certified block (``execution=``, ``known=``); or BlockImportError."""
        self.receive(block, known=known)
        while self.state is not ImportState.STORING:
            await self.step()
        assert self._execution is not None
        return self._execution, self._txs

    # --- the steps ---------------------------------------------------------------------------

    def _validate(self, block: Block) -> tuple[Transaction, ...]:
        """Every stateless check; pure (it may run on another thread): returns the txs."""
        header = block.header
        txs = validate_block(
            block,
            self.parent,
            authorities=self.spec.authority_keys(),
            chain_id=self.spec.chain_id,
            fork=self.fork,
            known=self._known,
            min_approvals=self.min_approvals,
        )
        # Header rules that need the spec, which validate_block does not take.
        fee_recipient = self.spec.fee_recipient_bytes()
        if header.author != fee_recipient:
            raise InvalidBlock(
                "author not the spec's fee recipient", author=header.author, expected=fee_recipient
            )
        timestamp = slot_timestamp(header.slot, self.spec.slot_ms)
        if header.timestamp != timestamp:
            raise InvalidBlock(
                "timestamp not the slot's", timestamp=header.timestamp, expected=timestamp
            )
        if header.gas_limit != self.spec.gas_limit:
            raise InvalidBlock(
                "gas limit not the spec's", gas_limit=header.gas_limit, expected=self.spec.gas_limit
            )
        base_fee = self.base_fee
        if header.base_fee_per_gas != base_fee:
            raise InvalidBlock(
                "wrong base fee", base_fee=header.base_fee_per_gas, expected=base_fee
            )
        if self.finality is not None:
            self.finality.check_block(header)
        return txs

    async def _execute(self, block: Block) -> None:
        header = block.header
        env = block_env(self.spec, header)
        local = self._local
        if (
            local is not None
            and local.parent_state_root == self.parent_state_root
            and local.state_root == header.state_root
            and local.env == env
            and tuple(tx.raw for tx in local.transactions) == block.transactions
        ):
            # Built here: executing the same transactions in the same environment on the same
            # parent again would give this very execution. Its results are still checked
            # against the header below, like an engine's.
            execution, built = local, " (built)"
        else:
            execution = await self.engine.execute_block(self.parent_state_root, env, self._txs,
                                                         header=header)
            built = ""
        for field, computed, claimed in (
            ("state root", execution.state_root, header.state_root),
            ("gas used", execution.gas_used, header.gas_used),
            ("receipts root", execution.receipts_root, header.receipts_root),
            ("logs bloom", execution.logs_bloom, header.logs_bloom),
        ):
            if computed != claimed:
                raise HeaderMismatch(
                    ImportState.EXECUTING,
                    f"{field} mismatch: computed {_show(computed)}, header {_show(claimed)}",
                    number=header.number,
                    retries=self.retries,
                )
        self._execution = execution
        self._enter(ImportState.STORING, f"state root 0x{execution.state_root.hex()}{built}")

    async def _store(self, block: Block) -> None:
        assert self._execution is not None
        header = block.header
        if await self.store.head() != (header.number, block.hash):
            record = BlockRecord(
                header.number, block.hash, header.parent_hash, header.encode(), block.transactions,
                tuple(tx.sender for tx in self._execution.transactions),
            )
            finality = None if self.finality is None else self.finality.state_after(header)
            meta = {} if finality is None else {FINALITY_KEY: finality.encode()}
            if self._execution.el_block_hash is not None:  # an external engine's hash of it
                meta[el_hash_key(header.number)] = self._execution.el_block_hash
            await self.store.write_block(
                record, self._execution.receipts, self._execution.changes, meta
            )
        self._enter(ImportState.FINALIZING, f"stored as head {header.number}")

    async def _finalize(self, block: Block) -> None:
        assert self._execution is not None
        await self.engine.commit(self._execution, block.hash)
        self.result = ImportedBlock(block, self._execution)
        self._enter(ImportState.COMPLETED, f"head {block.header.number} 0x{block.hash.hex()}")

    # --- bookkeeping ---------------------------------------------------------------------------

    def _enter(self, state: ImportState, detail: str) -> None:
        self.state = state
        self.history.append((state, detail))

    def _error(self, step: ImportState, exc: Exception) -> BlockImportError:
        assert self.block is not None
        reason = f"{type(exc).__name__}: {exc}"
        return BlockImportError(step, reason, number=self.block.header.number, retries=self.retries)

    def _fail(self, error: BlockImportError, cause: Exception | None = None) -> None:
        if cause is not None:
            error.__cause__ = cause
        self.error = error
        self._enter(ImportState.FAILED, str(error))
        raise error


def _show(value: object) -> str:
    return "0x" + value.hex() if isinstance(value, bytes) else str(value)


async def build_block(
    spec: ChainSpec,
    parent: Header,
    candidates: Sequence[Transaction],
    engine: ExecutionClient,
    slot: int,
    authority_key: bytes,
    offload: Offload = inline,
    base_fee: int | None = None,
    parent_state_root: bytes | None = None,
    auxpow: AuxPowHeader | None = None,
) -> tuple[Block, BlockExecution]:
    """Author the block of ``slot`` on ``parent`` from ``candidates`` (the pool's best, in order).

    Candidates the engine cannot apply are left out (``skip_invalid``); the engine's head does
    not move: the block still goes through :class:`BlockImportWorkflow`, like any other (hand it
    the returned execution so it is not executed twice). ``authority_key`` (a 32-byte BLS
    secret) signs it as the slot's Aura author (its approvals hold that signature alone); the
    import rejects it if the key is not that author's. Hashing the transactions and signing
    run through ``offload``.
    ``base_fee`` replaces EIP-1559's (a dev chain's ``anvil_setNextBlockBaseFeePerGas``);
    ``parent_state_root`` the state it builds on if a dev chain edited the parent's
    (``anvil_setBalance``...); ``auxpow`` the queued proof the block carries (signed with the
    rest of the header).
    """
    if base_fee is None:
        base_fee = child_base_fee(spec, parent)
    unsigned = Header(
        parent_hash=parent.hash,
        number=parent.number + 1,
        slot=slot,
        timestamp=slot_timestamp(slot, spec.slot_ms),
        author=spec.fee_recipient_bytes(),
        state_root=bytes(32),
        transactions_root=bytes(32),
        receipts_root=bytes(32),
        logs_bloom=bytes(256),
        gas_limit=spec.gas_limit,
        gas_used=0,
        base_fee_per_gas=base_fee,
        auxpow=auxpow,
    )
    execution = await engine.execute_block(
        parent_state_root or parent.state_root, block_env(spec, unsigned), candidates,
        skip_invalid=True, header=unsigned,
    )
    raws = tuple(tx.raw for tx in execution.transactions)
    header = msgspec.structs.replace(
        unsigned,
        state_root=execution.state_root,
        transactions_root=await offload(ordered_trie_root, raws),
        receipts_root=execution.receipts_root,
        logs_bloom=execution.logs_bloom,
        gas_used=execution.gas_used,
    )
    key = SecretKey.from_bytes(authority_key)
    signed = await offload(sign_header, header, key, slot_author_index(spec, slot))
    return Block(signed, raws), execution


@dataclass(frozen=True, slots=True)
class SegmentReport:
    """What :func:`import_segment` did: ``imported`` blocks went in (from the first), the head
    is ``head``; when it stopped short, ``block_at_fault`` says whether the block was (invalid,
    or its execution disagrees with its header) or the node (storage, engine), and ``reason``."""

    imported: int
    head: Header
    block_at_fault: bool | None = None
    reason: str = ""


def block_at_fault(error: BlockImportError) -> bool:
    """Whether a failed import is the block's fault (it would fail anywhere) or the node's."""
    if error.step is ImportState.VALIDATING or isinstance(error, HeaderMismatch):
        return True
    return isinstance(error.__cause__, InvalidBlock | TransactionRejected)


#: Blocks of a segment whose signatures are being recovered ahead of the one importing.
RECOVERY_LOOKAHEAD = 4


async def import_segment(
    raws: Sequence[bytes],
    head: Header,
    workflow_for: Callable[[Header], BlockImportWorkflow],
    recover: Callable[[Block], Awaitable[dict[bytes, Transaction]]],
    *,
    lookahead: int = RECOVERY_LOOKAHEAD,
) -> SegmentReport:
    """Import encoded consecutive blocks on ``head`` through one workflow each
    (``workflow_for(parent)``), up to the first that fails; blocks at or below the head are
    skipped as imported. The signatures of the next ``lookahead`` blocks are recovered
    (``recover``: in the node's recovery processes) while this one is checked, executed and
    stored, so the import does not wait for them as long as they keep up."""
    decoded: list[Block] = []
    undecodable: str | None = None
    for raw in raws:
        try:
            decoded.append(decode_block(raw))
        except InvalidBlock as exc:
            undecodable = str(exc)
            break
    first = next((i for i, b in enumerate(decoded) if b.header.number > head.number),
                 len(decoded))
    pending = iter(decoded[first:])
    recovering: deque[asyncio.Future[dict[bytes, Transaction]]] = deque(
        asyncio.ensure_future(recover(block)) for block in islice(pending, max(1, lookahead)))
    try:
        for index in range(first, len(decoded)):
            known = await recovering.popleft()
            recovering.extend(asyncio.ensure_future(recover(block))
                              for block in islice(pending, 1))
            try:
                head = (await workflow_for(head).run(decoded[index], known=known)).header
            except BlockImportError as exc:
                return SegmentReport(index, head, block_at_fault(exc), str(exc))
    finally:
        for future in recovering:
            future.cancel()
    if undecodable is not None:
        return SegmentReport(len(decoded), head, True, undecodable)
    return SegmentReport(len(raws), head)
