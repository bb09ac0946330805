"""JSON-RPC 2.0 dispatch, independent of any transport.

The transport hands :meth:`Dispatcher.handle` a request body (bytes) and gets back the encoded
response, or ``None`` when nothing must be sent (a notification, or a batch of them).

Semantics, following the JSON-RPC 2.0 specification and geth where the spec is silent:

- A request is an object with ``"jsonrpc": "2.0"``, a string ``method``, optional ``params``
  (array → positional arguments, object → keyword arguments) and an optional ``id`` (string,
  number or null). Without an ``id`` it is a notification: it runs, and nothing is answered,
  not even an error.
- A batch is a non-empty array of requests, at most ``max_batch`` long; its items run one after
  another, in order, and the answer holds one response per non-notification item. A method
  registered with a ``batch`` form (``Methods.add(name, fn, batch=…)``) gets all of its items
  in a batch in one call, run where its first item sits (items before it see none of them):
  ``eth_sendRawTransaction`` uses it to validate a whole batch of transactions in parallel and
  hand them to the pool at once. An empty
  batch, or one over the limit, is answered by a single -32600 error.
- Methods are plain callables, sync or async (anything whose result has ``__await__`` is
  awaited). Their arity is read once, at registration, so a wrong number of arguments is a
  -32602 and never reaches the method.
- A method signals a failure by raising :class:`RpcError` (or :class:`InvalidParams`,
  :class:`ServerError`); any other exception is logged and answered as -32603, without
  details, so internals never leak to clients. Messages quote the client's values as JSON
  (:func:`show`), never as Python reprs.
- With a :class:`CallStats`, every call of a registered method is counted with its latency
  and whether it was answered with an error (the node exports them to Prometheus).
- A method table with an ``access`` policy (:class:`alys_fast.rpc.auth.Authenticator`) serves
  each call only if the caller's grant (``handle(..., grant=…)``; none: the public grant)
  allows the method's namespace; otherwise the policy's refusal is the answer (-32601 or
  -32001, see :mod:`alys_fast.rpc.auth`). Calls made with credentials are audited with their
  outcome. Without a policy every method is served to everyone (``alys-fast dev``).
"""

from __future__ import annotations

import inspect
import logging
import operator
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from itertools import accumulate, count
from typing import TYPE_CHECKING, Any

import msgspec

from alys_fast.metrics.histogram import Histogram

if TYPE_CHECKING:
    from alys_fast.rpc.auth import Authenticator, Grant

__all__ = [
    "BLOCK_TAGS",
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "LIMIT_EXCEEDED",
    "METHOD_NOT_FOUND",
    "PARSE_ERROR",
    "SERVER_ERROR",
    "CallStats",
    "Dispatcher",
    "InvalidParams",
    "Methods",
    "RpcError",
    "ServerError",
    "address",
    "block_id",
    "boolean",
    "data",
    "error_response",
    "hash32",
    "quantity",
    "show",
]

log = logging.getLogger(__name__)

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
SERVER_ERROR = -32000
LIMIT_EXCEEDED = -32005  # geth's and the providers' "limit exceeded": a client over its limits


