"""Fuzz targets for the RPC port's parsers and dispatch, each with the oracle it checks.

A target takes one input (bytes) and raises ``AssertionError`` naming the broken invariant
(or lets an unexpected exception through); atheris (``tools/fuzz.py``) calls it with mutated
inputs, and the tests call it on every seed of ``corpus/<target>/``. Nothing here needs atheris.

- ``http``: :meth:`RequestParser.feed` over a byte stream cut at chosen points. Never raises; a
  refusal is a documented status whose message is for a person (no Python repr, and never
  llhttp's "User callback error", which is an exception of the parser's own callbacks masked as
  a 400); every request has a token method and header names, header values without CR/LF/NUL,
  a head within ``max_header`` and a body within ``max_body`` (exactly Content-Length long);
  the stream fed in one piece or in pieces gives the same requests, refusal and upgrade bytes,
  except that a head still incomplete may be cut with 431 only when fed in pieces (the
  parser's documented bound on what it holds).
- ``websocket``: :meth:`WebSocket.receive` over a client's byte stream after the handshake, cut
  the same way. Never raises; no message over ``max_size``; everything written is a single
  unmasked pong or close frame, at most one close and nothing after it, and all of it together
  is no more than the input plus one close frame (a ping's pong is smaller than the ping);
  the stream in one piece or in pieces gives the same messages, writes and end state (close
  reasons aside: see :func:`_without_reasons`).
- ``dispatch``: :meth:`Dispatcher.handle` of an in-process dev node's own method table
  (:func:`node_methods`, against its real actors) over arbitrary bodies. The answer is ``None``
  exactly when the body is a notification or a batch of them; otherwise valid JSON-RPC 2.0:
  one object, or for a batch one per request that is not a notification, in order, each with
  ``jsonrpc`` "2.0", the request's ``id`` (null when it had none usable) and exactly one of
  ``result``/``error``; errors have an integer code other than -32603 and a message for a
  person (the client's own words quoted back aside). A body that is not JSON or nests deeper
  than ``MAX_DEPTH`` (by a byte-by-byte reference count) is answered -32700, a JSON one never.

Input format of ``http`` and ``websocket`` (:func:`split_stream`): the first byte's low three
bits say how many piece lengths follow (each byte + 1); the rest is the stream, fed in pieces of
those lengths in turn, or one byte at a time when there are none.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec

from alys_fast.chain.mining import DevMining
from alys_fast.chain.spec import DEV_ACCOUNTS
from alys_fast.rpc.dispatch import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    MAX_DEPTH,
    PARSE_ERROR,
    Dispatcher,
)
from alys_fast.rpc.http import BadRequest, Request, RequestParser
from alys_fast.rpc.websocket import WebSocket
from tests.node.harness import running_node
from tests.rpc.test_no_reprs import REPR

Target = Callable[[bytes], None]

# Small bounds, so that fuzzed inputs (4 KiB by default) reach the refusals.
MAX_HEADER = 512
MAX_BODY = 1024
MAX_MESSAGE = 1024
REFUSAL_STATUSES = frozenset({400, 411, 413, 431, 501, 505})
# The largest frame the server writes unasked: a close with a code and a 120-byte reason.
CLOSE_FRAME_MAX = 2 + 2 + 120
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_DATA = Path(__file__).parent
_NOT_JSON = object()


def corpus_dir(target: str) -> Path:
    """The committed seed corpus of ``target``."""
    return _DATA / "corpus" / target


def split_stream(data: bytes) -> tuple[bytes, list[bytes]]:
    """The stream of an ``http``/``websocket`` input and the pieces it is fed in."""
    if not data:
        return b"", []
    count = data[0] & 7
    lengths = [b + 1 for b in data[1:1 + count]] or [1]
    stream = data[1 + count:]
    pieces = []
    at = 0
    while at < len(stream):
        step = lengths[len(pieces) % len(lengths)]
        pieces.append(stream[at:at + step])
        at += step
    return stream, pieces


def check_message(message: Any, where: str, quoted: tuple[str, ...] = ()) -> None:
    """A message for a client: text written for a person. ``quoted`` is what the client sent
    (its raw text and strings): a word of it quoted back (a method named ``None``) is no repr.
    """
    assert type(message) is str and message, f"{where}: message {message!r} is not text"
    for match in REPR.finditer(message):
        start = message.rfind(" ", 0, match.start()) + 1
        end = message.find(" ", match.end())
        word = message[start:None if end < 0 else end].strip("\"':,.")
        assert word and any(word in text for text in quoted), (
            f"{where}: Python repr in message {message!r}")


# -- http -----------------------------------------------------------------------------------


def _head_size(request: Request) -> int:
    """A request's head as RequestParser counts it against max_header."""
    headers = request.headers
    return (len(request.target) + sum(map(len, headers)) + sum(map(len, headers.values()))
            + 4 * len(headers))


