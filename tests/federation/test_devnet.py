"""``alys-fast devnet`` as a user runs it: what it writes, the lines it prints, and a live
federation of OS processes on 127.0.0.1 that survives an authority's ``kill -9``, halts
without forking when two of three are down, resumes when they return, and stops whole on
SIGTERM. After every scenario all nodes agree on the block hash at every height."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
from pathlib import Path

import pytest

from alys_fast.chain.spec import DEV_ACCOUNTS, ETHER, load_spec
from alys_fast.config import load_config
from alys_fast.consensus import SecretKey
from alys_fast.network.transport import NODE_KEY_FILE, NodeKey, load_node_key
from alys_fast.node.devnet import (
    LAYOUT_FILE,
    SPEC_FILE,
    DevnetError,
    create_devnet,
    free_ports,
    load_devnet,
    node_line,
)
from tests.conftest import ROOT
from tests.federation.conftest import NODE_LINE, Federation, gone
from tests.node.harness import rpc
from tests.node.test_cli_node import Running, fails
from tests.node.test_durability import block_hashes, wait_for

SLOT = 0.5  # seconds


# --- the files (no processes) --------------------------------------------------------------------

def test_create_writes_keys_spec_and_configs_that_agree(tmp_path: Path) -> None:
    layout = create_devnet(tmp_path, 3, 1, slot_ms=500)
    spec = load_spec(tmp_path / SPEC_FILE)
    assert [n.role for n in layout.nodes] == ["authority"] * 3 + ["full"]
    assert spec.slot_ms == 500 and layout == load_devnet(tmp_path)
    # The dev accounts are funded as `alys-fast dev` funds them.
    assert {a.lower(): acct.balance for a, acct in spec.alloc.items()} == {
        address.lower(): 10_000 * ETHER for address, _ in DEV_ACCOUNTS}
    ports = [p for n in layout.nodes for p in (n.rpc_port, n.consensus_rpc_port, n.network_port)]
    assert len(set(ports)) == len(ports)
    for node in layout.nodes:
        config = load_config(node.config(tmp_path))
        assert config.spec() == spec
        # Its node key is the one listed: in the spec (authorities) and in the others' bootnodes.
        assert load_node_key(Path(config.data_dir)).id == node.node_id
        assert config.rpc.port == node.rpc_port
        assert config.consensus_rpc.port == node.consensus_rpc_port
        assert config.network is not None
        assert config.network.listen == f"127.0.0.1:{node.network_port}"
        assert set(config.network.bootnodes) == {n.enode for n in layout.nodes if n is not node}
        key = config.authority_key()
        if node.role == "authority":
            assert key is not None
            public = "0x" + SecretKey.from_bytes(key).public_key().to_bytes().hex()
            assert spec.authorities[node.index] == public
            assert spec.node_keys[node.index] == node.node_id
        else:
            assert key is None and node.node_id not in spec.member_ids()
    assert len(spec.authorities) == len(spec.node_keys) == 3
    # Another devnet gets other keys, and the same funded accounts.
    create_devnet(tmp_path / "other", 3)
    other = load_spec(tmp_path / "other" / SPEC_FILE)
    assert other.alloc == spec.alloc
    assert not set(other.authorities) & set(spec.authorities)
    assert not set(other.node_keys) & set(spec.node_keys)


def test_base_port_lays_nodes_out_three_ports_apart(tmp_path: Path) -> None:
    layout = create_devnet(tmp_path, 2, 0, base_port=40100)
    assert [(n.rpc_port, n.consensus_rpc_port, n.network_port) for n in layout.nodes] == [
        (40100, 40101, 40102), (40103, 40104, 40105)]


@pytest.mark.parametrize(("authorities", "full_nodes", "base_port", "words"), [
    (0, 0, None, "--authorities must be 1 to 15, got 0"),
    (16, 0, None, "--authorities must be 1 to 15, got 16"),
    (1, -1, None, "--full-nodes must be 0 to 16, got -1"),
    (3, 1, 65530, "--base-port must leave 12 ports within 1024..65535, got 65530"),
])
def test_create_refuses_what_cannot_be_laid_out(tmp_path: Path, authorities: int,
                                                full_nodes: int, base_port: int | None,
                                                words: str) -> None:
    with pytest.raises(DevnetError) as refused:
        create_devnet(tmp_path / "d", authorities, full_nodes, base_port=base_port)
    assert str(refused.value) == words
    assert not (tmp_path / "d").exists()


def test_node_lines_as_text_and_json(tmp_path: Path) -> None:
    node = create_devnet(tmp_path, 1).nodes[0]
    serving = {"rpc": node.rpc_url, "pid": 42}
    assert re.fullmatch(NODE_LINE, node_line(node, serving, as_json=False))
    assert json.loads(node_line(node, serving, as_json=True)) == {
        "node": 0, "role": "authority", "rpc": node.rpc_url, "pid": 42}
    assert node_line(node, {"exited": -9}, as_json=False) == \
        "node 0 authority exited status=-9 signal=SIGKILL"
    assert node_line(node, {"exited": 1}, as_json=False) == "node 0 authority exited status=1"


def test_cli_refuses_bad_options_and_a_data_dir_it_cannot_use(tmp_path: Path) -> None:
    assert fails("devnet") == "alys-fast: error: --authorities is required for a new devnet"
    assert fails("devnet", "--authorities", "2", "--block-time", "0") == \
        "alys-fast: error: --block-time must be 0.05 to 3600 seconds, got 0.0"
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "file").write_text("not a devnet")
    assert fails("devnet", "--authorities", "2", "--data-dir", str(tmp_path / "other")) == \
        f"alys-fast: error: {tmp_path / 'other'} is not empty and holds no devnet ({LAYOUT_FILE})"
    create_devnet(tmp_path / "kept", 3, 1)
    assert fails("devnet", "--authorities", "4", "--data-dir", str(tmp_path / "kept")) == (
        f"alys-fast: error: {tmp_path / 'kept'} holds a devnet with --authorities 3, not 4; "
        "give another --data-dir for a new one")


# --- a live federation ---------------------------------------------------------------------------


@pytest.mark.timeout(240)
def test_devnet_serves_agrees_and_stops_whole_on_sigterm(federations: list[Federation]) -> None:
    federation = Federation("--authorities", "3", "--full-nodes", "1", "--block-time", str(SLOT))
    federations.append(federation)
    root = Path(federation.devnet.expect(r" slots in (\S+) \(", 30).group(1))
    federation.announced(4)
    assert federation.roles == {0: "authority", 1: "authority", 2: "authority", 3: "full"}
    nodes = list(federation.urls)
    for url in federation.urls.values():
        assert int(rpc(url, "eth_chainId"), 16) == 121212
    federation.reach(nodes, 6)
    assert federation.agree(nodes) >= 6

    assert federation.devnet.terminate() == 0
    assert all(gone(pid) for pid in federation.pids.values())
    assert not root.exists(), "the devnet's temporary directory outlived it"


@pytest.mark.timeout(120)
def test_one_authority_merge_mined_in_json_then_stopped(federations: list[Federation]) -> None:
    """One authority (its own approval is ⌈2/3⌉): JSON lines, ``--mine`` finalizes its blocks,
    and SIGTERM stops the node and the miner and removes the temporary directory."""
    federation = Federation("--authorities", "1", "--block-time", str(SLOT), "--mine", "--json")
    federations.append(federation)
    root = Path(federation.devnet.expect(r" slots in (\S+) \(", 30).group(1))
    event = json.loads(federation.devnet.expect(r"^\{.*\}$", 90).group(0))
    assert set(event) == {"node", "role", "rpc", "pid"}
    assert (event["node"], event["role"]) == (0, "authority")
    miner = int(federation.devnet.expect(r"^miner pid (\d+) on http://", 30).group(1))
    wait_for(lambda: int(rpc(event["rpc"], "eth_getBlockByNumber", "finalized", False)["number"],
                         16) >= 2, 60, 0.2, what="blocks finalized by the devnet's miner")
    assert federation.devnet.terminate() == 0
    assert gone(event["pid"]) and gone(miner)
    assert not root.exists()


def _finalized(url: str) -> int:
    return int(rpc(url, "eth_getBlockByNumber", "finalized", False)["number"], 16)


@pytest.mark.timeout(300)
def test_merge_mining_finalizes_on_every_node_and_a_restart_keeps_it(
        tmp_path: Path, federations: list[Federation]) -> None:
    """Issue 13 on a federation: the miner's proofs go to one authority, are gossiped, and the
    next slot's author (whichever it is) puts them in its block; ``finalized`` advances on every
    node, full node included, and a restarted devnet starts from the finality it had."""
    root = tmp_path / "devnet"
    federation = Federation("--authorities", "3", "--full-nodes", "1", "--block-time", str(SLOT),
                            "--mine", "--data-dir", str(root))
    federations.append(federation)
    federation.announced(4)
    everyone = [0, 1, 2, 3]
    wait_for(lambda: min(_finalized(federation.urls[i]) for i in everyone) >= 4, 120, 0.2,
             what="blocks finalized on every node")
    federation.agree(everyone)
    assert federation.devnet.terminate() == 0
    restarted = Federation("--data-dir", str(root), "--block-time", str(SLOT))
    federations.append(restarted)
    restarted.announced(4)
    kept = {i: _finalized(restarted.urls[i]) for i in everyone}
    assert min(kept.values()) >= 4, f"finality lost by a restart: {kept}"
    restarted.reach(everyone, max(restarted.heights(everyone)) + 2)
    restarted.agree(everyone)


@pytest.mark.timeout(420)
def test_authorities_killed_and_restarted(tmp_path: Path, federations: list[Federation],
                                          ) -> None:
    """kill -9 of one authority: the chain goes on, and the authority restarted from its
    config catches up; two of three down: no block anywhere (no fork), and the chain resumes
    once they are back."""
    root = tmp_path / "devnet"
    federation = Federation("--authorities", "3", "--full-nodes", "1", "--block-time", str(SLOT),
                            "--data-dir", str(root))
    federations.append(federation)
    federation.announced(4)
    everyone = [0, 1, 2, 3]
    federation.reach(everyone, 3)

    # One authority of three killed: the two left still make ⌈2·3/3⌉ = 2 approvals.
    os.kill(federation.pids[1], signal.SIGKILL)
    federation.devnet.expect(r"^node 1 authority exited status=-9 signal=SIGKILL$", 30)
    survivors = [0, 2, 3]
    federation.reach(survivors, max(federation.heights(survivors)) + 4)
    federation.agree(survivors)

    restarted = [Running("run", "--config", str(root / "node-1" / "node.toml"),
                         "--log-level", "WARNING")]
    try:
        restarted[0].expect(r"^JSON-RPC\s+http://", 90)
        federation.reach(everyone, max(federation.heights(survivors)) + 2)
        federation.agree(everyone)

        # Two of three down: one authority alone cannot reach 2 approvals; nothing is imported.
        restarted[0].proc.kill()
        restarted[0].proc.wait(10)
        os.kill(federation.pids[2], signal.SIGKILL)
        federation.devnet.expect(r"^node 2 authority exited status=-9 signal=SIGKILL$", 30)
        left = [0, 3]
        # A block approved just before the kills may still be on its way: settle first.
        time.sleep(2 * SLOT)
        halted = wait_for(lambda: len(set(h := federation.heights(left))) == 1 and h, 30, 0.2,
                          what="the two nodes left at one height")
        time.sleep(8 * SLOT)
        assert federation.heights(left) == halted, "the chain advanced with 1 of 3 authorities"
        federation.agree(left)

        restarted = [Running("run", "--config", str(root / f"node-{i}" / "node.toml"),
                             "--log-level", "WARNING") for i in (1, 2)]
        for node in restarted:
            node.expect(r"^JSON-RPC\s+http://", 90)
        federation.reach(everyone, max(halted) + 4)
        assert federation.agree(everyone) >= max(halted) + 4
    finally:
        for node in restarted:
            node.terminate()
    assert federation.devnet.terminate() == 0
    assert (root / LAYOUT_FILE).is_file(), "a --data-dir devnet is kept"


# --- examples/federation -------------------------------------------------------------------------

EXAMPLE = ROOT / "examples" / "federation"


def test_the_example_federation_lists_its_own_keys() -> None:
    configs = [load_config(EXAMPLE / f"node-{i}.toml") for i in (1, 2, 3)]
    spec = configs[0].spec()
    assert len(spec.authorities) == len(spec.node_keys) == 3
    enodes = []
    for i, config in enumerate(configs):
        assert config.spec() == spec and config.network is not None
        key = config.authority_key()
        assert key is not None
        assert spec.authorities[i] == "0x" + SecretKey.from_bytes(key).public_key().to_bytes().hex()
        # Read as committed: git keeps no file modes, so not through load_node_key's 0600 check.
        secret = (Path(config.data_dir) / NODE_KEY_FILE).read_bytes().strip()
        node_id = NodeKey.from_secret(secret).id
        assert spec.node_keys[i] == node_id
        enodes.append(f"alys://{node_id}@{config.network.listen}")
    for i, config in enumerate(configs):
        assert config.network is not None
        assert set(config.network.bootnodes) == set(enodes) - {enodes[i]}


@pytest.mark.timeout(240)
def test_the_example_federation_starts_with_three_run_commands(tmp_path: Path) -> None:
    """The three configs, copied with their keys (data dirs are relative to them) and started
    unchanged but for the ports (free ones, so other tests' nodes cannot collide)."""
    copy = shutil.copytree(EXAMPLE, tmp_path / "federation",
                           ignore=shutil.ignore_patterns("chain", "*.log", "*.rlp", "jwtsecret"))
    ports = free_ports(9)
    for i in (1, 2, 3):
        (copy / f"data-{i}" / NODE_KEY_FILE).chmod(0o644)  # a fresh clone's: git keeps no modes
        path = copy / f"node-{i}.toml"
        text = path.read_text()
        for first, base in ((8545, 0), (3000, 3), (55444, 6)):  # rpc, consensus rpc, network
            for k in range(3):
                text = re.sub(rf"\b{first + k}\b", str(ports[base + k]), text)
        path.write_text(text)
    nodes = [Running("run", "--config", str(copy / f"node-{i}.toml"), "--log-level", "WARNING")
             for i in (1, 2, 3)]
    try:
        urls = [node.expect(r"^JSON-RPC\s+(http://127\.0\.0\.1:\d+/)$", 90).group(1)
                for node in nodes]
        wait_for(lambda: min(int(rpc(u, "eth_blockNumber"), 16) for u in urls) >= 3, 60, 0.2,
                 what="three example blocks on every node")
        top = min(int(rpc(u, "eth_blockNumber"), 16) for u in urls)
        assert block_hashes(urls[1], top) == block_hashes(urls[0], top) \
            == block_hashes(urls[2], top)
    finally:
        for node in nodes:
            node.terminate()
