"""``alys-fast auxpow verify|decode`` on the vectors, and ``alys-fast miner`` against a consensus
RPC on 127.0.0.1 that answers as Alys's does (§3.1) and checks each proof it is sent."""

import json
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from alys_fast.auxpow import parse_auxpow, sha256d, target_from_bits, verify_auxpow
from alys_fast.cli import main
from alys_fast.merged_mining.cli import ConsensusRpc, run_miner
from alys_fast.merged_mining.miner import MiningJob

DATA = Path(__file__).parent.parent / "data" / "auxpow"
VECTORS = [json.loads(line) for line in (DATA / "auxpow-vectors.jsonl").read_text().splitlines()]
HEADER_VECTORS = [v for v in VECTORS if v.get("header_with_auxpow_hex")]
ADDRESS = "0x" + "42" * 20


def _run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("v", HEADER_VECTORS, ids=lambda v: f"{v['chain']}-{v['height']}")
def test_verify_prints_each_vectors_verdict(v: dict, capsys: pytest.CaptureFixture) -> None:
    if "version_chain_id_mask" in v:
        pytest.skip("Syscoin's masked chain id is not a CLI option")
    args = ["auxpow", "verify", "--chain-id", str(v["chain_id"]),
            "--profile", "dogecoin" if v["pow_algo"] == "scrypt" else "namecoin"]
    if v["strict_chain_id"]:
        args.append("--strict-chain-id")
    if v.get("target_bits_override"):
        args += ["--bits", v["target_bits_override"]]
    code, out, _err = _run(capsys, *args, v["header_with_auxpow_hex"])
    verdict = json.loads(out)
    assert verdict["block_hash"] == v["block_hash"]
    if v["expect"] == "valid":
        assert (code, verdict["valid"], verdict["rule"]) == (0, True, None)
    else:
        assert (code, verdict["valid"]) == (1, False)
        assert verdict["rule"] == v["expect"].removeprefix("invalid: ")


def test_verify_a_bare_alys_proof(capsys: pytest.CaptureFixture) -> None:
    job = MiningJob(sha256d(b"blocks"), 121212, 0x207FFFFF)
    proof = job.mine().hex()
    base = ["auxpow", "verify", "--chain-id", "121212", "--hash", job.aux_hash.hex()]
    code, out, _ = _run(capsys, *base, "--bits", "207fffff", proof)
    assert code == 0 and json.loads(out) == {
        "valid": True, "rule": None, "block_hash": job.aux_hash.hex()}
    code, out, _ = _run(capsys, *base, "--target", "1", proof)
    assert code == 1 and json.loads(out)["rule"] == "parent-pow-above-target"
    # The miner's parent carries chain id 1: a chain with id 1 must refuse it (AL4, always on).
    code, out, _ = _run(capsys, "auxpow", "verify", "--chain-id", "1", "--hash",
                        job.aux_hash.hex(), "--bits", "207fffff", proof)
    assert code == 1 and json.loads(out)["rule"] == "parent-has-own-chain-id"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--hash", "00" * 32, "--bits", "207fffff", "zz"], "not hex"),
        (["--hash", "00" * 31, "--bits", "207fffff", "00"], "--hash is 32 bytes"),
        (["--hash", "00" * 32, "00"], "needs --bits or --target"),
        (["--hash", "00" * 32, "--bits", "04923456", "00"], "--bits: nBits"),
        (["01000000"], "neither a header"),
    ],
)
def test_verify_bad_input_exits_2(argv: list, message: str, capsys) -> None:
    code, out, err = _run(capsys, "auxpow", "verify", "--chain-id", "1", *argv)
    assert code == 2 and out == "" and message in err


