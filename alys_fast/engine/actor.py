"""The engine actor: the only owner of the node's :class:`RevmEngine` and its head state.

On start it loads every stored account and the recent block hashes from storage, and checks
the account trie's root against the head header's state root, so a restarted engine (or
node) continues exactly where the store is. The chain drives it with :class:`EngineClient`
(the workflow's ``ExecutionClient``); the pool and the RPC read state through it.

RocksDB belongs to the storage actor: the engine's misses (a contract's storage the first
time it is touched, code, an old block hash) are answered by asking it, one batch per pause
of the run. Each piece of a run executes on the actor's worker thread with the GIL released,
so the event loop keeps serving RPC while a block executes; the actor takes no other message
until the block is done, so nothing sees a half-executed block.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from alys_fast.actors import Actor
from alys_fast.engine.errors import EngineError, TransactionRejected
from alys_fast.engine.interface import BlockEnv, BlockExecution, CallRequest, CallResult
from alys_fast.engine.revm import RevmEngine, Steps
from alys_fast.engine.state import Account, Loaded
from alys_fast.node.context import ENGINE, NodeContext
from alys_fast.node.offload import Worker
from alys_fast.storage.actor import StoreClient
from alys_fast.validation import Transaction

# BLOCKHASH reaches this far back (EIP-210's window, as every Ethereum fork since Frontier).
BLOCK_HASH_WINDOW = 256


class Execute(msgspec.Struct, frozen=True):
    """-> BlockExecution of ``txs`` on the parent state (the head does not move)."""

    parent_state_root: bytes
    env: BlockEnv
    txs: Sequence[Transaction]
    skip_invalid: bool = False


class Commit(msgspec.Struct, frozen=True):
    """Make an executed block's state the head; ``block_hash`` becomes BLOCKHASH-visible."""

    execution: BlockExecution
    block_hash: bytes


class GetAccounts(msgspec.Struct, frozen=True):
    """-> the head accounts at these addresses, in order (empty accounts for unknown ones)."""

    addresses: Sequence[bytes]


class GetStateRoot(msgspec.Struct, frozen=True):
    """-> the head state root."""


class Reload(msgspec.Struct, frozen=True):
    """Rebuild the state from storage (the store moved without this engine, e.g. a block was
    stored but its commit never arrived); -> the new state root."""


class Call(msgspec.Struct, frozen=True):
    """-> the CallResult of an eth_call on the head (TransactionRejected if it cannot start)."""

    env: BlockEnv
    request: CallRequest


class GetCode(msgspec.Struct, frozen=True):
    """-> the code of the head account at ``address`` (b"" if none)."""

    address: bytes


class GetStorage(msgspec.Struct, frozen=True):
    """-> the value of a head storage slot."""

    address: bytes
    slot: int


class GetProof(msgspec.Struct, frozen=True):
    """-> the EIP-1186 proof at the head: (account proof, [(slot, value, proof)])."""

    address: bytes
    slots: Sequence[int]


EngineMessage = Execute | Commit | GetAccounts | GetStateRoot | Reload | Call | GetCode
EngineMessage |= GetStorage | GetProof


class StateMismatch(EngineError):
    """The stored state does not hash to the stored head's state root: the store is corrupt."""


async def drive(steps: Steps, worker: Worker, store: StoreClient) -> Any:
    """Run ``steps`` to the end: each piece on ``worker``, each batch of misses from storage."""
    answer: Loaded | None = None
    while True:
        done, value = await worker.run(_advance, steps, answer)
        if done:
            return value
        answer = await store.resolve(value)


def _advance(steps: Steps, answer: Loaded | None) -> tuple[bool, Any]:
    # StopIteration cannot cross a future, so the generator's end travels as a flag.
    try:
        return False, steps.send(answer)  # type: ignore[arg-type]
    except StopIteration as done:
        return True, done.value