def _check_request(request: Request) -> None:
    assert _TOKEN.fullmatch(request.method), f"method {request.method!r} is not a token"
    assert request.target and not re.search(rb"[\x00-\x20\x7f]", request.target), (
        f"target {request.target!r} holds a space or control byte")
    assert request.version in ("1.0", "1.1"), f"version {request.version!r}"
    for name, value in request.headers.items():
        assert _TOKEN.fullmatch(name), f"header name {name!r} is not a token"
        assert not re.search(rb"[\r\n\x00]", value), f"header value {value!r} holds CR/LF/NUL"
    assert _head_size(request) <= MAX_HEADER, f"head of {_head_size(request)} bytes passed"
    assert len(request.body) <= MAX_BODY, f"body of {len(request.body)} bytes passed"
    length = request.headers.get(b"content-length")
    if request.method == b"POST":
        assert length is not None and int(length) == len(request.body), (
            f"POST body of {len(request.body)} bytes for Content-Length {length!r}")


def _snapshot(request: Request) -> tuple[Any, ...]:
    return (request.method, request.target, request.version, sorted(request.headers.items()),
            request.body, request.keep_alive, request.upgrade, request.expect_continue)


def _parse(pieces: list[bytes]) -> tuple[list[Request], BadRequest | None, bytes | None]:
    """Feed ``pieces`` in turn: the requests, the refusal, and the bytes after an upgrade
    (including the pieces fed after it, which the server hands to the WebSocket)."""
    parser = RequestParser(MAX_HEADER, MAX_BODY)
    requests: list[Request] = []
    after: list[bytes] = []
    for piece in pieces:
        if parser.rest is not None:
            after.append(piece)
            continue
        requests += parser.feed(piece)
    if parser.rest is not None:
        return requests, parser.error, parser.rest + b"".join(after)
    return requests, parser.error, None


def check_http(data: bytes) -> None:
    """The ``http`` oracle (module docstring)."""
    stream, pieces = split_stream(data)
    whole, whole_error, whole_rest = _parse([stream])
    cut, cut_error, cut_rest = _parse(pieces)
    for request in whole + cut:
        _check_request(request)
    for error in (whole_error, cut_error):
        if error is not None:
            assert error.status in REFUSAL_STATUSES, f"refused with status {error.status}"
            check_message(error.message, f"HTTP {error.status}")
            assert "User callback error" not in error.message, (
                "a RequestParser callback raised (llhttp answered it as a 400)")
    if cut_error is not None and cut_error.status == 431 and (
            whole_error is None or whole_error.status != 431):
        # cut while incomplete: the requests before it are the same
        assert list(map(_snapshot, cut)) == list(map(_snapshot, whole[:len(cut)]))
        return
    assert list(map(_snapshot, cut)) == list(map(_snapshot, whole)), (
        "fed in pieces, the stream gives other requests than fed whole")
    assert (cut_error and (cut_error.status, cut_error.message)) == (
        whole_error and (whole_error.status, whole_error.message)), (
        f"refusal fed whole: {whole_error and whole_error.message}; "
        f"in pieces: {cut_error and cut_error.message}")
    assert cut_rest == whole_rest, "the bytes after an upgrade differ"


# -- websocket ------------------------------------------------------------------------------


def _check_written(frame: bytes) -> int:
    """A frame the server wrote unasked: one unmasked pong or close. Its opcode."""
    assert len(frame) >= 2, f"written {frame!r}: not a frame"
    first, second = frame[0], frame[1]
    assert first in (0x8A, 0x88), f"wrote a frame of first byte {first:#x}, not pong/close"
    assert second < 126 and not second & 0x80, "a control frame masked or over 125 bytes"
    assert len(frame) == 2 + second, f"frame of {len(frame)} bytes for length {second}"
    return first & 0x0F


def _receive(pieces: list[bytes]) -> tuple[list[bytes], list[bytes], bool]:
    """Feed ``pieces``: the messages, the writes, and whether the connection is done."""
    writes: list[bytes] = []
    ws = WebSocket(writes.append, MAX_MESSAGE)
    messages: list[bytes] = []
    for piece in pieces:
        got = ws.receive(piece)
        for message in got:
            assert len(message) <= MAX_MESSAGE, f"message of {len(message)} bytes passed"
        messages += got
    closes = 0
    for frame in writes:
        assert not closes, "wrote after its close frame"
        closes += _check_written(frame) == 0x8
    return messages, writes, ws.done


def check_websocket(data: bytes) -> None:
    """The ``websocket`` oracle (module docstring)."""
    stream, pieces = split_stream(data)
    whole = _receive([stream])
    cut = _receive(pieces)
    written = sum(map(len, whole[1]))
    assert written <= len(stream) + CLOSE_FRAME_MAX, (
        f"wrote {written} bytes for {len(stream)} received")
    assert (cut[0], _without_reasons(cut[1]), cut[2]) == (
        whole[0], _without_reasons(whole[1]), whole[2]), (
        "fed in pieces, the stream gives other messages, writes or end")


def _without_reasons(writes: list[bytes]) -> list[bytes]:
    """The writes with close frames cut to their code: wsproto's reason for invalid UTF-8 is
    Python's decoder message, whose byte position depends on how the bytes arrived."""
    return [frame[2:4] if frame[0] == 0x88 else frame for frame in writes]


