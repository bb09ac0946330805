"""The ``Actor`` base class: state lives in the instance, messages arrive one at a time.

Hooks and which task runs them:
- ``started()`` — the actor's own task, before the first message; raising is a crash.
- ``receive(message)`` — the actor's own task; plain or ``async``; the return value is the
  reply to an ``ask`` (of the message's ``reply_type`` when it declares one); raising
  :class:`~alys_fast.actors.errors.Refused` declines the message: the asker gets it and the
  actor goes on; raising anything else is a crash: the message goes to dead letters (it is
  not retried), the asker gets the error, the supervisor decides what happens next.
- ``pre_restart(error)`` — the supervisor's task, on the old instance, before it is replaced.
- ``stopped()`` — the supervisor's task (or the actor's own on a normal stop), once, when the
  instance is done for good. Errors raised by these two are logged and ignored, as OTP does
  with ``terminate``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from alys_fast.actors.cell import ActorRef
    from alys_fast.actors.system import ActorSystem
    from alys_fast.actors.topics import Topic


class Actor:
    """Base class of every actor; subclass it and implement :meth:`receive`."""

    #: msgspec type of the messages a remote copy of this actor decodes (a tagged union).
    Message: ClassVar[Any] = Any
    #: msgspec type of its replies, for remote decoding.
    Reply: ClassVar[Any] = Any
    #: Topics every cell of this class is subscribed to when the tree is built.
    subscribes: ClassVar[tuple[Topic[Any], ...]] = ()

    ref: ActorRef

    @property
    def system(self) -> ActorSystem:
        """The system this actor runs in: peers by path (``system.ref``), ``publish``."""
        return self.ref.system

    def started(self) -> Any:
        """Called before the first message (may be ``async``)."""

    def receive(self, message: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not implement receive()")

    def pre_restart(self, error: BaseException) -> None:
        """Called on the crashed instance before a fresh one replaces it."""

    def stopped(self) -> None:
        """Called once when this instance is done (stop, shutdown, or no restart)."""

    def stop(self) -> None:
        """Stop this actor normally after the current message (a permanent child restarts)."""
        self.ref.stop()
