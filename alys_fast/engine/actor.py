"""The engine actor: the only owner of the node's :class:`RevmEngine` and its head state.

On start it loads every stored account and the recent block hashes from storage, and checks
the account trie's root against the head header's state root, so a restarted engine (or
node) continues exactly where the store is. The chain drives it with :class:`EngineClient`
(the workflow's ``ExecutionClient``); the pool and the RPC read state through it.

RocksDB belongs to the storage actor: the engine's misses (a contract's storage the first
time it is touched, code, an old block hash) are answered by asking it, one batch per pause
of the run. Reads and calls name the block they are at (None: the head); at an older block
they are answered from the store's history, a call on a throwaway view engine
(:meth:`RevmEngine.view`) whose every miss is resolved at that block; a block whose state the
store no longer keeps is answered with its StatePruned error. geth's traces (``debug_trace*``)
are calls, or a block's transactions replayed on the state before it. A call with state overrides
runs on a view too, even at the head: the view holds the overridden accounts and resolves the
rest from storage, so no override ever reaches the head's state. Each piece of a run executes
on the actor's worker thread with the GIL released, so the event loop keeps serving RPC while
a block executes; the actor takes no other message until the block is done, so nothing sees a
half-executed block.

With an external execution client (``EngineSettings.execution``: geth over the Engine API)
the actor drives an :class:`~alys_fast.engine.external.ExternalEngine` instead, behind the
same messages:
:class:`Execute` builds or imports through geth, :class:`Commit` moves geth's head, the head
state root is the stored head's. Engine API failures are the asker's answer, never a crash of
this actor: the adapter's circuit breaker opens, the chain skips its slots, and a timer probes
geth (each probe one :class:`Probe` in this mailbox, so never beside a block) once the breaker's
backoff has passed, bringing it back to the head when it answers. State reads are geth's (the
node's JSON-RPC forwards them), so the read messages are refused; so are a dev chain's state
edits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from alys_fast.actors import Actor, ActorError, Directory, MailboxFull
from alys_fast.actors.worker import Worker
from alys_fast.engine.errors import EngineError, TransactionRejected
from alys_fast.engine.external import ExecutionSettings, ExternalEngine
from alys_fast.engine.interface import (
    BlockEnv,
    BlockExecution,
    CallRequest,
    CallResult,
    StateOverrides,
)
from alys_fast.engine.revm import AccessList, RevmEngine, Steps
from alys_fast.metrics.stats import NodeStats
from alys_fast.paths import ENGINE
from alys_fast.state import EMPTY_CODE_HASH, Account, Loaded, word
from alys_fast.storage.actor import StoreClient
from alys_fast.storage.store import StorageError
from alys_fast.validation import Header, Transaction, decode_header

log = logging.getLogger(__name__)

# BLOCKHASH reaches this far back (EIP-210's window, as every Ethereum fork since Frontier).
BLOCK_HASH_WINDOW = 256
# How often the actor checks whether an external engine needs a probe.
PROBE_INTERVAL = 0.25


class Execute(msgspec.Struct, frozen=True):
    """-> BlockExecution of ``txs`` on the parent state (the head does not move), or the
    EngineError an external engine answered; ``header`` is the block's (building: unsigned,
    its results still zero), which an external engine turns into the payload."""

    parent_state_root: bytes
    env: BlockEnv
    txs: Sequence[Transaction]
    skip_invalid: bool = False
    header: Header | None = None


class Probe(msgspec.Struct, frozen=True):
    """An external engine's breaker allows a call: ask geth, and bring it to the head."""


class Commit(msgspec.Struct, frozen=True):
    """Make an executed block's state the head; ``block_hash`` becomes BLOCKHASH-visible
    (None: a dev chain's state edit, no block)."""

    execution: BlockExecution
    block_hash: bytes | None


class Edit(msgspec.Struct, frozen=True):
    """-> the BlockExecution of a dev chain's state edit of the head (see
    ``RevmEngine.edit_steps``), to commit like a block's."""

    env: BlockEnv
    edits: StateOverrides


