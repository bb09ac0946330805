"""Topics: typed publish/subscribe between actors, by path.

A :class:`Topic` names one kind of notification and the message type it carries. The
publisher's package defines its topics and their messages; subscribers import them, never
the reverse, so a new subscriber attaches without editing the publisher (reth's canonical
state notifications, not calls into known names).

Subscribers are actor *paths*, resolved when a message is published: a restarted subscriber
(same path, a new incarnation) keeps receiving without subscribing again, and one that is
declared but not started yet finds the message waiting in its mailbox. An actor class lists
the topics it follows in ``Actor.subscribes``; the system subscribes every cell of that class
when the tree is built. Delivery is a ``tell``: bounded and loss-tolerant — a subscriber whose
mailbox is full, or that is down, misses the message, and each miss is counted per
(topic, subscriber) in :attr:`Topics.missed` and logged.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from alys_fast.actors.errors import ActorStopped, CircuitOpen, MailboxFull

if TYPE_CHECKING:
    from alys_fast.actors.cell import ActorRef

log = logging.getLogger("alys.topics")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Topic(Generic[T]):
    """A notification channel: its ``name`` and the type of every message published on it."""

    name: str
    message: type[T]

    def __str__(self) -> str:
        return self.name


class Topics:
    """The subscriptions of one actor system and the delivery of what is published."""

    def __init__(self, resolve: Callable[[str], ActorRef]) -> None:
        self._resolve = resolve
        self._subscribers: dict[Topic[Any], list[str]] = {}
        #: Messages a subscriber missed (mailbox full, or down), per (topic name, path).
        self.missed: Counter[tuple[str, str]] = Counter()

    def subscribe(self, topic: Topic[Any], path: str) -> None:
        """Deliver ``topic`` to the actor at ``path`` from now on (idempotent)."""
        paths = self._subscribers.setdefault(topic, [])
        if path not in paths:
            paths.append(path)

    def unsubscribe(self, topic: Topic[Any], path: str) -> None:
        paths = self._subscribers.get(topic, [])
        if path in paths:
            paths.remove(path)

    def subscribers(self, topic: Topic[Any]) -> tuple[str, ...]:
        return tuple(self._subscribers.get(topic, ()))

    def publish(self, topic: Topic[T], message: T) -> int:
        """Tell ``message`` to every subscriber that can take it now; how many took it."""
        if not isinstance(message, topic.message):
            raise TypeError(
                f"topic {topic.name} carries {topic.message.__name__}, "
                f"not {type(message).__name__}"
            )
        delivered = 0
        for path in self._subscribers.get(topic, ()):
            try:
                self._resolve(path).tell(message)
            except (MailboxFull, ActorStopped, CircuitOpen) as exc:
                self.missed[topic.name, path] += 1
                log.warning("%s missed %s on %s: %s", path, type(message).__name__, topic, exc)
            else:
                delivered += 1
        return delivered
