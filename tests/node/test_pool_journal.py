"""Accepted transactions survive a restart of `alys-fast dev` (the pool's journal): after
``kill -9``, after a clean stop, and with the journal's last record torn."""

from __future__ import annotations

from pathlib import Path

import pytest

from alys_fast.chain.journal import JOURNAL_FILE, TxJournal, frame
from tests.chain.test_txpool import sign
from tests.node.harness import DevProcess, rpc

pytestmark = pytest.mark.timeout(120)


def status(url: str) -> dict[str, int]:
    return {k: int(v, 16) for k, v in rpc(url, "txpool_status").items()}


def pooled(url: str, tx_hash: str) -> bool:
    """Known and not in a block: what the pool holds."""
    tx = rpc(url, "eth_getTransactionByHash", tx_hash)
    return tx is not None and tx["blockNumber"] is None


def metric(url: str, name: str) -> float:
    import urllib.request

    with urllib.request.urlopen(url + "metrics", timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def test_pooled_transactions_come_back_after_kill_and_stop(tmp_path: Path) -> None:
    data_dir = tmp_path / "dev"
    node = DevProcess(data_dir, 0, "--no-mining").start()
    try:
        # Two executable transfers of one sender, one gapped of another, a replaced one.
        hashes = [rpc(node.url, "eth_sendRawTransaction", "0x" + raw.hex())
                  for raw in (sign(0, 0), sign(0, 1), sign(1, 3), sign(2, 0))]
        bumped = rpc(node.url, "eth_sendRawTransaction", "0x" + sign(2, 0, 2 * 10**9,
                                                                      20 * 10**9).hex())
        kept = [*hashes[:3], bumped]
        assert status(node.url) == {"pending": 3, "queued": 1}
        assert metric(node.url, 'alys_txpool_limit{limit="max_queued_per_sender"}') == 64
    finally:
        node.kill()  # SIGKILL: no shutdown code runs
    assert node.proc is not None and node.proc.returncode == -9

    node = DevProcess(data_dir, 0, "--no-mining").start()
    try:
        assert status(node.url) == {"pending": 3, "queued": 1}
        assert all(pooled(node.url, h) for h in kept) and not pooled(node.url, hashes[3])
        # The appended journal held five records: four came back, the replaced one did not.
        assert metric(node.url, "alys_txpool_journal_replayed_total") == 4
        assert metric(node.url, "alys_txpool_journal_skipped_total") == 1
        rpc(node.url, "evm_mine")  # includes the three pending transactions
        assert status(node.url) == {"pending": 0, "queued": 1}
    finally:
        assert node.stop() == 0  # a clean stop rewrites the journal to what is pooled
    assert TxJournal(data_dir / JOURNAL_FILE).load().raws == [sign(1, 3)]

    # A crash in the middle of an append leaves a torn last record: skipped, with a warning.
    with (data_dir / JOURNAL_FILE).open("ab") as journal:
        journal.write(frame(sign(1, 4))[:20])
    node = DevProcess(data_dir, 0, "--no-mining").start()
    try:
        assert status(node.url) == {"pending": 0, "queued": 1} and pooled(node.url, hashes[2])
        assert metric(node.url, "alys_txpool_journal_skipped_total") == 1
        for nonce in range(3):  # the sender fills its gap: all four are executable
            rpc(node.url, "eth_sendRawTransaction", "0x" + sign(1, nonce).hex())
        assert status(node.url) == {"pending": 4, "queued": 0}
    finally:
        node.kill()
