"""JSON-RPC over WebSocket: against the ``websockets`` client (an independent RFC 6455
implementation) and, for the framing edge cases, against hand-built frames."""

from __future__ import annotations

import asyncio
import base64
import os
import struct

import msgspec
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from alys_fast.rpc import INVALID_PARAMS, Limits
from alys_fast.rpc.websocket import accept_key
from tests.rpc.helpers import LOOPS, Http, call, run_on, serving


@pytest.fixture(params=LOOPS)
def loop(request):
    return request.param


async def rpc(ws, payload):
    await ws.send(msgspec.json.encode(payload).decode())
    async with asyncio.timeout(3):
        return msgspec.json.decode(await ws.recv())


def test_requests_subscriptions_and_unsubscribe(loop):
    async def main():
        async with serving() as server, connect(server.ws_url) as ws:
            assert (await rpc(ws, call("eth_chainId")))["result"] == "0x1d97c"
            batch = await rpc(ws, [call("eth_blockNumber", id_=1), call("nope", id_=2)])
            assert batch[0]["result"] == "0x7" and batch[1]["error"]["code"] == -32601

            assert not server.has_subscribers("newHeads")
            heads = (await rpc(ws, call("eth_subscribe", "newHeads", id_=3)))["result"]
            pending = (await rpc(ws, call("eth_subscribe", "newPendingTransactions")))["result"]
            assert heads != pending and heads.startswith("0x") and len(heads) == 34
            assert server.has_subscribers("newHeads")

            assert server.publish("newHeads", {"number": "0x8", "hash": "0x" + "aa" * 32}) == 1
            assert server.publish("newPendingTransactions", "0x" + "bb" * 32) == 1
            first = msgspec.json.decode(await ws.recv())
            second = msgspec.json.decode(await ws.recv())
            assert first == {"jsonrpc": "2.0", "method": "eth_subscription", "params": {
                "subscription": heads, "result": {"number": "0x8", "hash": "0x" + "aa" * 32}}}
            assert second["params"] == {"subscription": pending, "result": "0x" + "bb" * 32}

            assert (await rpc(ws, call("eth_unsubscribe", heads)))["result"] is True
            assert (await rpc(ws, call("eth_unsubscribe", heads)))["result"] is False
            assert server.publish("newHeads", {"number": "0x9"}) == 0
            bad = await rpc(ws, call("eth_subscribe", "logs"))
            assert bad["error"] == {"code": INVALID_PARAMS, "message": (
                'unsupported subscription kind "logs"; serving newHeads, newPendingTransactions')}
            extra = await rpc(ws, call("eth_subscribe", "newHeads", {"a": None}))
            assert extra["error"]["message"] == (  # the client's JSON, not a Python repr
                'subscription newHeads takes no options, got [{"a":null}]')
            assert server.connections() == {"http": 0, "websocket": 1}
            with pytest.raises(ValueError, match="unknown subscription kind"):
                server.publish("logs", {})
        await asyncio.sleep(0.05)
        assert not server.has_subscribers("newPendingTransactions")  # dropped with the socket

    run_on(loop, main())


def test_subscription_over_http_is_method_not_found(loop):
    async def main():
        async with serving() as server:
            http = await Http.open(server.port)
            answer = (await http.post(call("eth_subscribe", "newHeads"))).json()
            assert answer["error"]["code"] == -32601
            http.close()

    run_on(loop, main())


def test_many_subscribers_each_get_their_own_id(loop):
    async def main():
        async with serving() as server:
            sockets = [await connect(server.ws_url) for _ in range(5)]
            ids = [(await rpc(ws, call("eth_subscribe", "newHeads")))["result"] for ws in sockets]
            assert server.publish("newHeads", {"number": "0x1"}) == 5
            for ws, sid in zip(sockets, ids, strict=True):
                note = msgspec.json.decode(await ws.recv())
                assert note["params"]["subscription"] == sid
                await ws.close()

    run_on(loop, main())


def test_fragmented_messages_and_pings_with_the_websockets_client(loop):
    async def main():
        async with serving() as server, connect(server.ws_url) as ws:
            text = msgspec.json.encode(call("add", "0x2", "0x3")).decode()
            await ws.send([text[:5], text[5:20], text[20:]])  # three frames
            assert msgspec.json.decode(await ws.recv())["result"] == "0x5"
            await asyncio.wait_for(await ws.ping(b"hi"), 3)
            await ws.send(msgspec.json.encode(call("eth_chainId")))  # binary frame
            assert msgspec.json.decode(await ws.recv())["result"] == "0x1d97c"

    run_on(loop, main())


def test_server_shutdown_closes_websockets_with_1001(loop):
    async def main():
        async with serving() as server:
            ws = await connect(server.ws_url)
            await server.stop(grace=1.0)
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 3)
            assert closed.value.rcvd.code == 1001

    run_on(loop, main())


