"""The committed Solidity test contracts (``tests/data/contracts``) as transaction payloads."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from eth_abi import decode, encode
from eth_utils import keccak

CONTRACTS = Path(__file__).resolve().parents[1] / "data" / "contracts"


@cache
def artifact(name: str) -> dict[str, Any]:
    return json.loads((CONTRACTS / f"{name}.json").read_text())


def creation_code(name: str, types: list[str] | None = None, args: list[Any] | None = None
                  ) -> bytes:
    """``name``'s creation code with its ABI-encoded constructor arguments appended."""
    code = bytes.fromhex(artifact(name)["bytecode"][2:])
    return code + (encode(types, args) if types else b"")


def runtime_code(name: str) -> bytes:
    return bytes.fromhex(artifact(name)["deployedBytecode"][2:])


def calldata(name: str, signature: str, *args: Any) -> bytes:
    """The call of ``signature`` (e.g. ``"transfer(address,uint256)"``) with ``args``."""
    selector = bytes.fromhex(artifact(name)["methodIdentifiers"][signature])
    types = signature[signature.index("(") + 1 : -1]
    return selector + (encode(types.split(","), list(args)) if types else b"")


def decoded(types: list[str], output: bytes) -> tuple[Any, ...]:
    return decode(types, output)


def hex_address(address: bytes) -> str:
    return "0x" + address.hex()


def mapping_slot(key: bytes, slot: int) -> int:
    """Where Solidity keeps ``mapping[key]`` for a mapping at ``slot`` (an address key)."""
    return int.from_bytes(keccak(key.rjust(32, b"\0") + slot.to_bytes(32, "big")), "big")


def event_topic(signature: str) -> bytes:
    return keccak(signature.encode())


TRANSFER = event_topic("Transfer(address,address,uint256)")
