"""One running actor: its mailbox (which outlives restarts), its instance and its task.

``ActorRef`` is the only handle others hold: it points at the cell, not at an instance, so
it stays valid across restarts. ``tell`` is the compiled mailbox's own method, so a tell
costs one C call.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import types
import typing
from typing import TYPE_CHECKING, Any

from alys_fast._cext import require
from alys_fast.actors.errors import (
    ActorKilled,
    AskTimeout,
    BadReply,
    CircuitOpen,
    Refused,
    StartFailed,
)

if TYPE_CHECKING:
    from alys_fast.actors.actor import Actor
    from alys_fast.actors.remote import RemoteCell
    from alys_fast.actors.supervisor import ChildSpec, Supervisor
    from alys_fast.actors.system import ActorSystem

_mailbox = require("mailbox")
Mailbox = _mailbox.Mailbox
Ask = _mailbox.Ask
monotonic = _mailbox.monotonic
EMPTY, BUDGET, SYSTEM, AWAIT, FAILED = (
    _mailbox.EMPTY, _mailbox.BUDGET, _mailbox.SYSTEM, _mailbox.AWAIT, _mailbox.FAILED,
)

log = logging.getLogger("alys.actors")

#: User messages handled per wake-up before yielding to other tasks.
BATCH = 1024


class Stop:
    """System message: finish the current message, then stop normally."""

    __slots__ = ()


@functools.cache
def reply_classes(message_type: type) -> tuple[type, ...] | None:
    """The classes a reply to ``message_type`` may be an instance of, from its ``reply_type``
    (``None``, ``X``, ``X | None``, ``list[X]``...: generic arguments are not walked); None
    when it declares none (or ``Any``): unchecked."""
    declared = getattr(message_type, "reply_type", Any)
    if declared is Any:
        return None
    members = typing.get_args(declared) if isinstance(
        declared, types.UnionType) or typing.get_origin(declared) is typing.Union else (declared,)
    classes = []
    for member in members:
        if member is None or member is type(None):
            classes.append(type(None))
        elif member is Any:
            return None
        else:
            classes.append(typing.get_origin(member) or member)
    return tuple(classes)


def _expire(future: asyncio.Future, path: str, message: Any, timeout: float) -> None:
    if not future.done():
        future.set_exception(AskTimeout(path, message, timeout))


class ActorRef:
    """Handle to an actor: ``tell``, ``send`` (with backpressure), ``ask``, ``stop``.

    The same class serves local and remote actors: it talks to the cell's *inbox* (the
    compiled mailbox of a local actor, the send buffer of a remote one), which offers
    ``tell``, ``ask(message, future)`` and ``wait_space``.
    """

    __slots__ = ("_cell", "_inbox", "path", "tell")

    def __init__(self, cell: ActorCell | RemoteCell) -> None:
        self._cell = cell
        self._inbox = cell.inbox
        self.path = cell.path
        #: Enqueue without waiting; raises MailboxFull, CircuitOpen or ActorStopped.
        self.tell = cell.inbox.tell

    async def send(self, message: Any) -> None:
        """Enqueue, waiting while the mailbox is full (backpressure instead of MailboxFull)."""
        inbox = self._inbox
        while (room := inbox.wait_space()) is not None:
            await room
        inbox.tell(message)

    async def ask(self, message: Any, timeout: float = 5.0) -> Any:
        """Send and wait for the reply, checked against the message's ``reply_type``.

        Raises ``Refused`` when the handler declined, AskTimeout, BadReply, or the crashing
        handler's own error (``RemoteError`` / ``ActorCrashed`` for a remote actor)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._inbox.ask(message, future)
        timer = loop.call_later(timeout, _expire, future, self.path, message, timeout)
        try:
            reply = await future
        finally:
            timer.cancel()
        expected = reply_classes(type(message))
        if expected is not None and not isinstance(reply, expected):
            raise BadReply(self.path, message, type(message).reply_type, reply)
        return reply

    @property
    def system(self) -> ActorSystem:
        return self._cell.parent.system

    def stop(self) -> None:
        """Ask the actor to stop normally after its current message."""
        self._cell.request_stop()

    def kill(self) -> None:
        """End the actor at once, mid-message (a cancelled task; SIGKILL for a remote one):
        an abnormal exit its supervisor handles as OTP's ``killed``."""
        self._cell.kill()

    def __repr__(self) -> str:
        return f"ActorRef({self.path!r})"


