"""Findings 2 and 3 of issue 17, reproduced against a server in a process of its own, whose
resident memory (/proc/<pid>/status VmRSS) is read while the attack runs: peers that make the
node write and never read cannot make it hold more than its budgets."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from websockets.sync.client import connect

from tests.node.harness import DevProcess
from tests.rpc.helpers import call

MIB = 1024 * 1024
pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")


def rss(pid: int) -> int:
    """Resident memory of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def masked(opcode: int, payload: bytes) -> bytes:
    """A client frame (masked, final, under 126 bytes)."""
    key = os.urandom(4)
    return (bytes((0x80 | opcode, 0x80 | len(payload))) + key
            + bytes(b ^ key[i % 4] for i, b in enumerate(payload)))


def websocket(port: int, source: str = "127.0.0.1") -> socket.socket:
    """A raw WebSocket from ``source``, handshake done; the caller never reads from it again."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    key = base64.b64encode(os.urandom(16))
    sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + b"\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)  # byte by byte: nothing past the handshake is read
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def post(url: str, payload: object) -> object:
    request = urllib.request.Request(url, msgspec.json.encode(payload),
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def dropped(sock: socket.socket, deadline: float) -> bool:
    """Whether the server resets ``sock`` before ``deadline`` (tested by writing, not reading)."""
    sock.setblocking(False)
    ping = masked(0x9, b"p")
    while time.monotonic() < deadline:
        try:
            sock.send(ping)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def rpc_process() -> Iterator[tuple[subprocess.Popen[str], int]]:
    limits = {"idle_timeout": 1.0, "linger": 0.2}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.rpc.rpc_process", json.dumps(limits)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("port "), line
        yield proc, int(line.split()[1])
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_a_million_unread_pings_stay_bounded_and_the_connection_is_dropped(rpc_process):
    proc, port = rpc_process
    before = rss(proc.pid)
    sock = websocket(port)
    sock.settimeout(3.0)
    chunk = masked(0x9, b"x" * 125) * 1000  # 131 bytes a ping, as the finding's
    sent = peak = 0
    reset = False
    try:
        for _ in range(1000):  # a million pings, or until the server stops taking them
            sock.sendall(chunk)
            sent += 1000
            if sent % 50_000 == 0:
                peak = max(peak, rss(proc.pid))
    except TimeoutError:
        pass  # the server stopped reading: backpressure reached the flooder
    except ConnectionError:
        reset = True  # dropped while still flooding
    peak = max(peak, rss(proc.pid))
    print(f"pings taken before backpressure: {sent:,} of 1,000,000; "
          f"server RSS {before / MIB:.0f} -> peak {peak / MIB:.0f} MiB")
    assert sent < 1_000_000, "the server read every ping: nothing held the flood back"
    assert peak - before < 48 * MIB
    assert reset or dropped(sock, time.monotonic() + 15), "the flooder was never dropped"
    sock.close()
    assert post(f"http://127.0.0.1:{port}/", call("eth_chainId"))["result"] == "0x1"


def test_400_connections_of_128_unread_new_heads_subscriptions(tmp_path):
    budget = 64
    node = DevProcess(tmp_path, 0.25, "--unsent-budget-mib", str(budget)).start()
    attackers: list[socket.socket] = []
    try:
        pid = node.proc.pid
        port = int(node.url.rstrip("/").rpartition(":")[2])
        baseline = rss(pid)
        subscribe = b"".join(
            masked(0x1, msgspec.json.encode(call("eth_subscribe", "newHeads", id_=i)))
            for i in range(128))
        for n in range(400):  # 40 from each of 10 addresses: under the per-address limit
            sock = websocket(port, f"127.0.1.{n % 10 + 1}")
            sock.sendall(subscribe)
            attackers.append(sock)
        with connect(node.ws_url, open_timeout=10) as honest:
            honest.send(msgspec.json.encode(call("eth_subscribe", "newHeads")).decode())
            assert "result" in json.loads(honest.recv(timeout=10))
            peak, heads, answers = 0, 0, []
            deadline = time.monotonic() + 12
            while time.monotonic() < deadline:
                answers.append(post(node.url, call("eth_blockNumber"))["result"])
                while True:
                    try:
                        json.loads(honest.recv(timeout=0.2))
                    except TimeoutError:
                        break
                    heads += 1
                peak = max(peak, rss(pid))
            metrics = urllib.request.urlopen(node.url + "metrics", timeout=10).read().decode()
        for sock in attackers:
            sock.close()
        attackers.clear()
        time.sleep(3)  # the node notices the closed sockets and frees what they held
        after = rss(pid)
        shed = next(float(line.split()[-1]) for line in metrics.splitlines()
                    if line.startswith('alys_rpc_refused_total{reason="unsent_budget"}'))
        print(f"node RSS {baseline / MIB:.0f} -> peak {peak / MIB:.0f} -> after "
              f"{after / MIB:.0f} MiB; {shed:.0f} slow connections shed; honest client: "
              f"{len(answers)} answers, {heads} heads")
        assert shed > 0, "the node-wide budget never shed a connection"
        assert peak - baseline < (budget + 96) * MIB
        assert after - baseline < 48 * MIB
        assert int(answers[-1], 16) > int(answers[0], 16) and heads > 5
    finally:
        for sock in attackers:
            sock.close()
        node.stop()


def test_frames_helper_builds_valid_masked_frames():
    frame = masked(0x9, b"hi")
    assert frame[0] == 0x89 and frame[1] == 0x82
    assert bytes(b ^ frame[2 + i % 4] for i, b in enumerate(frame[6:])) == b"hi"
    assert struct.unpack("!B", frame[:1])[0] & 0x0F == 0x9
