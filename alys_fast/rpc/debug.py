"""geth's tracing methods: ``debug_traceTransaction``, ``debug_traceBlockByNumber``,
``debug_traceBlockByHash`` and ``debug_traceCall`` (open on a dev chain; elsewhere the
``debug`` namespace needs credentials, :mod:`alys_fast.rpc.auth`).

The tracers are geth's, built in the compiled engine as reth and anvil build them: the struct
logger (no ``tracer``; ``disableStack``, ``disableStorage``, ``enableMemory``,
``enableReturnData``, ``limit``), ``callTracer`` (``onlyTopCall``, ``withLog``) and
``prestateTracer`` (``diffMode``, ``disableCode``, ``disableStorage``). Tracing a transaction
replays its block on the state of the parent block, in the block's own environment, the
transactions before it untraced; a call is traced as ``eth_call`` runs it at that block (with
geth's ``stateOverrides``). A block whose state the node no longer keeps is refused with its
StatePruned message, so these need an archive node (``alys-fast dev`` is one) for old blocks.
A block mined after dev state edits (``anvil_setBalance``...) replays on its parent's state
with the edits applied as overrides, as the store keeps them apart for it.
"""

from __future__ import annotations

from typing import Any

from alys_fast.chain.workflows import block_env
from alys_fast.engine.interface import AccountOverride, StateOverrides
from alys_fast.engine.revm import geth_options
from alys_fast.rpc.dispatch import InvalidParams, Methods, ServerError, block_id, hash32
from alys_fast.rpc.eth import EthApi
from alys_fast.rpc.formats import hexdata
from alys_fast.storage.store import BlockRecord
from alys_fast.validation import decode_header

# What debug_traceCall's options hold beyond the tracer's, and this node does not take.
_CALL_ONLY_REFUSED = ("blockOverrides", "txIndex")


class DebugApi:
    """The ``debug_trace*`` methods over the eth API's reads; see the module docstring."""

    def __init__(self, eth: EthApi) -> None:
        self.eth = eth

    def register(self, methods: Methods) -> None:
        """Add the tracing methods to ``methods``."""
        methods.add("debug_traceTransaction", self.trace_transaction)
        methods.add("debug_traceBlockByNumber", self.trace_block_by_number)
        methods.add("debug_traceBlockByHash", self.trace_block_by_hash)
        methods.add("debug_traceCall", self.trace_call)

    async def trace_transaction(self, tx_hash: Any, options: Any = None) -> Any:
        wanted = hash32(tx_hash)
        settings = _options(options)
        included = await self.eth._included(wanted)
        if included is None:
            raise ServerError("transaction not found")
        record, index, _ = included
        (trace,) = await self._replay(record, settings, index)
        return trace

    async def trace_block_by_number(self, block: Any, options: Any = None) -> list[Any]:
        settings = _options(options)
        number = await self.eth._resolve_number(block)
        record = None if number is None else await self.eth.store.block(number=number)
        if record is None:
            ident = block_id(block)
            raise ServerError(f"block #{ident} not found" if type(ident) is int
                              else f"block {hexdata(ident)} not found")
        return await self._block(record, settings)

    async def trace_block_by_hash(self, block_hash: Any, options: Any = None) -> list[Any]:
        wanted = hash32(block_hash)
        settings = _options(options)
        record = await self.eth.store.block(hash=wanted)
        if record is None:
            raise ServerError(f"block {hexdata(wanted)} not found")
        return await self._block(record, settings)

    async def trace_call(self, call: Any, block: Any = "latest", options: Any = None) -> Any:
        """geth's debug_traceCall: the call as eth_call runs it at ``block``, traced; its options
        may carry ``stateOverrides`` as eth_call's third argument does."""
        eth = self.eth
        options = _object(options)
        for name in _CALL_ONLY_REFUSED:
            if options.pop(name, None) is not None:
                raise InvalidParams(f"{name} is not supported by this node")
        overrides = options.pop("stateOverrides", None)
        settings = _options(options)
        request, changes, at, env = await eth._prepare_call(call, block, overrides)
        return await eth._read(eth.engine.trace_call(env, request, settings, at, changes))

    async def _block(self, record: BlockRecord, settings: str) -> list[dict[str, Any]]:
        """geth's answer for a whole block: ``{txHash, result}`` per transaction."""
        traces = await self._replay(record, settings)
        hashes = self.eth._hashes(record)
        return [{"txHash": hexdata(h), "result": t} for h, t in zip(hashes, traces, strict=True)]

    async def _replay(self, record: BlockRecord, settings: str, index: int | None = None
                      ) -> list[Any]:
        """The traces of the block's transactions (or of the one at ``index``), the block
        replayed on its parent's state up to the last one traced."""
        if record.number == 0:
            raise ServerError("genesis is not traceable")
        eth = self.eth
        txs = eth._stored(record)
        if index is not None:
            txs = txs[:index + 1]
        env = block_env(eth.spec, decode_header(record.header))
        accounts, slots = await eth.store.edits(record.number)
        edits: StateOverrides = {
            address: AccountOverride(
                balance=account.balance, nonce=account.nonce, code=code,
                state_diff={k: v for (a, k), v in slots.items() if a == address} or None,
            )
            for address, account, code in accounts
        }
        return await eth._read(eth.engine.trace_block(
            env, txs, index or 0, settings, record.number - 1, edits or None))


def _options(options: Any) -> str:
    """geth's tracing options as the engine takes them; -32602 saying why if refused."""
    try:
        return geth_options(_object(options))
    except ValueError as exc:
        raise InvalidParams(str(exc)) from None


def _object(options: Any) -> dict[str, Any]:
    """The tracing options object (a copy; None: none given)."""
    if options is not None and type(options) is not dict:
        raise InvalidParams("the tracing options must be an object")
    return dict(options or {})
