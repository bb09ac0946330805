"""Remote actors: an actor in its own OS process, linked to its supervisor by ZeroMQ.

A ``ChildSpec(..., process=True)`` is run by a :class:`RemoteCell` instead of an ``ActorCell``.
The supervisor cannot tell them apart: same lifecycle calls, same exits, same restart rules;
``RemoteCell.ref`` is a plain ``ActorRef`` over the cell's send buffer.

Semantics
- One *incarnation* = one child process + one ZeroMQ ``PAIR`` socket on a fresh ``ipc://``
  endpoint in a private temp dir (no stale peer can ever reach a new incarnation).
- The actor class is imported by module path in the child (a class of a script's
  ``__main__`` is loaded from the script's file); ``args``/``kwargs`` travel as msgpack and
  arrive as msgpack builtins (tuples become lists). Both are checked when the cell is built.
- In the child the actor runs exactly as a local one, on the same compiled mailbox:
  ``started()`` before the first message, plain or ``async`` ``receive``, the return value is
  the ask's reply. A handler that raises ``Refused`` declines the message: the ask gets a
  ``Refused`` of the same reason and ``kind``, the child runs on. Any other raise is a
  crash: the ask (if any) gets ``RemoteError(owner, type, text)``, the child flushes its
  replies, calls ``pre_restart`` and exits with :data:`EXIT_CRASHED`; the parent
  dead-letters the crashing message and reports the crash to the supervisor. A message the
  child cannot decode as ``Actor.Message`` is handled the same way (its decoding is the
  first step of handling it).
- The *mailbox* is the parent's: ``spec.mailbox`` bounds the messages not yet handled by the
  child (buffered + in flight). ``tell`` raises ``MailboxFull`` beyond it, ``send`` waits.
  The buffer outlives incarnations, as a local mailbox outlives restarts: messages told while
  the child restarts are delivered to the next one.
- Exits. The child reports how many parent messages it handled with every reply frame, and a
  final frame on a crash or a normal stop, so after those the parent knows exactly which
  in-flight messages were not handled and puts them back in front of the buffer. After an
  exit without a final frame (kill -9, OOM, segfault) nobody knows: in-flight asks fail with
  ``ActorCrashed(owner, "process exited with code -9")`` and in-flight tells are
  dead-lettered (at-most-once). Either way, an exit the supervisor did not ask for is reported
  once through ``parent.child_exited`` (guarded by generation), so restarts follow the rules.
- ``shutdown`` is three steps: a ``STOP`` control frame (taken before any queued message),
  ``spec.shutdown`` seconds for the process to exit, then ``SIGKILL``.
- No orphans: the child asks the kernel for ``SIGKILL`` when its parent dies (Linux
  ``PR_SET_PDEATHSIG``) and also polls its parent pid.

Wire (msgspec msgpack, structs as arrays). Tells and asks are buffered and flushed once per
loop iteration as ONE frame, :class:`Down`: ``[messages, asks]`` where ``asks`` holds
``(index, ask id)`` pairs, so a tell costs one ``encode_into`` on a shared buffer and one
list append, with no per-message envelope. Messages are encoded at ``tell`` time, so a
message msgpack cannot encode is refused at once with msgspec's ``TypeError``. The child
decodes the frame as ``Down[Actor.Message]`` in one call and answers each batch it handled
with one :class:`Up` frame (replies, errors, handled count).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import importlib
import importlib.util
import inspect
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections import deque
from struct import pack_into
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import msgspec
import zmq

from alys_fast.actors.cell import (
    AWAIT,
    BUDGET,
    EMPTY,
    FAILED,
    SYSTEM,
    ActorRef,
    Ask,
    Mailbox,
    Stop,
    actor_health,
    monotonic,
)
from alys_fast.actors.errors import (
    ActorCrashed,
    ActorError,
    ActorKilled,
    ActorStopped,
    CircuitOpen,
    MailboxFull,
    Refused,
    RemoteError,
    StartFailed,
)

if TYPE_CHECKING:
    from alys_fast.actors.supervisor import ChildSpec, Supervisor

__all__ = ["Down", "RemoteCell", "Up", "child_main"]

log = logging.getLogger("alys.remote")

M = TypeVar("M")
R = TypeVar("R")

#: Seconds a child may take to import, build its actor and run ``started()``.
START_TIMEOUT = 15.0
#: Parent messages the child handles before it sends a reply frame and yields.
CHILD_BATCH = 1024
#: A buffer this long is flushed at once instead of at the end of the loop iteration, so the
#: child starts on it while the parent keeps producing.
FLUSH_AT = 2048
#: Seconds to wait for the final frame a child announced by its exit code.
FINAL_GRACE = 1.0
#: Seconds between the child's checks that its parent is still alive.
ORPHAN_POLL = 0.5
#: Seconds between handler-latency snapshots sent by a busy child.
STATS_EVERY = 1.0

# Exit codes of the child process.
EXIT_STOPPED = 0        # normal stop (STOP frame or the actor's own stop()); BYE frame sent
EXIT_CRASHED = 3        # a handler raised; CRASHED frame sent
EXIT_START_FAILED = 4   # constructor or started() raised; START_FAILED frame sent
EXIT_ORPHANED = 5       # the parent process is gone
EXIT_PROTOCOL = 6       # a frame broke the protocol (a bug): no final frame
_FINAL_EXITS = (EXIT_STOPPED, EXIT_CRASHED, EXIT_START_FAILED)

# Up.kind
REPLY, READY, START_FAILED, CRASHED, BYE = range(5)
# Down.ctl
CTL_NONE, CTL_STOP = 0, 1


class Down(msgspec.Struct, Generic[M], array_like=True):
    """Parent → child: messages in send order, ``asks`` as flat (index, ask id) pairs."""

    msgs: list[M]
    asks: list[int] = []
    ctl: int = CTL_NONE


class Up(msgspec.Struct, Generic[R], array_like=True, omit_defaults=True):
    """Child → parent: replies of one batch, and the parent messages handled so far."""

    kind: int
    handled: int = 0                          # parent messages handled by this incarnation
    ids: list[int] = []                       # ask ids answered, in order …
    values: list[R] = []                      # … and their replies
    errors: list[tuple[int, str, str]] = []   # (ask id, error type, text)
    info: tuple[str, str] | None = None       # crash / start failure: (type, text)
    culprit: bool = False                     # CRASHED: parent message number ``handled``
    pid: int = 0                              # READY
    stats: list[float] | None = None          # 16 latency bucket counts, then total seconds


class Init(msgspec.Struct, array_like=True):
    """What the child needs to build the actor (passed on its command line)."""

    module: str
    qualname: str
    file: str | None
    path: str
    args: list
    kwargs: dict[str, Any]
    capacity: int


_HEADER = b"\x92\xdd\x00\x00\x00\x00"    # Down as [msgs (array32, count filled in), asks]
_STOP_FRAME = msgspec.msgpack.encode(([], [], CTL_STOP))
_ENCODER = msgspec.msgpack.Encoder()
_context: zmq.Context | None = None


def _zmq() -> zmq.Context:
    global _context
    if _context is None:
        _context = zmq.Context(io_threads=1)
    return _context


def _socket(ctx: zmq.Context, linger: int) -> zmq.Socket:
    sock = ctx.socket(zmq.PAIR)
    sock.setsockopt(zmq.LINGER, linger)
    sock.setsockopt(zmq.SNDHWM, 0)     # the mailbox capacity bounds what is in flight
    sock.setsockopt(zmq.RCVHWM, 0)
    return sock


# Error-type prefix of a handler's refusal on the wire: the asker raises ``Refused``.
REFUSED_PREFIX = "Refused:"


def _error_info(exc: BaseException) -> tuple[str, str]:
    if isinstance(exc, Refused):
        return REFUSED_PREFIX + exc.kind, exc.reason
    return type(exc).__name__, str(exc)


def _answer_error(owner: str, error_type: str, text: str) -> ActorError:
    """The exception an asker gets for an error frame: a refusal, or the handler's crash."""
    if error_type.startswith(REFUSED_PREFIX):
        return Refused(text, error_type.removeprefix(REFUSED_PREFIX))
    return RemoteError(owner, error_type, text)


