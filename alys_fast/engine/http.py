"""A small keep-alive HTTP/1.1 client for JSON-RPC POSTs to an execution client (geth).

The node talks to one geth over loopback, thousands of times a minute: a library's connection
pool, cookie jar and redirect logic buy nothing here, while a persistent connection with
TCP_NODELAY and one bounded wait per request is all that matters. It speaks just what geth's
``net/http`` server answers with: a status line, headers, and a body sized by
``Content-Length`` or sent chunked (Go chunks any answer it did not size, e.g. a large
``engine_getPayload``).

Up to ``max_connections`` requests run at once, each on its own connection; idle connections
are kept for the next request. A request that fails on a kept connection before any answer
arrived is sent once more on a fresh one (geth closes idle connections after a while); any
other failure drops the connection, since a late answer must never be read as the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from urllib.parse import urlsplit

from alys_fast.engine.errors import EngineError

# The answer's head (status line and headers) may not exceed this.
MAX_HEAD = 64 * 1024


class TransportError(EngineError):
    """The request did not get an HTTP answer: refused, reset, closed, or malformed."""


class TransportTimeout(TransportError):
    """No answer within the request's time limit."""


class HttpAnswer:
    """An HTTP answer: its status code and body."""

    __slots__ = ("body", "status")

    def __init__(self, status: int, body: bytes) -> None:
        self.status = status
        self.body = body


class _Connection:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def close(self) -> None:
        self.writer.close()


class HttpClient:
    """POSTs to one URL over kept-alive connections; see the module docstring."""

    def __init__(self, url: str, *, timeout: float = 10.0, max_connections: int = 1) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"expected an http:// URL, got \"{url}\"")
        self.url = url
        self.host = parts.hostname
        self.port = parts.port or 80
        self.path = parts.path or "/"
        self.timeout = timeout
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(max_connections)
        self._head = (
            f"POST {self.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            "Content-Type: application/json\r\nAccept: application/json\r\n"
        ).encode()

    async def post(self, body: bytes, headers: dict[str, str] | None = None) -> HttpAnswer:
        """POST ``body``; the whole exchange (connecting included) is bounded by ``timeout``.
        Raises TransportTimeout or TransportError."""
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items()).encode()
        request = b"%s%sContent-Length: %d\r\n\r\n%s" % (self._head, extra, len(body), body)
        async with self._slots:
            try:
                async with asyncio.timeout(self.timeout):
                    return await self._exchange(request)
            except TimeoutError:
                raise TransportTimeout(
                    f"no answer from {self.url} within {self.timeout:g} s") from None

    async def _exchange(self, request: bytes) -> HttpAnswer:
        while self._idle:
            connection = self._idle.pop()
            try:
                answer, keep = await self._send(connection, request)
            except (ConnectionError, asyncio.IncompleteReadError) as exc:
                if not _nothing_read(exc):
                    raise TransportError(f"{self.url} broke the connection: {_why(exc)}"
                                         ) from None
                continue  # a kept connection geth had closed: try the next, or a fresh one
            self._keep(connection, keep)
            return answer
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port)
        except OSError as exc:  # asyncio's own text shows the address as a Python tuple
            reason = os.strerror(exc.errno).lower() if exc.errno else "no route"
            raise TransportError(f"cannot connect to {self.url}: {reason}") from None
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection = _Connection(reader, writer)
        try:
            answer, keep = await self._send(connection, request)
        except (OSError, asyncio.IncompleteReadError) as exc:
            raise TransportError(f"{self.url} broke the connection: {_why(exc)}") from None
        self._keep(connection, keep)
        return answer

    async def _send(self, connection: _Connection, request: bytes) -> tuple[HttpAnswer, bool]:
        """Write the request and read its answer; the connection is closed on any failure
        (including cancellation by the timeout)."""
        try:
            connection.writer.write(request)
            return await _read_answer(connection.reader)
        except BaseException:
            connection.close()
            raise

    def _keep(self, connection: _Connection, keep: bool) -> None:
        if keep:
            self._idle.append(connection)
        else:
            connection.close()

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
            with contextlib.suppress(OSError):
                await connection.writer.wait_closed()


def _why(exc: BaseException) -> str:
    if isinstance(exc, asyncio.IncompleteReadError):
        return "it closed before the whole answer arrived"
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno).lower()
    return type(exc).__name__


def _nothing_read(exc: BaseException) -> bool:
    """Whether the failure came before any byte of the answer (safe to send again)."""
    if isinstance(exc, asyncio.IncompleteReadError):
        return not exc.partial
    return isinstance(exc, ConnectionError)


async def _read_answer(reader: asyncio.StreamReader) -> tuple[HttpAnswer, bool]:
    """One HTTP/1.1 answer: (answer, whether the connection may be kept)."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise TransportError(f"answer headers longer than {MAX_HEAD} bytes") from None
    lines = head.decode("latin-1").split("\r\n")
    status_line = lines[0].split(" ", 2)
    if len(status_line) < 2 or not status_line[0].startswith("HTTP/1.") \
            or not status_line[1].isdigit():
        raise TransportError(f"not an HTTP answer: \"{lines[0][:80]}\"")
    fields: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip().lower()] = value.strip()
    keep = fields.get("connection", "").lower() != "close" and status_line[0] == "HTTP/1.1"
    if fields.get("transfer-encoding", "").lower() == "chunked":
        body = await _read_chunked(reader)
    elif "content-length" in fields:
        length = fields["content-length"]
        if not length.isdigit():
            raise TransportError(f"not an HTTP answer: Content-Length \"{length[:20]}\"")
        body = await reader.readexactly(int(length))
    else:
        body, keep = await reader.read(), False
    return HttpAnswer(int(status_line[1]), body), keep


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts = []
    while True:
        size_line = (await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip()
        try:
            size = int(size_line, 16)
        except ValueError:
            raise TransportError("not an HTTP answer: a bad chunk size") from None
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, then the blank line
                pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)
