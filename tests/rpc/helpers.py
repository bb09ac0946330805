"""A small method table, a server runner for both event loops, and a raw HTTP/1.1 client
that speaks exactly the bytes a test wants (keep-alive, pipelining, broken requests)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import msgspec
import uvloop

from alys_fast.rpc import InvalidParams, Limits, RpcServer, ServerError
from alys_fast.rpc.dispatch import quantity

CHAIN_ID = 121212


class Chain:
    """Just enough state for the methods below."""

    def __init__(self) -> None:
        self.head = 7
        self.nonces: dict[str, int] = {}


def methods(chain: Chain) -> dict[str, Any]:
    def eth_chain_id() -> str:
        return hex(CHAIN_ID)

    async def eth_block_number() -> str:
        await asyncio.sleep(0)
        return hex(chain.head)

    def add(a: Any, b: Any) -> str:
        return hex(quantity(a) + quantity(b))

    def send(nonce: str) -> str:
        n = quantity(nonce, "nonce")
        if n < chain.nonces.get("a", 0):
            raise ServerError("nonce too low", {"have": n})
        chain.nonces["a"] = n + 1
        return "0x" + "ab" * 32

    def crash() -> None:
        raise RuntimeError("secret internal detail")

    def unencodable() -> object:
        return object()

    async def slow(seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "done"

    def strict(flag: Any) -> bool:
        if flag not in (True, False):
            raise InvalidParams(f"invalid flag {flag!r}")
        return flag

    return {
        "web3_clientVersion": lambda: "alys-fast/test",
        "eth_chainId": eth_chain_id,
        "eth_blockNumber": eth_block_number,
        "add": add,
        "eth_sendRawTransaction": send,
        "crash": crash,
        "unencodable": unencodable,
        "slow": slow,
        "strict": strict,
    }


LOOPS = ["uvloop", "asyncio"]


def run_on(loop: str, main: Coroutine[Any, Any, Any]) -> Any:
    """The node runs on uvloop; the same tests run on stdlib asyncio as a reference."""
    if loop == "uvloop":
        return uvloop.run(main)
    return asyncio.run(main)


@contextlib.asynccontextmanager
async def serving(**kw: Any) -> AsyncIterator[RpcServer]:
    limits = kw.pop("limits", None) or Limits(linger=0.2)
    server = await RpcServer(methods(Chain()), port=0, limits=limits, **kw).start()
    try:
        yield server
    finally:
        await server.stop(grace=1.0)


def call(method: str, *params: Any, id_: Any = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "method": method, "params": list(params)}


class Response(msgspec.Struct):
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return msgspec.json.decode(self.body)


class Http:
    """One keep-alive connection; ``send`` writes raw bytes, ``response`` reads one answer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Http:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    def post_bytes(self, body: bytes, headers: bytes = b"") -> None:
        self.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                  + headers + b"Content-Length: %d\r\n\r\n" % len(body) + body)

    async def post(self, payload: Any) -> Response:
        self.post_bytes(msgspec.json.encode(payload))
        return await self.response()

    async def get(self, path: str) -> Response:
        self.send(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        return await self.response()

    async def response(self, timeout: float = 3.0) -> Response:
        async with asyncio.timeout(timeout):
            head = await self.reader.readuntil(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            status = int(lines[0].split(" ")[1])
            headers = {}
            for line in lines[1:]:
                if line:
                    name, _, value = line.partition(":")
                    headers[name.lower()] = value.strip()
            body = await self.reader.readexactly(int(headers.get("content-length", 0)))
        return Response(status, headers, body)

    async def closed(self, timeout: float = 3.0) -> bool:
        """True when the server has closed its side (EOF, or a reset)."""
        async with asyncio.timeout(timeout):
            try:
                return await self.reader.read(1) == b""
            except ConnectionError:
                return True

    def close(self) -> None:
        self.writer.close()
