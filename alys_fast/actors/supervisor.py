"""Supervisors: start children in order, watch their exits, restart them by the rules.

Strategies (which children a restart takes along):
- ``ONE_FOR_ONE``: only the child that exited is restarted.
- ``ONE_FOR_ALL``: every other child is terminated (reverse start order), then all are
  started again in start order — for children that cannot work without each other.
- ``REST_FOR_ONE``: the children started after the one that exited are terminated (reverse
  order), then it and they are started again in order — for pipelines.
In both group strategies a sibling that is ``TEMPORARY`` (or has the ``Never`` policy) is
terminated and not started again, and a sibling already down for good stays down, as OTP.

Whether and when a restart happens is decided in :mod:`alys_fast.actors.policies` (exit
kind, restart type, restart policy, intensity — the semantics are written there); this
module only carries the decisions out. A supervisor handles its children's exits one at a
time from its own task, as an OTP supervisor handles its ``EXIT`` messages; a delayed restart
is a timer that posts an event, so a backoff never holds up the other children.

Shutdown of children is always in reverse start order (later children may depend on earlier
ones), each in three steps: a ``Stop`` through the priority lane, a bounded wait, a cancel.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from alys_fast.actors.actor import Actor
from alys_fast.actors.cell import ActorCell, Ask
from alys_fast.actors.errors import ActorStopped, Escalation, StartFailed
from alys_fast.actors.policies import (
    IMMEDIATE,
    Never,
    Policy,
    PolicyState,
    Restart,
    RestartIntensity,
    Verdict,
    exit_kind,
    restart_due,
)

if TYPE_CHECKING:
    from alys_fast.actors.system import ActorSystem

log = logging.getLogger("alys.supervisor")


class Strategy(enum.Enum):
    ONE_FOR_ONE = "one_for_one"
    ONE_FOR_ALL = "one_for_all"
    REST_FOR_ONE = "rest_for_one"


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """How to start one actor and what to do when it exits."""

    name: str
    actor: type[Actor]
    args: tuple = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    restart: Restart = Restart.PERMANENT
    policy: Policy = IMMEDIATE
    shutdown: float = 5.0            # seconds a graceful stop may take before a kill
    mailbox: int = 10_000            # capacity of the user lane
    stuck_after: float = 10.0        # a handler running longer is reported stuck
    process: bool = False            # run in a child process, linked by ZeroMQ


@dataclass(frozen=True, slots=True)
class SupervisorSpec:
    """A supervisor and its children, in start order."""

    name: str
    strategy: Strategy
    children: tuple[ChildSpec | SupervisorSpec, ...] = ()
    max_restarts: int = 3
    period: float = 5.0
    restart: Restart = Restart.PERMANENT
    policy: Policy = IMMEDIATE
    shutdown: float = 30.0


@dataclass(frozen=True, slots=True)
class _Exit:
    child: Any
    error: BaseException | None
    generation: int          # the child's incarnation that exited


@dataclass(frozen=True, slots=True)
class _StartAgain:
    children: tuple
    generation: int


@dataclass(frozen=True, slots=True)
class _HalfOpen:
    child: Any
    generation: int


def _restartable(child: ActorCell | Supervisor) -> bool:
    """May a sibling's group restart start this child again? Not a temporary or Never one."""
    return child.spec.restart is not Restart.TEMPORARY and not isinstance(child.spec.policy, Never)


def _down_for_good(child: ActorCell | Supervisor) -> bool:
    """Closed after an exit that was not followed by a restart (stopped, or down by Never)."""
    return child.state in ("stopped", "down")


