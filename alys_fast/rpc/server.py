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
- ``GET /metrics`` — the Prometheus text of the given ``CollectorRegistry`` (the server adds
  its own refusal counts and unsent bytes to it while it runs).
- ``OPTIONS`` — a CORS preflight answer, when ``cors`` names allowed origins.

CORS as geth's ``--http.corsdomain``: a request whose ``Origin`` is in ``cors`` (or any origin,
with ``*``) gets ``Access-Control-Allow-Origin``; a preflight also gets the allowed methods,
the headers it asked for and a max age; a refused origin gets no CORS header at all, so the
browser withholds the answer from the page. Requests without ``Origin`` (not from a browser
page) get none either. Error texts quote the request's bytes as text, never as Python reprs.

Parsing: HTTP/1.1 by llhttp (:mod:`alys_fast.rpc.http`, which lists what is refused and how:
bare LF, bad header bytes, Content-Length with Transfer-Encoding… each a 400 naming the
problem), WebSocket frames by wsproto (:mod:`alys_fast.rpc.websocket`).

Connections: one task per connection reads what the client sends, parses every request it
completes and answers them in order, so keep-alive and pipelining come for free and no task
is created per request. Requests on a WebSocket are also handled in order. Every request is
dispatched in one place (``RpcServer._call``), where its headers and its client's address are
both known.

Bounds (:class:`Limits`), each answered rather than hung: a request head over ``max_header``
→ 431; a body over ``max_body`` → 413 with a JSON-RPC error body (the rest of the body is read
and dropped for a moment before closing, so the client sees the answer rather than a reset);
a batch over ``max_batch`` → -32600; a WebSocket message over ``max_body`` → close 1009. A
connection that has not completed a request for ``idle_timeout`` seconds is closed (this also
bounds slow heads and bodies and clients that stop reading answers); a quiet WebSocket is
pinged after ``idle_timeout`` and closed if still silent after twice that.

Backpressure: whatever a peer makes the node write — answers, pongs, notifications — counts
as that connection's unsent bytes. Once they pass the transport's high-water mark the
connection's task stops reading from it until the peer has read (a flood of pings or pipelined
requests fills the peer's own socket, not the node's memory), and the idle timeout drops a peer
that never reads again. A connection holding more than ``max_ws_buffer`` unsent bytes (a
subscriber that stops reading) is dropped, and so are, when all connections together hold more
than ``unsent_budget``, those holding most, until the rest fit. Drops are logged.