class EngineActor(Actor):
    """Executes and commits blocks, answers state reads; see the module docstring."""

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        self.engine: RevmEngine | None = None
        self.store = StoreClient(ctx)
        self.worker = Worker("engine")

    async def started(self) -> None:
        await self._load()

    async def _load(self) -> bytes:
        """Take the head state from storage, checked against the head header."""
        store = self.store
        head = await store.head_header()
        spec = self.ctx.spec
        engine = RevmEngine(fork=spec.fork, chain_id=spec.chain_id)
        accounts = await store.load_state()
        numbers = range(max(0, head.number - BLOCK_HASH_WINDOW), head.number + 1)
        hashes = await store.resolve([("blockhash", n) for n in numbers])
        engine.put(Loaded(accounts=list(accounts.items()), block_hashes=hashes.block_hashes))
        if engine.state_root != head.state_root:
            raise StateMismatch(
                f"stored state hashes to 0x{engine.state_root.hex()} but head {head.number} "
                f"says 0x{head.state_root.hex()}"
            )
        self.engine = engine
        return engine.state_root

    async def receive(self, message: EngineMessage) -> object:
        engine = self.engine
        assert engine is not None
        if type(message) is GetAccounts:
            return [engine.account(address) for address in message.addresses]
        if type(message) is Execute:
            return await self._drive(engine.execute_steps(
                message.parent_state_root, message.env, message.txs,
                skip_invalid=message.skip_invalid,
            ))
        if type(message) is Call:
            # A refusal (funds, intrinsic gas) is the caller's answer, not this actor's crash.
            try:
                return await self._drive(engine.call_steps(message.env, message.request))
            except TransactionRejected as exc:
                return exc
        if type(message) is GetCode:
            return await self._drive(engine.code_steps(message.address))
        if type(message) is GetStorage:
            return await self._drive(engine.storage_steps(message.address, message.slot))
        if type(message) is GetProof:
            return await self._drive(engine.proof_steps(message.address, message.slots))
        if type(message) is Commit:
            engine.commit(message.execution)
            engine.put(Loaded(block_hashes=[(message.execution.env.number, message.block_hash)]))
            return None
        if type(message) is GetStateRoot:
            return engine.state_root
        if type(message) is Reload:
            return await self._load()
        raise TypeError(f"engine: unexpected message {message!r}")

    async def _drive(self, steps: Steps) -> Any:
        return await drive(steps, self.worker, self.store)

    def pre_restart(self, error: BaseException) -> None:
        self.worker.close()

    def stopped(self) -> None:
        self.worker.close()


class EngineClient:
    """Typed asks to the engine actor (the chain workflow's ``ExecutionClient``)."""

    def __init__(self, ctx: NodeContext, timeout: float = 30.0) -> None:
        self.ctx = ctx
        self.timeout = timeout

    async def execute_block(
        self,
        parent_state_root: bytes,
        env: BlockEnv,
        txs: Sequence[Transaction],
        *,
        skip_invalid: bool = False,
    ) -> BlockExecution:
        message = Execute(parent_state_root, env, txs, skip_invalid)
        return await self.ctx.ref(ENGINE).ask(message, self.timeout)

    async def commit(self, execution: BlockExecution, block_hash: bytes) -> None:
        await self.ctx.ref(ENGINE).ask(Commit(execution, block_hash), self.timeout)

    async def accounts(self, addresses: Sequence[bytes]) -> list[Account]:
        return await self.ctx.ref(ENGINE).ask(GetAccounts(addresses), self.timeout)

    async def account(self, address: bytes) -> Account:
        return (await self.accounts((address,)))[0]

    async def state_root(self) -> bytes:
        return await self.ctx.ref(ENGINE).ask(GetStateRoot(), self.timeout)

    async def call(self, env: BlockEnv, request: CallRequest) -> CallResult:
        """The call's result; raises TransactionRejected if it cannot start."""
        result = await self.ctx.ref(ENGINE).ask(Call(env, request), self.timeout)
        if isinstance(result, TransactionRejected):
            raise result
        return result

    async def code(self, address: bytes) -> bytes:
        return await self.ctx.ref(ENGINE).ask(GetCode(address), self.timeout)

    async def storage(self, address: bytes, slot: int) -> int:
        return await self.ctx.ref(ENGINE).ask(GetStorage(address, slot), self.timeout)

    async def proof(self, address: bytes, slots: Sequence[int]) -> tuple[list, list]:
        return await self.ctx.ref(ENGINE).ask(GetProof(address, slots), self.timeout)

    async def reload(self) -> bytes:
        return await self.ctx.ref(ENGINE).ask(Reload(), self.timeout)