def test_quiet_websocket_is_pinged_and_kept_while_it_answers(loop):
    async def main():
        async with serving(limits=Limits(idle_timeout=0.1, linger=0.1)) as server, \
                connect(server.ws_url, ping_interval=None) as ws:
            await asyncio.sleep(0.5)  # the client library answers the server's pings
            assert (await rpc(ws, call("eth_chainId")))["result"] == "0x1d97c"

    run_on(loop, main())


# -- hand-built frames ------------------------------------------------------------------------


def frame(opcode: int, payload: bytes, fin: bool = True, mask: bool = True, rsv: int = 0) -> bytes:
    b0 = (0x80 if fin else 0) | rsv | opcode
    n = len(payload)
    if n < 126:
        head = bytes((b0, (0x80 if mask else 0) | n))
    elif n < 65536:
        head = bytes((b0, (0x80 if mask else 0) | 126)) + struct.pack("!H", n)
    else:
        head = bytes((b0, (0x80 if mask else 0) | 127)) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


async def raw_ws(port: int) -> Http:
    http = await Http.open(port)
    key = base64.b64encode(os.urandom(16))
    http.send(b"GET / HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + b"\r\n\r\n")
    response = await http.response()
    assert response.status == 101
    assert response.headers["sec-websocket-accept"] == accept_key(key).decode()
    return http


async def read_frame(http: Http) -> tuple[int, bytes]:
    async with asyncio.timeout(3):
        b0, b1 = await http.reader.readexactly(2)
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", await http.reader.readexactly(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", await http.reader.readexactly(8))
        return b0 & 0x0F, await http.reader.readexactly(n)


@pytest.mark.parametrize(("frames", "close_code"), [
    ([frame(1, b"{}", mask=False)], 1002),
    ([frame(1, b"{}", rsv=0x40)], 1002),
    ([frame(0, b"{}")], 1002),
    ([frame(1, b"[", fin=False), frame(1, b"]")], 1002),
    ([frame(9, b"x" * 126)], 1002),
    ([frame(9, b"x", fin=False)], 1002),
    ([frame(3, b"")], 1002),
    ([frame(8, b"\x03")], 1002),
    ([frame(8, struct.pack("!H", 999))], 1002),
    ([frame(1, b'"\xff"')], 1007),
    ([frame(1, b"x" * 3000)], 1009),
    ([frame(1, b"x" * 1500, fin=False), frame(0, b"x" * 1500)], 1009),
    ([frame(8, struct.pack("!H", 4001) + b"bye")], 4001),
    ([frame(8, b"")], 1000),
])
def test_protocol_violations_close_with_the_right_code(loop, frames, close_code):
    async def main():
        async with serving(limits=Limits(max_body=2048, linger=0.1)) as server:
            http = await raw_ws(server.port)
            http.send(b"".join(frames))
            opcode, payload = await read_frame(http)
            assert opcode == 8
            assert struct.unpack("!H", payload[:2])[0] == close_code
            assert await http.closed()

    run_on(loop, main())


def test_ping_between_fragments_is_answered_and_the_message_reassembled(loop):
    async def main():
        async with serving() as server:
            http = await raw_ws(server.port)
            body = msgspec.json.encode(call("eth_chainId", id_=9))
            http.send(frame(1, body[:10], fin=False) + frame(9, b"p1")
                      + frame(0, body[10:20], fin=False) + frame(10, b"unsolicited")
                      + frame(0, body[20:]))
            assert await read_frame(http) == (10, b"p1")
            opcode, payload = await read_frame(http)
            assert opcode == 1 and msgspec.json.decode(payload)["id"] == 9
            big = msgspec.json.encode([call("eth_chainId", id_=i) for i in range(700)])
            http.send(frame(1, big))  # 64-bit length on the way in, 16-bit on the way out
            opcode, payload = await read_frame(http)
            assert len(msgspec.json.decode(payload)) == 700
            http.close()

    run_on(loop, main())


@pytest.mark.parametrize(("headers", "status"), [
    (b"Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: " + base64.b64encode(b"k" * 16), 426),
    (b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short", 400),
    (b"Sec-WebSocket-Version: 13", 400),
])
def test_bad_handshakes_are_refused(loop, headers, status):
    async def main():
        async with serving() as server:
            http = await Http.open(server.port)
            http.send(b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      + headers + b"\r\n\r\n")
            assert (await http.response()).status == status
            http.close()

    run_on(loop, main())


def test_a_subscriber_that_stops_reading_is_dropped(loop):
    async def main():
        limits = Limits(max_ws_buffer=256 * 1024, linger=0.1)
        async with serving(limits=limits) as server:
            http = await raw_ws(server.port)
            http.send(frame(1, msgspec.json.encode(call("eth_subscribe", "newHeads"))))
            assert (await read_frame(http))[0] == 1
            blob = {"extraData": "0x" + "00" * 128 * 1024}
            for _ in range(400):  # never read: kernel buffers fill, then the transport's
                if server.publish("newHeads", blob) == 0:
                    break
                await asyncio.sleep(0)
            else:
                pytest.fail("the slow subscriber was never dropped")
            await asyncio.sleep(0.05)
            assert not server.has_subscribers("newHeads")

    run_on(loop, main())
