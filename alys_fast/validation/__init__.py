"""Stateless validation of Alys transactions and blocks, backed by compiled kernels.

The node-facing API is small: recover and check transactions one at a time or in parallel
batches, and check a block against its parent and the authority set. Everything raises or returns
errors from one tree rooted at :class:`ValidationError` (a ValueError).
"""

from alys_fast.validation.errors import (
    InvalidBlock,
    InvalidRLP,
    InvalidTransaction,
    ValidationError,
)
from alys_fast.validation.transactions import (
    Fork,
    Transaction,
    recover_transaction,
    recover_transactions,
)

__all__ = [
    "Fork",
    "InvalidBlock",
    "InvalidRLP",
    "InvalidTransaction",
    "Transaction",
    "ValidationError",
    "recover_transaction",
    "recover_transactions",
]