class GetAccounts(msgspec.Struct, frozen=True):
    """-> the accounts at these addresses at ``block`` (None: the head), in order (empty
    accounts for unknown ones)."""

    addresses: Sequence[bytes]
    block: int | None = None


class GetStateRoot(msgspec.Struct, frozen=True):
    """-> the head state root."""


class Reload(msgspec.Struct, frozen=True):
    """Rebuild the state from storage (the store moved without this engine, e.g. a block was
    stored but its commit never arrived); -> the new state root."""


class Call(msgspec.Struct, frozen=True):
    """-> the CallResult of an eth_call on the state at ``block`` (None: the head) with
    ``overrides`` applied, in ``env`` (TransactionRejected if it cannot start)."""

    env: BlockEnv
    request: CallRequest
    block: int | None = None
    overrides: StateOverrides | None = None


class CreateAccessList(msgspec.Struct, frozen=True):
    """-> (access list, CallResult with it) of eth_createAccessList, on the state as
    :class:`Call` names it (see :meth:`RevmEngine.access_list_steps`)."""

    env: BlockEnv
    request: CallRequest
    block: int | None = None
    overrides: StateOverrides | None = None


class Trace(msgspec.Struct, frozen=True):
    """-> geth's traces (``debug_trace*``, as ``options`` ask: see ``revm.geth_options``) on the
    state as :class:`Call` names it: of ``request`` run as a call (one trace) or, with no
    request, of ``txs`` from position ``first`` on, run as a block in ``env`` (a list; see
    :meth:`RevmEngine.trace_steps`)."""

    env: BlockEnv
    options: str
    request: CallRequest | None = None
    txs: Sequence[Transaction] = ()
    first: int = 0
    block: int | None = None
    overrides: StateOverrides | None = None


class GetCode(msgspec.Struct, frozen=True):
    """-> the code of the account at ``address`` at ``block`` (b"" if none)."""

    address: bytes
    block: int | None = None


class GetStorage(msgspec.Struct, frozen=True):
    """-> the value of a storage slot at ``block``."""

    address: bytes
    slot: int
    block: int | None = None


class GetProof(msgspec.Struct, frozen=True):
    """-> the EIP-1186 proof (account proof, [(slot, value, proof)]) at ``block``, which
    must be the head (the tries of older blocks are not kept)."""

    address: bytes
    slots: Sequence[int]
    block: int | None = None


EngineMessage = Execute | Commit | GetAccounts | GetStateRoot | Reload | Call | GetCode
EngineMessage |= GetStorage | GetProof | CreateAccessList | Edit | Trace | Probe


_READS = (GetAccounts, Call, GetCode, GetStorage, GetProof, CreateAccessList, Trace)


class StateMismatch(EngineError):
    """The stored state does not hash to the stored head's state root: the store is corrupt."""


async def drive(steps: Steps, worker: Worker, store: StoreClient, at: int | None = None) -> Any:
    """Run ``steps`` to the end: each piece on ``worker``, each batch of misses from storage
    (at block ``at``; None: the head)."""
    answer: Loaded | None = None
    while True:
        done, value = await worker.run(_advance, steps, answer)
        if done:
            return value
        answer = await store.resolve(value, at)


def _advance(steps: Steps, answer: Loaded | None) -> tuple[bool, Any]:
    # StopIteration cannot cross a future, so the generator's end travels as a flag.
    try:
        return False, steps.send(answer)  # type: ignore[arg-type]
    except StopIteration as done:
        return True, done.value


@dataclass(frozen=True)
class EngineSettings:
    """What the engine actor is built with: the chain's EVM rules (``fork``, ``chain_id``) and
    an external execution client (None: the embedded revm engine)."""

    fork: str
    chain_id: int
    execution: ExecutionSettings | None = None