class RpcError(Exception):
    """The root of the RPC errors: raised by a method, answered as a JSON-RPC error object."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.data = data

    def __str__(self) -> str:
        return f"{self.message} ({self.code})"


class InvalidParams(RpcError):
    """-32602: the arguments are missing, extra, or malformed; the message names the value."""

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(INVALID_PARAMS, message, data)


class ServerError(RpcError):
    """-32000: the request was well formed but refused, e.g. ``nonce too low``."""

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(SERVER_ERROR, message, data)


# ---------------------------------------------------------------------------------------------
# Wire records. Structs encode faster than dicts and fix the member order clients expect.


class _Ok(msgspec.Struct):
    jsonrpc: str
    id: Any
    result: Any


class _ErrorObject(msgspec.Struct, omit_defaults=True):
    code: int
    message: str
    data: Any = None


class _Err(msgspec.Struct):
    jsonrpc: str
    id: Any
    error: _ErrorObject


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode

# msgspec decodes nested arrays and objects by recursing on the C stack, as deep as
# sys.getrecursionlimit() allows; importing web3 raises that limit to 100,000, and a body of
# 100,000 "[" then overflows the stack: a crash, not an error. So the nesting depth is checked
# first, with C-speed passes only (about 0.4 µs per request of a batch, nothing for a single
# request). JSON-RPC needs little depth: a batch of transaction objects with access lists is 7.
MAX_DEPTH = 64
_JSON_STRING = re.compile(rb'"[^"]*"')
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"')
_DEPTH_STEP = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")


def _too_deep(body: bytes) -> bool:
    """Whether brackets nest deeper than MAX_DEPTH (unclosed ones count: a decoder descends
    into them before it finds the body truncated)."""
    if b"\\" in body:  # escaped backslashes and quotes go first: they end no string
        body = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    structure = body.translate(None, _NOT_STRUCTURE)
    if len(structure) <= MAX_DEPTH:
        return False
    without_strings = structure.replace(b'""', b"")  # common case: strings hold no brackets
    structure = (without_strings if b'"' not in without_strings
                 else _JSON_STRING.sub(b"", structure))
    # each opener steps +2, each closer 0: the running sum minus the position is the depth
    depths = map(operator.sub, accumulate(structure.translate(_DEPTH_STEP)), count(1))
    return max(depths, default=0) > MAX_DEPTH
_MISSING: Any = object()
_UNBOUNDED = sys.maxsize


def show(value: Any) -> str:
    """A client's value for an error message, as the JSON it sent (not a Python repr), cut
    to 70 characters."""
    try:
        text = _encode(value).decode()
    except (TypeError, ValueError, OverflowError):  # not JSON: a caller's own value
        text = str(value)
    return text if len(text) <= 70 else text[:67] + "..."


# Seconds: a cached read takes tens of microseconds, a large eth_call or batch seconds.
RPC_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
               0.5, 1.0, 2.5, 5.0, 10.0)


class MethodCalls:
    """One method's answers: their latency (its count is the calls) and how many were errors."""

    __slots__ = ("errors", "latency")

    def __init__(self) -> None:
        self.errors = 0
        self.latency = Histogram(RPC_BUCKETS)


class CallStats:
    """Calls per method, counted by the dispatcher on its loop with no locks; only methods of
    the table are counted, so a client cannot grow it with made-up names."""

    __slots__ = ("methods",)

    def __init__(self) -> None:
        self.methods: dict[str, MethodCalls] = {}

    def observe(self, name: str, seconds: float, failed: bool) -> None:
        calls = self.methods.get(name)
        if calls is None:
            calls = self.methods[name] = MethodCalls()
        calls.latency.observe(seconds)
        calls.errors += failed


def error_response(id_: Any, code: int, message: str, data: Any = None) -> bytes:
    """One encoded error object; transports use it for errors found before dispatch (e.g. 413)."""
    return _encode(_Err("2.0", id_, _ErrorObject(code, message, data)))


# ---------------------------------------------------------------------------------------------
# The method table.


