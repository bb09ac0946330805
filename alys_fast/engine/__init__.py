"""Execution: Ethereum state, its trie commitment, and the engine that applies blocks to it.

The chain talks to :class:`ExecutionEngine` only; :class:`RevmEngine` is the in-process
implementation (revm, compiled, with the state trie), driven by the engine actor.
"""

from alys_fast.engine.errors import EngineError, TransactionRejected, UnknownParentState
from alys_fast.engine.fees import effective_gas_price, next_base_fee
from alys_fast.engine.interface import AllocAccount, BlockEnv, BlockExecution, ExecutionEngine
from alys_fast.engine.revm import RevmEngine
from alys_fast.state import EMPTY_CODE_HASH, EMPTY_ROOT, Account, StateDiff, StorageDiff

__all__ = [
    "EMPTY_CODE_HASH",
    "EMPTY_ROOT",
    "Account",
    "AllocAccount",
    "BlockEnv",
    "BlockExecution",
    "EngineError",
    "ExecutionEngine",
    "RevmEngine",
    "StateDiff",
    "StorageDiff",
    "TransactionRejected",
    "UnknownParentState",
    "effective_gas_price",
    "next_base_fee",
]
