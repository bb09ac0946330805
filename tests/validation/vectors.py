"""The transaction conformance vectors, one pytest param per line.

``tests/validation/data/eth-transactions.jsonl`` is vendored unchanged from the project's shared
material (110 signed transactions across forks, each with its expected verdict), so the tests
need nothing beside the repository.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import ROOT

TX_VECTORS = ROOT / "tests" / "validation" / "data" / "eth-transactions.jsonl"


def tx_vectors() -> list[dict[str, Any]]:
    lines = TX_VECTORS.read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def tx_vector_params() -> list[Any]:
    return [pytest.param(case, id=case["name"].split("/")[0]) for case in tx_vectors()]
