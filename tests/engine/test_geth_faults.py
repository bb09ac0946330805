"""A real geth failing under the Engine API client and its circuit breaker: killed (-9) and
restarted on its data dir, hung (SIGSTOP) and resumed, handed malformed or INVALID payloads,
and wiped, then replayed to the head from the stored payloads.

The breaker runs on a hand-moved clock, so whether a call is refused or probes never depends
on how fast the machine is; the only real waits are the client's bounded request timeouts.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from pathlib import Path

import msgspec
import pytest
import rlp
from eth_utils import keccak

from alys_fast.actors.breaker import BreakerState, CircuitBreaker
from alys_fast.chain.spec import dev_spec
from alys_fast.engine.engine_api import (
    EngineRpcError,
    EngineTimeout,
    EngineUnavailable,
    ExecutionPayloadV2,
    ForkchoiceState,
    PayloadRefused,
    Status,
    replay,
    to_wire,
)
from alys_fast.validation import ordered_trie_root
from tests.engine.conftest import ADDRS, KEYS, sign
from tests.engine.geth_harness import EngineDriver, connect, running_geth, tx_hash

GWEI = 10**9
FEES = {"maxFeePerGas": 10 * GWEI, "maxPriorityFeePerGas": GWEI}
SPEC = msgspec.structs.replace(dev_spec(), fork="shanghai")
EMPTY_OMMERS = keccak(rlp.encode([]))

pytestmark = pytest.mark.timeout(120)


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def transfer(nonce: int, sender: int = 0) -> bytes:
    return sign(KEYS[sender], to=ADDRS[7], value=1, nonce=nonce, **FEES).raw


def payload_hash(payload: ExecutionPayloadV2) -> bytes:
    """The block hash of a Shanghai payload's header (to forge an INVALID but well-hashed
    block)."""
    withdrawals = [rlp.encode([w.index, w.validator_index, w.address, w.amount])
                   for w in payload.withdrawals]
    header = [
        payload.parent_hash, EMPTY_OMMERS, payload.fee_recipient, payload.state_root,
        ordered_trie_root(list(payload.transactions)), payload.receipts_root,
        payload.logs_bloom, 0, payload.block_number, payload.gas_limit, payload.gas_used,
        payload.timestamp, payload.extra_data, payload.prev_randao, bytes(8),
        payload.base_fee_per_gas, ordered_trie_root(withdrawals),
    ]
    return keccak(rlp.encode(header))


async def block_number(driver: EngineDriver) -> int:
    return int(await driver.rpc.call("eth_blockNumber", []), 16)


async def close(driver: EngineDriver) -> None:
    await driver.api.close()
    await driver.rpc.close()


async def kill_and_restart(binary: str, datadir: Path) -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(failure_threshold=2, base_backoff=1.0, clock=clock)
    async with running_geth(binary, datadir, SPEC) as geth:
        driver = await connect(geth, breaker=breaker)
        try:
            await driver.block([transfer(0)])
            await driver.block([transfer(1)])
            os.kill(geth.pid, signal.SIGKILL)
            assert await geth.stop() == -signal.SIGKILL
            for _ in range(2):
                with pytest.raises(EngineUnavailable, match="cannot connect") as failed:
                    await driver.api.exchange_capabilities()
                assert failed.value.method == "engine_exchangeCapabilities"
            assert breaker.state is BreakerState.OPEN
            assert "engine_exchangeCapabilities: cannot connect" in breaker.last_failure
            with pytest.raises(EngineUnavailable, match="not sent: the circuit breaker is open"):
                await driver.api.new_payload(driver.payloads[-1])
            assert (breaker.refused, breaker.opened) == (1, 1)

            geth.start()
            await geth.wait_ready(30.0)
            clock.now += breaker.retry_in()
            assert breaker.state is BreakerState.HALF_OPEN
            await driver.api.exchange_capabilities()  # the probe
            assert breaker.state is BreakerState.CLOSED
            # Whatever geth kept of its chain, the stored payloads bring it to the head.
            assert await replay(driver.api, driver.payloads) == driver.head
            third = await driver.block([transfer(2)])
            assert third.block_number == 3 and await block_number(driver) == 3
            receipt = await driver.rpc.call("eth_getTransactionReceipt",
                                            ["0x" + tx_hash(transfer(2)).hex()])
            assert receipt["status"] == "0x1"
        finally:
            await close(driver)


def test_kill_9_opens_the_breaker_and_a_restart_closes_it(geth_binary: str,
                                                          tmp_path: Path) -> None:
    asyncio.run(kill_and_restart(geth_binary, tmp_path))


async def hang_and_resume(binary: str, datadir: Path) -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(failure_threshold=2, base_backoff=1.0, clock=clock)
    async with running_geth(binary, datadir, SPEC) as geth:
        driver = await connect(geth, timeout=1.0, breaker=breaker)
        try:
            await driver.block([transfer(0)])
            os.kill(geth.pid, signal.SIGSTOP)
            try:
                for _ in range(2):
                    with pytest.raises(EngineTimeout, match=r"no answer .* within 1 s"):
                        await driver.api.exchange_capabilities()
                assert breaker.state is BreakerState.OPEN
                assert breaker.timeouts == 2
                with pytest.raises(EngineUnavailable, match="circuit breaker is open"):
                    await driver.api.exchange_capabilities()
            finally:
                os.kill(geth.pid, signal.SIGCONT)
            clock.now += breaker.retry_in()
            await driver.api.exchange_capabilities()
            assert breaker.state is BreakerState.CLOSED
            second = await driver.block([transfer(1)])
            assert second.block_number == 2 and await block_number(driver) == 2
        finally:
            await close(driver)


def test_sigstop_times_out_into_an_open_breaker_and_sigcont_recovers(geth_binary: str,
                                                                      tmp_path: Path) -> None:
    asyncio.run(hang_and_resume(geth_binary, tmp_path))


async def bad_payloads(binary: str, datadir: Path) -> None:
    async with running_geth(binary, datadir, SPEC) as geth:
        driver = await connect(geth)
        api = driver.api
        try:
            good = await driver.build(await driver.send([transfer(0)]))
            assert payload_hash(good) == good.block_hash  # the forging below is faithful

            tampered = msgspec.structs.replace(good, state_root=bytes(32))
            with pytest.raises(PayloadRefused, match="blockhash mismatch") as refused:
                await api.new_payload(tampered)
            assert refused.value.status.status == Status.INVALID

            forged = msgspec.structs.replace(tampered, block_hash=payload_hash(tampered))
            with pytest.raises(PayloadRefused, match=r"INVALID: .*root") as refused:
                await api.new_payload(forged)
            assert refused.value.status.latest_valid_hash == driver.genesis_hash

            wire = to_wire(good)
            del wire["withdrawals"]
            with pytest.raises(EngineRpcError, match="engine_newPayloadV2: geth answered error"
                               ) as malformed:
                await api.call(api.new_payload_method, [wire])
            assert malformed.value.code == -32602

            # Nothing of these was stored; the good payload still imports.
            assert await block_number(driver) == 0
            for block in (tampered, forged):
                assert await driver.rpc.call(
                    "eth_getBlockByHash", ["0x" + block.block_hash.hex(), False]) is None
            await driver.import_(good)
            assert await block_number(driver) == 1
            with pytest.raises(PayloadRefused, match="forkchoiceUpdatedV2: INVALID"):
                await api.forkchoice_updated(ForkchoiceState(forged.block_hash))
        finally:
            await close(driver)


def test_malformed_and_invalid_payloads_are_refused(geth_binary: str, tmp_path: Path) -> None:
    asyncio.run(bad_payloads(geth_binary, tmp_path))


async def wipe_and_replay(binary: str, datadir: Path) -> None:
    async with running_geth(binary, datadir, SPEC) as geth:
        driver = await connect(geth)
        try:
            for nonce in range(3):
                await driver.block([transfer(nonce)])
            await geth.stop()
            shutil.rmtree(datadir / "geth")
            await asyncio.to_thread(geth.init)
            geth.start()
            await geth.wait_ready(30.0)
            assert await block_number(driver) == 0
            # A geth that lost the chain does not know the head: not valid, not refused.
            updated = await driver.api.forkchoice_updated(ForkchoiceState(driver.head))
            assert updated.payload_status.status == Status.SYNCING

            assert await replay(driver.api, driver.payloads) == driver.head
            assert await block_number(driver) == 3
            head = await driver.rpc.call("eth_getBlockByNumber", ["latest", False])
            assert head["hash"] == "0x" + driver.head.hex()
            receipt = await driver.rpc.call("eth_getTransactionReceipt",
                                            ["0x" + tx_hash(transfer(2)).hex()])
            assert receipt["status"] == "0x1" and int(receipt["blockNumber"], 16) == 3
            assert (await driver.block([transfer(3)])).block_number == 4
        finally:
            await close(driver)


def test_a_wiped_geth_is_replayed_to_the_head(geth_binary: str, tmp_path: Path) -> None:
    asyncio.run(wipe_and_replay(geth_binary, tmp_path))
