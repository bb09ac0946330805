"""The validation error tree: one root, one family per thing being validated.

Every error names the rule that failed (``rule``, a short stable phrase such as
``"nonce too high"`` or ``"non-canonical RLP"``) and carries the offending values (``values``), so
a log line or an RPC error says what was wrong with which number without a debugger::

    ValidationError(ValueError)
    ├── InvalidRLP           bytes that are not canonical RLP
    ├── InvalidTransaction   a transaction that breaks a stateless rule (RLP faults included)
    └── InvalidBlock         a block or header that breaks a stateless rule
"""

from __future__ import annotations

from typing import Any


def _show(value: object) -> str:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    return str(value)


class ValidationError(ValueError):
    """Root of every validation failure; a ValueError so generic callers can catch it."""

    def __init__(self, rule: str, **values: Any) -> None:
        self.rule = rule
        self.values = values
        detail = ", ".join(f"{key}={_show(value)}" for key, value in values.items())
        super().__init__(f"{rule} ({detail})" if detail else rule)

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only values do not survive the default pickling (it replays ``args``); process
        # pools and queues pickle errors, so rebuild from rule and values instead.
        return _rebuild, (type(self), self.rule, self.values)


def _rebuild(cls: type[ValidationError], rule: str, values: dict[str, Any]) -> ValidationError:
    return cls(rule, **values)


class InvalidRLP(ValidationError):
    """Bytes that are not a single canonical RLP item."""


class InvalidTransaction(ValidationError):
    """A transaction that breaks a stateless validity rule, including malformed encodings."""


class InvalidBlock(ValidationError):
    """A block or header that breaks a stateless validity rule."""
