"""HTTP/1.1 requests from the bytes a client sends, parsed by llhttp (``httptools``: the parser
of Node.js and uvicorn), with the server's framing rules on top; no sockets in here.

:meth:`RequestParser.feed` takes whatever was read and returns the requests it completed, in
order (pipelining); once a request cannot be served, :attr:`RequestParser.error` holds why (a
:class:`BadRequest` with the status and a message for a person) and nothing after it is parsed.
What llhttp refuses (bare LF line ends, bytes outside a header name's token set, control bytes
in values, Content-Length together with Transfer-Encoding, duplicate or malformed
Content-Length, unknown methods, a space before the first header) is a 400 naming the problem
in llhttp's words. On top of llhttp:

- a head over ``max_header`` bytes → 431 (a head still incomplete is cut once the reads after
  the one it began in pass ``max_header``, so the parser never holds more than that and a read);
- a version other than HTTP/1.0 and 1.1 → 505;
- ``POST`` without Content-Length → 411, with ``Transfer-Encoding`` → 501, a body over
  ``max_body`` → 413 (before any of it is taken in);
- any other method with a body → 400.

A WebSocket handshake (a ``GET`` with ``Connection: Upgrade`` and ``Upgrade: websocket``) ends
the HTTP part of the connection: it is the last request returned, marked ``upgrade``, and
:attr:`RequestParser.rest` holds the bytes that followed it (the first WebSocket frames). Any
other request asking to upgrade (curl's ``Upgrade: h2c`` on a POST) is served as HTTP/1.1, as
RFC 9110 §7.8 lets a server do: llhttp stops before such a request's body, so the parser takes
the body itself and goes on with a fresh llhttp parser.
"""

from __future__ import annotations

import httptools

__all__ = ["BadRequest", "Request", "RequestParser", "quote"]


def quote(raw: bytes, limit: int = 64) -> str:
    """Request bytes for an error message: as text, cut to ``limit`` bytes."""
    text = raw[:limit].decode("utf-8", "replace")
    return text + "..." if len(raw) > limit else text