def test_decode(capsys: pytest.CaptureFixture) -> None:
    v = next(v for v in HEADER_VECTORS if v["height"] == 37174 and v["expect"] == "valid")
    code, out, _ = _run(capsys, "auxpow", "decode", v["header_with_auxpow_hex"])
    decoded = json.loads(out)
    assert code == 0 and decoded["header"]["hash"] == v["block_hash"]
    auxpow = decoded["auxpow"]
    assert auxpow["coinbase_txid"] == v["coinbase_txid"]
    assert auxpow["parent"]["hash"] == v["parent_block_hash"]
    assert (len(auxpow["chain_branch"]), auxpow["chain_index"]) == (4, 11)
    job = MiningJob(sha256d(b"blocks"), 121212, 0x207FFFFF)
    code, out, _ = _run(capsys, "auxpow", "decode", job.mine().hex())
    commitment = json.loads(out)["auxpow"]["alys_commitment"]
    assert commitment == {"root": job.aux_hash.hex(), "tree_size": 1, "tree_nonce": 0}
    code, out, err = _run(capsys, "auxpow", "decode", "0100")
    assert code == 2 and "not an AuxPoW: truncated" in err


# --- the miner against a consensus RPC ---------------------------------------------------------

class ConsensusStub(BaseHTTPRequestHandler):
    """Alys's createauxblock/submitauxblock shapes: no work at first (503, -32606), then one
    AuxBlock; each submitted proof is verified before it is accepted."""

    server: "RpcServer"

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        status, answer = self.server.answer(request["method"], request["params"])
        body = json.dumps({**answer, "id": request["id"]}).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class RpcServer(ThreadingHTTPServer):
    AUX_HASH = sha256d(b"unfinalized blocks")
    BITS = 0x1F00FFFF

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), ConsensusStub)
        self.asks = 0
        self.accepted: list[bytes] = []
        self.refused = 0
        self.submitted = threading.Event()

    def answer(self, method: str, params: list) -> tuple[int, dict]:
        if method == "createauxblock":
            self.asks += 1
            if self.asks == 1:
                return 503, {"result": None, "error": {"code": -32606, "message": "syncing"}}
            target = target_from_bits(self.BITS).to_bytes(32, "little").hex()
            block = {"hash": self.AUX_HASH.hex(), "chainid": 121212, "previousblockhash":
                     "00" * 32, "coinbasevalue": 0, "bits": f"{self.BITS:x}", "height": 3,
                     "_target": target}
            return 200, {"result": block, "error": None}
        assert method == "submitauxblock" and params[0] == self.AUX_HASH.hex()
        proof = bytes.fromhex(params[1])
        try:
            verify_auxpow(parse_auxpow(proof), self.AUX_HASH, 121212,
                          target_from_bits(self.BITS), "alys")
        except ValueError as exc:
            self.refused += 1
            return 400, {"result": None, "error": {"code": -32605, "message": str(exc)}}
        self.accepted.append(proof)
        self.submitted.set()
        return 200, {"result": None, "error": None}


@pytest.fixture
def rpc_server() -> Iterator[RpcServer]:
    server = RpcServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_miner_waits_for_work_then_submits_a_valid_proof(rpc_server: RpcServer) -> None:
    stop = threading.Event()
    url = f"http://127.0.0.1:{rpc_server.server_address[1]}"
    found: list[bytes] = []

    def submitted(_block: object, proof: bytes) -> None:
        found.append(proof)
        stop.set()

    miner = threading.Thread(target=run_miner, args=(ConsensusRpc(url), ADDRESS, 2, stop),
                             kwargs={"retry": 0.05, "on_submit": submitted})
    miner.start()
    miner.join(120)
    stop.set()
    assert not miner.is_alive()
    assert rpc_server.asks >= 2 and rpc_server.refused == 0
    assert found and found[0] == rpc_server.accepted[0]


def test_miner_command_stops_cleanly_on_sigterm(rpc_server: RpcServer) -> None:
    url = f"http://127.0.0.1:{rpc_server.server_address[1]}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "alys_fast", "miner", "--rpc", url, "--address", ADDRESS,
         "--retry", "0.05"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert rpc_server.submitted.wait(120)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "found a proof for " + RpcServer.AUX_HASH.hex() in err
    assert "H/s" in err and "Traceback" not in err
