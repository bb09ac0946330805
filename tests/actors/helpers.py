"""Test actors that report what happens to them into a list the test owns."""

from __future__ import annotations

import asyncio

from alys_fast.actors import Actor
from alys_fast.actors.runtime import run

__all__ = ["Recorder", "eventually", "run"]


class Recorder(Actor):
    """Appends lifecycle events and handled messages to ``log`` as ``(name, event, value)``.

    Messages: ``"crash"`` raises, ``"stop"`` stops normally, ``("sleep", s)`` blocks the
    loop-friendly way, ``"count"`` returns the number handled by this instance, anything else
    is recorded and echoed.
    """

    def __init__(self, name: str, log: list) -> None:
        self.name = name
        self.log = log
        self.count = 0

    def started(self) -> None:
        self.log.append((self.name, "started", None))

    def stopped(self) -> None:
        self.log.append((self.name, "stopped", None))

    def pre_restart(self, error: BaseException) -> None:
        self.log.append((self.name, "pre_restart", str(error)))

    def receive(self, message):
        if message == "crash":
            raise RuntimeError(f"{self.name} asked to crash")
        if message == "stop":
            self.stop()
            return None
        if message == "count":
            return self.count
        if isinstance(message, tuple) and message[0] == "sleep":
            return asyncio.sleep(message[1], result="slept")
        self.count += 1
        self.log.append((self.name, "got", message))
        return message


async def eventually(predicate, timeout: float = 3.0, interval: float = 0.005) -> None:
    """Wait until ``predicate()`` is true; fail the test with its name after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition {predicate.__name__} not met within {timeout}s")
        await asyncio.sleep(interval)