# ---------------------------------------------------------------------------------------------
# Parent side
# ---------------------------------------------------------------------------------------------


def _describe_target(spec: ChildSpec, path: str) -> Init:
    """Check the actor class can be found again in a fresh process and args travel."""
    cls = spec.actor
    module, qualname = cls.__module__, cls.__qualname__
    where = f"remote actor {path!r}: class {module}.{qualname}"
    if "<locals>" in qualname:
        raise TypeError(f"{where} is defined inside a function; a child process cannot "
                        "import it (define it at module level)")
    file = None
    if module == "__main__":
        file = getattr(sys.modules["__main__"], "__file__", None)
        if file is None:
            raise TypeError(f"{where} lives in an interactive __main__; put it in a module")
        file = os.path.abspath(file)
        found: Any = sys.modules["__main__"]
    else:
        found = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if found is not cls:
        raise TypeError(f"{where} cannot be found again by its module path")
    for name in ("Message", "Reply"):
        try:
            msgspec.msgpack.Decoder(getattr(cls, name))
        except TypeError as exc:
            raise TypeError(f"{where}: {name} is not a msgspec type: {exc}") from exc
    init = Init(module, qualname, file, path, list(spec.args), dict(spec.kwargs), spec.mailbox)
    try:
        _ENCODER.encode(init)
    except TypeError as exc:
        raise TypeError(f"{where}: args and kwargs must be msgpack-encodable: {exc}") from exc
    return init


def _child_env() -> dict[str, str]:
    """The parent's environment, with its ``sys.path`` so the child imports the same code."""
    env = dict(os.environ)
    paths = [os.path.abspath(p) if p else os.getcwd() for p in sys.path]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(p for p in paths if os.path.exists(p)))
    return env


