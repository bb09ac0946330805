"""JSON-RPC over HTTP/1.1 and WebSocket on one port, on asyncio streams (uvloop in production).

Routes:

- ``POST /`` — a JSON-RPC request or batch; always ``200`` with the answer, ``204`` when the
  body held only notifications.
- ``GET /`` with ``Upgrade: websocket`` — JSON-RPC over WebSocket, plus ``eth_subscribe`` /
  ``eth_unsubscribe``; :meth:`RpcServer.publish` pushes ``eth_subscription`` notifications.
  Kinds are plain (``newHeads``, ``newPendingTransactions``: every subscriber gets every
  payload) or, when the owner hands the server a parser for them (``subscription_criteria``;
  the node serves ``logs`` so), take options: each subscription keeps its parsed criteria,
  :meth:`RpcServer.subscriptions` lists them and ``publish(kind, payload, to=ids)`` sends a
  payload to the subscriptions it suits. The server never interprets criteria itself.
- ``GET /`` asking for ``text/html`` — the ``status_page`` given, if any (the node's is
  ``status.html``, which reads everything it shows through the routes here).
- ``GET /health`` — the JSON the ``health`` callback returns: ``503`` when it says
  ``"healthy": false`` or raises.
- ``GET /metrics`` — the Prometheus text of the given ``CollectorRegistry``.
- ``OPTIONS`` — a CORS preflight answer, when ``cors`` names allowed origins.

CORS as geth's ``--http.corsdomain``: a request whose ``Origin`` is in ``cors`` (or any origin,
with ``*``) gets ``Access-Control-Allow-Origin``; a preflight also gets the allowed methods,
the headers it asked for and a max age; a refused origin gets no CORS header at all, so the
browser withholds the answer from the page. Requests without ``Origin`` (not from a browser
page) get none either. Error texts quote the request's bytes as text, never as Python reprs.

Connections: one task per connection reads requests one after another and answers in order,
so keep-alive and pipelining come for free and no task is created per request. Requests on a
WebSocket are also handled in order.

Bounds (:class:`Limits`), each answered rather than hung: a request head over ``max_header``
→ 431; a body over ``max_body`` → 413 with a JSON-RPC error body (the rest of the body is read
and dropped for a moment before closing, so the client sees the answer rather than a reset);
a batch over ``max_batch`` → -32600; a WebSocket message over ``max_body`` → close 1009; more
than ``max_connections`` → 503. A connection that has not completed a request for
``idle_timeout`` seconds is closed (this also bounds slow heads and bodies and clients that
stop reading answers); a quiet WebSocket is pinged after ``idle_timeout`` and closed if still
silent after twice that. A subscriber whose unsent notifications exceed ``max_ws_buffer``
bytes is dropped (logged): a slow consumer must not make the node buffer without bound.

Shutdown (:meth:`RpcServer.stop`) in three steps: stop listening and ask every connection to
finish (idle ones are closed, busy ones close after their answer, WebSockets get close 1001);
wait up to ``grace`` seconds; then abort what is left and cancel its task.

Everything runs on the loop that called :meth:`RpcServer.start`; ``publish`` must be called
from that loop too.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import msgspec
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from alys_fast.rpc.dispatch import (
    INVALID_REQUEST,
    CallStats,
    Dispatcher,
    InvalidParams,
    Methods,
    ServerError,
    error_response,
    show,
)
from alys_fast.rpc.websocket import CLOSE_GOING_AWAY, WebSocket, accept_key

__all__ = ["LOGS", "SUBSCRIPTION_KINDS", "Limits", "RpcServer", "cors_origins"]

log = logging.getLogger(__name__)

# The kinds every subscriber of which gets every payload; kinds with criteria (the node's
# "logs") are served when a parser is given (RpcServer's subscription_criteria).
SUBSCRIPTION_KINDS = ("newHeads", "newPendingTransactions")
LOGS = "logs"  # geth's log subscription: the node serves it with LogQuery criteria


@dataclass(frozen=True, slots=True)
class Limits:
    """What one client can make the server hold or wait for; see the module docstring."""

    max_body: int = 5 * 1024 * 1024
    max_batch: int = 1000
    max_header: int = 16 * 1024
    idle_timeout: float = 60.0
    max_connections: int = 1024
    max_ws_buffer: int = 16 * 1024 * 1024
    max_subscriptions: int = 128
    linger: float = 1.0


_REASONS = {
    200: b"OK", 204: b"No Content", 400: b"Bad Request", 404: b"Not Found",
    405: b"Method Not Allowed", 411: b"Length Required", 413: b"Content Too Large",
    426: b"Upgrade Required", 431: b"Request Header Fields Too Large",
    501: b"Not Implemented", 503: b"Service Unavailable", 505: b"HTTP Version Not Supported",
}
_JSON = b"application/json"
_HTML = b"text/html; charset=utf-8"
_OK_JSON = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
_PAGE_HEADERS = (b"Cache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\n"
                 b"Content-Security-Policy: default-src 'none'; script-src 'unsafe-inline'; "
                 b"style-src 'unsafe-inline'; connect-src 'self'\r\n")
_CORS_ANY = b"Access-Control-Allow-Origin: *\r\n"
_CORS_PREFLIGHT = b"Access-Control-Allow-Methods: GET, POST\r\nAccess-Control-Max-Age: 600\r\n"
# What may be echoed back as Access-Control-Allow-Headers: a list of header names, nothing else.
_HEADER_NAMES = re.compile(rb"[A-Za-z0-9!#$%&'*+.^_`|~, -]{1,1024}")
_ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*://(\[[0-9a-f:.]+\]|[^\s/:?#\[\]@]+)(:[0-9]{1,5})?")
_NOTE_HEAD = b'{"jsonrpc":"2.0","method":"eth_subscription","params":{"subscription":"'
_NOTE_MID = b'","result":'
_encode = msgspec.json.Encoder().encode
_BUSY = error_response(None, INVALID_REQUEST, "too many connections")


def cors_origins(origins: Iterable[str]) -> tuple[str, ...]:
    """An allow-list of browser origins (``scheme://host[:port]``, or ``*`` for any), checked
    and lowercased as browsers send them; raises ``ValueError`` naming a malformed one."""
    out = []
    for origin in origins:
        origin = origin.strip().lower().rstrip("/")
        if origin != "*" and not _ORIGIN.fullmatch(origin):
            raise ValueError(f"not a browser origin (scheme://host[:port]) or *: {origin}")
        out.append(origin)
    return tuple(out)


def _text(raw: bytes, limit: int = 64) -> str:
    """Request bytes for an error message: as text, cut to ``limit`` bytes."""
    text = raw[:limit].decode("utf-8", "replace")
    return text + "..." if len(raw) > limit else text


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _parse_head(head: bytes) -> tuple[bytes, bytes, bytes, dict[bytes, bytes]]:
    """Request line and headers (names lowercased); raises _BadRequest on anything malformed."""
    lines = head[:-4].split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3:
        raise _BadRequest(400, "malformed request line")
    method, target, version = parts
    if version not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise _BadRequest(505 if version.startswith(b"HTTP/") else 400, "unsupported version")
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            raise _BadRequest(400, "malformed header line")
        name = name.lower()
        value = value.strip()
        old = headers.get(name)
        if old is not None:
            if name == b"content-length" and old != value:
                raise _BadRequest(400, "conflicting Content-Length headers")
            value = old if name == b"content-length" else old + b", " + value
        headers[name] = value
    return method, target, version, headers


class _Conn:
    """One client connection; ``active`` while a request runs, so the idle sweep spares it."""

    __slots__ = ("active", "last", "pending", "pinged_at", "subs", "task", "transport", "ws")

    def __init__(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport
        self.task = asyncio.current_task()
        self.last = time.monotonic()
        self.active = False
        self.pinged_at = 0.0
        self.ws: WebSocket | None = None
        self.subs: dict[str, str] = {}
        self.pending: list[tuple[str, str, Any]] = []  # (id, kind, criteria) until answered


class RpcServer:
    """The transport the chain's RPC actor mounts its methods on.

    ``methods`` maps names to sync or async callables (see :mod:`alys_fast.rpc.dispatch`).
    ``port=0`` binds an ephemeral port; :attr:`port` holds the real one after :meth:`start`.
    ``subscription_criteria`` maps each kind that takes options to the parser of
    ``eth_subscribe``'s options object (None when absent) into that subscription's criteria;
    it raises :class:`InvalidParams` (or any RpcError) to refuse them. ``cors`` is the allowed
    browser origins (see the module docstring), ``stats`` counts the calls per method, and
    ``status_page`` is the HTML served at ``/`` to browsers.
    """

    def __init__(
        self,
        methods: Methods | Mapping[str, Callable[..., Any]],
        *,
        host: str = "127.0.0.1",
        port: int = 8545,
        limits: Limits | None = None,
        health: Callable[[], Any] | None = None,
        registry: CollectorRegistry | None = None,
        subscription_kinds: Iterable[str] = SUBSCRIPTION_KINDS,
        subscription_criteria: Mapping[str, Callable[[Any], Any]] | None = None,
        cors: Iterable[str] = (),
        stats: CallStats | None = None,
        status_page: bytes | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.limits = limits or Limits()
        self._dispatcher = Dispatcher(methods, max_batch=self.limits.max_batch, stats=stats)
        self._health = health
        self._registry = registry
        self._parsers = dict(subscription_criteria or {})
        self._subscribers: dict[str, dict[str, _Conn]] = {
            k: {} for k in (*subscription_kinds, *self._parsers)}
        self._criteria: dict[str, dict[str, Any]] = {k: {} for k in self._parsers}
        origins = cors_origins(cors)
        self._cors = bool(origins)
        self._cors_any = "*" in origins
        self._cors_origins = frozenset(o.encode() for o in origins)
        self._page = status_page
        self._conns: set[_Conn] = set()
        self._server: asyncio.AbstractServer | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._closing = False
        self._drained = asyncio.Event()

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> RpcServer:
        """Bind and start serving; returns self so ``server = await RpcServer(...).start()``."""
        self._server = await asyncio.start_server(
            self._serve, self.host, self.port, limit=self.limits.max_header, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]
        self._sweeper = asyncio.create_task(self._sweep(), name="rpc-idle-sweep")
        return self

    async def stop(self, grace: float = 5.0) -> None:
        """Ask, wait up to ``grace`` seconds, then kill what is left (module docstring)."""
        if not self._stop_listening():
            return
        for conn in list(self._conns):
            if conn.ws is not None:
                conn.ws.close(CLOSE_GOING_AWAY, "server shutting down")
            elif not conn.active:
                conn.transport.close()
        if self._conns:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), grace)
        tasks = self._kill_connections()
        if self._sweeper is not None:
            tasks.append(self._sweeper)
        await asyncio.gather(*tasks, return_exceptions=True)
        assert self._server is not None
        await self._server.wait_closed()

    def abort(self) -> None:
        """Stop at once, from synchronous code (an actor's stop hook): the port is released now,
        connections are reset and their tasks cancelled without waiting for answers."""
        if self._stop_listening():
            self._kill_connections()

    def _stop_listening(self) -> bool:
        """Close the listening socket and the idle sweep; False if already stopping."""
        if self._server is None or self._closing:
            return False
        self._closing = True
        self._server.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        return True

    def _kill_connections(self) -> list[asyncio.Task[Any]]:
        """Reset every connection and cancel its task; the tasks, to await if one can."""
        tasks: list[asyncio.Task[Any]] = []
        for conn in list(self._conns):
            conn.transport.abort()
            if conn.task is not None:
                conn.task.cancel()
                tasks.append(conn.task)
        return tasks

    async def __aenter__(self) -> RpcServer:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/"

    def connections(self) -> dict[str, int]:
        """Open connections by kind: ``http`` (keep-alive ones included) and ``websocket``."""
        websockets = sum(conn.ws is not None for conn in self._conns)
        return {"http": len(self._conns) - websockets, "websocket": websockets}

    # -- subscriptions ------------------------------------------------------------------------

    def has_subscribers(self, kind: str) -> bool:
        """Lets the publisher skip building payloads nobody will receive."""
        return bool(self._subscribers.get(kind))

    def subscriptions(self, kind: str) -> Mapping[str, Any]:
        """The live subscriptions of a kind with criteria: id → criteria (read-only), so the
        publisher can pick who gets what. Raises ``ValueError`` for any other kind."""
        criteria = self._criteria.get(kind)
        if criteria is None:
            raise ValueError(f"{kind!r} is not a subscription kind with criteria; "
                             f"those served are {list(self._criteria)}")
        return criteria

    def publish(self, kind: str, payload: Any, to: Iterable[str] | None = None) -> int:
        """Send ``payload`` to every subscriber of ``kind`` (or to the subscriptions ``to``
        names, ids of that kind; unknown ones are skipped); returns how many were sent.

        The payload is encoded once. Raises ``ValueError`` for a kind the server doesn't serve.
        """
        subscribers = self._subscribers.get(kind)
        if subscribers is None:
            raise ValueError(
                f"unknown subscription kind {kind!r}; serving {list(self._subscribers)}")
        if not subscribers:
            return 0
        targets: Iterable[tuple[str, _Conn]] = subscribers.items()
        if to is not None:
            targets = [(sid, conn) for sid in to if (conn := subscribers.get(sid)) is not None]
        tail = _NOTE_MID + _encode(payload) + b"}}"
        sent = 0
        for sid, conn in targets:
            transport = conn.transport
            if transport.is_closing():
                continue
            if transport.get_write_buffer_size() > self.limits.max_ws_buffer:
                log.warning("dropping a slow %s subscriber: %d bytes unsent",
                            kind, transport.get_write_buffer_size())
                transport.abort()
                continue
            conn.ws.send(_NOTE_HEAD + sid.encode() + tail)
            sent += 1
        return sent

    def _subscribe(self, conn: _Conn, kind: str, *options: Any) -> str:
        if type(kind) is not str or kind not in self._subscribers:
            raise InvalidParams(f"unsupported subscription kind {show(kind)}; serving "
                                f"{', '.join(self._subscribers)}")
        parse = self._parsers.get(kind)
        if parse is None and options:
            raise InvalidParams(f"subscription {kind} takes no options, got {show(list(options))}")
        if len(options) > 1:
            raise InvalidParams(
                f"subscription {kind} takes one options object, got {show(list(options))}")
        if len(conn.subs) + len(conn.pending) >= self.limits.max_subscriptions:
            raise ServerError(f"too many subscriptions (limit {self.limits.max_subscriptions})")
        criteria = None if parse is None else parse(options[0] if options else None)
        sid = "0x" + secrets.token_hex(16)
        # Activated only after the answer is written, so no notification precedes the id.
        conn.pending.append((sid, kind, criteria))
        return sid

    def _unsubscribe(self, conn: _Conn, sid: str) -> bool:
        kind = conn.subs.pop(sid, None) if type(sid) is str else None
        if kind is None:
            return False
        self._forget(kind, sid)
        return True

    def _forget(self, kind: str, sid: str) -> None:
        self._subscribers[kind].pop(sid, None)
        criteria = self._criteria.get(kind)
        if criteria is not None:
            criteria.pop(sid, None)

    # -- connections --------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._closing or len(self._conns) >= self.limits.max_connections:
            writer.write(self._response(503, _JSON, _BUSY, keep=False))
            writer.close()
            return
        conn = _Conn(writer.transport)
        self._conns.add(conn)
        try:
            await self._http(conn, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # Only stop() cancels these tasks; asyncio.streams would log a cancelled task
            # as an error, so the cancellation ends here.
            pass
        finally:
            self._conns.discard(conn)
            for sid, kind in conn.subs.items():
                self._forget(kind, sid)
            writer.close()
            if self._closing and not self._conns:
                self._drained.set()

    async def _http(self, conn: _Conn, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter) -> None:
        limits = self.limits
        handle = self._dispatcher.handle
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.LimitOverrunError:
                await self._refuse(reader, writer, 431,
                                   f"request head over {limits.max_header} bytes")
                return
            except asyncio.IncompleteReadError:
                return
            head = head.lstrip(b"\r\n")  # stray CRLFs between pipelined requests are allowed
            if not head:
                continue
            try:
                method, target, version, headers = _parse_head(head)
            except _BadRequest as exc:
                await self._refuse(reader, writer, exc.status, str(exc))
                return
            path = target.partition(b"?")[0]
            keep = (b"close" not in headers.get(b"connection", b"").lower()
                    if version == b"HTTP/1.1"
                    else b"keep-alive" in headers.get(b"connection", b"").lower())
            keep = keep and not self._closing
            cors = self._allow(headers) if self._cors else b""

            if method == b"POST":
                if b"transfer-encoding" in headers:
                    await self._refuse(reader, writer, 501,
                                       "Transfer-Encoding is not supported; send Content-Length",
                                       cors)
                    return
                length = headers.get(b"content-length")
                if length is None:
                    await self._refuse(reader, writer, 411, "Content-Length is required", cors)
                    return
                if not length.isdigit():
                    await self._refuse(reader, writer, 400,
                                       f"bad Content-Length {_text(length)}", cors)
                    return
                size = int(length)
                if size > limits.max_body:
                    await self._refuse(reader, writer, 413,
                                       f"request body of {size} bytes exceeds the limit of "
                                       f"{limits.max_body} bytes", cors)
                    return
                if path != b"/":
                    await self._refuse(reader, writer, 404,
                                       f"no route {_text(path)}; POST to /", cors)
                    return
                if headers.get(b"expect", b"").lower() == b"100-continue":
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                body = await reader.readexactly(size)
                conn.active = True
                out = await handle(body)
                conn.active = False
                keep = keep and not self._closing  # stop() may have begun meanwhile
                if out is None:
                    writer.write(self._response(204, b"", b"", keep, cors))
                elif keep and version == b"HTTP/1.1":
                    writer.write(_OK_JSON + cors + b"Content-Length: %d\r\n\r\n" % len(out) + out)
                else:
                    writer.write(self._response(200, _JSON, out, keep, cors))
            elif method == b"GET" or (method == b"OPTIONS" and self._cors):
                if headers.get(b"content-length", b"0") != b"0" or b"transfer-encoding" in headers:
                    await self._refuse(reader, writer, 400,
                                       f"{method.decode()} with a body", cors)
                    return
                if method == b"OPTIONS":
                    allowed = cors + _CORS_PREFLIGHT + self._allow_headers(headers) if cors else b""
                    writer.write(self._response(204, b"", b"", keep, allowed))
                elif b"websocket" in headers.get(b"upgrade", b"").lower():
                    await self._upgrade(conn, reader, writer, path, headers)
                    return
                else:
                    status, ctype, body, extra = await self._get(path, headers)
                    writer.write(self._response(status, ctype, body, keep, cors + extra))
            else:
                await self._refuse(reader, writer, 405, f"method {_text(method)} not allowed",
                                   cors)
                return
            conn.last = time.monotonic()
            await writer.drain()
            if not keep:
                return

    async def _get(self, path: bytes, headers: dict[bytes, bytes]
                   ) -> tuple[int, bytes, bytes, bytes]:
        """(status, content type, body, extra headers) of a GET."""
        if path == b"/health" and self._health is not None:
            try:
                report = self._health()
                if hasattr(report, "__await__"):
                    report = await report
            except Exception as exc:
                log.exception("health callback failed")
                return 503, _JSON, _encode({"healthy": False, "error": str(exc)}), b""
            sick = isinstance(report, dict) and report.get("healthy") is False
            return 503 if sick else 200, _JSON, _encode(report), b""
        if path == b"/metrics" and self._registry is not None:
            return 200, CONTENT_TYPE_LATEST.encode(), generate_latest(self._registry), b""
        if path == b"/" and self._page is not None and b"text/html" in headers.get(b"accept", b""):
            return 200, _HTML, self._page, _PAGE_HEADERS
        return 404, _JSON, error_response(None, INVALID_REQUEST, f"no route {_text(path)}"), b""

    async def _upgrade(self, conn: _Conn, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter, path: bytes,
                       headers: dict[bytes, bytes]) -> None:
        if path != b"/":
            await self._refuse(reader, writer, 404, f"no WebSocket route {_text(path)}")
            return
        if headers.get(b"sec-websocket-version") != b"13":
            await self._refuse(reader, writer, 426, "WebSocket version 13 only",
                               b"Sec-WebSocket-Version: 13\r\n")
            return
        key = headers.get(b"sec-websocket-key", b"")
        try:
            valid = len(binascii.a2b_base64(key, strict_mode=True)) == 16
        except binascii.Error:
            valid = False
        if not valid or b"upgrade" not in headers.get(b"connection", b"").lower():
            await self._refuse(reader, writer, 400, "bad WebSocket handshake")
            return
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept_key(key)
                     + b"\r\n\r\n")
        ws = conn.ws = WebSocket(reader, writer, self.limits.max_body)
        local = Methods({"eth_subscribe": partial(self._subscribe, conn),
                         "eth_unsubscribe": partial(self._unsubscribe, conn)})
        handle = self._dispatcher.handle
        while (message := await ws.recv()) is not None:
            conn.active = True
            out = await handle(message, local)
            conn.active = False
            conn.last = time.monotonic()
            if out is not None:
                ws.send(out)
            for sid, kind, criteria in conn.pending:
                conn.subs[sid] = kind
                self._subscribers[kind][sid] = conn
                if kind in self._criteria:
                    self._criteria[kind][sid] = criteria
            conn.pending.clear()
            await writer.drain()

    async def _sweep(self) -> None:
        """Close connections idle past ``idle_timeout``; ping quiet WebSockets first."""
        idle = self.limits.idle_timeout
        interval = max(0.01, min(1.0, idle / 4))
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for conn in list(self._conns):
                if conn.active:
                    continue
                ws = conn.ws
                last = conn.last if ws is None else max(conn.last, ws.last_seen)
                quiet = now - last
                if quiet <= idle:
                    continue
                if ws is not None:
                    if conn.pinged_at < last:  # not pinged since it was last heard from
                        ws.ping()
                        conn.pinged_at = now
                        continue
                    if now - conn.pinged_at <= idle:
                        continue
                conn.transport.abort()

    # -- responses ----------------------------------------------------------------------------

    def _response(self, status: int, ctype: bytes, body: bytes, keep: bool,
                  extra: bytes = b"") -> bytes:
        head = b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status])
        if ctype:
            head += b"Content-Type: " + ctype + b"\r\n"
        if status != 204:
            head += b"Content-Length: %d\r\n" % len(body)
        head += extra
        head += b"Connection: keep-alive\r\n\r\n" if keep else b"Connection: close\r\n\r\n"
        return head + body

    def _allow(self, headers: dict[bytes, bytes]) -> bytes:
        """The CORS header for a request from ``Origin``; none if it has none or it is not
        allowed (the module docstring)."""
        origin = headers.get(b"origin")
        if origin is None:
            return b""
        if self._cors_any:
            return _CORS_ANY
        if origin.lower() in self._cors_origins:
            return b"Access-Control-Allow-Origin: " + origin + b"\r\nVary: Origin\r\n"
        return b""

    @staticmethod
    def _allow_headers(headers: dict[bytes, bytes]) -> bytes:
        """A preflight's requested headers, all allowed (geth's ``*``), echoed if well formed."""
        asked = headers.get(b"access-control-request-headers")
        if asked is None or not _HEADER_NAMES.fullmatch(asked):
            return b""
        return b"Access-Control-Allow-Headers: " + asked + b"\r\n"

    async def _refuse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      status: int, message: str, extra: bytes = b"") -> None:
        """Answer with an error and close, reading (and dropping) what the client still sends
        for up to ``linger`` seconds, so it reads our answer instead of a connection reset."""
        body = error_response(None, INVALID_REQUEST, message)
        writer.write(self._response(status, _JSON, body, False, extra))
        if writer.can_write_eof():
            writer.write_eof()
        with contextlib.suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(self.limits.linger):
                while await reader.read(65536):
                    pass
