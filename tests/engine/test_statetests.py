"""Ethereum's GeneralStateTests (Cancun) on the revm engine, one pytest item per suite directory.

The vendored archive (``tests/data/state-tests.tar.xz``) is run in-process through the same
runner as ``alys-fast evm statetest``; a failure lists every failing case with its reason. All
14,914 cases run (about 20 s), so there is no sampling to miss a regression.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from alys_fast.engine.statetest import read_sources, run_sources

ARCHIVE = Path(__file__).resolve().parents[1] / "data" / "state-tests.tar.xz"


@cache
def suite() -> dict[str, list[tuple[str, bytes]]]:
    """The archive's files grouped by top-level directory (``stRandom``, ``Pyspecs``, ...)."""
    groups: dict[str, list[tuple[str, bytes]]] = {}
    for source, content in read_sources([ARCHIVE]):
        directory = source.removeprefix(f"{ARCHIVE}/state-tests/").split("/")[0]
        groups.setdefault(directory, []).append((source, content))
    return groups


def test_the_whole_suite_is_vendored():
    files = sum(len(group) for group in suite().values())
    assert (len(suite()), files) == (56, 1683)


@pytest.mark.parametrize("directory", sorted(suite()))
def test_state_tests(directory: str):
    failures = [
        f"{r.source.removeprefix(f'{ARCHIVE}/')} {r.name}[{r.index}]: {r.error}"
        for r in run_sources(suite()[directory])
        if not r.passed
    ]
    if failures:
        pytest.fail(f"{len(failures)} failing cases:\n" + "\n".join(failures), pytrace=False)
