"""The server side of RFC 6455 on asyncio streams: handshake, framing, close.

Small on purpose, because the HTTP server upgrades its own connections and the JSON-RPC
payloads need only a subset of the protocol:

- No extensions (permessage-deflate is not offered) and no subprotocols, so the RSV bits must
  be zero.
- Client frames must be masked, server frames never are.
- Text and binary messages are both taken as JSON-RPC; text must be valid UTF-8 (else 1007).
  Fragmented messages are reassembled; control frames may arrive between fragments.
- A message (or a frame) over ``max_size`` bytes closes with 1009 before its payload is read.
- Pings are answered with pongs carrying the same payload; pongs are only noted as activity.
- On a close frame the same code is echoed; a protocol violation sends its close code and
  ends the read loop. Either way :meth:`WebSocket.recv` returns ``None`` and the caller closes
  the TCP connection.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import struct
import time

__all__ = ["WebSocket", "accept_key", "encode_frame"]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_INVALID_DATA = 1007
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009

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


def _unmask(payload: bytes, mask: bytes) -> bytes:
    # XOR as one big integer: linear, in C, and without a Python-level loop over the bytes.
    n = len(payload)
    if not n:
        return payload
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(
        n, "little")


def _valid_close_code(code: int) -> bool:
    return code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011) or 3000 <= code <= 4999


class _Fail(Exception):
    """A protocol violation: close with ``code`` and stop reading."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class WebSocket:
    """One upgraded connection. ``recv`` runs in the connection's task; ``send`` from anywhere
    on the same loop (it only writes to the transport, never awaits)."""

    __slots__ = ("_closing", "_reader", "_writer", "last_seen", "max_size")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 max_size: int) -> None:
        self._reader = reader
        self._writer = writer
        self._closing = False
        self.max_size = max_size
        self.last_seen = time.monotonic()

    @property
    def closing(self) -> bool:
        return self._closing

    def send(self, payload: bytes) -> None:
        """Send a text message (JSON is always text); dropped once closing."""
        if not self._closing:
            self._writer.write(encode_frame(OP_TEXT, payload))

    def ping(self, payload: bytes = b"") -> None:
        if not self._closing:
            self._writer.write(encode_frame(OP_PING, payload))

    def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Start the closing handshake; ``recv`` keeps reading until the peer's close frame."""
        if not self._closing:
            self._closing = True
            self._writer.write(encode_frame(OP_CLOSE, _H16.pack(code) + reason.encode()[:123]))

    async def recv(self) -> bytes | None:
        """The next message's payload, or ``None`` once the connection is done."""
        try:
            return await self._recv()
        except _Fail as fail:
            self.close(fail.code, fail.reason)
            return None
        except (asyncio.IncompleteReadError, ConnectionError):
            return None

    async def _recv(self) -> bytes | None:
        read = self._reader.readexactly
        parts: list[bytes] = []
        size = 0
        opcode_of_message = 0
        while True:
            b0, b1 = await read(2)
            self.last_seen = time.monotonic()
            if b0 & 0x70:
                raise _Fail(CLOSE_PROTOCOL_ERROR, "reserved bits set without an extension")
            if not b1 & 0x80:
                raise _Fail(CLOSE_PROTOCOL_ERROR, "client frames must be masked")
            fin = b0 & 0x80
            opcode = b0 & 0x0F
            n = b1 & 0x7F
            if n == 126:
                (n,) = _H16.unpack(await read(2))
            elif n == 127:
                (n,) = _Q64.unpack(await read(8))
                if n >> 63:
                    raise _Fail(CLOSE_PROTOCOL_ERROR, "frame length has its top bit set")
            if opcode >= 0x8:
                if not fin or n > 125:
                    raise _Fail(CLOSE_PROTOCOL_ERROR, "control frames must be final and short")
            elif size + n > self.max_size:
                raise _Fail(CLOSE_TOO_BIG, f"message over {self.max_size} bytes")
            mask = await read(4)
            payload = _unmask(await read(n), mask) if n else b""
            if opcode == OP_PING:
                if not self._closing:
                    self._writer.write(encode_frame(OP_PONG, payload))
            elif opcode == OP_PONG:
                pass
            elif opcode == OP_CLOSE:
                self._answer_close(payload)
                return None
            elif opcode in (OP_TEXT, OP_BINARY):
                if parts:
                    raise _Fail(CLOSE_PROTOCOL_ERROR, "new message inside a fragmented one")
                if fin:
                    return self._finish(opcode, payload)
                opcode_of_message, parts, size = opcode, [payload], n
            elif opcode == OP_CONT:
                if not parts:
                    raise _Fail(CLOSE_PROTOCOL_ERROR, "continuation without a message")
                parts.append(payload)
                size += n
                if fin:
                    return self._finish(opcode_of_message, b"".join(parts))
            else:
                raise _Fail(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode:#x}")

    def _finish(self, opcode: int, payload: bytes) -> bytes:
        if opcode == OP_TEXT:
            try:
                payload.decode("utf-8")
            except UnicodeDecodeError:
                raise _Fail(CLOSE_INVALID_DATA, "text message is not valid UTF-8") from None
        return payload

    def _answer_close(self, payload: bytes) -> None:
        if not payload:
            self.close(CLOSE_NORMAL)
            return
        if len(payload) < 2:
            raise _Fail(CLOSE_PROTOCOL_ERROR, "close frame with a 1-byte payload")
        (code,) = _H16.unpack(payload[:2])
        if not _valid_close_code(code):
            raise _Fail(CLOSE_PROTOCOL_ERROR, f"invalid close code {code}")
        try:
            payload[2:].decode("utf-8")
        except UnicodeDecodeError:
            raise _Fail(CLOSE_INVALID_DATA, "close reason is not valid UTF-8") from None
        self.close(code)