# -- dispatch -------------------------------------------------------------------------------


def _is_notification(request: Any) -> bool:
    return (type(request) is dict and "id" not in request and request.get("jsonrpc") == "2.0"
            and type(request.get("method")) is str)


def _expected_id(request: Any) -> Any:
    """The id an answer to ``request`` carries: its own when usable, else null."""
    if type(request) is dict and type(request.get("id")) in (str, int, float):
        return request["id"]
    return None


def _strings(value: Any) -> Iterator[str]:
    """Every string in a decoded JSON value (keys too), as sent and as JSON writes it."""
    if type(value) is str:
        yield value
        yield msgspec.json.encode(value).decode()[1:-1]
    elif type(value) is list:
        for item in value:
            yield from _strings(item)
    elif type(value) is dict:
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)


def _check_response(response: Any, want_id: Any, where: str, quoted: tuple[str, ...]) -> None:
    assert type(response) is dict, f"{where}: answer {response!r} is not an object"
    assert response.get("jsonrpc") == "2.0", f"{where}: jsonrpc is not \"2.0\""
    assert "id" in response and response["id"] == want_id, (
        f"{where}: id {response.get('id')!r}, want {want_id!r}")
    keys = set(response) - {"jsonrpc", "id"}
    assert keys in ({"result"}, {"error"}), f"{where}: answer members {sorted(response)}"
    error = response.get("error")
    if error is not None:
        assert type(error) is dict and set(error) <= {"code", "message", "data"}, (
            f"{where}: error object {error!r}")
        assert type(error.get("code")) is int, f"{where}: error code {error.get('code')!r}"
        assert error["code"] != INTERNAL_ERROR, f"{where}: internal error {error!r}"
        check_message(error.get("message"), f"{where} (code {error['code']})", quoted)


def _depth(body: bytes) -> int:
    """How deep brackets nest outside strings (unclosed ones count), byte by byte: the
    reference the dispatcher's fast depth check is held to."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        elif byte in b"]}":
            depth -= 1
    return deepest


def _decode(body: bytes) -> Any:
    """The body's JSON, or _NOT_JSON; too deep counts as not JSON (the dispatcher's rule, and
    decoding it could overflow the C stack)."""
    if _depth(body) > MAX_DEPTH:
        return _NOT_JSON
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError:
        return _NOT_JSON


def check_answer(body: bytes, answer: bytes | None, max_batch: int) -> None:
    """The ``dispatch`` oracle for one body and the dispatcher's answer to it."""
    request = _decode(body)
    batch = type(request) is list and 0 < len(request) <= max_batch
    if answer is None:
        assert (_is_notification(request)
                or (batch and all(map(_is_notification, request)))), (
            "no answer to a body that is not only notifications")
        return
    try:
        response = msgspec.json.decode(answer)
    except msgspec.DecodeError as exc:
        raise AssertionError(f"answer {answer[:200]!r} is not JSON: {exc}") from exc
    quoted = (body.decode("utf-8", "replace"), *_strings(request))
    if not batch:
        want_id = None if _is_notification(request) else _expected_id(request)
        _check_response(response, want_id, "single", quoted)
        code = response.get("error", {}).get("code")
        if request is _NOT_JSON:
            assert code == PARSE_ERROR, f"a body that is not JSON answered {answer[:200]!r}"
        elif type(request) is list:
            assert code == INVALID_REQUEST, f"an empty or long batch answered {answer[:200]!r}"
        else:
            assert code != PARSE_ERROR, f"a JSON body answered {answer[:200]!r}"
        return
    answered = [item for item in request if not _is_notification(item)]
    assert type(response) is list and len(response) == len(answered), (
        f"batch of {len(request)} with {len(answered)} to answer got {answer[:200]!r}")
    for index, (item, part) in enumerate(zip(answered, response, strict=True)):
        _check_response(part, _expected_id(item), f"batch item {index}", quoted)


@contextlib.contextmanager
def dispatch_target(max_batch: int = 100) -> Iterator[Target]:
    """The ``dispatch`` target over a dev node running in this process (about 1 s to start),
    stopped on exit."""
    keys = tuple(bytes.fromhex(key[2:]) for _, key in DEV_ACCOUNTS)
    with tempfile.TemporaryDirectory(prefix="alys-fuzz-") as data_dir, running_node(
            Path(data_dir), slot_ms=1000, archive=True, dev_mining=DevMining(),
            dev_keys=keys) as node:

        dispatcher = Dispatcher(node.method_table(), max_batch=max_batch)

        def check_dispatch(body: bytes) -> None:
            answer = node.call(asyncio.wait_for(dispatcher.handle(body), 20), timeout=25)
            check_answer(body, answer, max_batch)

        yield check_dispatch


@contextlib.contextmanager
def pure_target(target: Target) -> Iterator[Target]:
    yield target


TARGETS: dict[str, Callable[[], contextlib.AbstractContextManager[Target]]] = {
    "http": lambda: pure_target(check_http),
    "websocket": lambda: pure_target(check_websocket),
    "dispatch": dispatch_target,
}