class _Link:
    """One incarnation: the process, its socket, and what was sent to it and not yet handled."""

    __slots__ = ("acked", "busy_since", "code", "culprit", "exited", "final", "generation",
                 "info", "pid", "proc", "ready", "sent", "sock", "stopping", "tmpdir", "up",
                 "watcher", "window")

    def __init__(self, generation: int, loop: asyncio.AbstractEventLoop) -> None:
        self.generation = generation
        self.tmpdir = tempfile.mkdtemp(prefix="alys-remote-")
        self.sock = _socket(_zmq(), 0)
        self.sock.bind(f"ipc://{self.tmpdir}/s")
        self.proc: asyncio.subprocess.Process | None = None
        self.pid: int | None = None
        self.ready = loop.create_future()     # READY frame (or the start failure)
        self.exited = loop.create_future()    # exit code, once settled and closed
        self.up = False                       # start() returned: exits are reported
        self.stopping = False                 # STOP sent: nothing more is flushed here
        #: sent, not yet acknowledged batches: (first message number, messages, asks)
        self.window: deque[tuple[int, list, list]] = deque()
        self.sent = 0
        self.acked = 0
        self.busy_since = 0.0                 # last progress while work was in flight
        self.final: int | None = None         # CRASHED / BYE / START_FAILED frame seen
        self.info: tuple[str, str] | None = None
        self.culprit = False
        self.code: int | None = None
        self.watcher: asyncio.Task | None = None

    @property
    def open(self) -> bool:
        return self.up and not self.stopping


class RemoteLatency:
    """Handler latency of a remote actor, from the child's compiled histogram snapshots."""

    def __init__(self) -> None:
        self._base = [0.0] * 17       # finished incarnations: 16 buckets + total seconds
        self._current = [0.0] * 17

    def update(self, snapshot: list[float]) -> None:
        if len(snapshot) == 17:
            self._current = snapshot

    def fold(self) -> None:
        self._base = [a + b for a, b in zip(self._base, self._current, strict=True)]
        self._current = [0.0] * 17

    def cumulative(self) -> list:
        from alys_fast.actors.cell import _mailbox

        bounds = (*_mailbox.BUCKETS, float("inf"))
        counts = [a + b for a, b in zip(self._base, self._current, strict=True)]
        return list(zip(bounds, counts[:16], strict=True))

    @property
    def total_seconds(self) -> float:
        return self._base[16] + self._current[16]


class RemoteMailbox:
    """What metrics read from a mailbox, for a remote actor (counted by parent and child)."""

    def __init__(self, cell: RemoteCell) -> None:
        self._cell = cell
        self.latency = RemoteLatency()
        self.rejected = 0

    @property
    def handled(self) -> int:
        return self._cell.handled

    def __len__(self) -> int:
        return self._cell._depth


