"""Every method of a dev node fed junk: each refusal is written for a person and none is an
internal error.

The method table is the node's own (:func:`alys_fast.rpc.actor.node_methods`, so a method
added later is walked too), dispatched in-process on the running node's loop against its real
actors. Each method gets a battery of wrong types, nested objects, bytes-like and huge values,
nulls, missing and extra arguments, alone and after plausible leading arguments. An answer
fails the test if it is -32603 (an internal error is a bug to fix where it starts) or if its
message carries a Python repr (``b'..'``, ``None``, ``True``, ``{'k': ..}``, a traceback, an
object address) or a Rust one (``Some(..)``, ``Err(..)``). The struct logger's per-step errors
are checked the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from alys_fast.chain.mining import DevMining
from alys_fast.chain.spec import DEV_ACCOUNTS, DEV_CHAIN_ID
from alys_fast.rpc.dispatch import INTERNAL_ERROR, Dispatcher
from tests.node.harness import ThreadNode, rpc, running_node

SENDER = DEV_ACCOUNTS[0][0].lower()
STRANGER = "0x" + "11" * 20
CALL = {"from": SENDER, "to": STRANGER}
HASH = "0x" + "ab" * 32
# A Python or Rust value printed where a person's words belong.
REPR = re.compile(r"""(?<![\w"'])b['"]|\bNone\b|\bTrue\b|\bFalse\b|\{'|\['|Traceback|object at 0x"""
                  r"""|<class |\bSome\(|\bErr\(|\bOk\(""")
JUNK: list[Any] = [
    None, True, False, -1, 2**64, 2**300, 1.5, "", "junk", "0x", "0xzz", "0x" + "f" * 65,
    "0x" + "ff" * 40, "0x" + "f" * 16, "0x" + "00" * 32, [], [None], {},
    {"a": {"b": [1, None, 2.5]}},
    {"from": "junk", "to": 5, "data": []}, {"blockHash": 5}, "latest", "\u0000\u00ff",
]
# Plausible leading arguments, so that junk reaches the later parameters' checks too.
LEADS: list[list[Any]] = [[STRANGER], [CALL], [HASH], [STRANGER, "latest"], [CALL, "latest"]]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadNode]:
    keys = tuple(bytes.fromhex(key[2:]) for _, key in DEV_ACCOUNTS)
    with running_node(tmp_path_factory.mktemp("no-reprs"), slot_ms=1000, archive=True,
                      dev_mining=DevMining(), dev_keys=keys) as running:
        yield running


@pytest.fixture(scope="module")
def dispatcher(node: ThreadNode) -> Dispatcher:
    """The node's method table over its actors, as its RPC actor builds it."""

    return Dispatcher(node.method_table(), max_batch=10_000)


def battery() -> list[Any]:
    """The ``params`` tried on every method."""
    out: list[Any] = []
    for junk in JUNK:
        out += [junk, [junk], [junk, junk, junk], {"junk": junk}]
        out += [[*lead, junk] for lead in LEADS]
    return out


def answers(node: ThreadNode, dispatcher: Dispatcher, method: str) -> list[tuple[Any, Any]]:
    """(params, answer) for the whole battery on ``method``, sent as one batch."""
    tried = battery()
    body = msgspec.json.encode([
        {"jsonrpc": "2.0", "id": i, "method": method, "params": params}
        for i, params in enumerate(tried)
    ])
    reply = msgspec.json.decode(node.call(dispatcher.handle(body), timeout=120))
    assert type(reply) is list, reply
    return [(tried[item["id"]], item) for item in reply]


def test_every_method_refuses_junk_in_words(node: ThreadNode, dispatcher: Dispatcher) -> None:
    names = sorted(dispatcher.methods)
    assert {"eth_call", "eth_feeHistory", "debug_traceCall", "anvil_setBalance",
            "eth_sendTransaction"} <= set(names)
    bad = []
    refusals = 0
    for method in names:
        for params, answer in answers(node, dispatcher, method):
            error = answer.get("error")
            if error is None:
                continue
            refusals += 1
            text = error["message"] + (error["data"] if type(error.get("data")) is str else "")
            if error["code"] == INTERNAL_ERROR or REPR.search(text):
                bad.append(f"{method} {msgspec.json.encode(params).decode()[:80]}: {error}")
    assert not bad, "\n".join(bad[:40])
    assert refusals > 20 * len(names)  # the battery did reach the methods' checks
    # No junk wedged the chain (a clock pushed past what a header holds, a crashed actor).
    before = int(rpc(node.url, "eth_blockNumber"), 16)
    assert rpc(node.url, "evm_mine") == "0x0"
    assert int(rpc(node.url, "eth_blockNumber"), 16) == before + 1
    assert rpc(node.url, "eth_chainId") == hex(DEV_CHAIN_ID)


@pytest.mark.parametrize("code, fault", [
    ("0x5b5f56", "out of gas"),  # JUMPDEST PUSH0 JUMP: loops until the gas runs out
    ("0xfe", "invalid opcode: INVALID"),
    ("0x01", "stack underflow"),  # ADD on an empty stack
    ("0x6001600256", "invalid jump destination"),  # PUSH1 1 PUSH1 2 JUMP
])
def test_struct_log_errors_are_geths_words(node: ThreadNode, code: str, fault: str) -> None:
    trace = rpc(node.url, "debug_traceCall", {**CALL, "gas": hex(21_100)}, "latest",
                {"stateOverrides": {STRANGER: {"code": code}}})
    errors = [step["error"] for step in trace["structLogs"] if "error" in step]
    assert trace["failed"] and errors == [fault]
