"""The dapp developer's loop on ``alys-fast dev``: how long a hardhat-style script waits.

Starts ``python -m alys_fast dev`` (a real process, as a developer runs it) once automining
(the default) and once mining by interval (1 s blocks, the previous default), and runs the same
script with web3.py against each: deploy the committed Token through ``eth_sendTransaction``
(an unlocked dev account), ``transfer`` N times, each time waiting for the receipt as
``tx.wait()`` does (web3's ``wait_for_transaction_receipt``, polling every 100 ms — ethers
polls every 4 s by default, which only widens the gap), then read the balances and the
Transfer events. Prints one JSON object: per mode the send→receipt latency percentiles, the
whole script's seconds, and the ratio interval / automine. ``--short``: fewer transfers.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from web3 import Web3
from web3.providers import HTTPProvider

ROOT = Path(__file__).resolve().parents[1]
TOKEN = json.loads((ROOT / "tests/data/contracts/Token.json").read_text())
_URL = re.compile(r"JSON-RPC\s+(http://\S+)")


def start_dev(data_dir: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "alys_fast", "dev", "--port", "0", "--data-dir", str(data_dir),
         "--log-level", "WARNING", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        match = _URL.search(line)
        if match:
            return proc, match.group(1)
    proc.kill()
    raise RuntimeError("the dev node did not start")


def script(url: str, transfers: int) -> dict[str, Any]:
    """The hardhat-style flow; its latencies and duration."""
    w3 = Web3(HTTPProvider(url, request_kwargs={"timeout": 30}))
    owner, receiver = w3.eth.accounts[0], w3.eth.accounts[1]
    started = time.perf_counter()
    latencies: list[float] = []

    def wait(tx_hash: bytes) -> Any:
        sent = time.perf_counter()
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60, poll_latency=0.1)
        latencies.append(time.perf_counter() - sent)
        assert receipt.status == 1, receipt
        return receipt

    factory = w3.eth.contract(abi=TOKEN["abi"], bytecode=TOKEN["bytecode"])
    deployed = wait(factory.constructor(10**24).transact({"from": owner}))
    token = w3.eth.contract(address=deployed.contractAddress, abi=TOKEN["abi"])
    for _ in range(transfers):
        wait(token.functions.transfer(receiver, 10**18).transact({"from": owner}))
    assert token.functions.balanceOf(receiver).call() >= transfers * 10**18
    events = token.events.Transfer().get_logs(from_block=deployed.blockNumber)
    assert len(events) == transfers + 1
    total = time.perf_counter() - started
    ms = sorted(1000 * x for x in latencies)
    return {
        "transactions": len(latencies),
        "receipt_ms_p50": round(statistics.median(ms), 1),
        "receipt_ms_p95": round(ms[int(0.95 * (len(ms) - 1))], 1),
        "script_seconds": round(total, 2),
    }


def run(mode_args: list[str], transfers: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_dev(Path(tmp) / "chain", *mode_args)
        try:
            return script(url, transfers)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="CI mode: fewer transfers")
    args = parser.parse_args()
    transfers = 5 if args.short else 20
    automine = run([], transfers)
    interval = run(["--block-time", "1"], transfers)
    print(json.dumps({
        "bench": "dev",
        "automine": automine,
        "interval_1s": interval,
        "script_interval_vs_automine": round(
            interval["script_seconds"] / automine["script_seconds"], 1),
    }))


if __name__ == "__main__":
    main()
