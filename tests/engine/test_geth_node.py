"""A whole node on a real geth over the Engine API (``ctx.execution``), behind the engine seam.

Each test starts geth (the pinned binary, ``geth_binary``) and an Aura node authoring every
1 s slot on it, in a thread (``ThreadNode``). End to end: an ERC-20 deployed and transferred
through web3.py against the node (sent to geth's pool through the node's forwarded
``eth_sendRawTransaction``), with the same signed transactions giving the same receipts on the
embedded engine. Faults: geth killed (-9) and restarted, hung (SIGSTOP) and resumed, wiped and
replayed, and an INVALID payload refused. Every wait is bounded (``wait_for``); nothing asserts
how fast anything is: the recovery times are printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from eth_account import Account
from web3 import Web3
from web3.providers import HTTPProvider

from alys_fast.chain.spec import DEV_ACCOUNTS, DEV_CHAIN_ID, dev_spec
from alys_fast.chain.workflows import block_env, child_base_fee
from alys_fast.config import load_config
from alys_fast.engine.actor import EngineClient
from alys_fast.engine.engine_api import PayloadRefused
from alys_fast.engine.errors import EngineError
from alys_fast.engine.geth import GethProcess
from alys_fast.engine.payload import el_hash_key
from alys_fast.storage.actor import StoreClient
from alys_fast.validation import decode_header
from tests.engine.contracts import TRANSFER, calldata, creation_code
from tests.node.harness import DevProcess, ThreadNode, rpc, running_node

pytestmark = pytest.mark.timeout(300)

GWEI = 10**9
SPEC = dev_spec(slot_ms=1000)
OWNER, RECEIVER = (Account.from_key(key) for _, key in DEV_ACCOUNTS[1:3])
LOADER = Account.from_key(DEV_ACCOUNTS[4][1])
SUPPLY = 10**24
# The breaker as a test wants it: opens after 2 failures, first probe after 0.2 s.
BREAKER = {"timeout": 1.0, "failure_threshold": 2, "base_backoff": 0.2, "max_backoff": 1.0}


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, RuntimeError):
            result = check()
            if result:
                return result
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout:g} s: {what}")


def start_geth(geth: GethProcess) -> None:
    geth.start()
    asyncio.run(geth.wait_ready(60.0))


@contextlib.contextmanager
def geth_node(binary: str, tmp: Path) -> Iterator[tuple[ThreadNode, GethProcess]]:
    """geth on ``tmp/geth`` and an Aura node on ``tmp/node`` driving it; both stopped after."""
    geth = GethProcess(binary, tmp / "geth", SPEC)
    geth.init()
    start_geth(geth)
    node = None
    try:
        node = ThreadNode(tmp / "node", spec=SPEC,
                          execution=geth.execution_settings(**BREAKER)).start()
        yield node, geth
    finally:
        if node is not None:
            node.stop()
        asyncio.run(geth.stop())


def head(node: ThreadNode) -> int:
    return int(rpc(node.url, "eth_blockNumber"), 16)


def health(node: ThreadNode) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(node.url + "health", timeout=10) as response:
            return response.status, msgspec.json.decode(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, msgspec.json.decode(exc.read())


def metric(node: ThreadNode, line_start: str) -> float:
    with urllib.request.urlopen(node.url + "metrics", timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(line_start + " "):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no metric {line_start}")


def unhealthy_because(node: ThreadNode, words: str) -> str:
    def reason() -> str | None:
        status, report = health(node)
        return next((r for r in report["reasons"] if words in r), None) if status == 503 else None

    return wait_for(reason, 30, f"/health answering 503 with '{words}'")


def token_transactions() -> list[bytes]:
    """The ERC-20's deploy and three transfers, signed once (fixed nonces and fees), so both
    backends run the very same bytes."""
    fees = {"chainId": DEV_CHAIN_ID, "type": 2, "maxFeePerGas": 100 * GWEI,
            "maxPriorityFeePerGas": GWEI, "value": 0}
    token = Web3.to_checksum_address(
        Web3.keccak(bytes.fromhex("d694") + bytes.fromhex(OWNER.address[2:]) + b"\x80")[12:])
    txs = [{**fees, "nonce": 0, "gas": 2_000_000,
            "data": creation_code("Token", ["uint256"], [SUPPLY])}]
    for nonce, amount in enumerate((1, 10**18, 5), start=1):
        txs.append({**fees, "nonce": nonce, "gas": 100_000, "to": token,
                    "data": calldata("Token", "transfer(address,uint256)", RECEIVER.address,
                                     amount)})
    return [bytes(OWNER.sign_transaction(tx).raw_transaction) for tx in txs]


def receipts_through_web3(node: ThreadNode, raws: list[bytes]) -> list[dict[str, Any]]:
    w3 = Web3(HTTPProvider(node.url, request_kwargs={"timeout": 10}))
    hashes = [w3.eth.send_raw_transaction(raw) for raw in raws]
    out = []
    for tx_hash in hashes:
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60, poll_latency=0.1)
        block = w3.eth.get_block(receipt.blockNumber)
        assert block.hash == receipt.blockHash  # the node's own block, not geth's
        out.append({"status": receipt.status, "gasUsed": receipt.gasUsed,
                    "contractAddress": receipt.contractAddress,
                    "logs": [(log.address, [bytes(t) for t in log.topics], bytes(log.data))
                             for log in receipt.logs]})
    return out


def test_an_erc20_through_web3_gives_the_same_receipts_on_geth_and_on_the_embedded_engine(
        geth_binary: str, tmp_path: Path) -> None:
    raws = token_transactions()
    with geth_node(geth_binary, tmp_path / "geth-backend") as (node, geth):
        on_geth = receipts_through_web3(node, raws)
        token = on_geth[0]["contractAddress"]
        balance = Web3(HTTPProvider(node.url)).eth.call(
            {"to": token, "data": calldata("Token", "balanceOf(address)", RECEIVER.address)})
        assert int.from_bytes(balance, "big") == 1 + 10**18 + 5
        # Built and imported through the Engine API: geth's chain is ours, block for block.
        number = head(node)
        theirs = rpc(geth.http_url, "eth_getBlockByNumber", hex(number), False)
        stored = node.call(StoreClient(node.node.directory).meta(el_hash_key(number)))
        assert theirs is not None and theirs["hash"] == "0x" + stored.hex()
        assert metric(node, 'alys_engine_breaker_state{state="closed"}') == 1
        assert metric(node, 'alys_engine_request_seconds_count{method="engine_newPayloadV3"}') > 0
    with running_node(tmp_path / "embedded-backend", spec=SPEC) as embedded:
        assert receipts_through_web3(embedded, raws) == on_geth
    assert [r["status"] for r in on_geth] == [1, 1, 1, 1]
    assert on_geth[1]["logs"][0][1][0] == TRANSFER


def check_stored_chain(node: ThreadNode, geth: GethProcess) -> int:
    """Every stored block links to the one before, no transaction is in two blocks, and geth's
    canonical block of each number is the stored EL hash: nothing lost, skipped or doubled.
    The head's number."""
    store = StoreClient(node.node.directory)
    number = node.call(store.head())[0]
    parent, seen = None, set()
    for n in range(number + 1):
        record = node.call(store.block(number=n))
        header = decode_header(record.header)
        assert parent is None or header.parent_hash == parent, f"block {n} does not link"
        parent = record.hash
        assert not seen & set(record.transactions), f"block {n} repeats a transaction"
        seen |= set(record.transactions)
        if n:
            theirs = rpc(geth.http_url, "eth_getBlockByNumber", hex(n), False)
            assert theirs["hash"] == "0x" + node.call(store.meta(el_hash_key(n))).hex()
    return number