class RemoteCell:
    """Runtime of one remote actor, driven by its supervisor like an ``ActorCell``."""

    kind = "remote"
    start_timeout = START_TIMEOUT

    def __init__(self, spec: ChildSpec, path: str, parent: Supervisor) -> None:
        self.spec = spec
        self.path = path
        self.parent = parent
        self._init = _describe_target(spec, path)
        self._decode_up = msgspec.msgpack.Decoder(Up[spec.actor.Reply]).decode
        self._encode_into = _ENCODER.encode_into
        self._capacity = spec.mailbox
        self.state = "new"           # new | running | restarting | open | down | stopped
        self.generation = 0
        self.up_since = 0.0
        # the buffer: survives incarnations, flushed to the live one
        self._buf = bytearray(_HEADER)
        self._msgs: list = []
        self._ask_pos: list[int] = []
        self._depth = 0              # buffered + in flight: what counts against capacity
        self._scheduled = False
        self._refusal: Any = None
        self._space: list[asyncio.Future] = []
        self._stop_pending = False
        self.asks: dict[int, asyncio.Future] = {}
        self._next_ask = 0
        self._link: _Link | None = None
        self._handled_before = 0     # parent messages handled by finished incarnations
        self._probe_mark = -1
        self.mailbox = RemoteMailbox(self)
        self.inbox = self            # what ActorRef talks to: tell, ask, wait_space
        self.ref = ActorRef(self)

    # -- the ref's side (hot path) --------------------------------------------------------
    def tell(self, message: Any) -> None:
        """Buffer ``message`` for the next flush; never blocks."""
        if self._refusal is not None:
            raise self._refusal()
        if self._depth >= self._capacity:
            self.mailbox.rejected += 1
            raise MailboxFull(self.path, self._capacity)
        buf = self._buf
        size = len(buf)
        try:
            self._encode_into(message, buf, -1)
        except BaseException:
            del buf[size:]
            raise
        msgs = self._msgs
        msgs.append(message)
        self._depth += 1
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        elif len(msgs) >= FLUSH_AT:
            self._flush()

    def post_ask(self, message: Any, future: asyncio.Future) -> int:
        """Buffer an ask whose reply resolves ``future``; returns its id."""
        self._next_ask += 1
        ask_id = self._next_ask
        self._ask_pos += (len(self._msgs), ask_id)
        try:
            self.tell(message)
        except BaseException:
            del self._ask_pos[-2:]
            raise
        self.asks[ask_id] = future
        return ask_id

    def ask(self, message: Any, future: asyncio.Future) -> None:
        """Buffer an ask; its id is forgotten once ``future`` is done, however that happens."""
        ask_id = self.post_ask(message, future)
        future.add_done_callback(lambda _done: self.asks.pop(ask_id, None))

    def wait_space(self) -> asyncio.Future | None:
        if self._refusal is not None:
            raise self._refusal()
        if self._depth < self._capacity:
            return None
        future = asyncio.get_running_loop().create_future()
        self._space.append(future)
        return future

    def request_stop(self) -> None:
        if self._refusal is not None:
            raise self._refusal()
        link = self._link
        if link is not None and link.open:
            self._send_stop(link)
        elif link is None:
            self._stop_pending = True

    def kill(self) -> None:
        """SIGKILL the process: an exit without a final frame, reported as ``ActorKilled``."""
        link = self._link
        if link is not None and link.proc is not None and link.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                link.proc.kill()

    @property
    def handled(self) -> int:
        link = self._link
        return self._handled_before + (link.acked if link is not None else 0)

    @property
    def alive(self) -> bool:
        return self._link is not None

    # -- flushing and receiving -----------------------------------------------------------
    def _flush(self) -> None:
        self._scheduled = False
        msgs = self._msgs
        link = self._link
        if not msgs or link is None or not link.open:
            return                        # kept for the next incarnation
        buf, asks = self._buf, self._ask_pos
        size = len(buf)
        pack_into(">I", buf, 2, len(msgs))
        self._encode_into(asks, buf, -1)
        sock = link.sock
        try:
            sock.send(buf, zmq.NOBLOCK)
        except zmq.ZMQError:
            # No peer: the process is gone and its watcher is about to settle it. Keep the
            # batch buffered for the next incarnation.
            del buf[size:]
            link.stopping = True
            return
        if link.sent == link.acked:
            link.busy_since = monotonic()
        link.window.append((link.sent, msgs, asks))
        link.sent += len(msgs)
        self._buf = bytearray(_HEADER)
        self._msgs = []
        self._ask_pos = []
        # A send may consume the edge the socket's FD would have signalled: look ourselves.
        if sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            self._drain(link)

    def _send_stop(self, link: _Link) -> None:
        link.stopping = True
        with contextlib.suppress(zmq.ZMQError):
            link.sock.send(_STOP_FRAME, zmq.NOBLOCK)

    def _drain(self, link: _Link) -> None:
        sock = link.sock
        decode = self._decode_up
        while True:
            try:
                data = sock.recv(zmq.NOBLOCK)
            except zmq.ZMQError:          # Again, or closed
                return
            try:
                up = decode(data)
            except msgspec.ValidationError:
                up = self._decode_reply_by_reply(data)
            self._on_up(link, up)

    def _decode_reply_by_reply(self, data: bytes) -> Up:
        """A reply does not match ``Reply``: fail that ask alone, keep the rest of the frame."""
        up = msgspec.msgpack.decode(data, type=Up[msgspec.Raw])
        decode = msgspec.msgpack.Decoder(self.spec.actor.Reply).decode
        ids, values, errors = [], [], list(up.errors)
        for ask_id, raw in zip(up.ids, up.values, strict=True):
            try:
                values.append(decode(raw))
                ids.append(ask_id)
            except msgspec.ValidationError as exc:
                errors.append((ask_id, "ValidationError", f"reply does not match Reply: {exc}"))
        return Up(up.kind, up.handled, ids, values, errors, up.info, up.culprit, up.pid,
                  up.stats)

    def _on_up(self, link: _Link, up: Up) -> None:
        kind = up.kind
        if kind == READY:
            link.pid = up.pid
            if not link.ready.done():
                link.ready.set_result(None)
            return
        asks = self.asks
        if up.ids:
            for ask_id, value in zip(up.ids, up.values, strict=True):
                future = asks.pop(ask_id, None)
                if future is not None and not future.done():
                    future.set_result(value)
        for ask_id, error_type, text in up.errors:
            future = asks.pop(ask_id, None)
            if future is not None and not future.done():
                future.set_exception(_answer_error(self.path, error_type, text))
        if up.handled > link.acked:
            self._ack(link, up.handled)
        if up.stats is not None:
            self.mailbox.latency.update(up.stats)
        if kind != REPLY:
            link.final, link.info, link.culprit = kind, up.info, up.culprit
            if kind == START_FAILED and not link.ready.done():
                link.ready.set_exception(RemoteError(self.path, *(up.info or ("?", "?"))))

    def _ack(self, link: _Link, handled: int) -> None:
        self._depth -= handled - link.acked
        link.acked = handled
        window = link.window
        while window and window[0][0] + len(window[0][1]) <= handled:
            window.popleft()
        link.busy_since = monotonic() if link.sent > handled else 0.0
        if self._space:
            self._release_space()
        if self._probe_mark >= 0 and self.handled > self._probe_mark:
            self._probe_mark = -1
            self.parent.probe_succeeded(self)

    def _release_space(self) -> None:
        waiters, self._space = self._space, []
        for future in waiters:
            if not future.done():
                future.set_result(None)

    # -- supervisor side ------------------------------------------------------------------
    async def start(self) -> None:
        """Spawn a fresh process and wait for READY; StartFailed if it does not come."""
        loop = asyncio.get_running_loop()
        self.generation += 1
        link = _Link(self.generation, loop)
        endpoint = f"ipc://{link.tmpdir}/s"
        blob = base64.b64encode(_ENCODER.encode(self._init)).decode()
        loop.add_reader(link.sock.getsockopt(zmq.FD), self._drain, link)
        try:
            link.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "alys_fast.actors.remote", endpoint, str(os.getpid()),
                blob, stdin=asyncio.subprocess.DEVNULL, env=_child_env(),
            )
        except OSError as exc:
            self._close_link(link, loop)
            raise StartFailed(self.path, exc) from exc
        link.watcher = loop.create_task(self._watch(link), name=f"{self.path}:watch")
        try:
            await asyncio.wait_for(asyncio.shield(link.ready), self.start_timeout)
        except TimeoutError:
            link.ready.cancel()
            with contextlib.suppress(ProcessLookupError):
                link.proc.kill()
            await link.exited
            error = TimeoutError(f"no ready signal within {self.start_timeout}s")
            raise StartFailed(self.path, error) from None
        except (RemoteError, ActorCrashed) as exc:
            await link.exited
            raise StartFailed(self.path, exc) from None
        except BaseException:             # cancelled (the supervisor is going away): no orphan
            link.ready.cancel()
            with contextlib.suppress(ProcessLookupError):
                link.proc.kill()
            raise
        link.up = True
        self._link = link
        self.up_since = monotonic()
        self.state = "running"
        self._refusal = None
        if self._stop_pending:
            self._stop_pending = False
            self._send_stop(link)
        self._flush()

    async def shutdown(self, timeout: float | None = None) -> None:
        """Three steps: STOP (before any queued message), wait ``shutdown`` s, then SIGKILL."""
        link = self._link
        if link is None:
            return
        self.generation += 1     # whatever this incarnation reports now is stale
        wait = timeout or self.spec.shutdown
        if not link.stopping:
            self._send_stop(link)
        try:
            await asyncio.wait_for(asyncio.shield(link.exited), wait)
        except TimeoutError:
            log.warning("remote actor %s did not stop within %.1fs: killed", self.path, wait)
            with contextlib.suppress(ProcessLookupError):
                link.proc.kill()
            await link.exited
        self.state = "stopped"

    def open_circuit(self, retry_at: float) -> None:
        self.state = "open"
        path = self.path
        self._refusal = lambda: CircuitOpen(path, max(0.0, retry_at - monotonic()))
        self._release_space()

    def start_probe(self) -> None:
        self._probe_mark = self.handled

    def close_for_good(self, state: str) -> list:
        """No restart is coming: refuse messages; return what waited (for dead letters)."""
        self.state = state
        path = self.path
        self._refusal = lambda: ActorStopped(path)
        left = []
        for message, ask_id in self._take_buffer():
            future = self.asks.pop(ask_id, None) if ask_id is not None else None
            left.append(Ask(message, future) if future is not None else message)
        self._depth = 0
        self._release_space()
        return left

    def call_hook(self, name: str, *args: Any) -> None:
        """The hooks run inside the child process (``stopped``, ``pre_restart``): nothing here."""

    # -- exits --------------------------------------------------------------------------
    async def _watch(self, link: _Link) -> None:
        """Wait for the process to end, settle what was in flight, report unexpected exits."""
        loop = asyncio.get_running_loop()
        assert link.proc is not None
        code = await link.proc.wait()
        link.code = code
        # Frames sent just before the exit may still be on their way: wait for the final one
        # if the exit code says there is one, else pick up whatever already arrived.
        deadline = loop.time() + (FINAL_GRACE if code in _FINAL_EXITS else 0.02)
        while True:
            self._drain(link)
            if link.final is not None or loop.time() >= deadline:
                break
            await asyncio.sleep(0.002)
        error, culprit = self._settle(link, code)
        report = link.up and link.generation == self.generation
        self._close_link(link, loop)
        if not link.ready.done():
            reason = f"process exited with code {code} before it was ready"
            link.ready.set_exception(ActorCrashed(self.path, reason))
        link.exited.set_result(code)
        if report:
            self.parent.child_exited(self, error, culprit)

    def _settle(self, link: _Link, code: int) -> tuple[BaseException | None, Any]:
        """The exit's error and crashing message; requeue what surely was not handled."""
        reason = f"process exited with code {code}"
        unhandled = [
            (message, ask_id)
            for base, msgs, asks in link.window
            for ask_id_of in (dict(zip(asks[::2], asks[1::2], strict=True)),)
            for index, message in enumerate(msgs)
            if base + index >= link.acked
            for ask_id in (ask_id_of.get(index),)
        ]
        link.window.clear()
        culprit = None
        if link.final in (CRASHED, BYE):
            error: BaseException | None = None
            if link.final == CRASHED:
                error = RemoteError(self.path, *(link.info or ("?", reason)))
                if link.culprit and unhandled:
                    (culprit, ask_id), unhandled = unhandled[0], unhandled[1:]
                    self._depth -= 1
                    self._fail_ask(ask_id, error)
            elif code != 0:
                error = ActorCrashed(self.path, reason)
            self._requeue(unhandled)
            return error, culprit
        # No final frame: whatever was in flight may or may not have been handled.
        crash = (ActorKilled if code < 0 else ActorCrashed)(self.path, reason)
        self._depth -= len(unhandled)
        dead_letters = self.parent.system.dead_letters
        for message, ask_id in unhandled:
            self._fail_ask(ask_id, crash)
            dead_letters.add(self.path, message, f"in flight when the {reason}")
        if self._space:
            self._release_space()
        return (crash if code != 0 else None), None

    def _fail_ask(self, ask_id: int | None, error: BaseException) -> None:
        if ask_id is None:
            return
        future = self.asks.pop(ask_id, None)
        if future is not None and not future.done():
            future.set_exception(error)

    def _take_buffer(self) -> list[tuple[Any, int | None]]:
        positions = dict(zip(self._ask_pos[::2], self._ask_pos[1::2], strict=True))
        items = [(message, positions.get(i)) for i, message in enumerate(self._msgs)]
        self._buf = bytearray(_HEADER)
        self._msgs = []
        self._ask_pos = []
        return items

    def _requeue(self, items: list[tuple[Any, int | None]]) -> None:
        """Put unhandled messages back in front of the buffer (the depth already counts them)."""
        if not items:
            return
        for message, ask_id in items + self._take_buffer():
            if ask_id is not None:
                self._ask_pos += (len(self._msgs), ask_id)
            self._encode_into(message, self._buf, -1)
            self._msgs.append(message)

    def _close_link(self, link: _Link, loop: asyncio.AbstractEventLoop) -> None:
        with contextlib.suppress(Exception):
            loop.remove_reader(link.sock.getsockopt(zmq.FD))
        link.sock.close(linger=0)
        shutil.rmtree(link.tmpdir, ignore_errors=True)
        if self._link is link:
            self._link = None
            self._handled_before += link.acked
            self.mailbox.latency.fold()

    # -- inspection -----------------------------------------------------------------------
    def health(self, now: float) -> dict:
        link = self._link
        busy = link.busy_since if link is not None else 0.0
        health = actor_health(self, now, busy, self._depth, self.handled)
        health["pid"] = link.pid if link is not None else None
        return health


