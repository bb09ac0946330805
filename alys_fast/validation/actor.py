"""Signature recovery as a service: actors the node runs in their own processes, and the one
client every caller uses (the RPC's intake of raw transactions, imported and synced blocks).

Recovering a sender costs about 45 µs of CPU per transaction. Done in threads of the node's
process, that CPU is free of the GIL but every batch still needs the GIL several times to hand
results back, and while a block holds it those hand-offs wait: RPC acknowledgements then take
tens of milliseconds. In a separate process (``ChildSpec(process=True)``, linked by ZeroMQ) the
work uses the other core and answers with just the 20-byte senders; the node then rebuilds each
transaction with :func:`with_sender` (every rule but the key recovery, ~1.5 µs) on its loop.

:class:`RecoveryClient` is how the node reaches them: a batch is split across the processes
(so one block's senders take half the time), and while they are down (restarting) or absent
(a tree without them) it is recovered on local threads instead, with the same answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Protocol

import msgspec

from alys_fast.actors import Actor, ActorError, ActorRef
from alys_fast.paths import RECOVERY
from alys_fast.validation.errors import InvalidTransaction
from alys_fast.validation.transactions import (
    Transaction,
    recover_transactions,
    usable_cores,
    with_sender,
)

#: Below this many transactions a batch is recovered inline: a round trip costs more.
INLINE_RECOVERY = 16
#: A batch is split across the processes only into parts at least this big.
MIN_PART = 64


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

    def receive(self, message: Recover) -> list[bytes | Refusal]:
        out: list[bytes | Refusal] = []
        for result in recover_transactions(message.raws, self.chain_id, threads=1):
            if isinstance(result, InvalidTransaction):
                out.append(Refusal(result.rule, {k: _shown(v) for k, v in result.values.items()}))
            else:
                out.append(result.sender)
        return out


class Refs(Protocol):
    """Whatever looks actors up by path (the node's directory)."""

    def ref(self, path: str) -> ActorRef: ...


class RecoveryClient:
    """Recovers batches of raw transactions in the recovery processes at ``paths`` (see the
    module docstring); each answer is the :class:`Transaction` or the InvalidTransaction that
    :func:`recover_transactions` would give for it."""

    def __init__(self, refs: Refs, chain_id: int, *, paths: Sequence[str] = RECOVERY,
                 timeout: float = 5.0) -> None:
        self.refs = refs
        self.chain_id = chain_id
        self.paths = tuple(paths)
        self.timeout = timeout
        self._turn = 0

    async def recover(self, raws: Sequence[bytes]) -> list[Transaction | InvalidTransaction]:
        """One result per raw transaction, in order."""
        chain_id = self.chain_id
        if len(raws) < INLINE_RECOVERY:
            return recover_transactions(raws, chain_id)
        batch = list(raws)
        parts = max(1, min(len(self.paths), len(batch) // MIN_PART))
        size = -(-len(batch) // parts)
        chunks = [batch[start:start + size] for start in range(0, len(batch), size)]
        answers = await asyncio.gather(*(self._ask(chunk) for chunk in chunks),
                                       return_exceptions=True)
        for answer in answers:
            if not isinstance(answer, BaseException):
                continue
            if not isinstance(answer, ActorError | KeyError):
                raise answer
            # A process restarting, or none in this tree: the same answers from local threads.
            return await asyncio.get_running_loop().run_in_executor(
                _fallback_pool(), recover_transactions, batch, chain_id)
        out: list[Transaction | InvalidTransaction] = []
        for chunk, answered in zip(chunks, answers, strict=True):
            for raw, answer in zip(chunk, answered, strict=True):
                if isinstance(answer, Refusal):
                    out.append(answer.error())
                    continue
                try:
                    out.append(with_sender(raw, answer, chain_id))
                except InvalidTransaction as exc:
                    out.append(exc)
        return out

    async def _ask(self, raws: list[bytes]) -> list[bytes | Refusal]:
        self._turn += 1
        path = self.paths[self._turn % len(self.paths)]
        return await self.refs.ref(path).ask(Recover(raws), self.timeout)


@cache
def _fallback_pool() -> ThreadPoolExecutor:
    """Threads for recovery while the processes are unavailable, one per usable core. Not
    :func:`recover_transactions`' own pool: a large batch recovered there would wait on jobs
    queued behind itself."""
    return ThreadPoolExecutor(usable_cores(), thread_name_prefix="recover-fallback")