@contextlib.contextmanager
def transfers(node: ThreadNode) -> Iterator[list[int]]:
    """A stream of transfers through the node while the block runs (each at the pending nonce
    geth reports, so a restarted geth's emptied pool leaves no gap); yields [sent, failed]."""
    w3 = Web3(HTTPProvider(node.url, request_kwargs={"timeout": 5}))
    counts = [0, 0]
    stop = threading.Event()

    def send() -> None:
        while not stop.is_set():
            try:
                nonce = w3.eth.get_transaction_count(LOADER.address, "pending")
                signed = LOADER.sign_transaction(
                    {"chainId": DEV_CHAIN_ID, "type": 2, "nonce": nonce, "gas": 21_000,
                     "to": RECEIVER.address, "value": 1, "maxFeePerGas": 100 * GWEI,
                     "maxPriorityFeePerGas": GWEI})
                w3.eth.send_raw_transaction(signed.raw_transaction)
                counts[0] += 1
            except Exception:  # geth down or hung: the node says so; keep trying
                counts[1] += 1
            stop.wait(0.05)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    try:
        yield counts
    finally:
        stop.set()
        thread.join(10)


def comes_back(node: ThreadNode, stood: int, since: float) -> None:
    """The chain continues past ``stood`` and /health is 200 again; prints how long after
    geth answered again (``since``) the first new block came."""
    wait_for(lambda: head(node) > stood, 60, f"a block after {stood} once geth is back")
    print(f"first new block {time.monotonic() - since:.2f} s after geth answered again")
    wait_for(lambda: health(node)[0] == 200, 30, "/health 200 again")
    assert metric(node, 'alys_engine_breaker_state{state="closed"}') == 1


