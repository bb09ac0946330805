"""What the chain asks of an execution engine, so that an external client could stand in.

The shape follows the Engine API: the consensus side hands over a parent (by state root), the
block's environment and its transactions; the engine returns receipts, gas used and the new
state root without changing its head (``engine_newPayload``), and moves its head only on
:meth:`ExecutionEngine.commit` (``engine_forkchoiceUpdated``). The revm engine
(:mod:`alys_fast.engine.revm`) is the first implementation; geth behind the Engine API
(:mod:`alys_fast.engine.external`) the second, which also takes the block's header: the
payload it hands geth is made of the header's fields (:mod:`alys_fast.engine.payload`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import msgspec

from alys_fast.state import StateDiff
from alys_fast.validation import Transaction
from alys_fast.validation.receipts import Log, Receipt


class BlockEnv(msgspec.Struct, frozen=True):
    """The header fields execution depends on."""

    number: int
    timestamp: int
    fee_recipient: bytes
    gas_limit: int
    base_fee: int
    # Alys payloads carry zero randomness (PREVRANDAO 0); state tests set their own.
    prev_randao: bytes = bytes(32)
    # EIP-4844's excess blob gas, which prices blob gas; always 0 on this chain (no blobs).
    excess_blob_gas: int = 0


@dataclass(frozen=True, slots=True)
class BlockExecution:
    """The result of executing one block on a parent state.

    ``transactions`` are those included (all of them when importing; when building, the ones
    that applied), ``skipped`` the (transaction, reason) pairs left out while building.
    ``changes`` is the state diff (accounts, storage, code, previous values): what storage
    persists and history keeps.
    ``receipts_root`` and ``logs_bloom`` are what the header must carry for these receipts.
    ``el_block_hash`` is an external execution client's hash of the block (None for the
    embedded engine): stored with the block, so the payload can be rebuilt and replayed.
    """

    parent_state_root: bytes
    env: BlockEnv
    state_root: bytes
    gas_used: int
    burned: int
    transactions: tuple[Transaction, ...]
    receipts: tuple[Receipt, ...]
    receipts_root: bytes
    logs_bloom: bytes
    skipped: tuple[tuple[Transaction, str], ...]
    changes: StateDiff
    el_block_hash: bytes | None = None


class ExecutionEngine(Protocol):
    """An execution layer the chain drives block by block."""

    @property
    def state_root(self) -> bytes:
        """The state root of the engine's head."""
        ...

    def execute_block(
        self,
        parent_state_root: bytes,
        env: BlockEnv,
        txs: Sequence[Transaction],
        *,
        skip_invalid: bool = False,
    ) -> BlockExecution:
        """Execute ``txs`` on the parent state without moving the head.

        Importing (``skip_invalid=False``), any transaction that cannot apply raises
        TransactionRejected with its index; building, such transactions are skipped instead.
        Raises UnknownParentState if the engine does not hold the parent's state.
        """
        ...

    def commit(self, execution: BlockExecution) -> None:
        """Make an executed block's state the head."""
        ...


class AllocAccount(msgspec.Struct, frozen=True):
    """An account of a starting state (a genesis alloc, a state test's ``pre``)."""

    balance: int = 0
    nonce: int = 0
    code: bytes = b""
    storage: dict[int, int] = {}


class CallRequest(msgspec.Struct, frozen=True):
    """An ``eth_call``/``eth_estimateGas`` transaction: unsigned, its sender given.

    ``gas_price`` is the price (or EIP-1559 fee cap) offered; None means none was given, and
    then the call runs without a base fee, as geth runs it.
    """

    sender: bytes
    to: bytes | None
    value: int = 0
    data: bytes = b""
    gas: int = 0
    gas_price: int | None = None
    max_priority_fee_per_gas: int | None = None
    access_list: tuple[tuple[bytes, tuple[bytes, ...]], ...] = ()


class AccountOverride(msgspec.Struct, frozen=True):
    """geth's state override of one account for a call: each field given replaces that part of
    the account as it is at the call's block; ``state`` replaces the whole storage,
    ``state_diff`` only the slots it names (never both)."""

    balance: int | None = None
    nonce: int | None = None
    code: bytes | None = None
    state: dict[int, int] | None = None
    state_diff: dict[int, int] | None = None


StateOverrides = dict[bytes, AccountOverride]
"""Account overrides by address (a call's ``stateOverrides``)."""


class CallResult(msgspec.Struct, frozen=True):
    """What a call did: ``error`` is geth's reason when it failed ("execution reverted",
    "out of gas"...), ``output`` the return or revert data."""

    success: bool
    gas_used: int
    output: bytes
    error: str | None
    logs: tuple[Log, ...] = ()
