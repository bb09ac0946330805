"""The engine actor: the only owner of the node's :class:`EmbeddedEngine` and its state.

On start it rebuilds the head state from storage and checks it against the head header's state
root, so a restarted engine (or node) continues exactly where the store is. The chain drives it
with :class:`EngineClient` (the workflow's ``ExecutionClient``); the pool and the RPC read
accounts through it.

A full block takes tens of milliseconds to execute; the actor runs it in pieces
(:meth:`EmbeddedEngine.execute_steps`) and lets the event loop answer RPC requests between
them. It takes no other message until the block is done, so nothing sees a half-executed
block.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from alys_fast.actors import Actor
from alys_fast.engine.embedded import EmbeddedEngine
from alys_fast.engine.errors import EngineError
from alys_fast.engine.interface import BlockEnv, BlockExecution
from alys_fast.engine.state import Account, State
from alys_fast.engine.steps import finish_paused
from alys_fast.node.context import ENGINE, NodeContext
from alys_fast.storage.actor import StoreClient
from alys_fast.validation import Transaction


class Execute(msgspec.Struct, frozen=True):
    """-> BlockExecution of ``txs`` on the parent state (the head does not move)."""

    parent_state_root: bytes
    env: BlockEnv
    txs: Sequence[Transaction]
    skip_invalid: bool = False


class Commit(msgspec.Struct, frozen=True):
    """Make an executed block's state the head."""

    execution: BlockExecution


class GetAccounts(msgspec.Struct, frozen=True):
    """-> the head accounts at these addresses, in order (empty accounts for unknown ones)."""

    addresses: Sequence[bytes]


class GetStateRoot(msgspec.Struct, frozen=True):
    """-> the head state root."""


class Reload(msgspec.Struct, frozen=True):
    """Rebuild the state from storage (the store moved without this engine, e.g. a block was
    stored but its commit never arrived); -> the new state root."""


EngineMessage = Execute | Commit | GetAccounts | GetStateRoot | Reload


class StateMismatch(EngineError):
    """The stored state does not hash to the stored head's state root: the store is corrupt."""


class EngineActor(Actor):
    """Executes and commits blocks, answers account reads; see the module docstring."""

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        self.engine: EmbeddedEngine | None = None

    async def started(self) -> None:
        await self._load()

    async def _load(self) -> bytes:
        """Take the head state from storage, checked against the head header."""
        store = StoreClient(self.ctx)
        head = await store.head_header()
        state = State(await store.load_state())
        if state.root != head.state_root:
            raise StateMismatch(
                f"stored state hashes to 0x{state.root.hex()} but head {head.number} says "
                f"0x{head.state_root.hex()}"
            )
        self.engine = EmbeddedEngine(state)
        return state.root

    async def receive(self, message: EngineMessage) -> object:
        engine = self.engine
        assert engine is not None
        if type(message) is GetAccounts:
            get = engine.state.get
            return [get(address) for address in message.addresses]
        if type(message) is Execute:
            return await finish_paused(engine.execute_steps(
                message.parent_state_root, message.env, message.txs,
                skip_invalid=message.skip_invalid,
            ))
        if type(message) is Commit:
            engine.commit(message.execution)
            return None
        if type(message) is GetStateRoot:
            return engine.state_root
        if type(message) is Reload:
            return await self._load()
        raise TypeError(f"engine: unexpected message {message!r}")


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

    async def commit(self, execution: BlockExecution) -> None:
        await self.ctx.ref(ENGINE).ask(Commit(execution), self.timeout)

    async def accounts(self, addresses: Sequence[bytes]) -> list[Account]:
        return await self.ctx.ref(ENGINE).ask(GetAccounts(addresses), self.timeout)

    async def account(self, address: bytes) -> Account:
        return (await self.accounts((address,)))[0]

    async def state_root(self) -> bytes:
        return await self.ctx.ref(ENGINE).ask(GetStateRoot(), self.timeout)

    async def reload(self) -> bytes:
        return await self.ctx.ref(ENGINE).ask(Reload(), self.timeout)