class EngineActor(Actor):
    """Executes and commits blocks, answers state reads; see the module docstring.

    ``stats``: the node's, where an external engine's breaker goes (``"engine"``) and whence
    the chain's finality (``"auxpow"``) is told to geth."""

    def __init__(self, settings: EngineSettings, directory: Directory, stats: NodeStats) -> None:
        self.settings = settings
        self.stats = stats
        self.engine: RevmEngine | None = None
        self.head_number = 0
        self.store = StoreClient(directory)
        self.worker = Worker("engine")
        self.external: ExternalEngine | None = None
        self.prober: asyncio.Task[None] | None = None

    async def started(self) -> None:
        settings = self.settings
        if settings.execution is None:
            await self._load()
            return
        self.external = ExternalEngine(settings.execution, settings.fork, settings.chain_id,
                                       self.store)
        self.stats["engine"] = self.external.stats
        await self._load_external()
        self.prober = asyncio.get_running_loop().create_task(self._probe_when_due())

    async def _load_external(self) -> bytes:
        assert self.external is not None
        genesis = await self.store.block(number=0)
        assert genesis is not None, "the store holds the genesis block"
        return await self.external.load(decode_header(genesis.header),
                                        await self.store.head_header())

    async def _probe_when_due(self) -> None:
        """Tell this actor to probe geth whenever it may not be at our head and the breaker
        lets a call through."""
        external = self.external
        assert external is not None
        while True:
            await asyncio.sleep(PROBE_INTERVAL)
            if not external.stats.synced and external.stats.breaker.retry_in() == 0:
                with contextlib.suppress(MailboxFull, ActorError):
                    self.ref.tell(Probe())

    async def _load(self) -> bytes:
        """Take the head state from storage, checked against the head header."""
        store = self.store
        head = await store.head_header()
        engine = RevmEngine(fork=self.settings.fork, chain_id=self.settings.chain_id)
        accounts = await store.load_state()
        numbers = range(max(0, head.number - BLOCK_HASH_WINDOW), head.number + 1)
        hashes = await store.resolve([("blockhash", n) for n in numbers])
        engine.put(Loaded(accounts=list(accounts.items()), block_hashes=hashes.block_hashes))
        # A dev chain's state edits since the head block are in the stored state too.
        if engine.state_root not in (head.state_root, await store.edited_root()):
            raise StateMismatch(
                f"stored state hashes to 0x{engine.state_root.hex()} but head {head.number} "
                f"says 0x{head.state_root.hex()}"
            )
        self.engine = engine
        self.head_number = head.number
        return engine.state_root

    def _older(self, block: int | None) -> int | None:
        """``block`` if it names a state older than the head (None: the head's)."""
        if block is None or block == self.head_number:
            return None
        if block > self.head_number:
            raise StorageError(f"block {block} is beyond the head ({self.head_number})")
        return block

    async def receive(self, message: EngineMessage) -> object:
        if self.external is not None:
            return await self._external(self.external, message)
        engine = self.engine
        assert engine is not None
        if type(message) in _READS:
            # A read at a block whose state is gone is the caller's answer, not a crash.
            try:
                return await self._read(engine, message)
            except (StorageError, TransactionRejected) as exc:
                return exc
        if type(message) is Execute:
            return await self._drive(engine.execute_steps(
                message.parent_state_root, message.env, message.txs,
                skip_invalid=message.skip_invalid,
            ))
        if type(message) is Commit:
            engine.commit(message.execution)
            if message.block_hash is not None:
                self.head_number = message.execution.env.number
                engine.put(Loaded(block_hashes=[(self.head_number, message.block_hash)]))
            return None
        if type(message) is Edit:
            try:
                return await self._drive(engine.edit_steps(message.env, message.edits))
            except EngineError as exc:  # an edit this engine refuses: the editor's answer
                return exc
        if type(message) is GetStateRoot:
            return engine.state_root
        if type(message) is Reload:
            return await self._load()
        if type(message) is Probe:
            return None
        raise TypeError(f"engine: unexpected message {message!r}")

    async def _external(self, external: ExternalEngine, message: EngineMessage) -> object:
        """A message for the external engine; its EngineErrors are answers, not crashes."""
        kind = type(message)
        try:
            if kind is Execute:
                if message.header is None:
                    raise EngineError("the external engine needs the block's header")
                return await external.execute(message.env, message.txs,
                                              skip_invalid=message.skip_invalid,
                                              header=message.header)
            if kind is Commit:
                if message.block_hash is None:
                    raise EngineError("state edits need the embedded engine")
                finalized = self.stats.get("auxpow", {}).get("finalized", 0)
                await external.commit(message.execution, message.block_hash, finalized)
                return None
            if kind is GetStateRoot:
                return external.head_state_root
            if kind is Reload:
                return await self._load_external()
            if kind is Probe:
                if await external.probe():
                    log.info("geth answers again and is at head %d", external.head_number)
                return None
        except EngineError as exc:
            return exc
        what = ("state edits need the embedded engine" if kind is Edit
                else "state is read from geth: the node's JSON-RPC forwards these methods")
        return EngineError(what)

    async def _read(self, engine: RevmEngine, message: Any) -> object:
        """A state read or call, on the head or (``message.block`` older) from history."""
        older = self._older(message.block)
        kind = type(message)
        if kind is GetProof:
            if older is not None:
                raise StorageError(
                    f"proofs are served for the head ({self.head_number}) only: the tries of "
                    f"older blocks are not kept")
            return await self._drive(engine.proof_steps(message.address, message.slots))
        if kind is Call or kind is CreateAccessList or kind is Trace:
            return await self._call(engine, message, older)
        if older is None:
            if kind is GetAccounts:
                return [engine.account(address) for address in message.addresses]
            if kind is GetCode:
                return await self._drive(engine.code_steps(message.address))
            return await self._drive(engine.storage_steps(message.address, message.slot))
        store = self.store
        if kind is GetAccounts:
            loaded = await store.resolve([("account", a) for a in message.addresses], older)
            return [account or Account() for _, account in loaded.accounts]
        if kind is GetCode:
            (_, account), = (await store.resolve([("account", message.address)], older)).accounts
            if account is None or account.code_hash == EMPTY_CODE_HASH:
                return b""
            return (await store.resolve([("code", account.code_hash)], older)).code[0]
        miss = ("storage", message.address, word(message.slot))
        (_, ((_, value),), _), = (await store.resolve([miss], older)).storage
        return value

    async def _call(self, engine: RevmEngine, message: Call | CreateAccessList | Trace,
                    older: int | None) -> object:
        """A call (or an access list's calls, or a trace) on the head, or on a view: at an
        older block, or with state overrides, applied to the view only."""
        if older is None and not message.overrides:
            return await self._drive(_call_steps(engine, message))
        # A view at the head misses through to the head state, as the head engine does (so a
        # dev chain's state edits since the head block are seen too).
        view = RevmEngine.view(fork=engine.fork, chain_id=engine.chain_id)
        if message.overrides:
            misses = [("account", address) for address in message.overrides]
            view.override((await self.store.resolve(misses, older)).accounts, message.overrides)
        return await drive(_call_steps(view, message), self.worker, self.store, older)

    async def _drive(self, steps: Steps) -> Any:
        return await drive(steps, self.worker, self.store)

    def pre_restart(self, error: BaseException) -> None:
        self._close()

    def stopped(self) -> None:
        self._close()

    def _close(self) -> None:
        self.worker.close()
        if self.prober is not None:
            self.prober.cancel()
            self.prober = None
        if self.external is not None:
            # Its sockets are closed by the loop if it is gone; nothing waits on them.
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().create_task(self.external.close())
            self.external = None


