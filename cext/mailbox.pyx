# cython: freethreading_compatible=False
"""Compiled actor mailbox: a bounded ring of user messages plus a priority lane.

Why compiled: every message a node handles passes through ``tell`` and ``process``; keeping the
ring, the wake-up and the dispatch loop in C leaves only the handler itself in Python.

Semantics
- ``tell(msg)`` appends to the user ring (FIFO, so each sender's order is kept) or raises
  ``MailboxFull`` when ``capacity`` messages are waiting; ``rejected`` counts those.
- ``ask(msg, future)`` appends an :class:`Ask` envelope; ``process`` resolves the future with
  the handler's return value, or with the handler's exception.
- ``put_system(msg)`` appends to an unbounded priority lane (stop, health probes): these are
  always taken before any user message and are never refused, so a full mailbox can be stopped.
- ``process(handler, budget)`` drains up to ``budget`` user messages in one wake-up. It stops
  early and reports why: the lane had a system message, the handler returned a coroutine (the
  caller awaits it), or the handler raised (the message and error are kept for dead letters).
- ``refuse(factory)`` makes tell/ask/put_system raise ``factory()`` (an open circuit breaker);
  ``close()`` refuses with ActorStopped and hands back what was waiting.
- One event loop owns a mailbox: call it only from that loop's thread.
"""

from cpython.mem cimport PyMem_Calloc, PyMem_Free
from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF, Py_INCREF
from libc.time cimport timespec

import asyncio

from alys_fast.actors.errors import ActorStopped, MailboxFull


cdef extern from "<time.h>" nogil:
    int clock_gettime(int clk_id, timespec *tp)
    int CLOCK_MONOTONIC

cdef extern from "Python.h":
    bint PyCoro_CheckExact(object o)


cdef inline double _now() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


def monotonic() -> float:
    """The clock the mailbox uses for ``busy_since`` (CLOCK_MONOTONIC, seconds)."""
    return _now()


# process() outcomes, exported as ints for the Python driver.
EMPTY = 0      # nothing left: await wait()
BUDGET = 1     # budget used up with messages left: yield to the loop, then call again
SYSTEM = 2     # a system message is waiting: take it with take_system()
AWAIT = 3      # the handler returned a coroutine: await ``pending`` then call settle()
FAILED = 4     # the handler raised: see failed_message / failed_error, then clear_failure()

# Upper bounds (seconds) of the latency histogram buckets; the last bucket is +Inf.
BUCKETS = (1e-6, 5e-6, 1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 5e-2, 0.1, 0.5, 1.0, 5.0, 30.0)
cdef double[15] _BOUNDS = [1e-6, 5e-6, 1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 5e-2,
                           0.1, 0.5, 1.0, 5.0, 30.0]


cdef class Ask:
    """A message that wants a reply: ``future`` gets the handler's result or error."""
    cdef readonly object message
    cdef readonly object future


    def __cinit__(self, object message, object future):
        self.message = message
        self.future = future


cdef class LatencyHistogram:
    """Handler latency counts per bucket, kept in C and read at scrape time."""
    cdef double[16] _counts
    cdef readonly double total_seconds
    cdef readonly unsigned long long count


    cdef void record(self, double seconds) noexcept:
        cdef int i = 0
        while i < 15 and seconds > _BOUNDS[i]:
            i += 1
        self._counts[i] += 1
        self.total_seconds += seconds
        self.count += 1

    def observe(self, double seconds) -> None:
        self.record(seconds)

    def cumulative(self) -> list:
        """``[(upper_bound, cumulative_count), …, ("+Inf", count)]`` as Prometheus wants it."""
        cdef double acc = 0
        out = []
        for i in range(15):
            acc += self._counts[i]
            out.append((BUCKETS[i], acc))
        out.append((float("inf"), acc + self._counts[15]))
        return out


