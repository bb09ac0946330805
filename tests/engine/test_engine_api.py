"""The Engine API client without geth: the hex codec, and the HTTP/JSON-RPC layer against a
scripted loopback server that answers as Go's net/http does (sized or chunked bodies,
keep-alive, closing idle connections, hanging), including what geth itself never sends
(INVALID_BLOCK_HASH). The client against a real geth: test_engine_api_geth.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import jwt
import msgspec
import pytest

from alys_fast.actors.breaker import BreakerState, CircuitBreaker
from alys_fast.engine.engine_api import (
    EngineApi,
    EngineRpcError,
    EngineTimeout,
    EngineUnavailable,
    EthRpc,
    ExecutionPayloadV2,
    ExecutionPayloadV3,
    PayloadNotValidated,
    PayloadRefused,
    Withdrawal,
    from_wire,
    to_wire,
)
from alys_fast.engine.http import HttpClient, TransportTimeout

pytestmark = pytest.mark.timeout(30)
SECRET = bytes(range(32))

PAYLOAD = ExecutionPayloadV3(
    parent_hash=b"\x01" * 32, fee_recipient=b"\xde" * 20, state_root=b"\x02" * 32,
    receipts_root=b"\x03" * 32, logs_bloom=bytes(256), prev_randao=bytes(32), block_number=7,
    gas_limit=30_000_000, gas_used=21_000, timestamp=1_700_000_000, extra_data=b"",
    base_fee_per_gas=875_000_000, block_hash=b"\x04" * 32, transactions=(b"\x02\xf8", b"\x01"),
    withdrawals=(Withdrawal(0, 0, b"\x05" * 20, 10**9),), blob_gas_used=0, excess_blob_gas=0,
)


def test_payload_wire_form_is_camel_case_hex_and_round_trips() -> None:
    wire = to_wire(PAYLOAD)
    assert wire["blockNumber"] == "0x7" and wire["extraData"] == "0x"
    assert wire["baseFeePerGas"] == hex(875_000_000) and wire["blobGasUsed"] == "0x0"
    assert wire["withdrawals"] == [{"index": "0x0", "validatorIndex": "0x0",
                                    "address": "0x" + "05" * 20, "amount": hex(10**9)}]
    assert from_wire(ExecutionPayloadV3, msgspec.json.decode(msgspec.json.encode(wire))) \
        == PAYLOAD
    v2 = {k: v for k, v in wire.items() if k not in ("blobGasUsed", "excessBlobGas")}
    assert type(from_wire(ExecutionPayloadV2, v2)) is ExecutionPayloadV2


@pytest.mark.parametrize(("field", "value", "says"), [
    ("blockNumber", 7, "expected a hex quantity, got 7"),
    ("stateRoot", "0xzz", "non-hexadecimal"),
    ("transactions", "0x02", 'expected a list, got "0x02"'),
    ("blockHash", None, "expected hex data, got null"),
])
def test_malformed_wire_values_are_named(field: str, value: object, says: str) -> None:
    wire = to_wire(PAYLOAD) | {field: value}
    with pytest.raises(ValueError, match=says):
        from_wire(ExecutionPayloadV3, wire)


def test_a_missing_field_is_named() -> None:
    wire = to_wire(PAYLOAD)
    del wire["blockHash"]
    with pytest.raises(ValueError, match=r"ExecutionPayloadV3: .*block_hash"):
        from_wire(ExecutionPayloadV3, wire)


Answer = Callable[[bytes, dict[str, str]], bytes | None]


class ScriptedServer:
    """A loopback HTTP server; ``answer(body, headers)`` gives the raw HTTP answer (None:
    never answer). Counts connections; ``close_after_each`` closes every connection after
    one answer without saying so (as an idle timeout would)."""

    def __init__(self, answer: Answer, close_after_each: bool = False) -> None:
        self.answer = answer
        self.close_after_each = close_after_each
        self.connections = 0
        self.requests: list[tuple[bytes, dict[str, str]]] = []

    async def __aenter__(self) -> ScriptedServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                headers = dict(line.split(": ", 1) for line in
                               head.decode().split("\r\n")[1:] if ": " in line)
                body = await reader.readexactly(int(headers["Content-Length"]))
                self.requests.append((body, headers))
                answer = self.answer(body, headers)
                if answer is None:
                    await asyncio.sleep(3600)
                writer.write(answer)
                await writer.drain()
                if self.close_after_each:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def sized(body: bytes, status: str = "200 OK") -> bytes:
    return b"HTTP/1.1 %s\r\nContent-Length: %d\r\n\r\n%s" % (status.encode(), len(body), body)


def chunked(body: bytes) -> bytes:
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 7]), body[i:i + 7])
                      for i in range(0, len(body), 7))
    return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%s0\r\n\r\n" % chunks


def result(value: object) -> bytes:
    return msgspec.json.encode({"jsonrpc": "2.0", "id": 1, "result": value})


async def keep_alive_and_chunks() -> None:
    async with ScriptedServer(lambda body, _: chunked(result("a long answer " * 20))) as server:
        rpc = EthRpc(server.url)
        observed: list[str] = []
        rpc.observe_latency = lambda method, seconds: observed.append(method)
        for _ in range(3):
            assert await rpc.call("eth_chainId", []) == "a long answer " * 20
        assert server.connections == 1
        assert observed == ["eth_chainId"] * 3
        await rpc.close()


def test_answers_sized_or_chunked_come_over_one_kept_connection() -> None:
    asyncio.run(keep_alive_and_chunks())


async def closed_idle_connections() -> None:
    async with ScriptedServer(lambda body, _: sized(result(1)), close_after_each=True) as server:
        rpc = EthRpc(server.url)
        for _ in range(3):
            assert await rpc.call("eth_chainId", []) == 1
        assert server.connections == 3 and len(server.requests) == 3
        await rpc.close()


def test_a_connection_the_server_closed_is_replaced_without_losing_the_request() -> None:
    asyncio.run(closed_idle_connections())


async def hanging_server() -> None:
    async with ScriptedServer(lambda body, _: None) as server:
        client = HttpClient(server.url, timeout=0.2)
        with pytest.raises(TransportTimeout, match=r"no answer from .* within 0.2 s"):
            await client.post(b"{}")
        await client.close()


def test_a_server_that_never_answers_times_out() -> None:
    asyncio.run(hanging_server())


def status_answer(status: str, **extra: object) -> Answer:
    return lambda body, _: sized(result({"status": status, "latestValidHash": None,
                                         "validationError": None, **extra}))


async def engine_against(answer: Answer, fork: str = "cancun") -> tuple[EngineApi, ScriptedServer]:
    server = await ScriptedServer(answer).__aenter__()
    return EngineApi(server.url, SECRET, fork, clock=lambda: 1_700_000_123.9), server


async def statuses() -> None:
    api, server = await engine_against(status_answer("SYNCING"))
    status = await api.new_payload(PAYLOAD, parent_beacon_block_root=b"\x09" * 32)
    assert (status.status, status.valid) == ("SYNCING", False)
    body, headers = server.requests[-1]
    request = msgspec.json.decode(body)
    assert request["method"] == "engine_newPayloadV3"
    assert request["params"][1:] == [[], "0x" + "09" * 32]
    token = headers["Authorization"].removeprefix("Bearer ")
    assert jwt.decode(token, SECRET, algorithms=["HS256"],
                      options={"verify_iat": False}) == {"iat": 1_700_000_123}
    with pytest.raises(PayloadNotValidated, match="engine_newPayloadV3: SYNCING"):
        await api.import_payload(PAYLOAD)
    await api.close()
    await server.__aexit__()

    api, server = await engine_against(status_answer("INVALID_BLOCK_HASH",
                                                     validationError="bad hash"))
    with pytest.raises(PayloadRefused, match="engine_newPayloadV3: INVALID_BLOCK_HASH: bad hash"):
        await api.new_payload(PAYLOAD)
    await api.close()
    await server.__aexit__()

    api, server = await engine_against(status_answer("MAYBE"))
    with pytest.raises(EngineRpcError, match="unknown payload status MAYBE"):
        await api.new_payload(PAYLOAD)
    with pytest.raises(ValueError, match="engine_newPayloadV3 takes an ExecutionPayloadV3"):
        await api.new_payload(ExecutionPayloadV2(**{
            f: getattr(PAYLOAD, f) for f in ExecutionPayloadV2.__struct_fields__}))
    await api.close()
    await server.__aexit__()


def test_payload_statuses_become_types_and_requests_carry_a_fresh_jwt() -> None:
    asyncio.run(statuses())


async def refusals() -> None:
    error = msgspec.json.encode({"jsonrpc": "2.0", "id": 1,
                                 "error": {"code": -38001, "message": "Unknown payload"}})
    breaker = CircuitBreaker(failure_threshold=1)
    api, server = await engine_against(lambda body, _: sized(error), fork="shanghai")
    api.breaker = breaker
    with pytest.raises(EngineRpcError, match="engine_getPayloadV2: geth answered error -38001: "
                                             "Unknown payload") as refused:
        await api.get_payload(bytes(8))
    assert refused.value.code == -38001
    assert breaker.state is BreakerState.CLOSED  # geth answered: it is alive
    await api.close()
    await server.__aexit__()

    api, server = await engine_against(lambda body, _: sized(b"signature invalid\n",
                                                             "401 Unauthorized"))
    api.breaker = breaker
    with pytest.raises(EngineRpcError, match="HTTP 401, authentication refused: signature"):
        await api.exchange_capabilities()
    assert breaker.state is BreakerState.OPEN
    assert "authentication refused" in (breaker.last_failure or "")
    await api.close()
    await server.__aexit__()

    api = EngineApi(server.url, SECRET, "cancun")  # nothing listens there any more
    with pytest.raises(EngineUnavailable, match="engine_exchangeCapabilities: cannot connect"):
        await api.exchange_capabilities()
    await api.close()


def test_errors_name_the_method_and_what_geth_said() -> None:
    asyncio.run(refusals())


async def short_timeout() -> None:
    server = await ScriptedServer(lambda body, _: None).__aenter__()
    api = EngineApi(server.url, SECRET, "cancun", timeout=0.2)
    with pytest.raises(EngineTimeout, match="engine_exchangeCapabilities: no answer"):
        await api.exchange_capabilities()
    await api.close()
    await server.__aexit__()


def test_a_hung_engine_is_an_engine_timeout() -> None:
    asyncio.run(short_timeout())
