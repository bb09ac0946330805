"""Resumable computations: generators that pause (``yield``) between pieces of a long job.

The engine's block-sized work is written as such a generator so that one function serves two
callers: :func:`finish` runs it straight through (tests, tools), while :func:`finish_paused`
(the engine actor) lets its event loop answer other work between the pieces.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from typing import TypeVar

T = TypeVar("T")

Steps = Generator[None, None, T]


def finish(steps: Steps[T]) -> T:
    """Run ``steps`` to the end without pausing and return its result."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


async def finish_paused(steps: Steps[T]) -> T:
    """Run ``steps`` to the end, yielding to the event loop at each of its pauses."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value
        await asyncio.sleep(0)