class _Method:
    """A callable with its arity read once, so argument checks cost two comparisons."""

    __slots__ = ("batch", "fn", "max_args", "min_args", "names", "required")

    def __init__(
        self, fn: Callable[..., Any], batch: Callable[[list[Any]], Any] | None = None
    ) -> None:
        self.fn = fn
        self.batch = batch
        sig = inspect.signature(fn)
        positional = [
            p for p in sig.parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        kinds = {p.kind for p in sig.parameters.values()}
        self.min_args = sum(1 for p in positional if p.default is p.empty)
        self.max_args = _UNBOUNDED if inspect.Parameter.VAR_POSITIONAL in kinds else len(positional)
        named = [
            p for p in sig.parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
        self.names = (
            None if inspect.Parameter.VAR_KEYWORD in kinds else frozenset(p.name for p in named)
        )
        self.required = frozenset(p.name for p in named if p.default is p.empty)

    def call(self, params: Any) -> Any:
        """Call with JSON params, raising InvalidParams before the method runs if they can't fit."""
        if params is None:
            if self.min_args:
                raise InvalidParams(f"missing value for required argument {self.min_args - 1}")
            return self.fn()
        if type(params) is list:
            n = len(params)
            if n < self.min_args:
                raise InvalidParams(f"missing value for required argument {n}")
            if n > self.max_args:
                raise InvalidParams(f"too many arguments, want at most {self.max_args}")
            return self.fn(*params)
        if type(params) is dict:
            missing = self.required.difference(params)
            if missing:
                raise InvalidParams(f"missing value for required argument {show(min(missing))}")
            if self.names is not None and not self.names.issuperset(params):
                extra = sorted(set(params) - self.names)
                raise InvalidParams(f"unexpected argument {show(extra[0])}")
            return self.fn(**params)
        raise InvalidParams("params must be an array or an object")


class Methods:
    """The method table, ``{name: callable}``; sync and async callables are both accepted.

    ``access``, when set, is who may call which of them (the module docstring): the table
    carries it so that every transport serving the table enforces it.
    """

    def __init__(self, table: Mapping[str, Callable[..., Any]] | None = None, *,
                 access: Authenticator | None = None) -> None:
        self.access = access
        self._table: dict[str, _Method] = {}
        for name, fn in (table or {}).items():
            self.add(name, fn)

    def add(
        self,
        name: str,
        fn: Callable[..., Any],
        *,
        batch: Callable[[list[Any]], Any] | None = None,
    ) -> None:
        """Register (or replace) ``name``; fails now if the callable's signature can't be read.

        ``batch``, if given, takes the ``params`` of every call of ``name`` in one JSON-RPC
        batch and returns (or resolves to) one result per call, in order, where an
        :class:`RpcError` instance in a slot is that call's error.
        """
        self._table[name] = _Method(fn, batch)

    def get(self, name: str) -> _Method | None:
        return self._table.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._table

    def __iter__(self) -> Iterator[str]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)


class Dispatcher:
    """Decodes a body, runs the methods, encodes the answer; one instance per server."""

    def __init__(self, methods: Methods | Mapping[str, Callable[..., Any]], *,
                 max_batch: int = 1000, stats: CallStats | None = None) -> None:
        self.methods = methods if isinstance(methods, Methods) else Methods(methods)
        self.max_batch = max_batch
        self.stats = stats

    async def handle(self, body: bytes, local: Methods | None = None,
                     grant: Grant | None = None) -> bytes | None:
        """Answer one body. ``local`` methods (a connection's own, e.g. eth_subscribe) win;
        ``grant`` is the caller's (:meth:`Authenticator.authorize`), None for the public one."""
        access = self.methods.access
        if access is None:
            grant = None  # a table without a policy serves everyone
        elif grant is None:
            grant = access.anonymous
        if _too_deep(body):
            return error_response(
                None, PARSE_ERROR, f"parse error: nested deeper than {MAX_DEPTH} levels")
        try:
            message = _decode(body)
        except (ValueError, RecursionError) as exc:
            return error_response(None, PARSE_ERROR, f"parse error: {exc}")
        if type(message) is not list:
            return await self._one(message, local, grant)
        if not message:
            return error_response(None, INVALID_REQUEST, "empty batch")
        if len(message) > self.max_batch:
            return error_response(
                None, INVALID_REQUEST,
                f"batch of {len(message)} requests exceeds the limit of {self.max_batch}")
        groups = self._groups(message, local, grant)
        first = {indexes[0]: name for name, (_, indexes, _) in groups.items()}
        grouped: dict[int, bytes | None] = {}
        parts = []
        for index, request in enumerate(message):
            if index in first:  # a batchable method's calls all run where the first one sits
                grouped.update(await self._run_group(message, first[index], groups, grant))
            part = grouped[index] if index in grouped else await self._one(request, local, grant)
            if part is not None:
                parts.append(part)
        return b"[" + b",".join(parts) + b"]" if parts else None

    def _groups(
        self, batch: list[Any], local: Methods | None, grant: Grant | None
    ) -> dict[str, tuple[_Method, list[int], list[Any]]]:
        """The well-formed, allowed calls of methods with a batch form, by method, in batch
        order."""
        calls: dict[str, tuple[_Method, list[int], list[Any]]] = {}
        for index, request in enumerate(batch):
            if type(request) is not dict or request.get("jsonrpc") != "2.0":
                continue
            name = request.get("method")
            if type(name) is not str or (local is not None and name in local):
                continue
            method = self.methods.get(name)
            id_ = request.get("id", _MISSING)
            if method is None or method.batch is None or not (
                id_ is _MISSING or id_ is None or type(id_) in (str, int, float)
            ) or (grant is not None and not grant.allows(name)):
                continue
            entry = calls.setdefault(name, (method, [], []))
            entry[1].append(index)
            entry[2].append(request.get("params"))
        return calls

    async def _run_group(
        self, batch: list[Any], name: str,
        groups: dict[str, tuple[_Method, list[int], list[Any]]], grant: Grant | None,
    ) -> dict[int, bytes | None]:
        """Run one method's batch form over all its calls; the encoded answer per index."""
        method, indexes, params = groups[name]
        started = time.perf_counter()
        try:
            results = method.batch(params)
            if hasattr(results, "__await__"):
                results = await results
        except RpcError as exc:
            results = [exc] * len(indexes)
        except Exception:
            log.exception("rpc batch method %s failed", name)
            results = [RpcError(INTERNAL_ERROR, "internal error")] * len(indexes)
        elapsed = time.perf_counter() - started  # each call of the group waited this long
        out: dict[int, bytes | None] = {}
        audited = grant is not None and grant.who is not None
        for index, result in zip(indexes, results, strict=True):
            if self.stats is not None:
                self.stats.observe(name, elapsed, isinstance(result, RpcError))
            if audited:
                self.methods.access.record(
                    grant, name, result.code if isinstance(result, RpcError) else None)
            id_ = batch[index].get("id", _MISSING)
            if id_ is _MISSING:
                out[index] = None
            elif isinstance(result, RpcError):
                out[index] = error_response(id_, result.code, result.message, result.data)
            else:
                out[index] = _encode(_Ok("2.0", id_, result))
        return out

    async def _one(self, request: Any, local: Methods | None,
                   grant: Grant | None) -> bytes | None:
        if type(request) is not dict:
            return error_response(None, INVALID_REQUEST, "invalid request: not an object")
        id_ = request.get("id", _MISSING)
        if id_ is not _MISSING and id_ is not None and type(id_) not in (str, int, float):
            return error_response(None, INVALID_REQUEST, "invalid request: bad id type")
        name = request.get("method")
        if request.get("jsonrpc") != "2.0" or type(name) is not str:
            return error_response(
                None if id_ is _MISSING else id_, INVALID_REQUEST,
                "invalid request: jsonrpc must be \"2.0\" and method a string")
        access = self.methods.access
        audited = grant is not None and grant.who is not None
        method = local.get(name) if local is not None else None
        if method is None:
            method = self.methods.get(name)
            if method is None:
                if audited:
                    access.record(grant, name, METHOD_NOT_FOUND)
                if id_ is _MISSING:
                    return None
                return error_response(
                    id_, METHOD_NOT_FOUND, f"the method {name} does not exist/is not available")
        if grant is not None and not grant.allows(name):
            refusal = access.refuse(grant, name)
            return None if id_ is _MISSING else error_response(id_, refusal.code, refusal.message)
        code: int | None = INTERNAL_ERROR  # until the method answers
        started = time.perf_counter()
        try:
            result = method.call(request.get("params"))
            if hasattr(result, "__await__"):
                result = await result
            code = None
        except RpcError as exc:
            code = exc.code
            if id_ is _MISSING:
                return None
            return error_response(id_, exc.code, exc.message, exc.data)
        except Exception:
            log.exception("rpc method %s failed", name)
            if id_ is _MISSING:
                return None
            return error_response(id_, INTERNAL_ERROR, "internal error")
        finally:
            if self.stats is not None:
                self.stats.observe(name, time.perf_counter() - started, code is not None)
            if audited:
                access.record(grant, name, code)
        if id_ is _MISSING:
            return None
        try:
            return _encode(_Ok("2.0", id_, result))
        except (TypeError, ValueError, OverflowError):
            log.exception("rpc method %s returned a value JSON can't hold", name)
            return error_response(id_, INTERNAL_ERROR, "internal error: result not encodable")


# ---------------------------------------------------------------------------------------------
# Parameter helpers: Ethereum's hex encodings, strict as geth is, with the offending value
# in the message. Each raises InvalidParams.

BLOCK_TAGS = frozenset({"latest", "pending", "earliest", "safe", "finalized"})
_HEX = frozenset(b"0123456789abcdefABCDEF")


def _hex_body(value: Any, what: str) -> str:
    if type(value) is not str:
        raise InvalidParams(f"invalid {what} {show(value)}: not a hex string")
    if value[:2] not in ("0x", "0X"):
        raise InvalidParams(f"invalid {what} {show(value)}: hex string without 0x prefix")
    body = value[2:]
    if not _HEX.issuperset(body.encode("utf-8", "replace")):
        raise InvalidParams(f"invalid {what} {show(value)}: invalid hex digit")
    return body


def quantity(value: Any, what: str = "quantity", bits: int = 256) -> int:
    """A hex QUANTITY ("0x0", "0x1f"): no leading zeros, at most ``bits`` wide."""
    body = _hex_body(value, what)
    if not body:
        raise InvalidParams(f"invalid {what} {show(value)}: hex string \"0x\"")
    if len(body) > 1 and body[0] == "0":
        raise InvalidParams(f"invalid {what} {show(value)}: hex number with leading zero digits")
    number = int(body, 16)
    if number.bit_length() > bits:
        raise InvalidParams(f"invalid {what} {show(value)}: hex number > {bits} bits")
    return number


def data(value: Any, what: str = "data", size: int | None = None) -> bytes:
    """Hex DATA ("0x", "0xdeadbeef"): even length; exactly ``size`` bytes when given."""
    body = _hex_body(value, what)
    if len(body) % 2:
        raise InvalidParams(f"invalid {what} {show(value)}: hex string of odd length")
    if size is not None and len(body) != 2 * size:
        raise InvalidParams(
            f"invalid {what} {show(value)}: hex string has length {len(body)}, want {2 * size}")
    return bytes.fromhex(body)


def address(value: Any) -> bytes:
    """A 20-byte address (the checksum case is not enforced, as in geth)."""
    return data(value, "address", 20)


def hash32(value: Any) -> bytes:
    """A 32-byte hash."""
    return data(value, "hash", 32)


def boolean(value: Any, what: str = "flag") -> bool:
    """A JSON boolean; ``0``/``1`` and strings are refused, as geth refuses them."""
    if type(value) is not bool:
        raise InvalidParams(f"invalid {what} {show(value)}: not a boolean")
    return value


def block_id(value: Any) -> int | str | bytes:
    """A block tag, a number, or an EIP-1898 object: returns the tag, the number or the hash."""
    if type(value) is dict:
        if "blockHash" in value:
            return hash32(value["blockHash"])
        if "blockNumber" in value:
            return block_id(value["blockNumber"])
        raise InvalidParams(f"invalid block {show(value)}: want blockHash or blockNumber")
    if type(value) is str and value in BLOCK_TAGS:
        return value
    return quantity(value, "block number", 64)
