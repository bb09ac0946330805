"""A live ``alys-fast devnet`` as its tests drive it: the :class:`Federation` of OS processes a
test starts, the ``federations`` fixture that stops every one it was given, and :func:`gone`."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.node.harness import rpc
from tests.node.test_cli_node import Running
from tests.node.test_durability import block_hashes, wait_for

NODE_LINE = r"^node (\d+) (authority|full) rpc=(http://127\.0\.0\.1:\d+/) pid=(\d+)$"


class Federation:
    """A running ``alys-fast devnet`` and what it announced."""

    def __init__(self, *args: str) -> None:
        self.devnet = Running("devnet", *args, "--log-level", "WARNING")
        self.urls: dict[int, str] = {}
        self.pids: dict[int, int] = {}
        self.roles: dict[int, str] = {}

    def announced(self, count: int) -> None:
        for _ in range(count):
            index, role, url, pid = self.devnet.expect(NODE_LINE, 90).groups()
            self.urls[int(index)], self.pids[int(index)] = url, int(pid)
            self.roles[int(index)] = role

    def height(self, index: int) -> int:
        return int(rpc(self.urls[index], "eth_blockNumber"), 16)

    def heights(self, indexes: list[int]) -> list[int]:
        return [self.height(i) for i in indexes]

    def reach(self, indexes: list[int], height: int, timeout: float = 60.0) -> None:
        wait_for(lambda: min(self.heights(indexes)) >= height, timeout, 0.2,
                 what=f"nodes {indexes} at height {height} (heights {self.heights(indexes)})")

    def agree(self, indexes: list[int]) -> int:
        """Every node of ``indexes`` holds the same block at every height up to the lowest
        head among them; that height."""
        top = min(self.heights(indexes))
        chains = {i: block_hashes(self.urls[i], top) for i in indexes}
        first = chains[indexes[0]]
        for i in indexes[1:]:
            assert chains[i] == first, f"node {i} forked from node {indexes[0]} below {top}"
        return top


@pytest.fixture
def federations() -> Iterator[list[Federation]]:
    started: list[Federation] = []
    yield started
    for federation in started:
        federation.devnet.terminate()


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False
