"""What a node refuses before it starts: other chain rules on a data dir, a port in use."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.node.harness import DevProcess
from tests.node.test_cli_node import fails


def test_a_data_dir_made_with_another_block_time_is_refused(tmp_path: Path) -> None:
    # Genesis does not commit to the slot length, but every later slot's author depends on it:
    # reopening with another --block-time must not silently stop block production.
    data = tmp_path / "chain"
    node = DevProcess(data, 0.2).start()
    assert node.stop() == 0
    line = fails("dev", "--data-dir", str(data), "--block-time", "1", "--port", "0")
    assert "other chain rules" in line and "slot_ms 200 -> 1000" in line
    again = DevProcess(data, 0.2).start()  # the same rules still open it
    assert again.stop() == 0


def test_a_port_in_use_is_refused_at_once(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = fails("dev", "--data-dir", str(tmp_path / "d"), "--port", str(port))
    assert f"cannot listen on 127.0.0.1:{port}" in line


def test_a_port_out_of_range_is_refused(tmp_path: Path) -> None:
    line = fails("dev", "--data-dir", str(tmp_path / "d"), "--port", "70000")
    assert "70000" in line