class BadRequest(Exception):
    """A request the server answers with ``status`` and ``message``, then closes.

    ``headers`` are the request's headers when they were read (the answer's CORS needs them).
    """

    def __init__(self, status: int, message: str,
                 headers: dict[bytes, bytes] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


class Request:
    """One parsed request; header names are lowercased, repeated headers joined by ", "."""

    __slots__ = ("body", "continued", "expect_continue", "headers", "keep_alive", "method",
                 "target", "upgrade", "version")

    def __init__(self, method: bytes, target: bytes, version: str,
                 headers: dict[bytes, bytes], expect_continue: bool) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.body = b""
        self.keep_alive = True
        self.expect_continue = expect_continue
        self.continued = False  # a 100 Continue was sent for it
        self.upgrade = False

    @property
    def path(self) -> bytes:
        return self.target.partition(b"?")[0]


class _Stop(Exception):
    """Raised in a callback to stop llhttp; the reason is in RequestParser.error."""


class RequestParser:
    """Requests from a connection's bytes; see the module docstring."""

    __slots__ = ("_body", "_done", "_headers", "_in_head", "_owed", "_parser", "_pending_head",
                 "_url", "current", "error", "max_body", "max_header", "rest")

    def __init__(self, max_header: int, max_body: int) -> None:
        self.max_header = max_header
        self.max_body = max_body
        self._parser = httptools.HttpRequestParser(self)
        self._done: list[Request] = []
        self._url = b""
        self._headers: dict[bytes, bytes] = {}
        self._body: list[bytes] = []
        self._in_head = False
        self._pending_head = -1  # bytes read since the read an incomplete head began in
        self.current: Request | None = None  # the request whose body is being read
        self.error: BadRequest | None = None
        self.rest: bytes | None = None  # bytes after a WebSocket handshake
        self._owed = 0  # body bytes still to take of a request llhttp stopped at (an upgrade)

    def feed(self, data: bytes) -> list[Request]:
        """The requests ``data`` completes; check :attr:`error` and :attr:`rest` after."""
        if self.error is not None or self.rest is not None:
            return []
        read = len(data)
        while data:
            if self._owed:
                data = self._take_body(data)
                continue
            try:
                self._parser.feed_data(data)
            except httptools.HttpParserUpgrade as upgrade:
                data = data[upgrade.args[0]:]
                request = self._done[-1] if self._done else None
                if request is None or (request.method == b"GET" and b"websocket" in
                                       request.headers.get(b"upgrade", b"").lower()):
                    self.rest = data
                    if request is not None:
                        request.upgrade = True
                    break
                self._serve_as_http(request)
                continue
            except httptools.HttpParserError as exc:
                if self.error is None:  # not stopped by a callback: llhttp's own verdict
                    self.error = BadRequest(400, f"bad HTTP request: {exc}", self._headers)
            break
        if self._in_head and self.error is None:
            if self._pending_head < 0:
                self._pending_head = 0  # this read may hold earlier requests: not counted
            else:
                self._pending_head += read
                if self._pending_head > self.max_header:
                    self.error = BadRequest(
                        431, f"request head over {self.max_header} bytes", self._headers)
        done, self._done = self._done, []
        return done

    def _serve_as_http(self, request: Request) -> None:
        """A request that asked to upgrade to something other than a WebSocket: llhttp
        returned it without its body; take the body from the bytes that follow, then parse on
        with a fresh llhttp parser (the old one stays stopped at the upgrade)."""
        self._parser = httptools.HttpRequestParser(self)
        connection = request.headers.get(b"connection", b"").lower()
        request.keep_alive = (b"close" not in connection if request.version == "1.1"
                              else b"keep-alive" in connection)
        self._owed = int(request.headers.get(b"content-length") or 0)
        if self._owed:
            self._done.pop()
            self.current = request

    def _take_body(self, data: bytes) -> bytes:
        """Take what is owed of :attr:`current`'s body from ``data``; the bytes after it."""
        taken = data[:self._owed]
        self._body.append(taken)
        self._owed -= len(taken)
        if not self._owed:
            self.on_message_complete(keep_alive=self.current.keep_alive)
        return data[len(taken):]

    def _fail(self, status: int, message: str) -> None:
        self.error = BadRequest(status, message, self._headers)
        raise _Stop(message)

    # -- llhttp callbacks (on_message_begin is left out: a callback costs ~0.2 µs) ------------

    def on_url(self, url: bytes) -> None:
        if not self._in_head:  # the first piece of a new request's head
            self._in_head = True
            self._pending_head = -1
            self._url = url
            self._headers = {}
        else:
            self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        headers = self._headers
        name = name.lower()
        if name in headers:
            headers[name] += b", " + value
        else:
            headers[name] = value

    def on_headers_complete(self) -> None:
        self._in_head = False
        parser = self._parser
        headers = self._headers
        size = (len(self._url) + sum(map(len, headers)) + sum(map(len, headers.values()))
                + 4 * len(headers))
        if size > self.max_header:
            self._fail(431, f"request head over {self.max_header} bytes")
        version = parser.get_http_version()
        if version != "1.1" and version != "1.0":
            self._fail(505, f"HTTP version {version} is not supported; use HTTP/1.1")
        method = parser.get_method()
        length = headers.get(b"content-length")
        expect = False
        if method == b"POST":
            if b"transfer-encoding" in headers:
                self._fail(501, "Transfer-Encoding is not supported; send Content-Length")
            if length is None:
                self._fail(411, "Content-Length is required")
            if int(length) > self.max_body:
                self._fail(413, f"request body of {int(length)} bytes exceeds the limit of "
                                f"{self.max_body} bytes")
            continuing = headers.get(b"expect")
            expect = continuing is not None and continuing.lower() == b"100-continue"
        elif (length is not None and length != b"0") or b"transfer-encoding" in headers:
            self._fail(400, f"{quote(method)} with a body")
        self.current = Request(method, self._url, version, headers, expect)

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self, keep_alive: bool | None = None) -> None:
        request = self.current
        assert request is not None
        if self._body:
            request.body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
            self._body = []
        request.keep_alive = (self._parser.should_keep_alive() if keep_alive is None
                              else keep_alive)
        self._done.append(request)
        self.current = None
