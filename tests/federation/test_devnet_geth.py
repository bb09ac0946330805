"""``alys-fast devnet --execution geth``: every node of the federation drives its own geth
over the Engine API (issue 16's last proof). Real geth processes (the pinned binary; skipped
where Go cannot build it): the federation makes blocks, a transfer sent to the full node
reaches an author's geth through the geths' own peering and is included and visible on every
node, each geth holds the same EL block at every height, and SIGTERM stops nodes and geths."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from eth_account import Account

from alys_fast.chain.spec import DEV_ACCOUNTS, DEV_CHAIN_ID, load_spec
from alys_fast.config import load_config
from alys_fast.engine.geth import el_genesis
from alys_fast.node.devnet import SPEC_FILE, DevnetError, create_devnet
from tests.federation.conftest import Federation, gone
from tests.node.harness import rpc
from tests.node.test_cli_node import fails
from tests.node.test_durability import block_hashes, wait_for

GETH_LINE = (r"^node (\d+) geth pid (\d+), Engine API (http://127\.0\.0\.1:\d+), "
             r"RPC (http://127\.0\.0\.1:\d+), log ")
RECIPIENT = "0x000000000000000000000000000000000000bEEF"


def test_create_gives_every_node_its_own_geth(tmp_path: Path) -> None:
    layout = create_devnet(tmp_path, 2, 1, execution="geth")
    spec = load_spec(tmp_path / SPEC_FILE)
    assert layout.execution == "geth"
    ports = [port for n in layout.nodes for port in (
        n.rpc_port, n.consensus_rpc_port, n.network_port, n.engine_port, n.geth_rpc_port,
        n.geth_p2p_port)]
    assert None not in ports and len(set(ports)) == len(ports)
    keys = set()
    for node in layout.nodes:
        geth = node.directory(tmp_path) / "geth"
        assert json.loads((geth / "genesis.json").read_text()) == el_genesis(spec)
        keys |= {(geth / "jwtsecret").read_text(), (geth / "nodekey").read_text()}
        execution = load_config(node.config(tmp_path)).execution
        assert execution is not None
        assert execution.engine_url == f"http://127.0.0.1:{node.engine_port}"
        assert execution.rpc_url == f"http://127.0.0.1:{node.geth_rpc_port}"
        assert Path(execution.jwt_secret_file) == geth / "jwtsecret"
        assert (geth / "jwtsecret").stat().st_mode & 0o777 == 0o600
    assert len(keys) == 2 * len(layout.nodes), "a secret shared between nodes"
    embedded = create_devnet(tmp_path / "embedded", 1)
    assert embedded.execution == "embedded"
    assert "execution" not in tomllib.loads(embedded.nodes[0].config(tmp_path / "embedded")
                                            .read_text())


def test_geth_needs_whole_second_slots_and_a_devnet_keeps_its_backend(tmp_path: Path) -> None:
    with pytest.raises(DevnetError, match="at least 1 s"):
        create_devnet(tmp_path / "fast", 3, slot_ms=500, execution="geth")
    create_devnet(tmp_path / "kept", 1)
    assert fails("devnet", "--execution", "geth", "--data-dir", str(tmp_path / "kept")) == (
        f"alys-fast: error: {tmp_path / 'kept'} holds a devnet with --execution embedded, not "
        "geth; give another --data-dir for a new one")


def _transfer(url: str, value: int) -> str:
    """A signed transfer from the first dev account, sent to ``url``; its hash."""
    address, key = DEV_ACCOUNTS[0]
    nonce = int(rpc(url, "eth_getTransactionCount", address, "pending"), 16)
    signed = Account.sign_transaction(
        {"chainId": DEV_CHAIN_ID, "nonce": nonce, "to": RECIPIENT, "value": value,
         "gas": 21_000, "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9}, key)
    return rpc(url, "eth_sendRawTransaction", "0x" + signed.raw_transaction.hex())


@pytest.mark.timeout(300)
def test_every_node_imports_through_its_own_geth(
        geth_binary: str, federations: list[Federation]) -> None:
    federation = Federation("--authorities", "3", "--full-nodes", "1", "--block-time", "1",
                            "--execution", "geth", "--geth", geth_binary)
    federations.append(federation)
    root = Path(federation.devnet.expect(r" slots in (\S+) \(", 30).group(1))
    geths: dict[int, tuple[int, str]] = {}
    for _ in range(4):
        index, pid, _, geth_rpc = federation.devnet.expect(GETH_LINE, 90).groups()
        geths[int(index)] = (int(pid), geth_rpc)
    federation.announced(4)
    everyone = [0, 1, 2, 3]
    federation.reach(everyone, 3)

    # Sent to the full node (which never builds): its geth passes it to the authorities' geths.
    tx_hash = _transfer(federation.urls[3], 12_345)
    receipts = {i: wait_for(lambda i=i: rpc(federation.urls[i], "eth_getTransactionReceipt",
                                            tx_hash), 30, 0.2, what=f"the receipt on node {i}")
                for i in everyone}
    assert {r["blockHash"] for r in receipts.values()} == {receipts[0]["blockHash"]}
    assert all(r["status"] == "0x1" for r in receipts.values())
    included = int(receipts[0]["blockNumber"], 16)
    federation.reach(everyone, included)
    for i in everyone:
        assert int(rpc(federation.urls[i], "eth_getBalance", RECIPIENT, "latest"), 16) == 12_345

    federation.reach(everyone, included + 2)
    top = federation.agree(everyone)
    el_chains = {i: block_hashes(url, top) for i, (_, url) in geths.items()}
    assert all(chain == el_chains[0] for chain in el_chains.values()), \
        "the nodes' geths hold different execution blocks"
    el_block = rpc(geths[0][1], "eth_getBlockByNumber", hex(included), False)
    assert el_block["transactions"] == [tx_hash]

    assert federation.devnet.terminate() == 0
    assert all(gone(pid) for pid in federation.pids.values())
    assert all(gone(pid) for pid, _ in geths.values()), "a geth outlived the devnet"
    assert not root.exists()
