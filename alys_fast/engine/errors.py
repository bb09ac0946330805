"""Engine errors: one root, and a rejection that carries the Ethereum-compatible reason."""

from __future__ import annotations


class EngineError(Exception):
    """Root of everything the execution engine raises."""


class UnknownParentState(EngineError):
    """The engine cannot execute on this parent: its state is not the one the engine holds."""


class TransactionRejected(EngineError):
    """A transaction that cannot be applied to the state it meets.

    ``reason`` is the short geth/anvil string clients match on (``nonce too low``,
    ``insufficient funds for gas * price + value``…); the message adds the values. ``index`` is
    the transaction's position in the block, or None outside a block.
    """

    def __init__(self, reason: str, detail: str = "", index: int | None = None) -> None:
        self.reason = reason
        self.detail = detail
        self.index = index
        message = f"{reason}: {detail}" if detail else reason
        if index is not None:
            message = f"transaction {index}: {message}"
        super().__init__(message)



