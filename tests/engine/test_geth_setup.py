"""geth's genesis from our chain spec, its JWT secret, and the process around it."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest

from alys_fast.chain.genesis import genesis_state_root
from alys_fast.chain.spec import FeeRules, GenesisAccount, dev_spec
from alys_fast.engine.engine_api import EthRpc
from alys_fast.engine.geth import GethError, GethProcess, el_genesis, ensure_hex_secret
from tests.engine.contracts import runtime_code
from tests.engine.geth_harness import running_geth

pytestmark = pytest.mark.timeout(120)

CONTRACT = "0x" + "c0" * 20
SPEC = msgspec.structs.replace(
    dev_spec(),
    fork="shanghai",
    genesis_timestamp=1_671_553_095,
    alloc=dev_spec().alloc | {CONTRACT: GenesisAccount(
        balance=5, nonce=1, code="0x" + runtime_code("Token").hex(),
        storage={"0x2": "0x3e8", "0xabc": "0x1"})},
)


def test_genesis_is_merged_shanghai_or_cancun_with_the_spec_values() -> None:
    genesis = el_genesis(SPEC)
    config = genesis["config"]
    assert config["chainId"] == 121212
    assert config["terminalTotalDifficulty"] == 0 and config["shanghaiTime"] == 0
    assert "cancunTime" not in config and config["londonBlock"] == 0
    assert genesis["gasLimit"] == hex(30_000_000) and genesis["difficulty"] == "0x0"
    assert genesis["baseFeePerGas"] == hex(10**9)
    contract = genesis["alloc"][CONTRACT]
    assert (contract["balance"], contract["nonce"]) == ("0x5", "0x1")
    assert contract["storage"]["0x" + "0" * 63 + "2"] == "0x" + "0" * 61 + "3e8"

    cancun = el_genesis(dev_spec())["config"]
    assert cancun["cancunTime"] == 0
    assert cancun["blobSchedule"]["cancun"] == {"target": 3, "max": 6,
                                                "baseFeeUpdateFraction": 3338477}


def test_specs_geth_cannot_follow_are_refused() -> None:
    with pytest.raises(GethError, match="elasticity 2 and denominator 8; the chain spec has 4"):
        el_genesis(msgspec.structs.replace(SPEC, fees=FeeRules(elasticity_multiplier=4)))
    with pytest.raises(GethError, match="Shanghai or Cancun chains, not prague"):
        el_genesis(msgspec.structs.replace(SPEC, fork="prague"))


def test_the_jwt_secret_is_written_once_private_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "jwtsecret"
    secret = ensure_hex_secret(path, "JWT secret")
    assert len(secret) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_hex_secret(path, "JWT secret") == secret
    path.write_text("0x1234")
    with pytest.raises(GethError, match="32 bytes as 64 hex digits"):
        ensure_hex_secret(path, "JWT secret")


async def geth_genesis(binary: str, datadir: Path) -> None:
    async with running_geth(binary, datadir, SPEC) as geth:
        assert geth.is_alive() and geth.pid is not None
        rpc = EthRpc(geth.http_url)
        try:
            block = await rpc.call("eth_getBlockByNumber", ["0x0", False])
            assert block["stateRoot"] == "0x" + genesis_state_root(SPEC).hex()
            assert int(block["timestamp"], 16) == SPEC.genesis_timestamp
            assert await rpc.call("eth_chainId", []) == hex(SPEC.chain_id)
        finally:
            await rpc.close()
    assert not geth.is_alive()
    assert "Blockchain stopped" in (datadir / "geth.log").read_text()  # a clean SIGTERM stop
    # init again on the stopped data dir: accepted (a node restarts this way); another
    # chain's genesis is not
    await asyncio.to_thread(geth.init)
    geth.spec = msgspec.structs.replace(SPEC, alloc={})
    with pytest.raises(GethError, match="geth init failed"):
        await asyncio.to_thread(geth.init)


def test_geth_starts_from_our_genesis_with_our_state_root(geth_binary: str,
                                                          tmp_path: Path) -> None:
    asyncio.run(geth_genesis(geth_binary, tmp_path))


async def exits_early(binary: str, datadir: Path) -> None:
    geth = GethProcess(binary, datadir, SPEC, extra_args=("--no-such-flag",))
    await asyncio.to_thread(geth.init)
    geth.start()
    try:
        with pytest.raises(GethError, match=r"geth exited \(1\) before it was ready"):
            await geth.wait_ready(30.0)
    finally:
        await geth.stop()


def test_a_geth_that_cannot_start_is_reported_with_its_log(geth_binary: str,
                                                           tmp_path: Path) -> None:
    asyncio.run(exits_early(geth_binary, tmp_path))


STARTER = """
import sys, time
from pathlib import Path
from alys_fast.chain.spec import dev_spec
from alys_fast.engine.geth import GethProcess
geth = GethProcess(sys.argv[1], Path(sys.argv[2]), dev_spec())
geth.init()
geth.start()
print(geth.pid, flush=True)
time.sleep(120)
"""


def test_a_geth_does_not_outlive_a_starter_killed_with_sigkill(geth_binary: str,
                                                               tmp_path: Path) -> None:
    """geth runs in its own session (a signal to the node's group never reaches it), so only
    the parent-death signal stops it when the node or devnet that started it is SIGKILLed."""
    starter = subprocess.Popen([sys.executable, "-c", STARTER, geth_binary, str(tmp_path)],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert starter.stdout is not None
        geth_pid = int(starter.stdout.readline())
    finally:
        starter.kill()
        starter.wait(30)
    deadline = time.monotonic() + 30
    while _running(geth_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive := _running(geth_pid):
        os.kill(geth_pid, signal.SIGKILL)
    assert not alive, "geth outlived the process that started it"


def _running(pid: int) -> bool:
    """``pid`` exists and is not a zombie (an orphan is reaped by whoever adopted it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False