class ActorCell:
    """Runtime of one local actor, driven by its supervisor (start / shutdown / exits)."""

    kind = "actor"

    def __init__(self, spec: ChildSpec, path: str, parent: Supervisor) -> None:
        self.spec = spec
        self.path = path
        self.parent = parent
        self.mailbox = Mailbox(path, spec.mailbox)
        self.inbox = self.mailbox
        self.ref = ActorRef(self)
        self.instance: Actor | None = None
        self.task: asyncio.Task | None = None
        # new | running | crashed | exited | restarting | open | down | stopped
        self.state = "new"
        self.generation = 0
        self.up_since = 0.0
        self._probe_mark = -1        # handled count when a half-open probe started
        self.serving = False
        self._killed = False         # kill() cancelled the task: report it as an exit

    # -- supervisor side -------------------------------------------------------------
    async def start(self) -> None:
        """Build a fresh instance and run it; StartFailed if the constructor raises."""
        try:
            instance = self.spec.actor(*self.spec.args, **dict(self.spec.kwargs))
        except Exception as exc:
            raise StartFailed(self.path, exc) from exc
        instance.ref = self.ref
        self.instance = instance
        self.generation += 1
        self.up_since = monotonic()
        self.state = "running"
        self.serving = False        # True once started() returned: messages are being read
        self._killed = False
        self.mailbox.accept()
        self.task = asyncio.get_running_loop().create_task(
            self._run(instance, self.generation), name=self.path
        )

    async def shutdown(self, timeout: float | None = None) -> None:
        """Three steps: ask to stop (priority lane), wait ``shutdown`` s, then cancel."""
        task = self.task
        if task is None or task.done():
            self.call_hook("stopped")   # a crashed instance no restart will replace
            return
        self.generation += 1     # whatever this task reports now is stale
        if not self.serving:
            # Still in started(): it cannot read the stop request, and has no message to finish.
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            self.call_hook("stopped")
            self.state = "stopped"
            return
        if not self.mailbox.refusing:
            self.mailbox.put_system(Stop())
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout or self.spec.shutdown)
        except TimeoutError:
            log.warning("actor %s did not stop within %.1fs: killed", self.path,
                        timeout or self.spec.shutdown)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self.call_hook("stopped")
        self.state = "stopped"

    @property
    def alive(self) -> bool:
        return self.task is not None and not self.task.done()

    def request_stop(self) -> None:
        self.mailbox.put_system(Stop())

    def kill(self) -> None:
        task = self.task
        if task is not None and not task.done():
            self._killed = True
            task.cancel()

    def open_circuit(self, retry_at: float) -> None:
        self.state = "open"
        path = self.path
        self.mailbox.refuse(lambda: CircuitOpen(path, max(0.0, retry_at - monotonic())))

    def start_probe(self) -> None:
        self._probe_mark = self.mailbox.handled

    def close_for_good(self, state: str) -> list:
        """No restart is coming: refuse messages; return what waited (for dead letters)."""
        self.state = state
        return self.mailbox.close()

    def call_hook(self, name: str, *args: Any) -> None:
        instance = self.instance
        if instance is None:
            return
        try:
            getattr(instance, name)(*args)
        except Exception:
            log.exception("actor %s: %s() raised (ignored)", self.path, name)
        if name == "stopped":
            self.instance = None

    # -- the actor's own task ----------------------------------------------------------
    async def _run(self, instance: Actor, generation: int) -> None:
        mailbox = self.mailbox
        handler = instance.receive
        crashed: BaseException | None = None
        message: Any = None
        try:
            ready = instance.started()
            if inspect.isawaitable(ready):
                await ready
            self.serving = True
            while True:
                outcome = mailbox.process(handler, BATCH)
                if self._probe_mark >= 0 and mailbox.handled > self._probe_mark:
                    self._probe_mark = -1
                    self.parent.probe_succeeded(self)
                if outcome == EMPTY:
                    waiter = mailbox.wait()
                    if waiter is not None:
                        await waiter
                elif outcome == BUDGET:
                    await asyncio.sleep(0)
                elif outcome == SYSTEM:
                    if isinstance(mailbox.take_system(), Stop):
                        break
                elif outcome == AWAIT:
                    try:
                        result = await mailbox.pending[2]
                    except asyncio.CancelledError:
                        raise
                    except BaseException as exc:
                        mailbox.settle(error=exc)
                        message, crashed = mailbox.clear_failure()
                        if not self._refused(message, crashed):
                            break
                        message = crashed = None
                        continue
                    mailbox.settle(result)
                else:  # FAILED
                    message, crashed = mailbox.clear_failure()
                    if not self._refused(message, crashed):
                        break
                    message = crashed = None
        except asyncio.CancelledError:
            if not (self._killed and generation == self.generation):
                raise                # a shutdown's cancel: the supervisor expects no exit
            crashed = ActorKilled(self.path, "killed")
            pending = mailbox.pending
            if pending is not None:  # killed while awaiting a handler: fail its ask
                mailbox.settle(error=crashed)
                message = mailbox.clear_failure()[0]
        except Exception as exc:  # started() raised
            crashed = exc
        if generation == self.generation:
            self.state = "crashed" if crashed is not None else "exited"
            self.parent.child_exited(self, crashed, message)

    def _refused(self, message: Any, error: BaseException | None) -> bool:
        """A handler's ``Refused`` is its answer, not a crash (the asker already has it)."""
        if not isinstance(error, Refused):
            return False
        self.parent.system.note_refusal(self.path, message, error)
        return True

    # -- inspection ----------------------------------------------------------------------
    def health(self, now: float) -> dict:
        return actor_health(
            self, now, self.mailbox.busy_since, len(self.mailbox), self.mailbox.handled
        )


def actor_health(
    cell: ActorCell | RemoteCell, now: float, busy_since: float, depth: int, handled: int
) -> dict:
    """One actor's health entry, the same for local and remote cells."""
    busy_for = now - busy_since if busy_since else 0.0
    return {
        "name": cell.path.rsplit("/", 1)[-1],
        "path": cell.path,
        "kind": cell.kind,
        "state": cell.state,
        "restarts": cell.parent.restart_count(cell),
        "mailbox": depth,
        "handled": handled,
        "busy_for": round(busy_for, 6),
        "stuck": busy_for > cell.spec.stuck_after,
    }