def test_kill_9_under_load_opens_the_breaker_and_the_chain_continues_where_it_stood(
        geth_binary: str, tmp_path: Path) -> None:
    with geth_node(geth_binary, tmp_path) as (node, geth), transfers(node) as counts:
        wait_for(lambda: head(node) >= 3 and counts[0] >= 5, 60, "blocks and transfers")
        os.kill(geth.pid, signal.SIGKILL)
        asyncio.run(geth.stop())
        reason = unhealthy_because(node, "execution engine unreachable")
        assert "circuit breaker" in reason and "cannot connect" in reason
        assert metric(node, 'alys_engine_breaker_state{state="closed"}') == 0
        stood = head(node)
        # Slots pass with geth down: the node stays up and makes no block.
        wait_for(lambda: metric(node, "alys_engine_breaker_refused_total") > 0, 30,
                 "calls refused by the open breaker")
        assert head(node) == stood and health(node)[0] == 503
        start_geth(geth)
        comes_back(node, stood, time.monotonic())
        wait_for(lambda: head(node) >= stood + 2, 30, "two more blocks")
        check_stored_chain(node, geth)
        included = int(rpc(geth.http_url, "eth_getTransactionCount", LOADER.address,
                           "latest"), 16)
        assert included > 0


def test_a_hung_geth_times_out_into_the_breaker_and_recovers_on_sigcont(
        geth_binary: str, tmp_path: Path) -> None:
    with geth_node(geth_binary, tmp_path) as (node, geth):
        wait_for(lambda: head(node) >= 2, 60, "two blocks")
        os.kill(geth.pid, signal.SIGSTOP)
        try:
            reason = unhealthy_because(node, "execution engine unreachable")
            assert "within 1 s" in reason  # geth's silence, as the timeout saw it
            assert metric(node, "alys_engine_breaker_timeouts_total") >= 2
            stood = head(node)
        finally:
            os.kill(geth.pid, signal.SIGCONT)
        comes_back(node, stood, time.monotonic())
        check_stored_chain(node, geth)


def test_a_wiped_geth_is_replayed_to_the_head(geth_binary: str, tmp_path: Path) -> None:
    raws = token_transactions()[:1]
    with geth_node(geth_binary, tmp_path) as (node, geth):
        (deployed,) = receipts_through_web3(node, raws)
        wait_for(lambda: head(node) >= 4, 60, "four blocks")
        asyncio.run(geth.stop())
        shutil.rmtree(geth.datadir / "geth")
        geth.init()
        start_geth(geth)
        assert int(rpc(geth.http_url, "eth_blockNumber"), 16) == 0
        stood = head(node)
        wait_for(lambda: int(rpc(geth.http_url, "eth_blockNumber"), 16) > stood, 60,
                 "geth replayed to the head and past it")
        check_stored_chain(node, geth)
        assert metric(node, "alys_engine_replayed_blocks_total") >= stood
        receipt = rpc(geth.http_url, "eth_getTransactionReceipt",
                      "0x" + Web3.keccak(raws[0]).hex().removeprefix("0x"))
        assert Web3.to_checksum_address(receipt["contractAddress"]) == deployed["contractAddress"]