# ---------------------------------------------------------------------------------------------
# Child side
# ---------------------------------------------------------------------------------------------


_WAKE = object()    # a system message that only wakes run()


class _Reply:
    """Stands in for an ask's future inside the child: the mailbox resolves it in C."""

    __slots__ = ("child", "id")

    def __init__(self, child: _Child, ask_id: int) -> None:
        self.child = child
        self.id = ask_id

    def done(self) -> bool:
        return False

    def set_result(self, value: Any) -> None:
        self.child.ids.append(self.id)
        self.child.values.append(value)

    def set_exception(self, error: BaseException) -> None:
        self.child.errors.append((self.id, *_error_info(error)))


class _SelfRef:
    """The actor's own ``ref`` inside the child: ``stop()``, ``tell`` to itself, ``path``."""

    def __init__(self, child: _Child) -> None:
        self._child = child
        self.path = child.init.path

    def tell(self, message: Any) -> None:
        child = self._child
        child.mailbox.tell(message)
        child.count_run(False, 1)

    async def send(self, message: Any) -> None:
        self.tell(message)

    async def ask(self, message: Any, timeout: float = 5.0) -> Any:
        raise RuntimeError(f"{self.path!r} cannot ask itself (it would wait on itself)")

    def stop(self) -> None:
        self._child.mailbox.put_system(Stop())


