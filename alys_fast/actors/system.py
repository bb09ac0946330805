"""The actor system: the root supervisor, dead letters, alerts, topics, health and metrics.

Escalation to the root ends the system: every actor is stopped (reverse start order) and
:meth:`ActorSystem.wait` returns a non-zero exit code, after a log line that says why.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter, deque
from typing import Any

from alys_fast.actors.cell import ActorCell, ActorRef, monotonic
from alys_fast.actors.directory import Directory
from alys_fast.actors.errors import Escalation
from alys_fast.actors.metrics import ActorMetrics
from alys_fast.actors.policies import Clock
from alys_fast.actors.supervisor import Supervisor, SupervisorSpec
from alys_fast.actors.topics import Topic, Topics

log = logging.getLogger("alys.system")

#: Exit code of a system stopped by an escalation to the root.
EXIT_ESCALATED = 70


class DeadLetters:
    """Messages that were never handled: counted per actor, logged by type, last few kept."""

    def __init__(self, keep: int = 256) -> None:
        self.counts: Counter[str] = Counter()
        self.recent: deque[tuple[str, str, str]] = deque(maxlen=keep)

    def add(self, path: str, message: Any, reason: str) -> None:
        self.counts[path] += 1
        kind = type(message).__name__
        self.recent.append((path, kind, reason))
        log.warning("dead letter to %s: %s (%s)", path, kind, reason)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class ActorSystem:
    """Owns one supervision tree; ``start``, ``ref(path)``, ``health``, ``stop``, ``wait``."""

    def __init__(
        self,
        root: SupervisorSpec,
        *,
        clock: Clock = monotonic,
        seed: int | None = None,
        watchdog_interval: float = 1.0,
        directory: Directory | None = None,
    ) -> None:
        """``directory``: bound to this system, for services built before it (see
        :mod:`.directory`)."""
        self.spec = root
        self.clock = clock
        self.rng = random.Random(seed)
        self.dead_letters = DeadLetters()
        self.alerts: list[tuple[str, str]] = []
        #: Messages handlers declined with ``Refused``, per actor path.
        self.refusals: Counter[str] = Counter()
        self.topics = Topics(self.ref)
        self.exit_code: int | None = None
        self.exit_reason = ""
        self._nodes: dict[str, ActorCell | Supervisor] = {}
        self._stopped: asyncio.Event | None = None
        self._watchdog: asyncio.Task | None = None
        self._watchdog_interval = watchdog_interval
        self._reported_stuck: set[str] = set()
        self.metrics = ActorMetrics(self)
        self.root = Supervisor(root, root.name, None, self)
        if directory is not None:
            directory.bind(self)

    def register(self, node: ActorCell | Supervisor) -> None:
        if node.path in self._nodes:
            raise ValueError(f"duplicate actor path {node.path!r}")
        self._nodes[node.path] = node
        if node.kind != "supervisor":
            for topic in node.spec.actor.subscribes:
                self.topics.subscribe(topic, node.path)

    def publish(self, topic: Topic, message: object) -> int:
        """Tell ``message`` to the subscribers of ``topic`` (see :mod:`.topics`)."""
        return self.topics.publish(topic, message)

    def note_refusal(self, path: str, message: object, refusal: BaseException) -> None:
        self.refusals[path] += 1
        log.debug("%s refused %s: %s", path, type(message).__name__, refusal)

    def nodes(self) -> list[ActorCell | Supervisor]:
        return list(self._nodes.values())

    async def start(self) -> ActorSystem:
        self._stopped = asyncio.Event()
        await self.root.start()
        self._watchdog = asyncio.get_running_loop().create_task(self._watch(), name="watchdog")
        log.info("actor system %s started (%d actors)", self.spec.name, len(self._nodes))
        return self

    def ref(self, path: str) -> ActorRef:
        """The ref of the actor at ``path`` (relative to the root, e.g. ``chain/engine``)."""
        node = self.node(path)
        if node.kind == "supervisor":
            raise KeyError(f"{path!r} is a supervisor, not an actor")
        return node.ref

    def node(self, path: str) -> ActorCell | Supervisor:
        node = self._nodes.get(path) or self._nodes.get(f"{self.root.path}/{path}")
        if node is None:
            raise KeyError(f"no actor or supervisor at {path!r}")
        return node

    def alert(self, path: str, text: str) -> None:
        self.alerts.append((path, text))
        log.error("ALERT %s: %s", path, text)

    def root_failed(self, escalation: Escalation) -> None:
        """The root gave up: record why and let :meth:`wait` return a non-zero code."""
        log.critical("stopping the node: %s", escalation)
        self._finish(EXIT_ESCALATED, str(escalation))

    def _finish(self, code: int, reason: str) -> None:
        if self.exit_code is None:
            self.exit_code, self.exit_reason = code, reason
        if self._stopped is not None:
            self._stopped.set()

    async def stop(self, reason: str = "requested", exit_code: int = 0) -> int:
        """Stop every actor (reverse start order) and return the exit code."""
        self._finish(exit_code, reason)
        if self._watchdog is not None:
            self._watchdog.cancel()
            await asyncio.gather(self._watchdog, return_exceptions=True)
        await self.root.shutdown()
        return self.exit_code or 0

    async def until_stopping(self) -> None:
        """Return once a stop was asked for or the root escalated (the tree may still run)."""
        assert self._stopped is not None, "start() the system first"
        await self._stopped.wait()

    async def wait(self) -> int:
        """Wait until the system is stopped (by ``stop`` or an escalation); the exit code."""
        await self.until_stopping()
        return await self.stop(self.exit_reason)

    def health(self) -> dict:
        """The tree with every node's state, restarts, mailbox depth and stuck flag."""
        tree = self.root.health(monotonic())
        tree["alerts"] = [{"path": p, "text": t} for p, t in self.alerts]
        tree["dead_letters"] = self.dead_letters.total
        return tree

    def stuck(self) -> list[str]:
        now = monotonic()
        return [
            node.path for node in self._nodes.values()
            if node.kind != "supervisor" and node.health(now)["stuck"]
        ]

    async def _watch(self) -> None:
        """Log each actor once when its handler runs past its ``stuck_after`` deadline."""
        while True:
            await asyncio.sleep(self._watchdog_interval)
            stuck = set(self.stuck())
            for path in stuck - self._reported_stuck:
                log.error("actor %s is stuck: its handler runs past its deadline", path)
            self._reported_stuck = stuck
