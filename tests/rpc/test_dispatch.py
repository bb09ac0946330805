"""The dispatcher without a transport: every error code, notifications, batches, arity, and
the parameter helpers."""

from __future__ import annotations

import asyncio
import sys

import msgspec
import pytest

from alys_fast.rpc import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    SERVER_ERROR,
    Dispatcher,
    InvalidParams,
    Methods,
    ServerError,
)
from alys_fast.rpc.dispatch import (
    CallStats,
    address,
    block_id,
    boolean,
    data,
    hash32,
    quantity,
    show,
)
from tests.rpc.helpers import Chain, call, methods


def answer(body: bytes | str | object, max_batch: int = 1000) -> object:
    dispatcher = Dispatcher(methods(Chain()), max_batch=max_batch)
    raw = body if isinstance(body, bytes) else msgspec.json.encode(body)
    out = asyncio.run(dispatcher.handle(raw))
    return None if out is None else msgspec.json.decode(out)


def code(response: object) -> int:
    assert isinstance(response, dict), response
    return response["error"]["code"]


def test_single_sync_and_async_results():
    assert answer(call("eth_chainId")) == {"jsonrpc": "2.0", "id": 1, "result": "0x1d97c"}
    assert answer(call("eth_blockNumber", id_="x"))["result"] == "0x7"
    assert answer(call("eth_blockNumber", id_=None))["id"] is None


def test_params_by_name_and_by_position():
    assert answer(call("add", "0x1", "0x2"))["result"] == "0x3"
    named = {"jsonrpc": "2.0", "id": 2, "method": "add", "params": {"a": "0x1", "b": "0x5"}}
    assert answer(named)["result"] == "0x6"


@pytest.mark.parametrize(("body", "expected"), [
    (b"{", PARSE_ERROR),
    (b"\xff\xfe", PARSE_ERROR),
    (b"[" * 100_000, PARSE_ERROR),
    (b"1", INVALID_REQUEST),
    ({"jsonrpc": "1.0", "id": 1, "method": "eth_chainId"}, INVALID_REQUEST),
    ({"jsonrpc": "2.0", "id": 1, "method": 5}, INVALID_REQUEST),
    ({"jsonrpc": "2.0", "id": [1], "method": "eth_chainId"}, INVALID_REQUEST),
    ({"jsonrpc": "2.0", "id": True, "method": "eth_chainId"}, INVALID_REQUEST),
    ([], INVALID_REQUEST),
    (call("eth_nope"), METHOD_NOT_FOUND),
    (call("add", "0x1"), INVALID_PARAMS),
    (call("add", "0x1", "0x2", "0x3"), INVALID_PARAMS),
    (call("add", "1", "0x2"), INVALID_PARAMS),
    ({"jsonrpc": "2.0", "id": 1, "method": "add", "params": "0x1"}, INVALID_PARAMS),
    ({"jsonrpc": "2.0", "id": 1, "method": "add", "params": {"a": "0x1"}}, INVALID_PARAMS),
    ({"jsonrpc": "2.0", "id": 1, "method": "add", "params": {"a": "0x1", "b": "0x1", "c": 1}},
     INVALID_PARAMS),
    (call("crash"), INTERNAL_ERROR),
    (call("unencodable"), INTERNAL_ERROR),
])
def test_error_codes(body, expected):
    assert code(answer(body)) == expected