cdef class Mailbox:
    cdef PyObject** _ring
    cdef Py_ssize_t _head
    cdef Py_ssize_t _size
    cdef readonly Py_ssize_t capacity
    cdef list _system
    cdef object _waiter
    cdef list _space_waiters
    cdef object _loop
    cdef object _refusal
    cdef readonly str owner
    cdef readonly unsigned long long handled
    cdef readonly unsigned long long rejected
    cdef readonly double busy_since
    cdef readonly LatencyHistogram latency
    cdef readonly object failed_message
    cdef readonly object failed_error
    cdef readonly object pending

    def __cinit__(self, str owner, Py_ssize_t capacity, object loop=None):
        if capacity < 1:
            raise ValueError(f"mailbox capacity must be at least 1, got {capacity}")
        self._ring = <PyObject**>PyMem_Calloc(capacity, sizeof(PyObject*))
        if self._ring == NULL:
            raise MemoryError()
        self.capacity = capacity
        self.owner = owner
        self._system = []
        self._space_waiters = []
        self._loop = loop
        self.latency = LatencyHistogram()

    def __dealloc__(self):
        cdef Py_ssize_t i
        if self._ring != NULL:
            for i in range(self._size):
                Py_DECREF(<object>self._ring[(self._head + i) % self.capacity])
            PyMem_Free(self._ring)

    def __len__(self) -> int:
        return self._size

    @property
    def system_pending(self) -> int:
        return len(self._system)

    cdef inline void _wake(self):
        cdef object waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    cpdef tell(self, object message):
        """Enqueue ``message`` or raise MailboxFull, or the refusal set by refuse(). Never blocks."""
        if self._refusal is not None:
            raise self._refusal()
        if self._size >= self.capacity:
            self.rejected += 1
            raise MailboxFull(self.owner, self.capacity)
        Py_INCREF(message)
        self._ring[(self._head + self._size) % self.capacity] = <PyObject*>message
        self._size += 1
        if self._waiter is not None:
            self._wake()

    cpdef ask(self, object message, object future):
        self.tell(Ask(message, future))

    def put_system(self, object message) -> None:
        """Priority lane: taken before any user message, never refused while open."""
        if self._refusal is not None:
            raise self._refusal()
        self._system.append(message)
        self._wake()

    def take_system(self):
        return self._system.pop(0)

    def wait(self):
        """A future that completes when a message arrives (None if one is already here)."""
        if self._size or self._system:
            return None
        if self._waiter is None:
            loop = self._loop if self._loop is not None else asyncio.get_running_loop()
            self._waiter = loop.create_future()
        return self._waiter

    def wait_space(self):
        """A future that completes when the ring has room again (None if it has room now)."""
        if self._refusal is not None:
            raise self._refusal()
        if self._size < self.capacity:
            return None
        loop = self._loop if self._loop is not None else asyncio.get_running_loop()
        fut = loop.create_future()
        self._space_waiters.append(fut)
        return fut

    cdef object _pop(self):
        cdef PyObject* item = self._ring[self._head]
        self._ring[self._head] = NULL
        self._head = (self._head + 1) % self.capacity
        self._size -= 1
        cdef object obj = <object>item
        Py_DECREF(obj)   # the ring's reference; ``obj`` holds its own
        return obj

    def process(self, object handler, Py_ssize_t budget):
        """Hand up to ``budget`` user messages to ``handler``; returns one of the outcomes."""
        cdef object item, result, message, future
        cdef double started = _now(), finished
        cdef Py_ssize_t done = 0
        cdef int outcome = EMPTY
        try:
            while True:
                if self._system:
                    outcome = SYSTEM
                    break
                if self._size == 0:
                    outcome = EMPTY
                    break
                if done >= budget:
                    outcome = BUDGET
                    break
                item = self._pop()
                done += 1
                if type(item) is Ask:
                    message = (<Ask>item).message
                    future = (<Ask>item).future
                else:
                    message = item
                    future = None
                # One clock read per message: this message ends where the next one starts.
                self.busy_since = started
                try:
                    result = handler(message)
                except BaseException as exc:
                    self.busy_since = 0
                    self.failed_message = message
                    self.failed_error = exc
                    if future is not None and not future.done():
                        future.set_exception(exc)
                    outcome = FAILED
                    break
                if PyCoro_CheckExact(result):
                    # busy_since stays set: the handler is still running while awaited.
                    self.pending = (message, future, result, started)
                    outcome = AWAIT
                    break
                finished = _now()
                self.busy_since = 0
                self.latency.record(finished - started)
                started = finished
                self.handled += 1
                if future is not None and not future.done():
                    future.set_result(result)
        finally:
            if self._space_waiters and self._size < self.capacity:
                self._release_space()
        return outcome

    def settle(self, object result=None, object error=None) -> None:
        """Finish the awaited handler that ``process`` returned AWAIT for."""
        message, future, _coro, started = self.pending
        self.pending = None
        self.busy_since = 0
        if error is not None:
            self.failed_message = message
            self.failed_error = error
            if future is not None and not future.done():
                future.set_exception(error)
            return
        self.latency.record(_now() - started)
        self.handled += 1
        if future is not None and not future.done():
            future.set_result(result)

    def clear_failure(self):
        """Return ``(message, error)`` of the last failure and forget it."""
        out = (self.failed_message, self.failed_error)
        self.failed_message = None
        self.failed_error = None
        return out

    def _release_space(self):
        waiters, self._space_waiters = self._space_waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    @property
    def refusing(self) -> bool:
        return self._refusal is not None

    def refuse(self, object error_factory) -> None:
        """Refuse new messages with ``error_factory()`` (an open circuit); keep what waits."""
        self._refusal = error_factory
        self._release_space()

    def accept(self) -> None:
        """Accept messages again (circuit half-open, or an actor restarted after a close)."""
        self._refusal = None

    def close(self) -> list:
        """Refuse everything for good; return what was still waiting (for dead letters)."""
        cdef list left = []
        owner = self.owner
        self._refusal = lambda: ActorStopped(owner)
        while self._size:
            left.append(self._pop())
        left.extend(self._system)
        self._system = []
        self._release_space()
        self._wake()
        return left
