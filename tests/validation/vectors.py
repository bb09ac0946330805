"""The shared transaction conformance vectors, one pytest param per line."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import SHARED

TX_VECTORS = SHARED / "vectors" / "eth-transactions.jsonl"


def tx_vector_params() -> list[Any]:
    """One param per vector line; a single param that fails the test if the file is missing."""
    if not TX_VECTORS.is_file():
        return [pytest.param(None, id="vectors-missing")]
    lines = TX_VECTORS.read_text().splitlines()
    cases = [json.loads(line) for line in lines if line.strip()]
    return [pytest.param(case, id=case["name"].split("/")[0]) for case in cases]


def require_vector(case: dict[str, Any] | None) -> dict[str, Any]:
    if case is None:
        pytest.fail(
            f"conformance vectors not found at {TX_VECTORS.resolve()}: the read-only `shared` "
            "folder must sit beside the repository root",
            pytrace=False,
        )
    return case
