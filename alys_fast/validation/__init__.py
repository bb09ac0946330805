"""Stateless validation of Alys transactions and blocks, backed by compiled kernels.

The node-facing API is small: recover and check transactions one at a time or in parallel
batches, build and sign headers, and check a block against its parent and the authority set
(its BLS approvals included).
Failures are one error tree rooted at :class:`ValidationError` (a ValueError); each names the
broken rule and carries the offending values. Wire formats are documented where they live:
``transactions.py`` (and ``cext/txcore.pyx``) and ``blocks.py``.
"""

from alys_fast.validation.blocks import (
    Block,
    Header,
    check_approvals,
    decode_block,
    decode_header,
    header_approvals,
    sign_header,
    validate_block,
)
from alys_fast.validation.errors import (
    InvalidBlock,
    InvalidRLP,
    InvalidTransaction,
    ValidationError,
)
from alys_fast.validation.transactions import (
    Fork,
    Transaction,
    address_of,
    intrinsic_gas,
    recover_transaction,
    recover_transactions,
    with_sender,
)
from alys_fast.validation.trie import ordered_trie_root

__all__ = [
    "Block",
    "Fork",
    "Header",
    "InvalidBlock",
    "InvalidRLP",
    "InvalidTransaction",
    "Transaction",
    "ValidationError",
    "address_of",
    "check_approvals",
    "decode_block",
    "decode_header",
    "header_approvals",
    "intrinsic_gas",
    "ordered_trie_root",
    "recover_transaction",
    "recover_transactions",
    "sign_header",
    "validate_block",
    "with_sender",
]
