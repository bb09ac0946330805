"""Remote actors end to end: real child processes over ZeroMQ (ipc://), bounded in time.

Every test checks that no child process outlives it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import msgspec
import pytest
import zmq

from alys_fast.actors import (
    Actor,
    ActorCrashed,
    ActorSystem,
    ChildSpec,
    MailboxFull,
    RemoteError,
    Restart,
    StartFailed,
    Strategy,
    SupervisorSpec,
)
from alys_fast.actors.remote import Down, Init, _Child
from alys_fast.actors.system import EXIT_ESCALATED
from tests.actors.helpers import eventually, run
from tests.actors.remote_actors import Add, Block, Boom, Counter, Halt, Pid, Slow, Total
from tests.conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


def tree(*children: ChildSpec, max_restarts: int = 5, period: float = 30.0) -> SupervisorSpec:
    return SupervisorSpec("root", Strategy.ONE_FOR_ONE, children, max_restarts=max_restarts,
                          period=period)


def remote(name: str = "c", *args, **kw) -> ChildSpec:
    return ChildSpec(name, Counter, args=args, process=True, **kw)


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone: it has exited)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def child(system: ActorSystem, name: str = "c") -> dict:
    return next(c for c in system.health()["children"] if c["name"] == name)


async def new_pid(system: ActorSystem, old: int, name: str = "c") -> int:
    def restarted() -> bool:
        pid = child(system, name)["pid"]
        return pid is not None and pid != old

    await eventually(restarted, timeout=10)
    return child(system, name)["pid"]


def test_tell_ask_error_and_restart_across_the_process_boundary():
    async def main():
        system = await ActorSystem(tree(remote("c", 10))).start()
        ref = system.ref("c")
        pid = await ref.ask(Pid())
        assert pid != os.getpid() and child(system)["pid"] == pid
        ref.tell(Add(1))
        ref.tell(Add(2))
        assert await ref.ask(Add(3)) == 16
        assert await ref.ask(Total()) == 16
        assert child(system)["handled"] == 5

        with pytest.raises(RemoteError) as caught:
            await ref.ask(Boom("bad input"))
        assert (caught.value.error_type, caught.value.text) == ("ValueError", "bad input")
        new = await new_pid(system, pid)
        assert child(system)["restarts"] == 1
        assert await ref.ask(Total()) == 10           # a fresh instance, same ref
        assert await ref.ask(Pid()) == new
        assert system.dead_letters.counts["root/c"] == 1   # the crashing Boom
        await system.stop()
        assert not alive(pid) and not alive(new)

    run(main())


def test_kill_9_mid_load_fails_asks_in_flight_and_restarts():
    async def main():
        system = await ActorSystem(tree(remote("c"))).start()
        ref = system.ref("c")
        pid = await ref.ask(Pid())
        asks = [asyncio.ensure_future(ref.ask(Slow(0.005, i), timeout=10)) for i in range(200)]
        await eventually(lambda: child(system)["handled"] >= 11)
        os.kill(pid, signal.SIGKILL)
        started = time.monotonic()
        results = await asyncio.gather(*asks, return_exceptions=True)
        assert time.monotonic() - started < 5
        crashed = [r for r in results if isinstance(r, ActorCrashed)]
        assert crashed, "asks in flight must fail"
        assert all("process exited with code -9" in str(r) for r in crashed)
        assert all(isinstance(r, ActorCrashed) or r == i for i, r in enumerate(results))

        new = await new_pid(system, pid)
        assert not alive(pid)
        assert child(system)["restarts"] == 1
        assert await ref.ask(Add(2)) == 2
        for _ in range(5):
            ref.tell(Add(1))
        assert await ref.ask(Total()) == 7
        await system.stop()
        assert not alive(new)

    run(main())


def test_repeated_kills_exceed_intensity_and_escalate():
    async def main():
        system = await ActorSystem(tree(remote("c"), max_restarts=2)).start()
        pids = []
        pid = await system.ref("c").ask(Pid())
        for _ in range(2):
            pids.append(pid)
            os.kill(pid, signal.SIGKILL)
            pid = await new_pid(system, pid)
        pids.append(pid)
        os.kill(pid, signal.SIGKILL)
        assert await asyncio.wait_for(system.wait(), 10) == EXIT_ESCALATED
        assert "exceeded 2 restarts" in system.exit_reason
        await eventually(lambda: not any(alive(p) for p in pids))

    run(main())


def test_normal_stop_restarts_a_permanent_child_and_ends_a_transient_one():
    async def main():
        system = await ActorSystem(tree(
            remote("p", 1), remote("t", 2, restart=Restart.TRANSIENT)
        )).start()
        p_pid, t_pid = child(system, "p")["pid"], child(system, "t")["pid"]
        assert await system.ref("p").ask(Halt()) == 0
        await new_pid(system, p_pid, "p")
        assert await system.ref("p").ask(Total()) == 1
        system.ref("t").stop()
        await eventually(lambda: child(system, "t")["state"] == "stopped")
        assert child(system, "t")["pid"] is None and not alive(t_pid)
        assert child(system, "p")["restarts"] == 1 and child(system, "t")["restarts"] == 0
        await system.stop()

    run(main())


def test_shutdown_kills_a_child_that_does_not_stop_in_time():
    async def main():
        system = await ActorSystem(tree(remote("c", shutdown=0.3))).start()
        ref = system.ref("c")
        pid = await ref.ask(Pid())
        ref.tell(Block(30))
        await eventually(lambda: child(system)["busy_for"] > 0.05)
        started = time.monotonic()
        await system.stop()
        assert time.monotonic() - started < 3
        assert not alive(pid)

    run(main())


def test_system_stop_leaves_no_child_process():
    async def main():
        system = await ActorSystem(tree(*(remote(f"c{i}", i) for i in range(3)))).start()
        pids = [child(system, f"c{i}")["pid"] for i in range(3)]
        assert all(alive(p) for p in pids) and len(set(pids)) == 3
        assert await system.stop() == 0
        assert not any(alive(p) for p in pids)

    run(main())


def test_children_die_with_their_parent_process():
    script = textwrap.dedent("""
        import os, sys
        from alys_fast.actors import ActorSystem, ChildSpec, Strategy, SupervisorSpec
        from alys_fast.actors.runtime import run
        from tests.actors.remote_actors import Counter

        async def main():
            spec = SupervisorSpec("root", Strategy.ONE_FOR_ONE,
                                  (ChildSpec("c", Counter, process=True),))
            system = await ActorSystem(spec).start()
            pid = system.health()["children"][0]["pid"]
            print(pid, system.node("c")._link.tmpdir, flush=True)
            os._exit(0)

        run(main())
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                         text=True, timeout=30, check=True)
    pid, tmpdir = out.stdout.split()
    shutil.rmtree(tmpdir, ignore_errors=True)     # the dead parent could not remove it
    deadline = time.monotonic() + 5
    while alive(int(pid)) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not alive(int(pid))