class Supervisor:
    """Runtime of one :class:`SupervisorSpec` node; also a child of its own parent."""

    kind = "supervisor"

    def __init__(
        self, spec: SupervisorSpec, path: str, parent: Supervisor | None, system: ActorSystem
    ) -> None:
        self.spec = spec
        self.path = path
        self.parent = parent
        self.system = system
        self.state = "new"
        self.generation = 0
        self.up_since = 0.0
        self.task: asyncio.Task | None = None
        self._events: asyncio.Queue = asyncio.Queue()
        self.intensity = RestartIntensity(spec.max_restarts, spec.period, system.clock)
        self.children: list[ActorCell | Supervisor] = []
        for child_spec in spec.children:
            child_path = f"{path}/{child_spec.name}"
            if isinstance(child_spec, SupervisorSpec):
                child: ActorCell | Supervisor = Supervisor(child_spec, child_path, self, system)
            elif child_spec.process:
                from alys_fast.actors.remote import RemoteCell

                child = RemoteCell(child_spec, child_path, self)
            else:
                child = ActorCell(child_spec, child_path, self)
            self.children.append(child)
            system.register(child)
        names = [c.name for c in spec.children]
        if len(set(names)) != len(names):
            raise ValueError(f"supervisor {path!r} has duplicate child names: {names}")
        self._policy = {
            c.path: PolicyState(c.spec.policy, system.clock, system.rng) for c in self.children
        }
        self._restarts = dict.fromkeys((c.path for c in self.children), 0)

    # -- as a child of its parent ----------------------------------------------------------
    async def start(self) -> None:
        """Start every child in order; if one fails, stop the started ones and re-raise."""
        self.generation += 1
        self.intensity.reset()
        self.up_since = self.system.clock()
        self._events = asyncio.Queue()
        self.task = asyncio.get_running_loop().create_task(self._run(), name=self.path)
        started: list[ActorCell | Supervisor] = []
        try:
            for child in self.children:
                await child.start()
                started.append(child)
        except BaseException:
            for child in reversed(started):
                await child.shutdown()
            self.task.cancel()
            self.state = "failed"
            raise
        self.state = "running"

    async def shutdown(self, timeout: float | None = None) -> None:
        """Stop the event task, then every child in reverse start order."""
        self.generation += 1
        task = self.task
        if task is not None and task is not asyncio.current_task() and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        for child in reversed(self.children):
            await child.shutdown()
        self.state = "stopped"

    def close_for_good(self, state: str) -> list:
        self.state = state
        return []

    @property
    def alive(self) -> bool:
        return self.state == "running"

    def call_hook(self, name: str, *args: Any) -> None:
        """Supervisors have no user hooks; present so parents treat all children alike."""

    def open_circuit(self, retry_at: float) -> None:
        self.state = "open"

    def start_probe(self) -> None:
        """A supervisor's half-open probe succeeds by starting."""
        if self.parent is not None:
            self.parent.probe_succeeded(self)

    # -- exits reported by children ---------------------------------------------------------
    def child_exited(
        self, child: ActorCell | Supervisor, error: BaseException | None, message: Any = None
    ) -> None:
        """Called from the child's task (or a watcher) when it ends; handled by our task."""
        if error is not None and message is not None:
            self.system.dead_letters.add(child.path, message, f"crashed: {error!r}")
        self._events.put_nowait(_Exit(child, error, child.generation))

    def probe_succeeded(self, child: ActorCell | Supervisor) -> None:
        self._policy[child.path].on_success()
        child.state = "running"
        log.info("%s: half-open probe handled, circuit closed", child.path)

    def restart_count(self, child: ActorCell | Supervisor) -> int:
        return self._restarts[child.path]

    async def _run(self) -> None:
        while True:
            event = await self._events.get()
            try:
                await self._handle(event)
            except Escalation as escalation:
                await self._give_up(escalation)
                return
            except Exception as exc:  # a fault of the supervisor itself: escalate it
                log.exception("supervisor %s failed handling %r", self.path, event)
                await self._give_up(Escalation(self.path, self.spec.max_restarts,
                                               self.spec.period, f"supervisor fault: {exc!r}"))
                return

    async def _handle(self, event: _Exit | _StartAgain | _HalfOpen) -> None:
        if isinstance(event, _StartAgain):
            if event.generation == self.generation:
                await self._start_children(event.children)
            return
        if isinstance(event, _HalfOpen):
            if event.generation == self.generation:
                self._count_restart(event.child, "half-open probe")
                self._policy[event.child.path].half_open()
                if await self._start_children((event.child,)):
                    event.child.start_probe()
            return
        if event.generation == event.child.generation:   # not restarted since
            await self._handle_exit(event.child, event.error)

    async def _handle_exit(
        self, child: ActorCell | Supervisor, error: BaseException | None
    ) -> None:
        kind = exit_kind(error)
        crashed = kind.abnormal
        if error is not None:
            log.warning("%s exited (%s): %r", child.path, kind.value, error)
        if not restart_due(child.spec.restart, kind):
            child.call_hook("stopped")
            self._dead_letter_leftovers(child, child.close_for_good("stopped"))
            return
        policy = self._policy[child.path]
        decision = policy.on_crash(child.up_since) if crashed else policy.on_normal_exit()
        if decision.verdict is Verdict.STAY_DOWN:
            self.system.alert(child.path, f"down for good after {error!r} (policy Never)")
            child.call_hook("stopped")
            self._dead_letter_leftovers(child, child.close_for_good("down"))
            return
        if decision.verdict is Verdict.RESTART:
            self._count_restart(child, repr(error) if crashed else "normal exit")
        if crashed:
            child.call_hook("pre_restart", error)
        else:
            child.call_hook("stopped")
        if decision.verdict is Verdict.OPEN:
            log.warning("%s: circuit open for %.2fs", child.path, decision.delay)
            child.open_circuit(self.system.clock() + decision.delay)
            self._later(decision.delay, _HalfOpen(child, self.generation))
            return
        siblings = [c for c in self._group(child) if c is not child and not _down_for_good(c)]
        for sibling in reversed(siblings):
            await sibling.shutdown()
        targets = [child, *(c for c in siblings if _restartable(c))]
        targets.sort(key=self.children.index)
        for sibling in siblings:
            if not _restartable(sibling):   # OTP: a terminated temporary child is gone
                self._dead_letter_leftovers(sibling, sibling.close_for_good("stopped"))
        for target in targets:
            target.state = "restarting"
        if decision.delay > 0:
            self._later(decision.delay, _StartAgain(tuple(targets), self.generation))
        else:
            await self._start_children(targets)

    def _count_restart(self, child: ActorCell | Supervisor, cause: str) -> None:
        if not self.intensity.add_restart():
            raise Escalation(self.path, self.spec.max_restarts, self.spec.period,
                             f"{child.path}: {cause}")
        self._restarts[child.path] += 1

    def _group(self, child: ActorCell | Supervisor) -> list[ActorCell | Supervisor]:
        """The children a restart of ``child`` takes along, by strategy (``child`` included)."""
        strategy = self.spec.strategy
        if strategy is Strategy.ONE_FOR_ONE:
            return [child]
        if strategy is Strategy.ONE_FOR_ALL:
            return list(self.children)
        return self.children[self.children.index(child):]

    async def _start_children(self, children: tuple | list) -> bool:
        """Start in order; a start failure counts as that child's crash (and may escalate)."""
        for child in children:
            if child.alive:      # already brought back by a group restart in the meantime
                continue
            try:
                await child.start()
            except StartFailed as exc:
                log.error("%s", exc)
                self._events.put_nowait(_Exit(child, exc.error, child.generation))
                return False
        return True

    def _later(self, delay: float, event: object) -> None:
        asyncio.get_running_loop().call_later(delay, self._events.put_nowait, event)

    def _dead_letter_leftovers(self, child: ActorCell | Supervisor, leftovers: list) -> None:
        for item in leftovers:
            if isinstance(item, Ask):
                if not item.future.done():
                    item.future.set_exception(ActorStopped(child.path))
                item = item.message
            self.system.dead_letters.add(child.path, item, "actor stopped")

    async def _give_up(self, escalation: Escalation) -> None:
        log.error("%s", escalation)
        self.generation += 1
        for child in reversed(self.children):
            await child.shutdown()
        self.state = "failed"
        if self.parent is not None:
            self.parent.child_exited(self, escalation)
        else:
            self.system.root_failed(escalation)

    # -- inspection -------------------------------------------------------------------------
    def health(self, now: float) -> dict:
        return {
            "name": self.spec.name,
            "path": self.path,
            "kind": self.kind,
            "strategy": self.spec.strategy.value,
            "state": self.state,
            "restarts": self.parent.restart_count(self) if self.parent else 0,
            "children": [child.health(now) for child in self.children],
        }

