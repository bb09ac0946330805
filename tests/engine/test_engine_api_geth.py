"""Blocks built and imported through the Engine API on a real geth started from our dev spec:
forkchoiceUpdated(attributes) → getPayload → newPayload → forkchoiceUpdated, with a signed
transfer and an ERC-20 deploy and transfer sent to geth's pool, receipts read back through the
forwarding client. Both forks the backend runs: Shanghai (Alys's genesis, V2 methods) and
Cancun (V3)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest

from alys_fast.chain.spec import dev_spec
from alys_fast.engine.engine_api import (
    ExecutionPayloadV2,
    ExecutionPayloadV3,
    ForkchoiceState,
    PayloadAttributes,
    Withdrawal,
)
from tests.engine.conftest import ADDRS, KEYS, sign
from tests.engine.contracts import calldata, creation_code, decoded
from tests.engine.geth_harness import connect, running_geth, tx_hash

GWEI = 10**9
FEES = {"maxFeePerGas": 10 * GWEI, "maxPriorityFeePerGas": GWEI}
SUPPLY = 10**24

pytestmark = pytest.mark.timeout(120)


def hexed(value: bytes) -> str:
    return "0x" + value.hex()


async def three_blocks(binary: str, datadir: Path, fork: str) -> None:
    spec = msgspec.structs.replace(dev_spec(), fork=fork)
    async with running_geth(binary, datadir, spec) as geth:
        driver = await connect(geth)
        api, rpc = driver.api, driver.rpc
        try:
            assert api.new_payload_method in await api.exchange_capabilities()
            recipient_before = int(await rpc.call("eth_getBalance", [hexed(ADDRS[5]), "latest"]),
                                   16)
            transfer = sign(KEYS[0], to=ADDRS[5], value=10**18, nonce=0, **FEES).raw
            deploy = sign(KEYS[1], to=None, data=creation_code("Token", ["uint256"], [SUPPLY]),
                          gas=1_500_000, nonce=0, **FEES).raw
            first = await driver.block([transfer, deploy])
            assert {tx_hash(transfer), tx_hash(deploy)} <= {tx_hash(r) for r in
                                                            first.transactions}
            deployed = await rpc.call("eth_getTransactionReceipt", [hexed(tx_hash(deploy))])
            token = deployed["contractAddress"]
            token_transfer = sign(KEYS[1], to=bytes.fromhex(token[2:]), gas=100_000, nonce=1,
                                  data=calldata("Token", "transfer(address,uint256)", ADDRS[6],
                                                1234), **FEES).raw
            second = await driver.block([token_transfer])
            third = await driver.block()

            payload_type = ExecutionPayloadV3 if fork == "cancun" else ExecutionPayloadV2
            assert all(type(p) is payload_type for p in driver.payloads)
            assert [p.block_number for p in driver.payloads] == [1, 2, 3]
            assert second.parent_hash == first.block_hash
            assert third.transactions == ()
            head = await rpc.call("eth_getBlockByNumber", ["latest", False])
            assert (int(head["number"], 16), head["hash"]) == (3, hexed(third.block_hash))

            for raw, payload in ((transfer, first), (deploy, first), (token_transfer, second)):
                receipt = await rpc.call("eth_getTransactionReceipt", [hexed(tx_hash(raw))])
                assert receipt["status"] == "0x1"
                assert receipt["blockHash"] == hexed(payload.block_hash)
            assert int(await rpc.call("eth_getBalance", [hexed(ADDRS[5]), "latest"]), 16) \
                == recipient_before + 10**18
            call = {"to": token, "data": hexed(calldata("Token", "balanceOf(address)",
                                                        ADDRS[6]))}
            balance = await rpc.call("eth_call", [call, "latest"])
            assert decoded(["uint256"], bytes.fromhex(balance[2:])) == (1234,)
            logs = (await rpc.call("eth_getTransactionReceipt",
                                   [hexed(tx_hash(token_transfer))]))["logs"]
            assert len(logs) == 1 and logs[0]["address"] == token
        finally:
            await api.close()
            await rpc.close()


@pytest.mark.parametrize("fork", ["shanghai", "cancun"])
def test_three_blocks_with_a_transfer_and_an_erc20(geth_binary: str, tmp_path: Path,
                                                   fork: str) -> None:
    asyncio.run(three_blocks(geth_binary, tmp_path, fork))


async def withdrawals_credit(binary: str, datadir: Path) -> None:
    """Alys mints peg-ins as payload withdrawals (gwei): geth credits them."""
    spec = msgspec.structs.replace(dev_spec(), fork="shanghai")
    async with running_geth(binary, datadir, spec) as geth:
        driver = await connect(geth)
        try:
            minted = bytes.fromhex("00000000000000000000000000000000000be915")
            attributes = PayloadAttributes(
                timestamp=1, withdrawals=(Withdrawal(0, 0, minted, 7 * GWEI),))
            built = await driver.api.build(ForkchoiceState(driver.head), attributes)
            assert built.execution_payload.withdrawals == attributes.withdrawals
            await driver.import_(built.execution_payload)
            balance = await driver.rpc.call("eth_getBalance", [hexed(minted), "latest"])
            assert int(balance, 16) == 7 * GWEI * GWEI
        finally:
            await driver.api.close()
            await driver.rpc.close()


def test_withdrawals_credit_balances(geth_binary: str, tmp_path: Path) -> None:
    asyncio.run(withdrawals_credit(geth_binary, tmp_path))