def test_start_failure_is_reported_as_start_failed():
    async def main():
        system = ActorSystem(tree(remote("c", kwargs={"fail_start": True})))
        with pytest.raises(StartFailed, match="told to fail at start"):
            await system.start()

    run(main())


def test_mailbox_bounds_what_is_buffered_and_in_flight():
    async def main():
        system = await ActorSystem(tree(remote("c", mailbox=100))).start()
        ref = system.ref("c")
        for _ in range(100):
            ref.tell(Add(1))
        with pytest.raises(MailboxFull):
            ref.tell(Add(1))
        await ref.send(Add(1))                      # waits for the child to catch up
        assert await ref.ask(Total()) == 101
        with pytest.raises(TypeError):
            ref.tell(object())                      # refused at once: msgpack cannot carry it
        assert await ref.ask(Total()) == 101
        await system.stop()

    run(main())


class _Local(Actor):
    def receive(self, message):
        return message


def test_specs_that_cannot_cross_a_process_boundary_are_refused_up_front():
    class Nested(Actor):
        pass

    with pytest.raises(TypeError, match="inside a function"):
        ActorSystem(tree(ChildSpec("n", Nested, process=True)))
    with pytest.raises(TypeError, match="msgpack-encodable"):
        ActorSystem(tree(ChildSpec("c", Counter, args=(object(),), process=True)))
    ActorSystem(tree(ChildSpec("ok", _Local, process=True)))   # module level: fine


def test_a_message_the_child_cannot_decode_is_a_crash_of_that_message():
    async def main():
        system = await ActorSystem(tree(remote("c"))).start()
        ref = system.ref("c")
        pid = await ref.ask(Pid())
        ref.tell(Add(1))
        with pytest.raises(RemoteError) as caught:
            await ref.ask({"type": "Nope"})          # not in Counter.Message
        assert caught.value.error_type == "ValidationError"
        ref.tell(Add(5))                             # after the culprit: kept for the restart
        await new_pid(system, pid)
        assert await ref.ask(Total()) == 5
        assert system.dead_letters.counts["root/c"] == 1
        assert child(system)["restarts"] == 1        # the culprit crashed one incarnation
        await system.stop()

    run(main())


def test_messages_ahead_of_an_undecodable_one_are_handled_before_the_crash(tmp_path):
    """The child may read a frame while it sends a reply (the send can take the socket's
    readable edge). Here the frame ``[Add(1), <undecodable>]`` is read that way, right after the
    reply to ``Pid``: ``Add(1)`` must still be handled and counted before the crash, or the
    parent takes it for the culprit and the real one crashes the next incarnation too."""
    endpoint = f"ipc://{tmp_path}/s"
    parent = zmq.Context.instance().socket(zmq.PAIR)
    parent.bind(endpoint)
    init = Init(Counter.__module__, Counter.__qualname__, None, "root/c", [], {}, 16)
    worker = _Child(endpoint, os.getpid(), init)
    worker.message_type = Counter.Message
    worker.decode = msgspec.msgpack.Decoder(Down[Counter.Message]).decode
    actor = Counter()

    async def main():
        worker.enqueue([Pid()], [0, 1])                 # ask 1, already read from the socket
        parent.send(msgspec.msgpack.encode(Down([Add(1), {"type": "Nope"}], [1, 2])))
        assert worker.sock.poll(5000) == zmq.POLLIN     # waiting, not read yet
        return await asyncio.wait_for(worker.run(actor), 10)

    try:
        crash = run(main())
        worker.attribute()
        assert isinstance(crash, msgspec.ValidationError) and crash is worker.poison
        assert actor.total == 1 and worker.handled == 2     # Pid and Add(1), then the culprit
    finally:
        worker.sock.close(linger=0)
        worker.ctx.term()
        parent.close(linger=0)
