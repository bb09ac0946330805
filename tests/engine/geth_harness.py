"""Real geth for the Engine API tests: find or build the pinned binary, run a node from a chain
spec, and drive blocks through the Engine API the way the consensus side will.

The binary comes from ``tools/install_geth.sh`` (``$ALYS_GETH``, the pinned ``go install``
output, else a build), run once per session with a time limit; without Go the tests skip.
Every wait is bounded: the install, geth's start (``GethProcess.wait_ready``), each request
(the clients' timeouts) and the stop (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

from eth_utils import keccak

from alys_fast.actors.breaker import CircuitBreaker
from alys_fast.chain.spec import ChainSpec
from alys_fast.engine.engine_api import (
    EngineApi,
    EthRpc,
    ExecutionPayload,
    ForkchoiceState,
    PayloadAttributes,
)
from alys_fast.engine.geth import GethProcess
from tests.conftest import ROOT

INSTALL_SCRIPT = ROOT / "tools" / "install_geth.sh"
# A cold `go install` of geth takes about 6 minutes on 2 cores.
INSTALL_TIMEOUT = 900.0
# geth fills a payload from its pool in the background after forkchoiceUpdated: the first
# wait before getPayload, doubled (up to BUILD_TRIES times) while transactions are missing.
FIRST_BUILD_WAIT = 0.05
BUILD_TRIES = 7


class GethUnavailable(RuntimeError):
    """geth is neither installed nor buildable here; ``go_missing`` means the tests skip."""

    def __init__(self, message: str, *, go_missing: bool) -> None:
        super().__init__(message)
        self.go_missing = go_missing


def install_geth() -> str:
    """The pinned geth binary's path, built by ``tools/install_geth.sh`` if need be."""
    try:
        done = subprocess.run(["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True,
                              timeout=INSTALL_TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise GethUnavailable(f"tools/install_geth.sh did not finish in {INSTALL_TIMEOUT:.0f} s",
                              go_missing=False) from None
    if done.returncode == 2:
        raise GethUnavailable("Go is not installed, so geth cannot be built "
                              "(set ALYS_GETH to a geth 1.17.10 binary)", go_missing=True)
    if done.returncode != 0:
        raise GethUnavailable(f"tools/install_geth.sh exited {done.returncode}: "
                              + done.stderr.strip()[-800:], go_missing=False)
    return done.stdout.strip()


def tx_hash(raw: bytes) -> bytes:
    return keccak(raw)


class EngineDriver:
    """The consensus side in miniature: builds blocks on geth through the Engine API, imports
    them, and keeps every payload (what a node stores, and what replays a wiped geth)."""

    def __init__(self, api: EngineApi, rpc: EthRpc, genesis_hash: bytes) -> None:
        self.api = api
        self.rpc = rpc
        self.genesis_hash = genesis_hash
        self.payloads: list[ExecutionPayload] = []

    @property
    def head(self) -> bytes:
        return self.payloads[-1].block_hash if self.payloads else self.genesis_hash

    def next_timestamp(self) -> int:
        return self.payloads[-1].timestamp + 1 if self.payloads else 1

    async def send(self, raws: Iterable[bytes]) -> list[bytes]:
        """Submit raw transactions to geth's pool; their hashes."""
        return [bytes.fromhex((await self.rpc.call("eth_sendRawTransaction",
                                                   ["0x" + raw.hex()]))[2:]) for raw in raws]

    async def build(self, expect: Iterable[bytes] = ()) -> ExecutionPayload:
        """A payload on the head holding every transaction hash in ``expect`` (geth fills it
        in the background: built again with a longer wait while some are missing)."""
        wanted = set(expect)
        wait = FIRST_BUILD_WAIT
        for attempt in range(BUILD_TRIES):
            # Other attributes make another payload id: geth would hand back the first build.
            attributes = PayloadAttributes(timestamp=self.next_timestamp() + attempt)
            built = await self.api.build(ForkchoiceState(self.head), attributes, wait=wait)
            payload = built.execution_payload
            if wanted <= {tx_hash(raw) for raw in payload.transactions}:
                return payload
            wait *= 2
        raise AssertionError(f"geth left {len(wanted)} transactions out of {BUILD_TRIES} builds")

    async def import_(self, payload: ExecutionPayload) -> None:
        await self.api.import_payload(payload)
        self.payloads.append(payload)

    async def block(self, raws: Iterable[bytes] = ()) -> ExecutionPayload:
        """Send ``raws``, build a block holding them, import it; the payload."""
        payload = await self.build(await self.send(raws))
        await self.import_(payload)
        return payload


@contextlib.asynccontextmanager
async def running_geth(binary: str, datadir: Path, spec: ChainSpec
                       ) -> AsyncIterator[GethProcess]:
    """geth initialised and started on ``datadir``, stopped at exit whatever happens."""
    geth = GethProcess(binary, datadir, spec)
    await asyncio.to_thread(geth.init)
    geth.start()
    try:
        await geth.wait_ready(30.0)
        yield geth
    finally:
        await geth.stop(grace=10.0)


async def connect(geth: GethProcess, *, timeout: float = 10.0,
                  breaker: CircuitBreaker | None = None) -> EngineDriver:
    """Clients for ``geth``'s two ports and a driver starting at its genesis."""
    api = EngineApi(geth.auth_url, geth.jwt_secret(), geth.spec.fork, timeout=timeout,
                    breaker=breaker)
    rpc = EthRpc(geth.http_url, timeout=timeout)
    genesis = await rpc.call("eth_getBlockByNumber", ["0x0", False])
    return EngineDriver(api, rpc, bytes.fromhex(genesis["hash"][2:]))
