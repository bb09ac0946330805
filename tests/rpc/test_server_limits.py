"""The server's refusals over real sockets on 127.0.0.0/8: malformed framing as llhttp judges
it, per-client connection, rate and batch limits, and what stays open to everyone else."""

from __future__ import annotations

import asyncio
import resource

import msgspec
import pytest
from prometheus_client import CollectorRegistry

from alys_fast.rpc import Limits
from alys_fast.rpc.dispatch import LIMIT_EXCEEDED
from tests.rpc.helpers import Http, call, serving
from tests.rpc.test_websocket import frame, raw_ws, read_frame

ATTACKER = "127.0.0.2"


async def open_from(source: str, port: int) -> Http:
    return Http(*await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0)))


@pytest.mark.parametrize(("raw", "problem"), [
    (b"POST / HTTP/1.1\nContent-Length: 2\n\n{}", "Expected CRLF after version"),
    (b"POST / HTTP/1.1\r\nContent-Length: 2\n\r\n{}", "Missing expected CR after header value"),
    (b"POST / HTTP/1.1\r\nBa(d: x\r\nContent-Length: 2\r\n\r\n{}", "Invalid header token"),
    (b"POST / HTTP/1.1\r\nB\x01d: x\r\nContent-Length: 2\r\n\r\n{}", "Invalid header token"),
    (b"POST / HTTP/1.1\r\nX: a\x00b\r\nContent-Length: 2\r\n\r\n{}",
     "Invalid header value char"),
    (b"POST / HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}",
     "Transfer-Encoding can't be present with Content-Length"),
    (b"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
     "Duplicate Content-Length"),
    (b"BREW / HTTP/1.1\r\n\r\n", "Invalid method encountered"),
])
def test_malformed_framing_gets_400_naming_the_problem(raw, problem):
    async def main():
        async with serving() as server:
            http = await Http.open(server.port)
            http.send(raw)
            response = await http.response()
            message = response.json()["error"]["message"]
            assert response.status == 400
            assert message == f"bad HTTP request: {problem}"
            assert await http.closed()
            http = await Http.open(server.port)  # the server is fine
            assert (await http.post(call("eth_chainId"))).status == 200
            http.close()

    asyncio.run(main())


def test_a_pipelined_request_before_a_malformed_one_is_answered_first():
    async def main():
        async with serving() as server:
            http = await Http.open(server.port)
            good = msgspec.json.encode(call("eth_chainId"))
            http.send(b"POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(good) + good
                      + b"POST / HTTP/1.1\nContent-Length: 2\n\n{}")
            assert (await http.response()).json()["result"] == "0x1d97c"
            assert (await http.response()).status == 400

    asyncio.run(main())


def test_1100_idle_sockets_from_one_address_leave_others_and_health_served():
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 2600:
        pytest.skip(f"needs 2,600 file descriptors, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    registry = CollectorRegistry()

    async def main():
        async with serving(health=lambda: {"healthy": True}, registry=registry,
                           limits=Limits(probe_timeout=0.5, linger=0.2)) as server:
            idle = [await open_from(ATTACKER, server.port) for _ in range(1100)]
            honest = await Http.open(server.port)
            for i in range(20):
                assert (await honest.post(call("eth_chainId", id_=i))).json()["id"] == i
                assert (await honest.get("/health")).status == 200
            assert server.connections()["http"] <= 64 + 8 + 1  # its 64, probes, the honest one
            # The attacker's next request is refused, geth-like, wherever it lands.
            more = await open_from(ATTACKER, server.port)
            more.post_bytes(msgspec.json.encode(call("eth_chainId")))
            refused = await more.response()
            assert refused.status == 429
            assert refused.json()["error"] == {
                "code": LIMIT_EXCEEDED,
                "message": "limit exceeded: more than 64 connections from your address"}
            # Once the idle probes time out, a probe from the same address sees /health.
            async with asyncio.timeout(10):
                while (await (await open_from(ATTACKER, server.port)).get("/health")).status != 200:
                    await asyncio.sleep(0.1)
            metrics = (await honest.get("/metrics")).body.decode()
            counted = next(line for line in metrics.splitlines()
                           if line.startswith('alys_rpc_refused_total{reason="ip_connections"}'))
            assert float(counted.split()[-1]) >= 1100 - 64
            for http in idle:
                http.close()
            honest.close()

    asyncio.run(main())


def test_request_rate_per_address_over_http_and_websocket():
    async def main():
        limits = Limits(ip_rate=1, ip_burst=5, rate_limit_loopback=True, linger=0.2)
        async with serving(limits=limits) as server:
            http = await Http.open(server.port)
            statuses = [(await http.post(call("eth_chainId"))).status for _ in range(6)]
            assert statuses == [200] * 5 + [429]
            refused = await http.post(call("eth_chainId"))  # kept alive, still refused
            assert refused.json()["error"] == {
                "code": LIMIT_EXCEEDED,
                "message": "limit exceeded: more than 1 requests per second from your address"}
            ws = await raw_ws(server.port)  # the same address: the same bucket
            ws.send(frame(1, msgspec.json.encode(call("eth_chainId"))))
            opcode, payload = await read_frame(ws)
            assert opcode == 1 and msgspec.json.decode(payload)["error"]["code"] == LIMIT_EXCEEDED
            ws.close()
            http.close()

        async with serving(limits=Limits(ip_rate=1, ip_burst=1)) as server:
            http = await Http.open(server.port)  # loopback is exempt by default
            for _ in range(50):
                assert (await http.post(call("eth_chainId"))).status == 200
            http.close()

    asyncio.run(main())


def test_concurrent_batches_per_address():
    async def main():
        async with serving(limits=Limits(ip_batches=1, linger=0.2)) as server:
            first, second = await Http.open(server.port), await Http.open(server.port)
            first.post_bytes(msgspec.json.encode([call("slow", 2.0)]))
            async with asyncio.timeout(2):  # until the slow batch is in flight
                while (refused := await second.post([call("eth_chainId")])).status != 429:
                    await asyncio.sleep(0.01)
            assert refused.json()["error"]["message"] == (
                "limit exceeded: more than 1 batches at once from your address")
            assert (await second.post(call("eth_chainId"))).status == 200  # single calls pass
            assert (await first.response(timeout=5)).json()[0]["result"] == "done"
            assert (await second.post([call("eth_chainId")])).status == 200
            first.close()
            second.close()

    asyncio.run(main())
