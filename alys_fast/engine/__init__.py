"""Execution: account state, its commitment, and the engines that apply blocks to it.

The chain talks to :class:`ExecutionEngine` only; :class:`EmbeddedEngine` is the in-process
implementation (value transfers; contract creation and calls are rejected).
"""

from alys_fast.engine.embedded import EmbeddedEngine
from alys_fast.engine.errors import (
    NOT_SUPPORTED,
    EngineError,
    TransactionRejected,
    UnknownParentState,
)
from alys_fast.engine.fees import effective_gas_price, next_base_fee
from alys_fast.engine.interface import BlockEnv, BlockExecution, ExecutionEngine, Receipt
from alys_fast.engine.state import EMPTY_CODE_HASH, Account, State, StateUpdate

__all__ = [
    "EMPTY_CODE_HASH",
    "NOT_SUPPORTED",
    "Account",
    "BlockEnv",
    "BlockExecution",
    "EmbeddedEngine",
    "EngineError",
    "ExecutionEngine",
    "Receipt",
    "State",
    "StateUpdate",
    "TransactionRejected",
    "UnknownParentState",
    "effective_gas_price",
    "next_base_fee",
]
