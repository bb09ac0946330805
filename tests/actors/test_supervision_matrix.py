"""OTP's restart matrix, end to end: restart type × exit kind × strategy, for a local child and
for a remote one (its own process), plus group restarts over temporary and ``Never`` siblings
and intensity escalation (OTP's ``supervisor_SUITE``).

Every tree is ``first, subject, last`` (``first`` and ``last`` local and permanent). The
expected outcome comes from the rules written in :mod:`alys_fast.actors.policies`, spelled
out here as data, not computed with the code under test. Nothing is timed: each test waits
for the event it expects (an incarnation changing, a state reached) with a generous bound.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest

from alys_fast.actors import (
    ActorCrashed,
    ActorStopped,
    ActorSystem,
    ChildSpec,
    Immediate,
    Never,
    Restart,
    Strategy,
    SupervisorSpec,
)
from alys_fast.actors.system import EXIT_ESCALATED
from tests.actors.helpers import eventually, run
from tests.actors.remote_actors import Boom, Counter, Halt, Incarnation, ShutDown

pytestmark = pytest.mark.timeout(60)

RESTART_TYPES = (Restart.PERMANENT, Restart.TRANSIENT, Restart.TEMPORARY)
EXITS = ("normal", "crash", "killed", "shutdown")
STRATEGIES = (Strategy.ONE_FOR_ONE, Strategy.ONE_FOR_ALL, Strategy.REST_FOR_ONE)

# OTP's do_restart: which exit kinds each restart type comes back from.
COMES_BACK = {
    Restart.PERMANENT: {"normal", "crash", "killed", "shutdown"},
    Restart.TRANSIENT: {"crash", "killed"},
    Restart.TEMPORARY: set(),
}
# Which siblings a restart of ``subject`` takes along.
TAKEN_ALONG = {
    Strategy.ONE_FOR_ONE: set(),
    Strategy.ONE_FOR_ALL: {"first", "last"},
    Strategy.REST_FOR_ONE: {"last"},
}
WAIT = 15.0  # seconds any expected event may take on a loaded machine (process starts)


def member(name: str, *, remote: bool = False, **kw) -> ChildSpec:
    return ChildSpec(name, Counter, process=remote, shutdown=5.0, **kw)


def tree(strategy: Strategy, *children: ChildSpec, max_restarts: int = 10) -> SupervisorSpec:
    return SupervisorSpec("root", strategy, children, max_restarts=max_restarts, period=30.0)


async def incarnation(system: ActorSystem, name: str) -> int:
    return await system.ref(name).ask(Incarnation(), timeout=WAIT)


async def incarnations(system: ActorSystem, names) -> dict[str, int]:
    return {name: await incarnation(system, name) for name in names}


async def restarted(system: ActorSystem, name: str, old: int) -> None:
    """Wait until ``name`` answers from an incarnation other than ``old``."""
    async def poll() -> None:
        while True:
            try:
                if await incarnation(system, name) != old:
                    return
            except ActorCrashed:   # asked the incarnation that was on its way out
                pass
            await asyncio.sleep(0.01)
    await asyncio.wait_for(poll(), WAIT)


def make_exit(system: ActorSystem, name: str, kind: str) -> None:
    ref = system.ref(name)
    if kind == "normal":
        ref.tell(Halt())
    elif kind == "crash":
        ref.tell(Boom("asked to crash"))
    elif kind == "shutdown":
        ref.tell(ShutDown())
    else:
        ref.kill()


def state(system: ActorSystem, name: str) -> str:
    return system.node(name).state


async def stays_down(system: ActorSystem, name: str, down_state: str = "stopped") -> None:
    """``name`` reached ``down_state`` and refuses messages."""
    await eventually(lambda: state(system, name) == down_state, timeout=WAIT)
    with pytest.raises(ActorStopped):
        await incarnation(system, name)


CASES = list(itertools.product(RESTART_TYPES, EXITS, STRATEGIES, (False, True)))


@pytest.mark.parametrize(
    ("restart", "exit_kind", "strategy", "remote"),
    [pytest.param(*case, marks=[pytest.mark.slow] if case[3] else []) for case in CASES],
    ids=[f"{r.value}-{e}-{s.value}-{'remote' if rm else 'local'}" for r, e, s, rm in CASES],
)
def test_restart_matrix(restart, exit_kind, strategy, remote):
    async def main():
        system = await ActorSystem(tree(
            strategy, member("first"), member("subject", remote=remote, restart=restart),
            member("last"),
        )).start()
        try:
            before = await incarnations(system, ("first", "subject", "last"))
            make_exit(system, "subject", exit_kind)
            if exit_kind in COMES_BACK[restart]:
                await restarted(system, "subject", before["subject"])
                taken_along = TAKEN_ALONG[strategy]
            else:
                await stays_down(system, "subject")
                taken_along = set()
            after = await incarnations(system, ("first", "last"))
            for name in ("first", "last"):
                assert (after[name] != before[name]) == (name in taken_along), name
            assert system.exit_code is None
        finally:
            await system.stop()

    run(main())


GROUPS = [
    pytest.param(strategy, remote, marks=[pytest.mark.slow] if remote else [],
                 id=f"{strategy.value}-{'remote' if remote else 'local'}")
    for strategy in (Strategy.ONE_FOR_ALL, Strategy.REST_FOR_ONE) for remote in (False, True)
]


@pytest.mark.parametrize(("strategy", "remote"), GROUPS)
def test_group_restart_terminates_a_temporary_sibling_and_leaves_it_down(strategy, remote):
    async def main():
        system = await ActorSystem(tree(
            strategy, member("first"),
            member("temporary", remote=remote, restart=Restart.TEMPORARY), member("last"),
        )).start()
        try:
            before = await incarnations(system, ("first", "temporary", "last"))
            make_exit(system, "first", "crash")   # before it: both strategies take it along
            await stays_down(system, "temporary")
            await restarted(system, "last", before["last"])
            assert await incarnation(system, "first") != before["first"]
        finally:
            await system.stop()

    run(main())


@pytest.mark.parametrize(("strategy", "remote"), GROUPS)
def test_a_never_child_left_down_stays_down_through_a_group_restart(strategy, remote):
    async def main():
        system = await ActorSystem(tree(
            strategy, member("first"), member("never", remote=remote, policy=Never()),
            member("last"),
        )).start()
        try:
            make_exit(system, "never", "crash")
            await stays_down(system, "never", "down")
            assert [path for path, _ in system.alerts] == ["root/never"]
            before = await incarnation(system, "last")
            make_exit(system, "first", "crash")
            await restarted(system, "last", before)
            await stays_down(system, "never", "down")
        finally:
            await system.stop()

    run(main())


@pytest.mark.parametrize(("strategy", "remote"), GROUPS)
def test_a_running_never_child_is_terminated_by_a_group_restart_and_stays_down(strategy, remote):
    async def main():
        system = await ActorSystem(tree(
            strategy, member("first"), member("never", remote=remote, policy=Never()),
            member("last"),
        )).start()
        try:
            await incarnation(system, "never")
            make_exit(system, "first", "crash")
            await stays_down(system, "never")
            assert await incarnation(system, "last")
        finally:
            await system.stop()

    run(main())


@pytest.mark.parametrize(
    "remote", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["local", "remote"])
@pytest.mark.parametrize("exit_kind", ["crash", "killed"])
def test_intensity_exceeded_escalates_to_the_root(remote, exit_kind):
    async def main():
        spec = SupervisorSpec(
            "root", Strategy.ONE_FOR_ONE,
            (member("subject", remote=remote, policy=Immediate()),), max_restarts=2, period=60.0,
        )
        system = await ActorSystem(spec).start()
        try:
            for _ in range(2):   # two restarts: within the intensity
                old = await incarnation(system, "subject")
                make_exit(system, "subject", exit_kind)
                await restarted(system, "subject", old)
            make_exit(system, "subject", exit_kind)   # the third is one too many
            assert await asyncio.wait_for(system.wait(), WAIT) == EXIT_ESCALATED
            assert "exceeded 2 restarts" in system.exit_reason
        finally:
            await system.stop()

    run(main())