def test_deep_nesting_is_a_parse_error_even_with_a_raised_recursion_limit():
    """web3 sets the recursion limit to 100,000; msgspec would then overflow the C stack."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(100_000)
    try:
        for body in (b"[" * 100_000, b"[{" * 50_000, b'{"a":' * 100_000, b"[" * 65 + b"]" * 65):
            out = answer(body)
            assert code(out) == PARSE_ERROR and "deeper than 64" in out["error"]["message"]
    finally:
        sys.setrecursionlimit(limit)
    assert code(answer(b"[" * 64 + b"]" * 64)[0]) == INVALID_REQUEST  # deep, but allowed
    brackets_in_strings = call("add", "0x1", "0x2") | {"id": "[" * 100 + '\\"{' * 100}
    assert answer(brackets_in_strings)["result"] == "0x3"
    assert answer([call("eth_chainId", id_="[{" * 40)] * 50)[0]["result"] == "0x1d97c"


def test_server_error_carries_message_and_data():
    dispatcher = Dispatcher(methods(Chain()))
    batch = [call("eth_sendRawTransaction", "0x5", id_=1),
             call("eth_sendRawTransaction", "0x1", id_=2)]
    out = msgspec.json.decode(asyncio.run(dispatcher.handle(msgspec.json.encode(batch))))
    assert out[0]["result"].startswith("0x")
    assert out[1]["error"] == {"code": SERVER_ERROR, "message": "nonce too low",
                               "data": {"have": 1}}


def test_internal_error_hides_the_exception():
    assert answer(call("crash"))["error"] == {"code": INTERNAL_ERROR, "message": "internal error"}


def test_notifications_run_but_get_no_answer():
    chain = Chain()
    dispatcher = Dispatcher(methods(chain))
    note = {"jsonrpc": "2.0", "method": "eth_sendRawTransaction", "params": ["0x3"]}
    assert asyncio.run(dispatcher.handle(msgspec.json.encode(note))) is None
    assert chain.nonces == {"a": 4}
    notes = [note, {"jsonrpc": "2.0", "method": "eth_nope"}, {"jsonrpc": "2.0", "method": "crash"}]
    assert asyncio.run(dispatcher.handle(msgspec.json.encode(notes))) is None


def test_batch_mixes_answers_in_order_and_skips_notifications():
    batch = [call("eth_chainId", id_=1), {"jsonrpc": "2.0", "method": "eth_chainId"}, 7,
             call("eth_nope", id_=3), call("eth_blockNumber", id_=4)]
    out = answer(batch)
    assert [r["id"] for r in out] == [1, None, 3, 4]
    assert [r.get("result") or r["error"]["code"] for r in out] == [
        "0x1d97c", INVALID_REQUEST, METHOD_NOT_FOUND, "0x7"]


def test_batch_limit():
    assert len(answer([call("eth_chainId", id_=i) for i in range(5)], max_batch=5)) == 5
    over = answer([call("eth_chainId", id_=i) for i in range(6)], max_batch=5)
    assert code(over) == INVALID_REQUEST
    assert "6" in over["error"]["message"]


def test_methods_table_reads_arity_once_and_refuses_non_callables():
    table = Methods({"f": lambda a, b=1, *rest: a})
    assert "f" in table and len(table) == 1 and list(table) == ["f"]
    dispatcher = Dispatcher(table)
    many = msgspec.json.encode(call("f", *range(10)))
    assert msgspec.json.decode(asyncio.run(dispatcher.handle(many)))["result"] == 0
    with pytest.raises(TypeError):
        table.add("bad", 5)


@pytest.mark.parametrize(("fn", "value", "expected"), [
    (quantity, "0x0", 0),
    (quantity, "0x1f", 31),
    (data, "0x", b""),
    (data, "0xdeadBEEF", b"\xde\xad\xbe\xef"),
    (address, "0x" + "11" * 20, b"\x11" * 20),
    (hash32, "0x" + "ab" * 32, b"\xab" * 32),
    (boolean, True, True),
    (block_id, "latest", "latest"),
    (block_id, "0x10", 16),
    (block_id, {"blockNumber": "safe"}, "safe"),
    (block_id, {"blockHash": "0x" + "01" * 32}, b"\x01" * 32),
])
def test_param_helpers_accept(fn, value, expected):
    assert fn(value) == expected


@pytest.mark.parametrize(("fn", "value", "reason"), [
    (quantity, "0x", "0x"),
    (quantity, "0x01", "leading zero"),
    (quantity, "1", "without 0x"),
    (quantity, "0xg", "invalid hex"),
    (quantity, 5, "not a hex string"),
    (quantity, "0x1" + "0" * 64, "256 bits"),
    (data, "0xabc", "odd length"),
    (address, "0x" + "11" * 19, "want 40"),
    (boolean, 1, "not a boolean"),
    (block_id, "newest", "without 0x"),
    (block_id, ["latest"], "not a hex string"),
    (block_id, {}, "blockHash or blockNumber"),
    (block_id, "0x1" + "0" * 16, "64 bits"),
])
def test_param_helpers_refuse_with_the_value(fn, value, reason):
    with pytest.raises(InvalidParams, match=reason) as caught:
        fn(value)
    assert caught.value.code == INVALID_PARAMS


def test_a_batch_form_runs_where_its_first_call_sits() -> None:
    # Calls before the first batchable one must not see its effects; its calls answer in place.
    seen: list[str] = []

    def send_all(calls: list) -> list:
        seen.extend(p[0] for p in calls)
        return [p[0] for p in calls]

    methods = Methods({"read": lambda: list(seen)})
    methods.add("send", seen.append, batch=send_all)
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "read"},
        {"jsonrpc": "2.0", "id": 2, "method": "send", "params": ["a"]},
        {"jsonrpc": "2.0", "id": 3, "method": "read"},
        {"jsonrpc": "2.0", "id": 4, "method": "send", "params": ["b"]},
    ]
    out = msgspec.json.decode(asyncio.run(Dispatcher(methods).handle(msgspec.json.encode(batch))))
    assert [r["id"] for r in out] == [1, 2, 3, 4]
    assert out[0]["result"] == []
    assert out[2]["result"] == ["a", "b"]
    assert (out[1]["result"], out[3]["result"]) == ("a", "b")


def test_a_batch_form_raising_an_rpc_error_keeps_its_code() -> None:
    def refuse(calls):
        raise ServerError("pool unavailable")

    methods = Methods()
    methods.add("send", lambda x: x, batch=refuse)
    batch = [{"jsonrpc": "2.0", "id": i, "method": "send", "params": [i]} for i in range(2)]
    out = msgspec.json.decode(asyncio.run(Dispatcher(methods).handle(msgspec.json.encode(batch))))
    assert [r["error"]["code"] for r in out] == [-32000, -32000]
    assert out[0]["error"]["message"] == "pool unavailable"


def test_batch_form_calls_are_counted_one_by_one() -> None:
    def send_all(calls):
        return [ServerError("refused") if params == ["bad"] else params[0] for params in calls]

    methods = Methods()
    methods.add("send", lambda x: x, batch=send_all)
    stats = CallStats()
    batch = [{"jsonrpc": "2.0", "id": i, "method": "send", "params": [p]}
             for i, p in enumerate(["a", "bad", "c"])]
    asyncio.run(Dispatcher(methods, stats=stats).handle(msgspec.json.encode(batch)))
    calls = stats.methods["send"]
    assert (calls.latency.count, calls.errors) == (3, 1)


@pytest.mark.parametrize("value, shown", [
    (None, "null"), (True, "true"), ("0xzz", '"0xzz"'), ({"a": [1]}, '{"a":[1]}'),
    ("x" * 100, '"' + "x" * 66 + "..."),
])
def test_values_in_messages_are_the_clients_json(value: object, shown: str) -> None:
    assert show(value) == shown
    with pytest.raises(InvalidParams) as info:
        quantity(value)
    assert info.value.message.startswith(f"invalid quantity {shown}: ")
