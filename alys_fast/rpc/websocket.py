"""The server side of an upgraded RFC 6455 connection: frames parsed by ``wsproto`` (sans-I/O),
bytes in through :meth:`WebSocket.receive`, bytes out through the ``write`` callable given; no
sockets in here (the server reads, writes and applies backpressure).

- No extensions (permessage-deflate is not offered) and no subprotocols, so the RSV bits must
  be zero; client frames must be masked, server frames never are.
- Text and binary messages are both taken as JSON-RPC; text must be valid UTF-8 (else 1007).
  Fragmented messages are reassembled; control frames may arrive between fragments.
- A message over ``max_size`` bytes closes with 1009 as soon as its size is known to be over.
- Pings are answered with pongs carrying the same payload (written at once: the server counts
  them as unsent bytes like any answer); pongs are only noted as activity.
- On a close frame the same code is echoed; a protocol violation sends its close code (1002,
  1007). Either way :attr:`WebSocket.done` turns true and the caller closes the connection.

What the server sends is always a single unmasked text frame (:func:`encode_frame`, built
here because notifications are sent by the hundred thousand and need no state).
"""

from __future__ import annotations

import base64
import hashlib
import struct
import time
from collections.abc import Callable

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage
from wsproto.utilities import LocalProtocolError

__all__ = ["CLOSE_GOING_AWAY", "CLOSE_NORMAL", "WebSocket", "accept_key", "encode_frame"]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_OP_TEXT, _OP_PING = 0x1, 0x9

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_TOO_BIG = 1009
_NO_STATUS = 1005  # what wsproto reports for a close frame without a code
# The close reasons for the violations wsproto reports, by close code (RFC 6455 §7.4.1).
_VIOLATIONS = {
    1002: "protocol error",
    1007: "a text message that is not valid UTF-8",
    1009: "a frame over the size limit",
}

_H16 = struct.Struct("!H")
_Q64 = struct.Struct("!Q")


def accept_key(key: bytes) -> bytes:
    """Sec-WebSocket-Accept for a client's Sec-WebSocket-Key."""
    return base64.b64encode(hashlib.sha1(key + _GUID).digest())


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """One final, unmasked frame (the server never fragments what it sends)."""
    n = len(payload)
    if n < 126:
        return bytes((0x80 | opcode, n)) + payload
    if n < 0x10000:
        return bytes((0x80 | opcode, 126)) + _H16.pack(n) + payload
    return bytes((0x80 | opcode, 127)) + _Q64.pack(n) + payload


class WebSocket:
    """One upgraded connection; ``write`` takes the bytes to send (never blocks)."""

    __slots__ = ("_conn", "_parts", "_size", "_write", "closing", "done", "last_seen",
                 "max_size")

    def __init__(self, write: Callable[[bytes], object], max_size: int) -> None:
        self._conn = Connection(ConnectionType.SERVER)
        self._write = write
        self._parts: list[bytes] = []
        self._size = 0
        self.max_size = max_size
        self.closing = False  # a close frame was sent: nothing more is
        self.done = False  # the connection is over: stop reading, close the socket
        self.last_seen = time.monotonic()

    def send(self, payload: bytes) -> None:
        """Send a text message (JSON is always text); dropped once closing."""
        if not self.closing:
            self._write(encode_frame(_OP_TEXT, payload))

    def ping(self, payload: bytes = b"") -> None:
        if not self.closing:
            self._write(encode_frame(_OP_PING, payload))

    def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Start the closing handshake; :meth:`receive` goes on until the peer's close frame."""
        if not self.closing:
            self.closing = True
            self._write(self._conn.send(CloseConnection(code, reason[:120])))

    def receive(self, data: bytes) -> list[bytes]:
        """The messages ``data`` completes, in order (none once closing); pings are answered,
        and a close or a protocol violation sets :attr:`done`."""
        self.last_seen = time.monotonic()
        if self.done:
            return []
        try:
            self._conn.receive_data(data)
        except LocalProtocolError:  # already closed
            self.done = True
            return []
        messages: list[bytes] = []
        for event in self._conn.events():
            kind = type(event)
            if kind is TextMessage or kind is BytesMessage:
                part = event.data.encode() if kind is TextMessage else bytes(event.data)
                self._size += len(part)
                if self._size > self.max_size:
                    self._fail(CLOSE_TOO_BIG, f"message over {self.max_size} bytes")
                    break
                if event.message_finished:
                    if not self.closing:
                        messages.append(b"".join((*self._parts, part)) if self._parts else part)
                    self._parts.clear()
                    self._size = 0
                else:
                    self._parts.append(part)
            elif kind is Ping:
                if not self.closing:
                    self._write(self._conn.send(event.response()))
            elif kind is CloseConnection:
                self._closed(event)
                break
        return messages

    def _closed(self, event: CloseConnection) -> None:
        """The peer's close frame (echoed), or wsproto's verdict on a protocol violation."""
        if self._conn.state is ConnectionState.REMOTE_CLOSING:
            self.closing = True
            code = CLOSE_NORMAL if event.code == _NO_STATUS else event.code
            self._write(self._conn.send(CloseConnection(code)))
        elif self._conn.state is ConnectionState.OPEN:  # a violation: the frame was not a close
            # wsproto's reason can be Python's own text (a UnicodeDecodeError's): the close
            # frame says the violation in words of ours instead.
            self._fail(event.code, _VIOLATIONS.get(event.code, "protocol error"))
        self.done = True

    def _fail(self, code: int, reason: str) -> None:
        self.close(code, reason)
        self._parts.clear()
        self.done = True
