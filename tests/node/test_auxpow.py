"""Merged mining on a real dev node: the consensus RPC hands out work, a proof mined here comes
back, the next block carries it, ``finalized`` advances and survives a restart; with a small
``max_blocks_without_pow`` production halts (``/health`` says why) until a proof arrives."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import msgspec

from alys_fast.chain.mining import DevMining
from alys_fast.chain.spec import dev_spec
from tests.auxpow.proofs import mine
from tests.node.harness import ThreadNode, running_node

MINER = "0x" + "11" * 20


def consensus(node: ThreadNode, method: str, params: Any) -> tuple[int, dict[str, Any]]:
    """One JSON-RPC 1.0 call to the node's consensus RPC: (HTTP status, answer)."""
    body = json.dumps({"method": method, "params": params, "id": 7}).encode()
    url = f"http://127.0.0.1:{node.node.consensus_rpc.bound}/"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, body), timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def eth(node: ThreadNode, method: str, *params: Any) -> Any:
    body = msgspec.json.encode({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
    request = urllib.request.Request(node.url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return msgspec.json.decode(response.read())


def get(node: ThreadNode, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(node.url + path, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def finalized(node: ThreadNode) -> int:
    return int(eth(node, "eth_getBlockByNumber", "finalized", False)["result"]["number"], 16)


def submit_proof(node: ThreadNode) -> dict[str, Any]:
    """createauxblock, mine its hash, submitauxblock; the work handed out."""
    status, answer = consensus(node, "createauxblock", [MINER])
    assert status == 200 and answer["error"] is None, answer
    work = answer["result"]
    proof = mine(bytes.fromhex(work["hash"]), int(work["bits"], 16))
    status, answer = consensus(node, "submitauxblock", [work["hash"], proof.hex()])
    assert (status, answer) == (200, {"result": None, "error": None, "id": 7})
    return work


def _node(data_dir: Path, **spec_fields: Any) -> Any:
    spec = msgspec.structs.replace(dev_spec(slot_ms=200), **spec_fields)
    return running_node(data_dir, spec=spec, consensus_rpc_port=0,
                        dev_mining=DevMining(mode="off"))


def test_a_proof_finalizes_the_range_and_survives_restart(tmp_path: Path) -> None:
    with _node(tmp_path) as node:
        eth(node, "evm_mine")
        eth(node, "evm_mine")
        assert finalized(node) == 0
        work = submit_proof(node)
        assert (work["height"], work["chainid"], work["coinbasevalue"]) == (1, 121212, 0)
        queued = consensus(node, "getqueuedpow", [])[1]["result"]
        assert queued["fee_recipient"] == MINER and queued["height"] == 1
        eth(node, "evm_mine")  # block 3 carries the proof of blocks 1..2
        block = consensus(node, "getblockbyheight", 3)[1]["result"]
        assert block["message"]["auxpow_header"]["range_end"] == queued["range_end"]
        assert consensus(node, "getqueuedpow", [])[1]["result"] is None
        assert finalized(node) == 2
        assert eth(node, "eth_getBlockByNumber", "safe", False)["result"]["number"] == "0x2"
        metrics = get(node, "metrics")[1].decode()
        assert "alys_chain_finalized 2.0" in metrics
        assert "alys_chain_blocks_since_finality 1.0" in metrics
        head = consensus(node, "getheadblock", [])[1]["result"]
        assert head["message"]["execution_payload"]["block_number"] == "3"
        # The next work covers block 3 alone and builds on the PoW block.
        work = consensus(node, "createauxblock", [MINER])[1]["result"]
        assert (work["height"], work["previousblockhash"]) == (4, block["message"][
            "execution_payload"]["block_hash"][2:])
    with _node(tmp_path) as node:
        assert finalized(node) == 2
        assert consensus(node, "createauxblock", [MINER])[1]["result"]["height"] == 4


def test_a_bad_proof_gets_an_error_naming_its_rule_and_changes_nothing(tmp_path: Path) -> None:
    with _node(tmp_path) as node:
        eth(node, "evm_mine")
        work = consensus(node, "createauxblock", [MINER])[1]["result"]
        wrong = mine(bytes(32), int(work["bits"], 16))  # commits to another hash
        status, answer = consensus(node, "submitauxblock", [work["hash"], wrong.hex()])
        assert status == 400 and answer["result"] is None
        assert answer["error"]["code"] == -32605
        assert answer["error"]["message"].startswith("auxpow chain-merkle-root-not-in-coinbase")
        status, answer = consensus(node, "submitauxblock", [work["hash"], "00ff"])
        assert status == 400 and answer["error"]["message"].startswith("auxpow truncated")
        assert consensus(node, "getqueuedpow", [])[1]["result"] is None
        eth(node, "evm_mine")
        assert finalized(node) == 0
        # The work is still good: a right proof for it is taken after the bad ones.
        right = mine(bytes.fromhex(work["hash"]), int(work["bits"], 16))
        assert consensus(node, "submitauxblock", [work["hash"], right.hex()])[0] == 200


def test_consensus_rpc_shapes_and_codes(tmp_path: Path) -> None:
    with _node(tmp_path) as node:
        status, answer = consensus(node, "createauxblock", [MINER])
        assert (status, answer["error"]["code"]) == (503, -32606)  # nothing to finalize yet
        assert consensus(node, "nosuchmethod", [])[0] == 404
        assert consensus(node, "createauxblock", ["0x12"])[1]["error"]["code"] == -32602
        assert consensus(node, "getblockbyheight", 99)[1] == {"result": None, "error": None,
                                                              "id": 7}
        body = json.dumps({"method": "getheadblock", "id": 1}).encode()
        url = f"http://127.0.0.1:{node.node.consensus_rpc.bound}/"
        with urllib.request.urlopen(urllib.request.Request(url, body), timeout=10) as response:
            assert json.loads(response.read())["error"]["code"] == -32600  # params missing


def test_production_halts_without_pow_and_resumes_after_a_proof(tmp_path: Path) -> None:
    with _node(tmp_path, max_blocks_without_pow=2) as node:
        eth(node, "evm_mine")
        eth(node, "evm_mine")
        refused = eth(node, "evm_mine")
        assert "need PoW" in refused["error"]["message"]
        assert eth(node, "eth_blockNumber")["result"] == "0x2"
        status, body = get(node, "health")
        health = json.loads(body)
        assert status == 503 and any("need PoW" in reason for reason in health["reasons"])
        assert "alys_chain_halted_for_pow 1.0" in get(node, "metrics")[1].decode()
        submit_proof(node)
        eth(node, "evm_mine")
        assert eth(node, "eth_blockNumber")["result"] == "0x3"
        assert finalized(node) == 2
        assert "error" not in eth(node, "evm_mine")
        assert not any("need PoW" in r for r in json.loads(get(node, "health")[1])["reasons"])
