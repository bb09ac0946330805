"""Run a real dev node for a test: as a subprocess (what a user runs; can be kill -9'd) or on a
uvloop in a background thread (so a test can reach into its actor system)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import msgspec
import uvloop

from alys_fast.chain.spec import DEV_AUTHORITY_KEY, dev_spec
from alys_fast.node.node import Node
from alys_fast.node.settings import NodeSettings
from alys_fast.rpc.actor import node_methods
from alys_fast.rpc.dispatch import Methods
from alys_fast.rpc.eth import EthApi
from alys_fast.storage.actor import StoreClient

_URL = re.compile(r"JSON-RPC\s+(http://\S+)")


class DevProcess:
    """``alys-fast dev --port 0`` in a subprocess; ``url`` once its banner is printed."""

    def __init__(self, data_dir: Path, block_time: float = 0.2, *extra: str) -> None:
        self.data_dir = data_dir
        self.args = [
            sys.executable, "-m", "alys_fast", "dev", "--port", "0", "--data-dir", str(data_dir),
            "--block-time", str(block_time), "--log-level", "WARNING", *extra,
        ]
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self, timeout: float = 30.0) -> DevProcess:
        self.proc = subprocess.Popen(
            self.args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        deadline = time.monotonic() + timeout
        seen = []
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            match = _URL.search(line)
            if match:
                self.url = match.group(1)
                threading.Thread(target=self._drain, daemon=True).start()
                return self
        self.kill()
        raise RuntimeError("dev node did not start:\n" + "".join(seen))

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for _ in self.proc.stdout:
            pass

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> int:
        """SIGTERM and wait: the graceful path."""
        assert self.proc is not None
        return terminate(self.proc)


def terminate(proc: subprocess.Popen[str]) -> int:
    """SIGTERM, wait (SIGKILL after 20 s); the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return proc.returncode


@contextlib.contextmanager
def running_node(data_dir: Path, **kwargs: Any) -> Iterator[ThreadNode]:
    """A started :class:`ThreadNode`, stopped on exit (module fixtures use it)."""
    node = ThreadNode(data_dir, **kwargs).start()
    try:
        yield node
    finally:
        node.stop()


class ThreadNode:
    """A dev node on uvloop in a background thread; ``call(coro)`` runs on its loop."""

    def __init__(self, data_dir: Path, slot_ms: int = 200, **ctx_args: Any) -> None:
        spec = ctx_args.pop("spec", None) or dev_spec(slot_ms=slot_ms)
        # Short slots on a busy test machine: /health calls the head stalled after 5 s, not
        # 3 slots, unless a test asks for its own bound.
        ctx_args.setdefault("stall_slots", max(3, 5000 // spec.slot_ms))
        self.ctx = NodeSettings(
            spec=spec, data_dir=data_dir, authority_key=bytes.fromhex(DEV_AUTHORITY_KEY[2:]),
            rpc_port=0, **ctx_args,
        )
        self.loop = uvloop.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.node: Node | None = None

    def start(self) -> ThreadNode:
        self.thread.start()

        async def boot() -> Node:
            return await Node(self.ctx).start()

        self.node = self.call(boot())
        return self

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float = 30.0) -> Any:
        future: Future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    @property
    def url(self) -> str:
        assert self.node is not None
        return self.node.url

    @property
    def ws_url(self) -> str:
        assert self.node is not None
        return self.node.ws_url

    def method_table(self) -> Methods:
        """The node's own RPC method table over its running actors (as its RPC actor builds
        it), for tests that call methods without the HTTP server."""
        node = self.node
        assert node is not None

        async def build() -> Methods:
            head = await StoreClient(node.directory).head_header()
            api = EthApi(node.rpc_settings.spec, head, node.directory, node.stats,
                         node.rpc_settings.execution)
            return node_methods(node.rpc_settings, node.rpc, node.directory, api)

        return self.call(build())

    def stop(self) -> None:
        if self.node is not None:
            self.call(self.node.stop())
            self.node = None
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def rpc(url: str, method: str, *params: Any) -> Any:
    """One JSON-RPC call with the standard library; returns the result or raises RuntimeError."""
    import urllib.request

    body = msgspec.json.encode({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        answer = msgspec.json.decode(response.read())
    if "error" in answer:
        raise RuntimeError(answer["error"])
    return answer["result"]