class _Child:
    """The child process: one actor on a compiled mailbox, fed by one ZeroMQ socket."""

    def __init__(self, endpoint: str, parent_pid: int, init: Init) -> None:
        self.init = init
        self.parent_pid = parent_pid
        self.ctx = zmq.Context(io_threads=1)
        self.sock = _socket(self.ctx, 2000)    # linger: flush the final frame on exit
        self.sock.connect(endpoint)
        # Room for the parent's messages (bounded by it) plus as many the actor tells itself.
        self.mailbox = Mailbox(init.path, 2 * init.capacity)
        self.encode = msgspec.msgpack.Encoder().encode
        self.ids: list[int] = []
        self.values: list = []
        self.errors: list[tuple[int, str, str]] = []
        #: runs of (from parent?, count) in mailbox order, to count parent messages handled
        self.runs: deque[list] = deque()
        self.seen = 0          # mailbox.handled (+ refused) already attributed to runs
        self.handled = 0       # parent messages handled
        self.refused = 0       # messages the handler declined: handled too, not counted by C
        self.reported = 0
        self.poison: BaseException | None = None
        self.stats_at = 0.0
        self.decode: Any = None
        self.handler: Any = None
        self.parked = False            # run() waits for mail: the reader may serve directly
        self.outcome: int | None = None   # left by serve_now() for run()
        self.message_type: Any = Any

    # -- input --------------------------------------------------------------------------
    def count_run(self, from_parent: bool, n: int) -> None:
        runs = self.runs
        if runs and runs[-1][0] is from_parent:
            runs[-1][1] += n
        else:
            runs.append([from_parent, n])

    def on_readable(self) -> None:
        sock, decode = self.sock, self.decode
        while self.poison is None:
            try:
                data = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                down = decode(data)
            except msgspec.ValidationError:
                self.enqueue_until_invalid(data)
                continue
            if down.ctl == CTL_STOP:
                self.mailbox.put_system(Stop())
            elif down.msgs:
                self.enqueue(down.msgs, down.asks)
                if self.parked and self.outcome is None:
                    self.serve_now()

    def enqueue(self, msgs: list, asks: list[int]) -> None:
        self.count_run(True, len(msgs))
        mailbox = self.mailbox
        try:
            if not asks:
                tell = mailbox.tell
                for message in msgs:
                    tell(message)
                return
            start = 0
            for k in range(0, len(asks), 2):
                index = asks[k]
                for message in msgs[start:index]:
                    mailbox.tell(message)
                mailbox.ask(msgs[index], _Reply(self, asks[k + 1]))
                start = index + 1
            for message in msgs[start:]:
                mailbox.tell(message)
        except MailboxFull:       # the parent's accounting makes this impossible: a bug
            log.critical("remote actor %s: mailbox overflow (protocol bug)", self.init.path)
            os._exit(EXIT_PROTOCOL)

    def enqueue_until_invalid(self, data: bytes) -> None:
        """A message does not decode as ``Message``: take those before it; it is the culprit."""
        down = msgspec.msgpack.decode(data, type=Down[msgspec.Raw])
        decode = msgspec.msgpack.Decoder(self.message_type).decode
        asks = dict(zip(down.asks[::2], down.asks[1::2], strict=True))
        good = []
        for raw in down.msgs:
            try:
                good.append(decode(raw))
            except msgspec.ValidationError as exc:
                self.poison = exc
                break
        positions = [i for k in asks if k < len(good) for i in (k, asks[k])]
        if good:
            self.enqueue(good, positions)
        if self.poison is not None:
            if len(good) in asks:
                self.errors.append((asks[len(good)], *_error_info(self.poison)))
            self.mailbox.put_system(_WAKE)    # run() sees the poison once the rest is handled

    # -- output -------------------------------------------------------------------------
    def attribute(self) -> None:
        """Turn the mailbox's handled count into parent messages handled."""
        done = self.mailbox.handled + self.refused - self.seen
        if not done:
            return
        self.seen += done
        runs = self.runs
        while done:
            run = runs[0]
            take = min(run[1], done)
            if run[0]:
                self.handled += take
            run[1] -= take
            done -= take
            if not run[1]:
                runs.popleft()

    def send_up(self, kind: int = REPLY, **extra: Any) -> None:
        self.attribute()
        if (kind == REPLY and not self.ids and not self.errors
                and self.handled == self.reported):
            return
        now = monotonic()
        stats = None
        if now - self.stats_at >= STATS_EVERY or kind != REPLY:
            self.stats_at = now
            hist = self.mailbox.latency
            stats = [count for _, count in hist.cumulative()] + [hist.total_seconds]
        up = Up(kind, self.handled, self.ids, self.values, self.errors, stats=stats, **extra)
        try:
            frame = self.encode(up)
        except TypeError:
            frame = self.encode(self.replace_unencodable(up))
        self.sock.send(frame, zmq.NOBLOCK)
        self.reported = self.handled
        self.ids, self.values, self.errors = [], [], []
        # A send may consume the edge the socket's FD would have signalled: look ourselves.
        if self.sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            self.on_readable()

    def replace_unencodable(self, up: Up) -> Up:
        ids, values, errors = [], [], list(up.errors)
        for ask_id, value in zip(up.ids, up.values, strict=True):
            try:
                self.encode(value)
            except TypeError as exc:
                errors.append((ask_id, "TypeError", f"reply is not msgpack-encodable: {exc}"))
            else:
                ids.append(ask_id)
                values.append(value)
        return Up(up.kind, up.handled, ids, values, errors, stats=up.stats)

    # -- lifecycle ----------------------------------------------------------------------
    async def serve(self) -> int:
        loop = asyncio.get_running_loop()
        try:
            return await self._serve(loop)
        finally:
            with contextlib.suppress(Exception):
                loop.remove_reader(self.sock.getsockopt(zmq.FD))
            self.sock.close()       # lingers until the last frames are out (bounded)
            self.ctx.term()

    async def _serve(self, loop: asyncio.AbstractEventLoop) -> int:
        init = self.init
        try:
            cls = _load_class(init)
            self.message_type = cls.Message
            self.decode = msgspec.msgpack.Decoder(Down[cls.Message]).decode
            instance = cls(*init.args, **init.kwargs)
            instance.ref = _SelfRef(self)
            ready = instance.started()
            if inspect.isawaitable(ready):
                await ready
        except Exception as exc:
            log.warning("remote actor %s failed to start", init.path, exc_info=True)
            self.send_up(START_FAILED, info=_error_info(exc))
            return EXIT_START_FAILED
        loop.add_reader(self.sock.getsockopt(zmq.FD), self.on_readable)
        loop.call_later(ORPHAN_POLL, self.check_parent, loop)
        self.sock.send(self.encode(Up(READY, pid=os.getpid())), zmq.NOBLOCK)
        self.on_readable()
        crashed = await self.run(instance)
        if crashed is None:
            self.send_up(BYE)
            _call_quietly(instance.stopped, init.path)
            return EXIT_STOPPED
        self.attribute()                  # the front run now holds the crashing message
        # a poison message never entered the mailbox: it is the next parent message
        message_from_parent = crashed is self.poison or bool(self.runs and self.runs[0][0])
        self.send_up(CRASHED, info=_error_info(crashed), culprit=message_from_parent)
        log.warning("remote actor %s crashed", init.path, exc_info=crashed)
        _call_quietly(lambda: instance.pre_restart(crashed), init.path)
        return EXIT_CRASHED

    def serve_now(self) -> None:
        """Handle what just arrived from the reader callback when the loop below is parked:
        the reply leaves without waiting for the task to wake (one loop turn less per ask).
        Any outcome but EMPTY is left to the task."""
        self.parked = False            # a reply's send may read more: no recursion here
        try:
            outcome = self.mailbox.process(self.handler, CHILD_BATCH)
            if outcome == EMPTY:
                self.send_up()
            else:
                self.outcome = outcome
        finally:
            self.parked = True

    async def run(self, instance: Any) -> BaseException | None:
        """As ``ActorCell._run``; replies go out before every wait. The crash, or None."""
        mailbox = self.mailbox
        handler = self.handler = instance.receive
        while True:
            outcome = self.outcome
            if outcome is None:
                outcome = mailbox.process(handler, CHILD_BATCH)
            else:
                self.outcome = None
            if outcome == EMPTY:
                # Only a poison found before this pass has nothing left ahead of it: the send
                # below may read a frame whose messages before the poison are still queued.
                poison = self.poison
                self.send_up()
                if poison is not None:
                    return poison
                waiter = mailbox.wait()
                if waiter is not None:
                    self.parked = True
                    try:
                        await waiter
                    finally:
                        self.parked = False
            elif outcome == BUDGET:
                self.send_up()
                await asyncio.sleep(0)
            elif outcome == SYSTEM:
                if isinstance(mailbox.take_system(), Stop):
                    return None
            elif outcome == AWAIT:
                self.send_up()
                try:
                    result = await mailbox.pending[2]
                except asyncio.CancelledError:
                    raise
                except BaseException as exc:  # a handler crash of any kind, or a refusal
                    mailbox.settle(error=exc)
                    error = mailbox.clear_failure()[1]
                    if not isinstance(error, Refused):
                        return error
                    self.refused += 1
                    continue
                mailbox.settle(result)
            elif outcome == FAILED:
                error = mailbox.clear_failure()[1]
                if not isinstance(error, Refused):   # a refusal is the ask's answer
                    return error
                self.refused += 1

    def check_parent(self, loop: asyncio.AbstractEventLoop) -> None:
        if os.getppid() != self.parent_pid:
            os._exit(EXIT_ORPHANED)
        loop.call_later(ORPHAN_POLL, self.check_parent, loop)
        if self.handled != self.reported or monotonic() - self.stats_at > STATS_EVERY:
            self.send_up()


