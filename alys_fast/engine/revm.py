"""The execution engine: revm (``cext/evm``, compiled Rust) behind the node's engine seam.

A block runs whole in Rust with the GIL released: the transactions (recovered and checked by
the validation core) go in, receipts, logs and the state diff come out, and the new
Ethereum state root is computed on copies of the tries, installed only by :meth:`commit`.

Data the compiled head does not hold is a *miss* (see ``alys_fast.state``): the run pauses,
names every miss it found, and :meth:`RevmEngine.execute_steps` yields them; whoever drives
the steps loads them in one batch and sends back a :class:`Loaded`. In the node the storage
actor, the only owner of the RocksDB database, answers (``engine.actor``); a standalone
engine (:meth:`RevmEngine.from_alloc`: tests, the state-test runner, benchmarks) holds all
of its state and only asks for block hashes.

Calls with state overrides run on a view (:meth:`RevmEngine.view`) that holds the overridden
accounts (:meth:`RevmEngine.override`) and misses everything else, so the head never holds
an overridden value. A call can be traced by a tracer of the compiled engine (revm's
inspector hook, ``cext/evm/src/trace.rs``): :meth:`RevmEngine.access_list_steps`, and geth's
``debug_trace*`` tracers (:meth:`RevmEngine.trace_steps`, :meth:`RevmEngine.trace_call_steps`),
which replay a block's transactions up to the traced ones; a trace comes out of the crate as
geth's JSON, parsed here.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from itertools import starmap
from typing import Any, Protocol

import msgspec

from alys_fast._cext import require
from alys_fast.engine.errors import EngineError, TransactionRejected, UnknownParentState
from alys_fast.engine.interface import (
    AllocAccount,
    BlockEnv,
    BlockExecution,
    CallRequest,
    CallResult,
    StateOverrides,
)
from alys_fast.state import (
    EMPTY_CODE_HASH,
    Account,
    Loaded,
    Miss,
    StateDiff,
    StorageDiff,
    account_from_record,
    keccak256,
    storage_root,
    word,
)
from alys_fast.validation import Transaction
from alys_fast.validation.receipts import Log, Receipt

_evm = require("evm")

FORKS = ("shanghai", "cancun", "prague")
DEFAULT_FORK = "cancun"
# eth_createAccessList reruns a call with what it touched until that settles (twice, as a
# rule); a call whose touches keep moving with its access list is cut off here.
ACCESS_LIST_RUNS = 16

AccessList = tuple[tuple[bytes, tuple[bytes, ...]], ...]

Steps = Generator[list[Miss], Loaded, Any]
"""A computation that yields the misses it needs and takes the :class:`Loaded` answer."""


class StateSource(Protocol):
    """Answers an engine's misses synchronously (the node's actor answers asynchronously)."""

    def load(self, misses: Sequence[Miss]) -> Loaded: ...


class BlockHashes:
    """A :class:`StateSource` for an engine that holds all its state: block hashes only."""

    def __init__(self, block_hash: Callable[[int], bytes]) -> None:
        self.block_hash = block_hash

    def load(self, misses: Sequence[Miss]) -> Loaded:
        loaded = Loaded()
        for miss in misses:
            if miss[0] != "blockhash":
                raise EngineError(f"a standalone engine holds all its state, yet missed {miss!r}")
            loaded.block_hashes.append((miss[1], self.block_hash(miss[1])))
        return loaded


def _no_block_hashes(number: int) -> bytes:
    raise EngineError(f"block hash {number} is unknown to this engine")


def finish(steps: Steps, source: StateSource) -> Any:
    """Drive ``steps`` to the end, answering its misses from ``source``."""
    answer: Loaded | None = None
    while True:
        try:
            misses = steps.send(answer)  # type: ignore[arg-type]
        except StopIteration as done:
            return done.value
        answer = source.load(misses)


def check_fork(fork: str) -> str:
    """``fork`` if the engine runs it, else a ValueError naming the ones it does."""
    if fork not in FORKS:
        raise ValueError(f"unknown fork {fork!r}: the engine runs {', '.join(FORKS)}")
    return fork


class _Call(msgspec.Struct, frozen=True):
    """An ``eth_call`` request in a transaction's shape: the attributes the compiled engine
    reads from a transaction (``cext/evm``'s ``tx_env``)."""

    type: int
    sender: bytes
    to: bytes | None
    value: int
    data: bytes
    gas_limit: int
    gas_price: int
    max_fee_per_gas: int
    max_priority_fee_per_gas: int | None
    nonce: int
    chain_id: int
    access_list: tuple[tuple[bytes, tuple[bytes, ...]], ...]


def env_tuple(env: BlockEnv) -> tuple:
    return (
        env.number, env.timestamp, env.fee_recipient, env.gas_limit, env.base_fee,
        env.prev_randao, env.excess_blob_gas,
    )


def geth_options(options: Any) -> str:
    """geth's tracing options of ``debug_trace*`` (its JSON object; None: the defaults) as
    :meth:`RevmEngine.trace_steps` takes them; ValueError saying why if they are refused (an
    ill-formed option, a tracer not offered)."""
    text = msgspec.json.encode({} if options is None else options).decode()
    _evm.check_geth_options(text)
    return text


def _split_reason(text: str) -> tuple[str, str]:
    reason, _, detail = text.partition(": ")
    return reason, detail


class RevmEngine:
    """An :class:`~alys_fast.engine.interface.ExecutionEngine` over the compiled revm engine.

    It holds the head state only: it executes on that state root and refuses any other parent.
    ``source`` answers misses when :meth:`execute_block` drives the steps itself.
    """

    def __init__(
        self,
        *,
        fork: str = DEFAULT_FORK,
        chain_id: int,
        source: StateSource | None = None,
        complete: bool = True,
    ) -> None:
        self.fork = check_fork(fork)
        self.chain_id = chain_id
        self.source = source or BlockHashes(_no_block_hashes)
        self.complete = complete
        self._evm = _evm.Engine(fork, chain_id, complete)

    @classmethod
    def view(cls, *, fork: str = DEFAULT_FORK, chain_id: int) -> RevmEngine:
        """An engine over an older block's state that holds nothing and misses every account
        and slot it touches (one at a time: a view reads little, and is thrown away)."""
        return cls(fork=fork, chain_id=chain_id, complete=False)

    @classmethod
    def from_alloc(
        cls,
        alloc: Mapping[bytes, AllocAccount],
        *,
        fork: str = DEFAULT_FORK,
        chain_id: int,
        block_hash: Callable[[int], bytes] | None = None,
    ) -> RevmEngine:
        """A standalone engine holding exactly ``alloc`` (a genesis, a state test's ``pre``)."""
        engine = cls(fork=fork, chain_id=chain_id,
                     source=BlockHashes(block_hash or _no_block_hashes))
        engine.put(Loaded(*alloc_contents(alloc)))
        return engine

    @property
    def state_root(self) -> bytes:
        return self._evm.state_root

    def put(self, loaded: Loaded) -> None:
        """Hand the compiled head what was loaded for its misses (or at start)."""
        evm = self._evm
        if loaded.code:
            evm.put_code(loaded.code)
        present = [(a, acct) for a, acct in loaded.accounts if acct is not None]
        if len(present) < len(loaded.accounts):
            evm.put_absent([a for a, acct in loaded.accounts if acct is None])
        if present:
            evm.put_accounts([
                (a, acct.nonce, word(acct.balance), acct.code_hash, acct.storage_root)
                for a, acct in present
            ])
        for address, slots, complete in loaded.storage:
            evm.put_storage(address, [(word(k), word(v)) for k, v in slots], complete)
        if loaded.block_hashes:
            evm.put_block_hashes(loaded.block_hashes)

    def account(self, address: bytes) -> Account:
        """The head account at ``address`` (the empty account if there is none)."""
        record = self._evm.account(address)
        return Account() if record is None else account_from_record(record)

    def code_steps(self, address: bytes) -> Steps:
        """Steps to the code of the head account at ``address`` (b"" for none)."""
        code_hash = self.account(address).code_hash
        while (code := self._evm.code(code_hash)) is None:
            self.put((yield [("code", code_hash)]))
        return code

    def storage_steps(self, address: bytes, slot: int) -> Steps:
        """Steps to the value of a head storage slot."""
        while type(value := self._evm.storage(address, word(slot))) is not bytes:
            self.put((yield value))
        return int.from_bytes(value, "big")

    def proof_steps(self, address: bytes, slots: Sequence[int]) -> Steps:
        """Steps to the EIP-1186 proof at the head: (account proof, [(slot, value, proof)])."""
        words = [word(s) for s in slots]
        while type(proof := self._evm.proof(address, words)) is not tuple:
            self.put((yield proof))
        account_proof, storage = proof
        return account_proof, [
            (int.from_bytes(s, "big"), int.from_bytes(v, "big"), nodes) for s, v, nodes in storage
        ]

    def override(
        self, base: Sequence[tuple[bytes, Account | None]], overrides: StateOverrides
    ) -> None:
        """Hold the overridden accounts: ``overrides`` applied to the accounts' ``base`` state
        (at the call's block; None: absent). A view only: the head is never overridden."""
        if self.complete:
            raise EngineError("state overrides go on a view, never on the head")
        loaded = Loaded()
        for address, account in base:
            change = overrides[address]
            account = account or Account()
            code_hash, root = account.code_hash, account.storage_root
            if change.code is not None:
                code_hash = keccak256(change.code)
                loaded.code.append(change.code)
            if change.state is not None:
                slots = {k: v for k, v in change.state.items() if v}
                root = storage_root(slots)
                loaded.storage.append((address, sorted(slots.items()), True))
            elif change.state_diff:
                loaded.storage.append((address, list(change.state_diff.items()), False))
            loaded.accounts.append((address, Account(
                account.nonce if change.nonce is None else change.nonce,
                account.balance if change.balance is None else change.balance,
                code_hash, root,
            )))
        self.put(loaded)

    def call_steps(self, env: BlockEnv, request: CallRequest) -> Steps:
        """Steps to a :class:`CallResult` of ``request`` on this engine's state, as geth's
        eth_call runs it (nothing is committed). TransactionRejected if it cannot start (e.g.
        funds)."""
        return _call_result((yield from self._call_steps(env, request)))

    def access_list_steps(self, env: BlockEnv, request: CallRequest) -> Steps:
        """Steps to geth's eth_createAccessList answer: (access list, :class:`CallResult` of the
        call with it). The call reruns with the list it touched (its own list included) until
        that is what it touches; see ``cext/evm/src/trace.rs`` for what counts."""
        access_list = request.access_list
        for _ in range(ACCESS_LIST_RUNS):
            run = yield from self._call_steps(
                env, msgspec.structs.replace(request, access_list=access_list), "accessList")
            ((_, found),) = run.access_lists()
            touched = tuple((a, tuple(keys)) for a, keys in found)
            if touched == access_list:
                return touched, _call_result(run)
            access_list = touched
        raise EngineError(f"the access list did not settle in {ACCESS_LIST_RUNS} runs")

    def _call_steps(self, env: BlockEnv, request: CallRequest, tracer: str | None = None,
                    options: str = "{}") -> Steps:
        """Steps to the finished run of ``request`` as an eth_call, watched by ``tracer`` (with
        ``options``, a geth tracer's)."""
        fee = request.gas_price or 0
        tip = request.max_priority_fee_per_gas
        call = _Call(
            2 if tip is not None else 1 if request.access_list else 0, request.sender,
            request.to, request.value, request.data, request.gas, fee, fee, tip, 0,
            self.chain_id, request.access_list,
        )
        evm = self._evm
        mode = 2 if request.gas_price is None else 1
        run = evm.begin(env_tuple(env), [call], False, mode, tracer, options)
        yield from self._run(run, in_block=False)
        return run

    def trace_call_steps(self, env: BlockEnv, request: CallRequest, options: str) -> Steps:
        """Steps to geth's trace (``debug_traceCall``) of ``request`` run as :meth:`call_steps`
        runs it; ``options`` are geth's tracing options (:func:`geth_options`)."""
        run = yield from self._call_steps(env, request, "geth", options)
        ((_, trace),) = run.geth_traces()
        return msgspec.json.decode(trace)

    def trace_steps(self, env: BlockEnv, txs: Sequence[Transaction], first: int, options: str
                    ) -> Steps:
        """Steps to geth's traces (``debug_traceTransaction``, ``debug_traceBlock*``) of
        ``txs[first:]``, one per transaction: ``txs`` run as a block in ``env`` on this
        engine's state, the ones before ``first`` untraced. ``options`` are geth's tracing
        options (:func:`geth_options`); nothing is committed."""
        evm = self._evm
        run = evm.begin(env_tuple(env), txs, False, 0, "geth", options, first)
        yield from self._run(run, in_block=True)
        return [msgspec.json.decode(trace) for _, trace in run.geth_traces()]

    def _run(self, run: Any, *, in_block: bool) -> Steps:
        """Steps to the end of ``run``'s transactions: its misses loaded, one it cannot apply
        raised as TransactionRejected (with its position ``in_block``)."""
        evm = self._evm
        while (stop := evm.execute(run)) is not None:
            if type(stop) is tuple:
                reason, detail = _split_reason(stop[1])
                raise TransactionRejected(reason, detail, stop[0] if in_block else None)
            self.put((yield stop))

    def execute_block(
        self,
        parent_state_root: bytes,
        env: BlockEnv,
        txs: Sequence[Transaction],
        *,
        skip_invalid: bool = False,
    ) -> BlockExecution:
        return finish(
            self.execute_steps(parent_state_root, env, txs, skip_invalid=skip_invalid),
            self.source,
        )

    def execute_steps(
        self,
        parent_state_root: bytes,
        env: BlockEnv,
        txs: Sequence[Transaction],
        *,
        skip_invalid: bool = False,
    ) -> Steps:
        """:meth:`execute_block` as steps: yields misses, takes what was loaded for them.

        Importing (``skip_invalid=False``), a transaction that cannot apply raises
        TransactionRejected with its index; building, it is skipped with geth's reason. A
        transaction with a field wider than the EVM's ("field out of range") is such a one.
        """
        if parent_state_root != self.state_root:
            raise UnknownParentState(
                f"parent state root {parent_state_root.hex()} is not the engine's head "
                f"{self.state_root.hex()}"
            )
        evm = self._evm
        run = evm.begin(env_tuple(env), txs, skip_invalid)
        yield from self._run(run, in_block=True)
        while type(root := evm.prepare(run)) is not bytes:
            self.put((yield root))
        return self._execution(parent_state_root, env, txs, run, root)

    def edit_steps(self, env: BlockEnv, edits: StateOverrides) -> Steps:
        """Steps to the :class:`BlockExecution` of a dev chain's state edit of the head
        (``anvil_setBalance``, ``anvil_setCode``, ``anvil_setNonce``, ``anvil_setStorageAt``:
        balance, nonce, code and single slots): a run without transactions whose overlay holds
        the edited accounts, so its root and diff come out as a block's; commit it as one."""
        accounts: list[tuple[bytes, int, bytes, bytes]] = []
        slots: list[tuple[bytes, bytes, bytes]] = []
        code: list[bytes] = []
        for address, change in edits.items():
            if change.state is not None:
                raise EngineError("a state edit sets single slots, not a whole storage")
            account = self.account(address)
            code_hash = account.code_hash
            if change.code is not None:
                code_hash = keccak256(change.code)
                code.append(change.code)
            accounts.append((
                address,
                account.nonce if change.nonce is None else change.nonce,
                word(account.balance if change.balance is None else change.balance),
                code_hash,
            ))
            slots += [(address, word(k), word(v)) for k, v in (change.state_diff or {}).items()]
        evm = self._evm
        parent_state_root = self.state_root
        run = evm.begin(env_tuple(env), [], False)
        run.edit(accounts, slots, code)
        yield from self._run(run, in_block=True)
        while type(root := evm.prepare(run)) is not bytes:
            self.put((yield root))
        return self._execution(parent_state_root, env, [], run, root)

    def _execution(
        self,
        parent_state_root: bytes,
        env: BlockEnv,
        txs: Sequence[Transaction],
        run: Any,
        root: bytes,
    ) -> BlockExecution:
        gas_used, outcomes, skipped, root_of_receipts, block_bloom = run.result(Log)
        positions, statuses, used, cumulative, prices, logs, created, outputs, _, blooms = outcomes
        included = [txs[p] for p in positions]
        receipts = tuple(map(
            Receipt, [tx.hash for tx in included], [tx.type for tx in included], statuses, used,
            cumulative, prices, logs, blooms, created, outputs,
        ))
        accounts, previous, storage, code = run.changes(Account)
        diff = StateDiff(
            accounts=accounts,
            storage=tuple(starmap(StorageDiff, storage)),
            code=code,
            previous=previous,
        )
        return BlockExecution(
            parent_state_root=parent_state_root,
            env=env,
            state_root=root,
            gas_used=gas_used,
            burned=gas_used * env.base_fee,
            transactions=tuple(included),
            receipts=receipts,
            receipts_root=root_of_receipts,
            logs_bloom=block_bloom,
            skipped=tuple([(txs[p], reason) for p, reason in skipped]),
            changes=diff,
        )

    def commit(self, execution: BlockExecution) -> None:
        try:
            self._evm.commit(execution.state_root)
        except KeyError:
            raise UnknownParentState(
                f"no executed block on the head state {self.state_root.hex()} leads to "
                f"{execution.state_root.hex()}"
            ) from None


def _call_result(run: Any) -> CallResult:
    """The :class:`CallResult` of a finished one-call run."""
    _, outcome, *_ = run.result(Log)
    _, (status,), (used,), _, _, (logs,), _, (output,), (error,), _ = outcome
    return CallResult(bool(status), used, output, error, logs)


def alloc_contents(
    alloc: Mapping[bytes, AllocAccount],
) -> tuple[list, list, list]:
    """(accounts, storage, code) of a starting state, as :class:`Loaded` takes them; empty
    accounts are left out (EIP-161: they do not exist)."""
    accounts: list[tuple[bytes, Account | None]] = []
    storage: list[tuple[bytes, list[tuple[int, int]], bool]] = []
    code: list[bytes] = []
    for address, spec in alloc.items():
        slots = {k: v for k, v in spec.storage.items() if v}
        account = Account(
            spec.nonce, spec.balance, keccak256(spec.code) if spec.code else EMPTY_CODE_HASH,
            storage_root(slots),
        )
        if account.is_empty() and not slots:
            continue
        accounts.append((address, account))
        if slots:
            storage.append((address, sorted(slots.items()), True))
        if spec.code:
            code.append(spec.code)
    return accounts, storage, code
