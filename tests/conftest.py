"""Shared test helpers: the project root, and the pinned geth binary (the Engine API and the
devnet-over-geth tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def geth_binary() -> str:
    """The pinned geth (tools/install_geth.sh, once per session); skips where Go is missing."""
    from tests.engine.geth_harness import GethUnavailable, install_geth

    try:
        return install_geth()
    except GethUnavailable as exc:
        if exc.go_missing:
            pytest.skip(str(exc))
        pytest.fail(str(exc))
