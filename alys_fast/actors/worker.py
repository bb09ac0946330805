"""A one-thread worker an actor runs its block-sized synchronous steps on, off the event loop.

Validating and hashing a block, choosing its transactions and writing it each hold the CPU for
milliseconds. On the loop that would stall every RPC request for as long; on a worker thread
the interpreter hands the GIL back to the loop thread every switch interval (see
:func:`tune_interpreter`), so requests are answered in between. Execution, the longest step,
runs there too, with the GIL released by the compiled engine. One thread per actor keeps its
steps in order, and the actor awaits each one before taking its next message, so its state is
never used by two threads.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

# How often a CPU-bound thread must offer the GIL to the event loop thread. CPython's default
# (5 ms) adds up to that much to a request during a block; 0.5 ms made blocks 2x slower under
# load (GIL hand-offs), 2 ms kept both in bounds (tools/loadgen.py, issue 5 note).
SWITCH_INTERVAL = 0.002


def tune_interpreter() -> None:
    """Set the GIL switch interval for a node process (called once when a node starts)."""
    sys.setswitchinterval(SWITCH_INTERVAL)


class Worker:
    """``await worker.run(fn, *args)``: ``fn(*args)`` on this worker's own thread."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._pool: ThreadPoolExecutor | None = None

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix=self.name)
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def close(self, *, wait: bool = False) -> None:
        """Let the thread finish its current step (``wait``: before returning) and exit; the
        worker can be used again."""
        if self._pool is not None:
            self._pool.shutdown(wait=wait)
            self._pool = None