def _call_quietly(hook: Any, path: str) -> None:
    try:
        hook()
    except Exception:
        log.exception("remote actor %s: hook raised (ignored)", path)


def _load_class(init: Init) -> type:
    if init.file is not None:
        spec = importlib.util.spec_from_file_location("__alys_remote_main__", init.file)
        assert spec is not None and spec.loader is not None
        found: Any = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = found
        spec.loader.exec_module(found)
    else:
        found = importlib.import_module(init.module)
    for part in init.qualname.split("."):
        found = getattr(found, part)
    return found


def set_death_signal(signum: int) -> None:
    """In a child process (e.g. a ``preexec_fn``): ask Linux to send ``signum`` when the thread
    that started it dies (``PR_SET_PDEATHSIG``), so a parent killed with SIGKILL leaves no
    orphans. Elsewhere a no-op: callers that must not outlive their parent also poll its pid."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signum)  # PR_SET_PDEATHSIG


def _die_with_parent(parent_pid: int) -> None:
    """SIGKILL when the parent dies; the pid check covers a parent already gone."""
    set_death_signal(signal.SIGKILL)
    if os.getppid() != parent_pid:
        os._exit(EXIT_ORPHANED)


def child_main(argv: list[str]) -> int:
    """Entry point of the child: ``python -m alys_fast.actors.remote ENDPOINT PPID INIT``."""
    endpoint, parent_pid, blob = argv
    _die_with_parent(int(parent_pid))
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the parent decides when we stop
    init = msgspec.msgpack.decode(base64.b64decode(blob), type=Init)
    import uvloop

    return uvloop.run(_Child(endpoint, int(parent_pid), init).serve())


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
