"""Actors the remote tests and benchmark run in child processes (importable by module path)."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from typing import ClassVar

import msgspec

from alys_fast.actors import Actor, Refused, Shutdown

_instances = itertools.count(1)


class Add(msgspec.Struct, tag=True):
    """Add ``n`` to the total; replies with the new total."""

    n: int


class Total(msgspec.Struct, tag=True):
    """Reply with the running total."""


class Boom(msgspec.Struct, tag=True):
    """Raise ``ValueError(text)`` (a crash)."""

    text: str


class Slow(msgspec.Struct, tag=True):
    """Sleep ``seconds`` (the async way), then reply with ``n``."""

    seconds: float
    n: int


class Block(msgspec.Struct, tag=True):
    """Block the child's loop for ``seconds`` (a handler that ignores STOP)."""

    seconds: float


class Pid(msgspec.Struct, tag=True):
    """Reply with the child's pid."""


class Halt(msgspec.Struct, tag=True):
    """Stop normally (the actor's own ``stop()``)."""


class Ping(msgspec.Struct, tag=True):
    """Reply with ``n`` (the benchmark's message)."""

    n: int


class Incarnation(msgspec.Struct, tag=True):
    """Reply with a number unique to this instance (pid and a per-process count)."""

    reply_type: ClassVar[type] = int


class ShutDown(msgspec.Struct, tag=True):
    """Raise ``Shutdown``: stop with OTP's ``shutdown`` reason."""


class Decline(msgspec.Struct, tag=True):
    """Raise ``Refused(reason)``: decline without crashing."""

    reason: str


Command = Add | Total | Boom | Slow | Block | Pid | Halt | Ping | Incarnation | ShutDown | Decline


class Counter(Actor):
    """Keeps a running total; ``Message`` is a tagged union, ``Reply`` an int."""

    Message = Command
    Reply = int

    def __init__(self, start: int = 0, *, fail_start: bool = False) -> None:
        if fail_start:
            raise RuntimeError("told to fail at start")
        self.total = start
        self.incarnation = os.getpid() * 1_000_000 + next(_instances)

    def receive(self, message: Command) -> object:
        match message:
            case Add(n=n):
                self.total += n
                return self.total
            case Total():
                return self.total
            case Boom(text=text):
                raise ValueError(text)
            case Slow(seconds=seconds, n=n):
                return asyncio.sleep(seconds, result=n)
            case Block(seconds=seconds):
                time.sleep(seconds)
                return 0
            case Pid():
                return os.getpid()
            case Halt():
                self.stop()
                return 0
            case Ping(n=n):
                return n
            case Incarnation():
                return self.incarnation
            case ShutDown():
                raise Shutdown()
            case Decline(reason=reason):
                raise Refused(reason)
        raise TypeError(f"unexpected message {message!r}")
