"""Run anvil (foundry's dev node) for a differential test: find or install the binary, start it
on 127.0.0.1 with a port it picks, talk JSON-RPC to it, and always stop it.

Every wait is bounded: the install (``INSTALL_TIMEOUT``), the start (``START_TIMEOUT``), each
request (``REQUEST_TIMEOUT``) and the stop (SIGTERM, then SIGKILL of the process group).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = ROOT / "tools" / "install_anvil.sh"
INSTALL_TIMEOUT = 300.0
START_TIMEOUT = 30.0
REQUEST_TIMEOUT = 30.0

_LISTENING = re.compile(r"Listening on 127\.0\.0\.1:(\d+)")


class AnvilUnavailable(RuntimeError):
    """No anvil binary could be found or installed (the tests skip with this message)."""


def _runs(binary: str) -> bool:
    try:
        done = subprocess.run([binary, "--version"], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def find_anvil(*, install: bool = True) -> str:
    """The anvil binary: ``$ALYS_ANVIL``, else the install script's cache, else ``anvil`` on
    PATH, else (``install``) what ``tools/install_anvil.sh`` installs, run once with a timeout.
    Raises AnvilUnavailable saying what was tried."""
    tried: list[str] = []
    explicit = os.environ.get("ALYS_ANVIL")
    if explicit:
        if _runs(explicit):
            return explicit
        raise AnvilUnavailable(f"ALYS_ANVIL={explicit} does not run (`{explicit} --version`)")
    try:
        cached = subprocess.run(
            ["bash", str(INSTALL_SCRIPT), "--check"], capture_output=True, text=True, timeout=30
        )
        if cached.returncode == 0 and _runs(path := cached.stdout.strip()):
            return path
        tried.append("not in the cache of tools/install_anvil.sh")
    except (OSError, subprocess.TimeoutExpired) as error:
        tried.append(f"tools/install_anvil.sh --check failed: {error}")
    on_path = shutil.which("anvil")
    if on_path and _runs(on_path):
        return on_path
    tried.append("not on PATH")
    if install:
        try:
            done = subprocess.run(
                ["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True,
                timeout=INSTALL_TIMEOUT,
            )
            if done.returncode == 0 and _runs(path := done.stdout.strip()):
                return path
            tried.append(
                f"tools/install_anvil.sh exited {done.returncode}: {done.stderr.strip()[-800:]}"
            )
        except subprocess.TimeoutExpired:
            tried.append(f"tools/install_anvil.sh did not finish in {INSTALL_TIMEOUT:.0f} s")
        except OSError as error:
            tried.append(f"tools/install_anvil.sh could not run: {error}")
    raise AnvilUnavailable("anvil is unavailable: " + "; ".join(tried)
                           + " (set ALYS_ANVIL to a binary, or run tools/install_anvil.sh)")


class RpcError(RuntimeError):
    def __init__(self, method: str, error: dict[str, Any]) -> None:
        super().__init__(f"{method}: {error.get('message')} ({error})")
        self.method = method
        self.error = error


class Anvil:
    """One anvil process on 127.0.0.1; use as a context manager (stopped at exit)."""

    def __init__(self, binary: str, *args: str) -> None:
        self.binary = binary
        self.args = ["--host", "127.0.0.1", "--port", "0", "--color", "never", *args]
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self._log_dir = tempfile.TemporaryDirectory(prefix="anvil-")
        self.log_path = Path(self._log_dir.name) / "anvil.log"
        self._id = 0
        self._genesis = ""

    def start(self) -> Anvil:
        # Output goes to a file, not a pipe: nothing can block on a full pipe, and the log
        # is there to read when a test fails.
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [self.binary, *self.args], stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        try:
            while time.monotonic() < deadline:
                match = _LISTENING.search(self.log())
                if match:
                    self.url = f"http://127.0.0.1:{match.group(1)}"
                    break
                if self.proc.poll() is not None:
                    raise RuntimeError(f"anvil exited with {self.proc.returncode}:\n{self.log()}")
                time.sleep(0.05)
            else:
                raise RuntimeError(f"anvil did not listen in {START_TIMEOUT:.0f} s:\n{self.log()}")
            while True:  # listening is printed just before the server answers
                try:
                    self.call("web3_clientVersion", timeout=2)
                    return self
                except (OSError, urllib.error.URLError):
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        except BaseException:
            self.stop()
            raise

    def snapshot_genesis(self) -> None:
        """Remember the current (genesis) state for :meth:`reset_to_genesis`."""
        self._genesis = self.call("evm_snapshot")

    def reset_to_genesis(self) -> None:
        """Back to the state :meth:`snapshot_genesis` saw, with an empty pool."""
        self.call("anvil_dropAllTransactions")
        if self.call("evm_revert", self._genesis) is not True:
            raise RuntimeError("anvil refused to revert to its genesis snapshot")
        self._genesis = self.call("evm_snapshot")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def call(self, method: str, *params: Any, timeout: float = REQUEST_TIMEOUT) -> Any:
        """One JSON-RPC request; RpcError if anvil answers with an error."""
        self._id += 1
        body = json.dumps(
            {"jsonrpc": "2.0", "id": self._id, "method": method, "params": list(params)}
        ).encode()
        request = urllib.request.Request(
            self.url, body, {"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.load(response)
        if "error" in answer:
            raise RpcError(method, answer["error"])
        return answer["result"]

    def stop(self) -> None:
        """SIGTERM to the process group, SIGKILL if it is still there after 5 s."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        self._log_dir.cleanup()

    def __enter__(self) -> Anvil:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
