"""Errors of the actor runtime: one root, a few families, messages that carry the values."""

from __future__ import annotations


class ActorError(Exception):
    """Root of every error the actor runtime raises itself."""


class MailboxFull(ActorError):
    """``tell`` found the mailbox at capacity: the message was not enqueued (use ``send``)."""

    def __init__(self, owner: str, capacity: int) -> None:
        super().__init__(f"mailbox of {owner!r} is full ({capacity} messages waiting)")
        self.owner = owner
        self.capacity = capacity


class ActorStopped(ActorError):
    """The actor is down for good (temporary, Never policy, or system stopped)."""

    def __init__(self, owner: str) -> None:
        super().__init__(f"actor {owner!r} is stopped and accepts no messages")
        self.owner = owner


class CircuitOpen(ActorError):
    """The actor's circuit breaker is open: calls fail fast until the half-open probe."""

    def __init__(self, owner: str, retry_in: float) -> None:
        super().__init__(f"circuit of {owner!r} is open; retry in {retry_in:.3f}s")
        self.owner = owner
        self.retry_in = retry_in


class AskTimeout(ActorError, TimeoutError):
    """No reply within the ask's timeout; the message may still be handled later."""

    def __init__(self, owner: str, message: object, timeout: float) -> None:
        super().__init__(
            f"ask {type(message).__name__} to {owner!r} got no reply within {timeout}s"
        )
        self.owner = owner
        self.timeout = timeout


class ActorCrashed(ActorError):
    """The actor (or its process) died while this ask was in flight."""

    def __init__(self, owner: str, reason: str) -> None:
        super().__init__(f"actor {owner!r} died before replying: {reason}")
        self.owner = owner
        self.reason = reason


class ActorKilled(ActorCrashed):
    """The actor was killed: its task cancelled by ``kill()``, or its process by a signal.
    An abnormal exit (OTP's ``killed``): a transient child is restarted."""


class Shutdown(ActorError):
    """Raise from a handler to stop with OTP's ``shutdown`` reason: not a crash, so a
    transient child is not restarted (a permanent one is); no alert, no backoff."""

    def __init__(self, reason: str = "shutdown") -> None:
        super().__init__(reason)


class RemoteError(ActorError):
    """A remote actor's handler raised; the original type and message travel as text."""

    def __init__(self, owner: str, error_type: str, text: str) -> None:
        super().__init__(f"{owner!r} raised {error_type}: {text}")
        self.owner = owner
        self.error_type = error_type
        self.text = text


class Refused(ActorError):
    """A handler declined a message without failing: raised to the asker, the actor runs on.

    Raise it (or a subclass: a package's own refusals, e.g. ``MiningError``) from ``receive``
    for a request the actor cannot or will not serve — a bad argument, a state that forbids
    it. Unlike any other exception it is not a crash: no restart, no dead letter for an ask.
    From a remote actor it arrives as a ``Refused`` whose ``kind`` names the subclass raised.
    """

    def __init__(self, reason: str, kind: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind or type(self).__name__


class BadReply(ActorError):
    """An ask's reply is not of the ``reply_type`` its message declares (a bug in the actor)."""

    def __init__(self, owner: str, message: object, expected: object, reply: object) -> None:
        super().__init__(
            f"{owner!r} answered {type(message).__name__} with a {type(reply).__name__}, "
            f"not {getattr(expected, '__name__', expected)}"
        )
        self.owner = owner


class StartFailed(ActorError):
    """A child could not be started (its constructor or ``started`` raised)."""

    def __init__(self, path: str, error: BaseException) -> None:
        super().__init__(f"child {path!r} failed to start: {error!r}")
        self.path = path
        self.error = error


class Escalation(ActorError):
    """A supervisor exceeded its restart intensity and gave up on its children."""

    def __init__(self, path: str, restarts: int, period: float, cause: str) -> None:
        super().__init__(
            f"supervisor {path!r} exceeded {restarts} restarts in {period}s (last: {cause})"
        )
        self.path = path
        self.cause = cause
