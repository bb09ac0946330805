"""HTTP/1.1 over real sockets on 127.0.0.1, on uvloop and on stdlib asyncio."""

from __future__ import annotations

import asyncio

import msgspec
import pytest
from prometheus_client import CollectorRegistry, Counter

from alys_fast.rpc import INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR, Limits
from alys_fast.rpc.dispatch import LIMIT_EXCEEDED, CallStats
from alys_fast.rpc.server import cors_origins
from tests.rpc.helpers import LOOPS, Http, call, run_on, serving


@pytest.fixture(params=LOOPS)
def loop(request):
    return request.param


def test_single_batch_and_errors_over_one_keep_alive_connection(loop):
    async def main():
        async with serving() as server:
            http = await Http.open(server.port)
            single = await http.post(call("eth_chainId"))
            assert single.status == 200
            assert single.headers["content-type"] == "application/json"
            assert single.json() == {"jsonrpc": "2.0", "id": 1, "result": "0x1d97c"}
            batch = await http.post([call("eth_chainId", id_=1), call("eth_blockNumber", id_=2)])
            assert [r["result"] for r in batch.json()] == ["0x1d97c", "0x7"]
            http.post_bytes(b'{"jsonrpc":"2.0","id":1,')
            assert (await http.response()).json()["error"]["code"] == PARSE_ERROR
            unknown = await http.post(call("eth_nope"))
            assert unknown.json()["error"]["code"] == METHOD_NOT_FOUND
            bad = await http.post(call("add", "0x1"))
            assert bad.json()["error"]["code"] == INVALID_PARAMS
            empty = await http.post([])
            assert empty.json()["error"]["code"] == INVALID_REQUEST
            for i in range(20):  # the same connection keeps serving
                assert (await http.post(call("eth_blockNumber", id_=i))).json()["id"] == i
            http.close()

    run_on(loop, main())


def test_notifications_get_204_and_no_body(loop):
    async def main():
        async with serving() as server:
            http = await Http.open(server.port)
            note = {"jsonrpc": "2.0", "method": "eth_chainId"}
            for payload in (note, [note, note]):
                response = await http.post(payload)
                assert (response.status, response.body) == (204, b"")
            assert (await http.post(call("eth_chainId"))).status == 200
            http.close()

    run_on(loop, main())


def test_pipelined_requests_are_answered_in_order(loop):
    async def main():
        async with serving() as server:
            http = await Http.open(server.port)
            bodies = [call("slow", 0.01, id_=0)]
            bodies += [call("eth_chainId", id_=i) for i in range(1, 30)]
            # all requests in one write, with the stray CRLF some clients add between them
            http.send(b"\r\n".join(
                b"POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(b) + b
                for b in map(msgspec.json.encode, bodies)))
            ids = [(await http.response()).json()["id"] for _ in bodies]
            assert ids == list(range(30))
            http.close()

    run_on(loop, main())


def test_a_post_asking_to_upgrade_to_h2c_is_served_as_http_1_1(loop):
    """curl --http2 on http:// asks for h2c on every request; only a WebSocket handshake
    upgrades, anything else is answered as HTTP/1.1 (RFC 9110 §7.8), its body read whole
    even when it arrives in pieces, and the requests after it still parsed."""
    async def main():
        async with serving() as server:
            http = await Http.open(server.port)
            body = msgspec.json.encode(call("eth_chainId", id_=7))
            head = (b"POST / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                    b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n"
                    b"Content-Length: %d\r\n\r\n" % len(body))
            http.send(head + body[:5])
            await asyncio.sleep(0.05)
            after = msgspec.json.encode(call("eth_blockNumber", id_=8))
            http.send(body[5:] + b"POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(after)
                      + after)
            first, second = await http.response(), await http.response()
            assert first.json() == {"jsonrpc": "2.0", "id": 7, "result": "0x1d97c"}
            assert second.json()["id"] == 8
            http.close()

    run_on(loop, main())


def test_concurrent_clients(loop):
    async def main():
        async with serving() as server:
            async def client(k):
                http = await Http.open(server.port)
                for i in range(20):
                    response = await http.post(call("add", hex(k), hex(i), id_=i))
                    assert response.json()["result"] == hex(k + i)
                http.close()

            await asyncio.gather(*(client(k) for k in range(16)))

    run_on(loop, main())


