"""Resumable computations: generators that pause (``yield``) between pieces of a long job.

The engine's block-sized work is written as such a generator so that one function serves two
callers: :func:`finish` runs it straight through (tests, tools), while the engine actor runs
it piece by piece and lets its event loop answer other work in between.
"""

from __future__ import annotations

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
