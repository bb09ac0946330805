"""Signature recovery as a service: an actor the node runs in its own process.

Recovering a sender costs about 45 µs of CPU per transaction. Done in threads of the node's
process, that CPU is free of the GIL but every batch still needs the GIL several times to hand
results back, and while a block holds it those hand-offs wait: RPC acknowledgements then take
tens of milliseconds. In a separate process (``ChildSpec(process=True)``, linked by ZeroMQ) the
work uses the other core and answers with just the 20-byte senders; the node then rebuilds each
transaction with :func:`with_sender` (every rule but the key recovery, ~1.5 µs) on its loop.
"""

from __future__ import annotations

import msgspec

from alys_fast.actors import Actor
from alys_fast.validation.errors import InvalidTransaction
from alys_fast.validation.transactions import recover_transactions


class Recover(msgspec.Struct, frozen=True, tag=True):
    """-> one answer per raw transaction: its sender (20 bytes) or the Refusal."""

    raws: list[bytes]


class Refusal(msgspec.Struct, frozen=True, tag=True):
    """An InvalidTransaction, carried across processes (values as their display strings)."""

    rule: str
    values: dict[str, str]

    def error(self) -> InvalidTransaction:
        return InvalidTransaction(self.rule, **self.values)


def _shown(value: object) -> str:
    return "0x" + value.hex() if isinstance(value, bytes | bytearray) else str(value)


class RecoveryActor(Actor):
    """Recovers senders for one chain id; runs in a child process (see the module docstring)."""

    Message = Recover
    Reply = list[bytes | Refusal]

    def __init__(self, chain_id: int) -> None:
        self.chain_id = chain_id

    @classmethod
    def remote_args(cls, ctx: object) -> tuple:
        """The msgpack-able constructor arguments for the child process."""
        return (ctx.spec.chain_id,)  # type: ignore[attr-defined]

    def receive(self, message: Recover) -> list[bytes | Refusal]:
        out: list[bytes | Refusal] = []
        for result in recover_transactions(message.raws, self.chain_id, threads=1):
            if isinstance(result, InvalidTransaction):
                out.append(Refusal(result.rule, {k: _shown(v) for k, v in result.values.items()}))
            else:
                out.append(result.sender)
        return out