def test_oversized_body_gets_413_with_a_json_rpc_error(loop):
    async def main():
        async with serving(limits=Limits(max_body=1024, linger=0.2)) as server:
            http = await Http.open(server.port)
            http.post_bytes(b"[" + b"1," * 3000 + b"1]")
            response = await http.response()
            assert response.status == 413
            assert response.headers["connection"] == "close"
            error = response.json()["error"]
            assert error["code"] == INVALID_REQUEST and "1024" in error["message"]
            assert await http.closed()
            # the server is still fine
            http = await Http.open(server.port)
            assert (await http.post(call("eth_chainId"))).status == 200
            http.close()

    run_on(loop, main())


def test_oversized_batch_is_refused(loop):
    async def main():
        async with serving(limits=Limits(max_batch=10, linger=0.2)) as server:
            http = await Http.open(server.port)
            response = await http.post([call("eth_chainId", id_=i) for i in range(11)])
            assert response.status == 200
            assert response.json()["error"]["code"] == INVALID_REQUEST
            full = await http.post([call("eth_chainId", id_=i) for i in range(10)])
            assert len(full.json()) == 10
            http.close()

    run_on(loop, main())


@pytest.mark.parametrize(("raw", "status"), [
    (b"GARBAGE\r\n\r\n", 400),
    (b"POST / HTTP/2.0\r\nContent-Length: 2\r\n\r\n{}", 505),
    (b"POST / HTTP/1.1\r\nBad Header\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\n Folded: x\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\n\r\n", 411),
    (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nContent-Length: 1_0\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}", 400),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501),
    (b"POST /rpc HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", 404),
    (b"DELETE / HTTP/1.1\r\n\r\n", 405),
    (b"GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", 400),
    (b"GET /nothing HTTP/1.1\r\n\r\n", 404),
    (b"POST / HTTP/1.1\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n", 431),
])
def test_malformed_http_gets_an_error_status_and_the_server_survives(loop, raw, status):
    async def main():
        async with serving() as server:
            http = await Http.open(server.port)
            http.send(raw)
            response = await http.response()
            assert response.status == status
            assert response.json()["error"]["code"] == INVALID_REQUEST
            http.close()
            http = await Http.open(server.port)
            assert (await http.post(call("eth_chainId"))).status == 200
            http.close()

    run_on(loop, main())