def test_an_invalid_payload_is_refused_with_geths_reason_and_nothing_is_stored(
        geth_binary: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with geth_node(geth_binary, tmp_path) as (node, geth):
        wait_for(lambda: head(node) >= 1, 60, "a block")
        store, engine = StoreClient(node.node.directory), EngineClient(node.node.directory)

        async def import_a_block_with_a_wrong_state_root() -> tuple[Exception, bytes]:
            parent = await store.head_header()
            header = msgspec.structs.replace(
                parent, parent_hash=parent.hash, number=parent.number + 1,
                slot=parent.slot + 1, timestamp=parent.timestamp + 1, gas_used=0,
                state_root=b"\x01" * 32, base_fee_per_gas=child_base_fee(SPEC, parent),
                auxpow=None)
            try:
                await engine.execute_block(parent.state_root, block_env(SPEC, header), (),
                                           header=header)
            except Exception as exc:
                return exc, header.hash
            raise AssertionError("geth took a block with a wrong state root")

        def refused() -> tuple[Exception, bytes] | None:
            exc, tampered = node.call(import_a_block_with_a_wrong_state_root())
            return None if "on its head" in str(exc) else (exc, tampered)  # a block landed

        exc, tampered = wait_for(refused, 30, "an import on a steady head")
        assert isinstance(exc, PayloadRefused) and "INVALID" in str(exc)
        assert any("geth refused block" in r.getMessage() and "INVALID" in r.getMessage()
                   for r in caplog.records)
        assert node.call(store.block(hash=tampered)) is None
        wait_for(lambda: head(node) >= 3, 60, "the chain going on")
        check_stored_chain(node, geth)


def test_dev_execution_geth_runs_geth_as_a_child_and_stops_it_with_the_node(
        geth_binary: str, tmp_path: Path) -> None:
    dev = DevProcess(tmp_path, 1.0, "--execution", "geth", "--geth", geth_binary).start(60)
    try:
        wait_for(lambda: int(rpc(dev.url, "eth_blockNumber"), 16) >= 2, 60, "two blocks")
        assert (tmp_path / "geth" / "genesis.json").exists()
        assert len(bytes.fromhex((tmp_path / "geth" / "jwtsecret").read_text().strip())) == 32
        balance = rpc(dev.url, "eth_getBalance", OWNER.address, "latest")  # geth's answer
        assert int(balance, 16) == 10_000 * 10**18
    finally:
        assert dev.stop() == 0
    assert "Blockchain stopped" in (tmp_path / "geth" / "geth.log").read_text()


def test_an_execution_table_in_the_node_config_names_the_engine_and_its_secret(
        tmp_path: Path) -> None:
    (tmp_path / "jwt.hex").write_text("0x" + "ab" * 32)
    (tmp_path / "node.toml").write_text(
        'data_dir = "data"\n[execution]\nengine_url = "http://127.0.0.1:8551"\n'
        'jwt_secret_file = "jwt.hex"\nrpc_url = "http://127.0.0.1:8547"\ntimeout = 2\n')
    settings = load_config(tmp_path / "node.toml").execution.settings()
    assert (settings.engine_url, settings.rpc_url, settings.timeout) == (
        "http://127.0.0.1:8551", "http://127.0.0.1:8547", 2.0)
    assert settings.jwt_secret() == b"\xab" * 32
    (tmp_path / "jwt.hex").write_text("abcd")
    with pytest.raises(EngineError, match="expected 32 bytes as 64 hex digits"):
        settings.jwt_secret()