def _call_steps(engine: RevmEngine, message: Call | CreateAccessList | Trace) -> Steps:
    """What ``message`` runs on ``engine`` (the head or a view)."""
    if type(message) is Trace:
        if message.request is None:
            return engine.trace_steps(message.env, message.txs, message.first, message.options)
        return engine.trace_call_steps(message.env, message.request, message.options)
    run = RevmEngine.call_steps if type(message) is Call else RevmEngine.access_list_steps
    return run(engine, message.env, message.request)


class EngineClient:
    """Typed asks to the engine actor (the chain workflow's ``ExecutionClient``)."""

    def __init__(self, directory: Directory, timeout: float = 30.0) -> None:
        self.directory = directory
        self.timeout = timeout

    async def execute_block(
        self,
        parent_state_root: bytes,
        env: BlockEnv,
        txs: Sequence[Transaction],
        *,
        skip_invalid: bool = False,
        header: Header | None = None,
    ) -> BlockExecution:
        """The block's execution (see :class:`Execute`); an EngineError is raised here."""
        message = Execute(parent_state_root, env, txs, skip_invalid, header)
        result = await self.directory.ref(ENGINE).ask(message, self.timeout)
        if isinstance(result, EngineError):
            raise result
        return result

    async def commit(self, execution: BlockExecution, block_hash: bytes | None) -> None:
        result = await self.directory.ref(ENGINE).ask(Commit(execution, block_hash), self.timeout)
        if isinstance(result, EngineError):
            raise result

    async def edit(self, env: BlockEnv, edits: StateOverrides) -> BlockExecution:
        result = await self.directory.ref(ENGINE).ask(Edit(env, edits), self.timeout)
        if isinstance(result, EngineError):
            raise result
        return result

    async def _read(self, message: Any) -> Any:
        """Ask a read; a refusal (StorageError: the block's state is not kept, or
        TransactionRejected: the call cannot start) is raised here."""
        result = await self.directory.ref(ENGINE).ask(message, self.timeout)
        if isinstance(result, (StorageError, EngineError)):
            raise result
        return result

    async def accounts(self, addresses: Sequence[bytes], block: int | None = None
                       ) -> list[Account]:
        return await self._read(GetAccounts(addresses, block))

    async def account(self, address: bytes, block: int | None = None) -> Account:
        return (await self.accounts((address,), block))[0]

    async def state_root(self) -> bytes:
        return await self.directory.ref(ENGINE).ask(GetStateRoot(), self.timeout)

    async def call(self, env: BlockEnv, request: CallRequest, block: int | None = None,
                   overrides: StateOverrides | None = None) -> CallResult:
        """The call's result on the state at ``block`` (None: the head) with ``overrides``."""
        return await self._read(Call(env, request, block, overrides))

    async def create_access_list(
        self, env: BlockEnv, request: CallRequest, block: int | None = None,
        overrides: StateOverrides | None = None,
    ) -> tuple[AccessList, CallResult]:
        """eth_createAccessList's (access list, result of the call with it), as :meth:`call`
        names the state."""
        return await self._read(CreateAccessList(env, request, block, overrides))

    async def trace_block(self, env: BlockEnv, txs: Sequence[Transaction], first: int,
                          options: str, block: int | None,
                          overrides: StateOverrides | None = None) -> list[Any]:
        """geth's traces of ``txs[first:]``, replayed as a block in ``env`` on the state at
        ``block`` (the parent's, with ``overrides``: the dev edits made before this block),
        the ones before ``first`` untraced (see :class:`Trace`)."""
        return await self._read(Trace(env, options, txs=txs, first=first, block=block,
                                      overrides=overrides))

    async def trace_call(self, env: BlockEnv, request: CallRequest, options: str,
                         block: int | None = None, overrides: StateOverrides | None = None
                         ) -> Any:
        """geth's trace of a call, on the state as :meth:`call` names it."""
        return await self._read(Trace(env, options, request, block=block, overrides=overrides))

    async def code(self, address: bytes, block: int | None = None) -> bytes:
        return await self._read(GetCode(address, block))

    async def storage(self, address: bytes, slot: int, block: int | None = None) -> int:
        return await self._read(GetStorage(address, slot, block))

    async def proof(self, address: bytes, slots: Sequence[int], block: int | None = None
                    ) -> tuple[list, list]:
        return await self._read(GetProof(address, slots, block))

    async def reload(self) -> bytes:
        result = await self.directory.ref(ENGINE).ask(Reload(), self.timeout)
        if isinstance(result, EngineError):
            raise result
        return result