def test_connection_close_http_10_and_expect_continue(loop):
    async def main():
        async with serving() as server:
            http = await Http.open(server.port)
            body = msgspec.json.encode(call("eth_chainId"))
            http.post_bytes(body, b"Expect: 100-continue\r\n")
            assert (await http.response()).status == 100
            assert (await http.response()).json()["result"] == "0x1d97c"
            http.post_bytes(body, b"Connection: close\r\n")
            response = await http.response()
            assert response.headers["connection"] == "close"
            assert await http.closed()

            http = await Http.open(server.port)
            http.send(b"POST / HTTP/1.0\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            assert (await http.response()).status == 200
            assert await http.closed()
            http = await Http.open(server.port)
            http.send(b"POST / HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: %d\r\n\r\n"
                      % len(body) + body)
            assert (await http.response()).headers["connection"] == "keep-alive"
            assert (await http.post(call("eth_chainId"))).status == 200
            http.close()

    run_on(loop, main())


def test_idle_and_stalled_connections_are_closed(loop):
    async def main():
        async with serving(limits=Limits(idle_timeout=0.2, linger=0.1)) as server:
            idle = await Http.open(server.port)
            assert (await idle.post(call("eth_chainId"))).status == 200
            stalled = await Http.open(server.port)
            stalled.send(b"POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")  # never finishes
            half_head = await Http.open(server.port)
            half_head.send(b"POST / HTTP/1.1\r\nHost")
            busy = await Http.open(server.port)
            busy.post_bytes(msgspec.json.encode(call("slow", 0.6)))  # longer than the timeout
            for http in (idle, stalled, half_head):
                assert await http.closed(timeout=2.0)
            assert (await busy.response()).json()["result"] == "done"
            busy.close()

    run_on(loop, main())


def test_health_and_metrics(loop):
    registry = CollectorRegistry()
    Counter("rpc_test_things", "things", registry=registry).inc(3)
    reports = iter([{"healthy": True, "head": 7}, {"healthy": False, "reasons": ["stalled"]}])

    async def health():
        return next(reports)

    async def main():
        async with serving(health=health, registry=registry) as server:
            http = await Http.open(server.port)
            response = await http.get("/health")
            assert (response.status, response.json()) == (200, {"healthy": True, "head": 7})
            sick = await http.get("/health")  # the report says unhealthy: 503, same JSON
            assert (sick.status, sick.json()) == (503, {"healthy": False, "reasons": ["stalled"]})
            metrics = await http.get("/metrics")
            assert metrics.status == 200
            assert metrics.headers["content-type"].startswith("text/plain")
            assert b"rpc_test_things_total 3.0" in metrics.body
            http.close()

        def broken():
            raise RuntimeError("storage down")

        async with serving(health=broken) as server:
            http = await Http.open(server.port)
            response = await http.get("/health")
            assert response.status == 503
            assert response.json() == {"healthy": False, "error": "storage down"}
            assert (await http.get("/metrics")).status == 404  # no registry given
            http.close()

    run_on(loop, main())


def preflight(origin: bytes, asked: bytes = b"content-type") -> bytes:
    return (b"OPTIONS / HTTP/1.1\r\nOrigin: " + origin + b"\r\n"
            b"Access-Control-Request-Method: POST\r\n"
            b"Access-Control-Request-Headers: " + asked + b"\r\n\r\n")


def test_cors_allows_listed_origins_only(loop):
    """As geth's --http.corsdomain: allowed origins get the headers, others none (the browser
    then refuses the answer to the page), and requests without Origin are not CORS."""

    async def main():
        async with serving(cors=["http://localhost:3000", "HTTPS://App.Example"]) as server:
            http = await Http.open(server.port)
            http.send(preflight(b"http://localhost:3000"))
            allowed = await http.response()
            assert allowed.status == 204
            assert allowed.headers["access-control-allow-origin"] == "http://localhost:3000"
            assert allowed.headers["vary"] == "Origin"
            assert allowed.headers["access-control-allow-methods"] == "GET, POST"
            assert allowed.headers["access-control-allow-headers"] == "content-type"
            assert allowed.headers["access-control-max-age"] == "600"
            http.post_bytes(msgspec.json.encode(call("eth_chainId")),
                            b"Origin: https://app.example\r\n")  # listed in another case
            answer = await http.response()
            assert answer.json()["result"] == "0x1d97c"
            assert answer.headers["access-control-allow-origin"] == "https://app.example"
            for origin in (b"http://evil.example", b"http://localhost:3001"):
                http.send(preflight(origin))
                refused = await http.response()
                assert refused.status == 204
                assert not any(h.startswith("access-control") for h in refused.headers)
                http.post_bytes(msgspec.json.encode(call("eth_chainId")), b"Origin: " + origin
                                + b"\r\n")
                answer = await http.response()  # answered: the browser is who withholds it
                assert answer.status == 200
                assert "access-control-allow-origin" not in answer.headers
            plain = await http.post(call("eth_chainId"))  # no Origin: not a browser page
            assert "access-control-allow-origin" not in plain.headers
            http.send(preflight(b"http://localhost:3000", b"x(y)"))
            odd = await http.response()  # a malformed header list is not echoed
            assert odd.status == 204 and "access-control-allow-headers" not in odd.headers
            http.send(preflight(b"http://localhost:3000", b"x\nInjected: 1"))
            bare_lf = await http.response()  # llhttp refuses a bare LF: nothing is injected
            assert bare_lf.status == 400 and "injected" not in bare_lf.headers
            http.close()

        async with serving(cors=["*"]) as server:
            http = await Http.open(server.port)
            http.send(preflight(b"http://anything.example:8080"))
            anyone = await http.response()
            assert anyone.headers["access-control-allow-origin"] == "*"
            http.post_bytes(msgspec.json.encode(call("eth_chainId")),
                            b"Origin: http://anything.example:8080\r\n")
            assert (await http.response()).headers["access-control-allow-origin"] == "*"
            http.close()

        async with serving() as server:  # no CORS: OPTIONS is not a method served
            http = await Http.open(server.port)
            http.send(preflight(b"http://localhost:3000"))
            response = await http.response()
            assert response.status == 405
            assert response.json()["error"]["message"] == "method OPTIONS not allowed"

    run_on(loop, main())


def test_cors_origins_are_checked():
    assert cors_origins([" http://LOCALHOST:3000/ ", "*", "http://[::1]:8545"]) == (
        "http://localhost:3000", "*", "http://[::1]:8545")
    for bad in ("localhost:3000", "http://host/path", "http://", "http://a b"):
        with pytest.raises(ValueError, match="not a browser origin"):
            cors_origins([bad])


def test_error_texts_quote_the_request_not_python_bytes(loop):
    async def main():
        async with serving() as server:
            for raw, status, message in [
                (b"PUT / HTTP/1.1\r\n\r\n", 405, "method PUT not allowed"),
                (b"POST /x HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", 404,
                 "no route /x; POST to /"),
                (b"POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", 400,
                 "bad HTTP request: Invalid character in Content-Length"),
                (b"GET /nowhere HTTP/1.1\r\n\r\n", 404, "no route /nowhere"),
                (b"GET / HTTP/1.1\r\nAccept: text/html\r\n\r\n", 404, "no route /"),
            ]:
                http = await Http.open(server.port)
                http.send(raw)
                response = await http.response()
                assert (response.status, response.json()["error"]["message"]) == (
                    status, message)
                http.close()

    run_on(loop, main())


def test_status_page_is_served_to_browsers_only(loop):
    page = b"<!doctype html><title>status</title>"

    async def main():
        async with serving(status_page=page) as server:
            http = await Http.open(server.port)
            http.send(b"GET / HTTP/1.1\r\nAccept: text/html,application/xhtml+xml\r\n\r\n")
            response = await http.response()
            assert (response.status, response.body) == (200, page)
            assert response.headers["content-type"] == "text/html; charset=utf-8"
            assert "connect-src 'self'" in response.headers["content-security-policy"]
            assert (await http.get("/")).status == 404  # not asking for HTML: no page
            assert (await http.post(call("eth_chainId"))).json()["result"] == "0x1d97c"
            http.close()

    run_on(loop, main())


def test_call_stats_and_open_connections(loop):
    stats = CallStats()

    async def main():
        async with serving(stats=stats) as server:
            http = await Http.open(server.port)
            await http.post(call("eth_chainId"))
            await http.post([call("eth_chainId", id_=1), call("add", "0x1", id_=2),
                             call("no_such_method", id_=3)])
            assert server.connections() == {"http": 1, "websocket": 0}
            http.close()

    run_on(loop, main())
    counted = {name: (calls.latency.count, calls.errors) for name, calls in stats.methods.items()}
    assert counted == {"eth_chainId": (2, 0), "add": (1, 1)}  # unknown names are not counted


def test_connection_limit_and_shutdown_with_busy_request(loop):
    async def main():
        async with serving(limits=Limits(max_connections=2, linger=0.1),
                           health=lambda: {"healthy": True}) as server:
            a, b = await Http.open(server.port), await Http.open(server.port)
            await a.post(call("eth_chainId"))
            await b.post(call("eth_chainId"))
            c = await Http.open(server.port)  # over the limit: a probe, /health only
            busy = await c.post(call("eth_chainId"))
            assert busy.status == 503 and busy.json()["error"]["code"] == LIMIT_EXCEEDED
            assert await c.closed()
            probe = await Http.open(server.port)
            assert (await probe.get("/health")).json() == {"healthy": True}
            assert await probe.closed()
            a.post_bytes(msgspec.json.encode(call("slow", 0.2)))
            await asyncio.sleep(0.05)
            await server.stop(grace=2.0)
            answer = await a.response()  # the busy request finished before the close
            assert answer.json()["result"] == "done"
            assert answer.headers["connection"] == "close"
            assert await b.closed()
            with pytest.raises(OSError):
                await Http.open(server.port)

    run_on(loop, main())
