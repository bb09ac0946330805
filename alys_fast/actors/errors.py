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


class RemoteError(ActorError):
    """A remote actor's handler raised; the original type and message travel as text."""

    def __init__(self, owner: str, error_type: str, text: str) -> None:
        super().__init__(f"{owner!r} raised {error_type}: {text}")
        self.owner = owner
        self.error_type = error_type
        self.text = text


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