Per-client limits (:mod:`alys_fast.rpc.limits`), a client being a remote IP address (an IPv6
one's /64): at most ``ip_connections`` connections, and ``max_connections`` in all; requests
(an HTTP request or a WebSocket message, a batch counting once) at ``ip_rate`` per second
with bursts of ``ip_burst`` (a token bucket); at most ``ip_batches`` batches in flight.
Loopback clients are not rate-limited unless ``rate_limit_loopback`` (a local load generator
or dapp test suite is the node's owner), but their connections are counted like anyone's.
Refusals are geth-like: HTTP ``429`` (``503`` when the whole server is full) with a JSON-RPC
error -32005 ``limit exceeded`` body, the same error as a WebSocket answer; each is counted per
reason in ``/metrics`` (``alys_rpc_refused_total``). A connection over a connection limit is
not turned away at once while one of ``reserved_connections`` reserved slots is free (a client
may hold a quarter of them): it may ask ``GET /health`` or ``GET /metrics`` once, within
``probe_timeout`` seconds, and is refused anything else, so an orchestrator always sees the
node however many sockets someone else holds.

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
import ctypes
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import partial
from ssl import SSLContext
from typing import Any

import msgspec
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from alys_fast.rpc.auth import AuthError, Grant
from alys_fast.rpc.dispatch import (
    INVALID_REQUEST,
    LIMIT_EXCEEDED,
    CallStats,
    Dispatcher,
    InvalidParams,
    Methods,
    ServerError,
    error_response,
    show,
)
from alys_fast.rpc.http import Request, RequestParser, quote
from alys_fast.rpc.limits import (
    IP_BATCHES,
    IP_CONNECTIONS,
    IP_RATE,
    SLOW_CONSUMER,
    TOO_MANY_CONNECTIONS,
    UNSENT_BUDGET,
    Admission,
    ClientTable,
    Limits,
    Refusals,
    UnsentBudget,
    client_key,
)
from alys_fast.rpc.websocket import CLOSE_GOING_AWAY, WebSocket, accept_key

__all__ = ["LOGS", "SUBSCRIPTION_KINDS", "Limits", "RpcServer", "cors_origins"]

log = logging.getLogger(__name__)

# The kinds every subscriber of which gets every payload; kinds with criteria (the node's
# "logs") are served when a parser is given (RpcServer's subscription_criteria).
SUBSCRIPTION_KINDS = ("newHeads", "newPendingTransactions")
LOGS = "logs"  # geth's log subscription: the node serves it with LogQuery criteria

READ_SIZE = 64 * 1024  # bytes taken from a socket at a time

_REASONS = {
    200: b"OK", 204: b"No Content", 400: b"Bad Request", 401: b"Unauthorized",
    403: b"Forbidden", 404: b"Not Found",
    405: b"Method Not Allowed", 411: b"Length Required", 413: b"Content Too Large",
    426: b"Upgrade Required", 429: b"Too Many Requests",
    431: b"Request Header Fields Too Large", 501: b"Not Implemented",
    503: b"Service Unavailable", 505: b"HTTP Version Not Supported",
}
_JSON = b"application/json"
_BEARER = b"WWW-Authenticate: Bearer\r\n"  # RFC 6750: how to authenticate, on a 401
_HTML = b"text/html; charset=utf-8"
_OK_JSON = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
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
_PROBE_PATHS = (b"/health", b"/metrics")  # what a connection over its limits may still ask
_encode = msgspec.json.Encoder().encode
_SHUTTING_DOWN = error_response(None, INVALID_REQUEST, "the server is shutting down")


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


def _limit_messages(limits: Limits) -> dict[str, bytes]:
    """The -32005 answer per refusal reason, worded for the person behind the client."""
    messages = {
        TOO_MANY_CONNECTIONS: f"the server has all its {limits.max_connections} connections "
                              "open; try again later",
        IP_CONNECTIONS: f"more than {limits.ip_connections} connections from your address",
        IP_RATE: f"more than {limits.ip_rate:g} requests per second from your address",
        IP_BATCHES: f"more than {limits.ip_batches} batches at once from your address",
    }
    return {reason: error_response(None, LIMIT_EXCEEDED, "limit exceeded: " + text)
            for reason, text in messages.items()}


def _libc_trim() -> Callable[[], object]:
    """glibc's ``malloc_trim(0)``, or a no-op where there is none (musl, macOS)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return lambda: None
    return partial(trim, 0)


# Unsent notifications are small blocks from malloc's heap, which glibc keeps after they are
# freed; once slow consumers are dropped, trimming hands the pages back (RSS falls).
_release_free_memory = _libc_trim()
_TRIM_AFTER = 1024 * 1024  # unsent bytes a closing connection held that are worth a trim


class _Conn:
    """One client connection; ``active`` while a request runs, so the idle sweep spares it.

    ``peer`` is the socket's remote address and ``client`` the key its limits are kept under;
    ``admission`` says whether it is a normal connection or a probe over a limit (``reason``).
    """

    __slots__ = ("active", "admission", "client", "grant", "last", "opened", "peer", "pending",
                 "pinged_at", "reason", "subs", "task", "transport", "ws")

    def __init__(self, transport: asyncio.BaseTransport, peer: Any, client: str,
                 admission: Admission, reason: str) -> None:
        self.transport: Any = transport
        self.peer = peer
        self.client = client
        self.admission = admission
        self.reason = reason
        self.task = asyncio.current_task()
        self.opened = self.last = time.monotonic()
        self.active = False
        self.pinged_at = 0.0
        self.ws: WebSocket | None = None
        self.grant: Grant | None = None  # a WebSocket's, taken at its upgrade
        self.subs: dict[str, str] = {}
        self.pending: list[tuple[str, str, Any]] = []  # (id, kind, criteria) until answered


class _LimitsCollector(Collector):
    """The server's refusals per reason, unsent bytes and tracked clients, for /metrics."""

    def __init__(self, server: RpcServer) -> None:
        self.server = server

    def collect(self) -> Iterator[Any]:
        server = self.server
        refused = CounterMetricFamily(
            "alys_rpc_refused", "RPC requests and connections refused or dropped by a limit",
            labels=["reason"])
        for reason, n in server.refusals.items():
            refused.add_metric([reason], n)
        yield refused
        yield GaugeMetricFamily("alys_rpc_unsent_bytes",
                                "Bytes written to RPC connections and not yet sent, all told",
                                value=server.unsent())
        yield GaugeMetricFamily("alys_rpc_clients",
                                "Client addresses the RPC server keeps limits for",
                                value=server.clients())


class RpcServer:
    """The transport the chain's RPC actor mounts its methods on.

    ``methods`` maps names to sync or async callables (see :mod:`alys_fast.rpc.dispatch`).
    ``port=0`` binds an ephemeral port; :attr:`port` holds the real one after :meth:`start`.
    ``subscription_criteria`` maps each kind that takes options to the parser of
    ``eth_subscribe``'s options object (None when absent) into that subscription's criteria;
    it raises :class:`InvalidParams` (or any RpcError) to refuse them. ``cors`` is the allowed
    browser origins (see the module docstring), ``stats`` counts the calls per method,
    ``refusals`` the refusals per reason (both given so that counts outlive the server), and
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
        refusals: Refusals | None = None,
        status_page: bytes | None = None,
        ssl: SSLContext | None = None,
    ) -> None:
        self.host = host
        self._ssl = ssl
        self.port = port
        self.limits = limits = limits or Limits()
        self._dispatcher = Dispatcher(methods, max_batch=limits.max_batch, stats=stats)
        self._access = self._dispatcher.methods.access
        self._health = health
        self._registry = registry
        self._collector = _LimitsCollector(self)
        self._parsers = dict(subscription_criteria or {})
        self._subscribers: dict[str, dict[str, _Conn]] = {
            k: {} for k in (*subscription_kinds, *self._parsers)}
        self._criteria: dict[str, dict[str, Any]] = {k: {} for k in self._parsers}
        origins = cors_origins(cors)
        self._cors = bool(origins)
        self._cors_any = "*" in origins
        self._cors_origins = frozenset(o.encode() for o in origins)
        self._page = status_page
        self._clients = ClientTable(limits)
        self._budget = UnsentBudget(limits.unsent_budget)
        self.refusals = refusals if refusals is not None else Refusals()
        self._limit_answers = _limit_messages(limits)
        self._conns: set[_Conn] = set()
        self._server: asyncio.AbstractServer | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._closing = False
        self._trim = False  # a dropped connection's buffers are to be given back to the OS
        self._drained = asyncio.Event()

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> RpcServer:
        """Bind and start serving; returns self so ``server = await RpcServer(...).start()``."""
        self._server = await asyncio.start_server(
            self._serve, self.host, self.port, limit=READ_SIZE, backlog=1024, ssl=self._ssl)
        self.port = self._server.sockets[0].getsockname()[1]
        self._sweeper = asyncio.create_task(self._sweep(), name="rpc-idle-sweep")
        if self._registry is not None:
            self._registry.register(self._collector)
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
        if self._registry is not None:
            with contextlib.suppress(KeyError):
                self._registry.unregister(self._collector)
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
        return f"{'http' if self._ssl is None else 'https'}://{self.host}:{self.port}/"

    @property
    def ws_url(self) -> str:
        return f"{'ws' if self._ssl is None else 'wss'}://{self.host}:{self.port}/"

    def connections(self) -> dict[str, int]:
        """Open connections by kind: ``http`` (keep-alive ones included) and ``websocket``."""
        websockets = sum(conn.ws is not None for conn in self._conns)
        return {"http": len(self._conns) - websockets, "websocket": websockets}

    def unsent(self) -> int:
        """Bytes written to all connections and not yet sent (measured now)."""
        return sum(conn.transport.get_write_buffer_size() for conn in self._conns)

    def clients(self) -> int:
        """How many client addresses the limits are kept for."""
        return len(self._clients)

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

        The payload is encoded once. A subscriber over its unsent budget is dropped, and so
        are the slowest connections when all of them hold more than the node's budget.
        Raises ``ValueError`` for a kind the server doesn't serve.
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
        else:
            targets = list(targets)  # dropping a subscriber must not change what is iterated
        tail = _NOTE_MID + _encode(payload) + b"}}"
        budget = self._budget
        most = self.limits.max_ws_buffer
        sent = 0
        for sid, conn in targets:
            transport = conn.transport
            if transport.is_closing():
                continue
            unsent = transport.get_write_buffer_size()
            if unsent > most:
                self._drop(conn, SLOW_CONSUMER, unsent)
                continue
            conn.ws.send(_NOTE_HEAD + sid.encode() + tail)
            sent += 1
            budget.note(conn, transport.get_write_buffer_size())
            if budget.total > budget.limit:
                self._shed()
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

    # -- backpressure -------------------------------------------------------------------------

    def _account(self, conn: _Conn) -> None:
        """Note what ``conn`` holds unsent; over the node's budget, shed the slowest."""
        budget = self._budget
        budget.note(conn, conn.transport.get_write_buffer_size())
        if budget.total > budget.limit:
            self._shed()

    def _shed(self) -> None:
        victims = self._budget.shed(lambda conn: conn.transport.get_write_buffer_size())
        for conn in victims:
            self._drop(conn, UNSENT_BUDGET, conn.transport.get_write_buffer_size())

    def _drop(self, conn: Any, reason: str, unsent: int) -> None:
        log.warning("dropping a connection from %s that does not read: %d bytes unsent (%s)",
                    conn.client, unsent, reason)
        self.refusals.add(reason)
        self._budget.forget(conn)
        conn.transport.abort()
        self._trim = True

    # -- connections --------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._closing:
            writer.write(self._response(503, _JSON, _SHUTTING_DOWN, keep=False))
            writer.close()
            return
        peer = writer.get_extra_info("peername")
        client, loopback = client_key(peer[0] if isinstance(peer, tuple) else str(peer))
        admission, reason = self._clients.connect(client, loopback, time.monotonic())
        if admission is not Admission.NORMAL:
            self.refusals.add(reason)
            if admission is Admission.REFUSED:
                writer.write(self._limited(reason, keep=False))
                writer.close()
                return
        conn = _Conn(writer.transport, peer, client, admission, reason)
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
            self._clients.disconnect(client, admission)
            if self._budget.forget(conn) > _TRIM_AFTER:
                self._trim = True
            for sid, kind in conn.subs.items():
                self._forget(kind, sid)
            writer.close()
            if self._closing and not self._conns:
                self._drained.set()

    async def _http(self, conn: _Conn, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter) -> None:
        parser = RequestParser(self.limits.max_header, self.limits.max_body)
        read = reader.read
        while True:
            data = await read(READ_SIZE)
            if not data:
                return
            for request in parser.feed(data):
                if not await self._answer(conn, request, parser.rest, reader, writer):
                    return
            error = parser.error
            if error is not None:
                cors = self._allow(error.headers) if self._cors else b""
                await self._refuse(reader, writer, error.status, error.message, cors)
                return
            current = parser.current
            if current is not None and current.expect_continue and not current.continued:
                current.continued = True  # its body is still to come: ask for it
                writer.write(_CONTINUE)

    async def _answer(self, conn: _Conn, request: Request, rest: bytes | None,
                      reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; False when the connection is to close (or has become a
        WebSocket, which is served until it closes)."""
        method = request.method
        headers = request.headers
        keep = request.keep_alive and not request.upgrade and not self._closing
        cors = self._allow(headers) if self._cors else b""
        if conn.admission is not Admission.NORMAL:
            await self._probe(conn, request, writer, cors)
            return False
        if method == b"POST":
            if request.target != b"/" and request.path != b"/":
                writer.write(self._error(404, f"no route {quote(request.path)}; POST to /",
                                         keep, cors))
            else:
                if request.expect_continue and not request.continued:
                    writer.write(_CONTINUE)
                conn.active = True
                try:
                    grant = self._authorize(conn, headers)
                except AuthError as exc:
                    status, out = exc.status, exc.body()
                    cors += _BEARER
                else:
                    status, out = await self._call(conn, headers, request.body, grant=grant)
                conn.active = False
                if conn.transport.is_closing():  # dropped meanwhile (a budget, or stop())
                    return False
                keep = keep and not self._closing  # stop() may have begun meanwhile
                if out is None:
                    writer.write(self._response(204, b"", b"", keep, cors))
                elif status == 200 and keep and request.version == "1.1":
                    writer.write(_OK_JSON + cors + b"Content-Length: %d\r\n\r\n" % len(out) + out)
                else:
                    writer.write(self._response(status, _JSON, out, keep, cors))
        elif method == b"GET" or (method == b"OPTIONS" and self._cors):
            if method == b"OPTIONS":
                allowed = cors + _CORS_PREFLIGHT + self._allow_headers(headers) if cors else b""
                writer.write(self._response(204, b"", b"", keep, allowed))
            elif b"websocket" in headers.get(b"upgrade", b"").lower():
                await self._upgrade(conn, request, rest or b"", reader, writer)
                return False
            else:
                status, ctype, body, extra = await self._get(request.path, headers)
                writer.write(self._response(status, ctype, body, keep, cors + extra))
        else:
            writer.write(self._error(405, f"method {quote(method)} not allowed", keep, cors))
        conn.last = time.monotonic()
        self._account(conn)
        await writer.drain()
        return keep

    def _authorize(self, conn: _Conn, headers: dict[bytes, bytes]) -> Grant | None:
        """The caller's grant from its ``Authorization`` header (None: the table has no
        policy); raises AuthError for credentials that are present but bad."""
        if self._access is None:
            return None
        peer = conn.peer[0] if isinstance(conn.peer, tuple) else str(conn.peer)
        return self._access.authorize(headers.get(b"authorization"), peer)

    async def _call(self, conn: _Conn, headers: dict[bytes, bytes], body: bytes,
                    local: Methods | None = None, grant: Grant | None = None
                    ) -> tuple[int, bytes | None]:
        """Dispatch one body from ``conn``'s client with its ``grant``: (HTTP status, answer).
        The one place where a request's headers and its client (``conn.peer``,
        ``conn.client``) are both known before dispatch; the client's rate and batch limits
        are applied here."""
        clients = self._clients
        client = conn.client
        if not clients.take(client, time.monotonic()):
            self.refusals.add(IP_RATE)
            return 429, self._limit_answers[IP_RATE]
        if body[:1] == b"{" or body.lstrip()[:1] != b"[":
            return 200, await self._dispatcher.handle(body, local, grant)
        if not clients.begin_batch(client):
            self.refusals.add(IP_BATCHES)
            return 429, self._limit_answers[IP_BATCHES]
        try:
            return 200, await self._dispatcher.handle(body, local, grant)
        finally:
            clients.end_batch(client)

    async def _probe(self, conn: _Conn, request: Request, writer: asyncio.StreamWriter,
                     cors: bytes) -> None:
        """A connection over a limit: /health and /metrics are answered, anything else is
        refused; either way the connection then closes."""
        if request.method == b"GET" and request.path in _PROBE_PATHS:
            status, ctype, body, extra = await self._get(request.path, request.headers)
            writer.write(self._response(status, ctype, body, False, cors + extra))
        else:
            writer.write(self._limited(conn.reason, keep=False, extra=cors))
        await writer.drain()

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
        return 404, _JSON, error_response(None, INVALID_REQUEST, f"no route {quote(path)}"), b""

    async def _upgrade(self, conn: _Conn, request: Request, rest: bytes,
                       reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """The WebSocket handshake, then its messages in order until either side closes."""
        headers = request.headers
        if request.path != b"/":
            await self._refuse(reader, writer, 404, f"no WebSocket route {quote(request.path)}")
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
        if not valid or not request.upgrade:
            await self._refuse(reader, writer, 400, "bad WebSocket handshake")
            return
        try:  # the grant holds for the whole connection
            conn.grant = self._authorize(conn, headers)
        except AuthError as exc:
            writer.write(self._response(exc.status, _JSON, exc.body(), False, _BEARER))
            await writer.drain()
            return
        transport = conn.transport
        transport.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                        b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept_key(key)
                        + b"\r\n\r\n")

        def write(data: bytes) -> None:  # a budget or the idle sweep may have dropped it
            if not transport.is_closing():
                transport.write(data)

        ws = conn.ws = WebSocket(write, self.limits.max_body)
        local = Methods({"eth_subscribe": partial(self._subscribe, conn),
                         "eth_unsubscribe": partial(self._unsubscribe, conn)})
        most = self.limits.max_ws_buffer
        data = rest
        while True:
            for message in ws.receive(data) if data else ():
                conn.active = True
                _, out = await self._call(conn, headers, message, local, conn.grant)
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
            if ws.done or transport.is_closing():
                return
            # Answers and pongs alike: past the high-water mark, stop reading until the
            # peer reads; past the connection's budget, drop it.
            unsent = transport.get_write_buffer_size()
            if unsent > most:
                self._drop(conn, SLOW_CONSUMER, unsent)
                return
            self._account(conn)
            await writer.drain()
            data = await reader.read(READ_SIZE)
            if not data:
                return

    async def _sweep(self) -> None:
        """Close connections idle past ``idle_timeout`` (probes past ``probe_timeout``); ping
        quiet WebSockets first; forget clients that have left."""
        idle = self.limits.idle_timeout
        probe = self.limits.probe_timeout
        interval = max(0.01, min(1.0, idle / 4, probe / 2))
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for conn in list(self._conns):
                if conn.admission is not Admission.NORMAL:
                    if now - conn.opened > probe:
                        conn.transport.abort()
                    continue
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
            self._clients.prune(now)
            if self._trim:  # what dropped connections held is free by now
                self._trim = False
                _release_free_memory()

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

    def _error(self, status: int, message: str, keep: bool, extra: bytes = b"") -> bytes:
        return self._response(status, _JSON, error_response(None, INVALID_REQUEST, message),
                              keep, extra)

    def _limited(self, reason: str, keep: bool, extra: bytes = b"") -> bytes:
        """The answer to a client over a limit: 429, or 503 when the whole server is full."""
        status = 503 if reason == TOO_MANY_CONNECTIONS else 429
        return self._response(status, _JSON, self._limit_answers[reason], keep, extra)

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
        writer.write(self._error(status, message, False, extra))
        if writer.can_write_eof():
            writer.write_eof()
        with contextlib.suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(self.limits.linger):
                while await reader.read(READ_SIZE):
                    pass
