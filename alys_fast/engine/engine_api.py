"""The Engine API as Alys's consensus node drives its execution client (geth), and a plain
JSON-RPC client for the execution client's public port.

Alys (``app/src/engine.rs``, through lighthouse's ``HttpJsonRpc``) builds a block with
``engine_forkchoiceUpdated(state, attributes)`` → ``engine_getPayload(payloadId)`` and imports
one with ``engine_newPayload(payload)`` → ``engine_forkchoiceUpdated(head = its hash)``; so do
:meth:`EngineApi.build` and :meth:`EngineApi.import_payload`. The method versions follow the
chain's fork: Shanghai (Alys's genesis) → V2, Cancun → V3 (a ``parentBeaconBlockRoot`` beside
the payload, the blob versioned hashes, ``blobGasUsed``/``excessBlobGas`` in it). Every
request carries a fresh HS256 JWT (``iat`` = now), as the Engine API's authentication asks.

Payload statuses become types: VALID (and, where a caller can wait, SYNCING or ACCEPTED) are
returned as :class:`PayloadStatus`; INVALID and INVALID_BLOCK_HASH raise
:class:`PayloadRefused` carrying geth's ``validationError``; where VALID is needed (an import)
SYNCING/ACCEPTED raise :class:`PayloadNotValidated`. A request that gets no answer raises
:class:`EngineUnavailable` (:class:`EngineTimeout` past the time limit); one geth answers with
a JSON-RPC error raises :class:`EngineRpcError`. Every message names the method and what geth
said. With a :class:`~alys_fast.actors.breaker.CircuitBreaker`, each request asks it first (an
open breaker fails the call at once, saying why) and reports its outcome: transport failures
and timeouts count against geth; an answer, even a refusal, shows geth is alive.

Wire values are hex (``QUANTITY`` ints, ``DATA`` bytes); the structs here hold ints and bytes,
converted by :func:`to_wire` / :func:`from_wire`.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import types
from collections.abc import Callable, Sequence
from enum import StrEnum
from functools import cache
from typing import Any, TypeVar, Union, get_args, get_origin

import jwt
import msgspec

from alys_fast.actors.breaker import CircuitBreaker
from alys_fast.engine.errors import EngineError
from alys_fast.engine.http import HttpClient, TransportError, TransportTimeout

ZERO_HASH = bytes(32)
# Alys builds with this fee recipient: priority fees are burned at the EL (ALYS-PROTOCOL §4.3).
ALYS_FEE_RECIPIENT = bytes.fromhex("000000000000000000000000000000000000dead")


class Fork(StrEnum):
    SHANGHAI = "shanghai"
    CANCUN = "cancun"


# --- wire types ---------------------------------------------------------------------------------


class _Wire(msgspec.Struct, frozen=True, rename="camel"):
    """Engine API objects: camelCase names on the wire."""


class Withdrawal(_Wire):
    """A balance credit the payload carries (Alys: peg-in mints and fee payouts), in gwei."""

    index: int
    validator_index: int
    address: bytes
    amount: int


class ExecutionPayloadV2(_Wire):
    """A Shanghai (Capella) payload."""

    parent_hash: bytes
    fee_recipient: bytes
    state_root: bytes
    receipts_root: bytes
    logs_bloom: bytes
    prev_randao: bytes
    block_number: int
    gas_limit: int
    gas_used: int
    timestamp: int
    extra_data: bytes
    base_fee_per_gas: int
    block_hash: bytes
    transactions: tuple[bytes, ...]
    withdrawals: tuple[Withdrawal, ...]


class ExecutionPayloadV3(ExecutionPayloadV2):
    """A Cancun (Deneb) payload."""

    blob_gas_used: int
    excess_blob_gas: int


ExecutionPayload = ExecutionPayloadV2 | ExecutionPayloadV3


class ForkchoiceState(_Wire):
    head_block_hash: bytes
    safe_block_hash: bytes = ZERO_HASH
    finalized_block_hash: bytes = ZERO_HASH


class PayloadAttributes(_Wire):
    """What to build on the head: V2 for Shanghai; Cancun adds ``parent_beacon_block_root``."""

    timestamp: int
    prev_randao: bytes = ZERO_HASH
    suggested_fee_recipient: bytes = ALYS_FEE_RECIPIENT
    withdrawals: tuple[Withdrawal, ...] = ()
    parent_beacon_block_root: bytes | None = None


class Status(StrEnum):
    VALID = "VALID"
    INVALID = "INVALID"
    SYNCING = "SYNCING"
    ACCEPTED = "ACCEPTED"
    INVALID_BLOCK_HASH = "INVALID_BLOCK_HASH"


class PayloadStatus(_Wire):
    status: str
    latest_valid_hash: bytes | None = None
    validation_error: str | None = None

    @property
    def valid(self) -> bool:
        return self.status == Status.VALID


class ForkchoiceUpdated(_Wire):
    payload_status: PayloadStatus
    payload_id: bytes | None = None


class BuiltPayload(_Wire):
    """``engine_getPayload``'s answer: the payload and what it pays (wei)."""

    execution_payload: ExecutionPayload
    block_value: int
    should_override_builder: bool = False


# --- errors -----------------------------------------------------------------------------------


class EngineApiError(EngineError):
    """Root of the Engine API client's errors; ``method`` is the call that failed."""

    def __init__(self, method: str, message: str) -> None:
        self.method = method
        super().__init__(f"{method}: {message}")


class EngineUnavailable(EngineApiError):
    """No answer: geth is down, unreachable, or the breaker is open and refused the call."""


class EngineTimeout(EngineUnavailable):
    """geth took longer than the request's time limit."""


class EngineRpcError(EngineApiError):
    """geth answered with a JSON-RPC error (or an answer that is not JSON-RPC)."""

    def __init__(self, method: str, code: int, message: str, data: Any = None) -> None:
        self.code = code
        self.rpc_message = message
        self.data = data
        detail = f" ({_shown(data)})" if data is not None else ""
        super().__init__(method, f"geth answered error {code}: {message}{detail}")


class PayloadRefused(EngineApiError):
    """geth judged the payload (or the forkchoice's head) INVALID or INVALID_BLOCK_HASH."""

    def __init__(self, method: str, status: PayloadStatus) -> None:
        self.status = status
        latest = status.latest_valid_hash
        after = f" (latest valid block 0x{latest.hex()})" if latest else ""
        super().__init__(
            method, f"{status.status}: {status.validation_error or 'no reason given'}{after}")


class PayloadNotValidated(EngineApiError):
    """geth answered SYNCING or ACCEPTED where VALID was needed: it lacks the block's
    ancestors (a wiped or lagging geth; replay the stored payloads)."""

    def __init__(self, method: str, status: PayloadStatus) -> None:
        self.status = status
        super().__init__(method, f"{status.status}: geth has not validated the block "
                                 "(it lacks its ancestors)")


# --- hex codec ----------------------------------------------------------------------------------

T = TypeVar("T")


def to_wire(value: Any) -> Any:
    """A struct (or value) as Engine API JSON: ints as ``0x`` quantities, bytes as ``0x`` data,
    None fields left out."""
    if type(value) is int:
        return hex(value)
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, msgspec.Struct):
        return {name: to_wire(item) for field, name in _fields(type(value))
                if (item := getattr(value, field)) is not None}
    if isinstance(value, (tuple, list)):
        return [to_wire(item) for item in value]
    return value


def from_wire(kind: type[T] | Any, raw: Any) -> T:
    """Engine API JSON as ``kind``; ValueError names what does not fit."""
    if kind is int:
        if type(raw) is not str or not raw.startswith("0x"):
            raise ValueError(f"expected a hex quantity, got {_shown(raw)}")
        return int(raw, 16)  # type: ignore[return-value]
    if kind is bytes:
        if type(raw) is not str or not raw.startswith("0x"):
            raise ValueError(f"expected hex data, got {_shown(raw)}")
        return bytes.fromhex(raw[2:])  # type: ignore[return-value]
    origin = get_origin(kind)
    if origin is tuple:
        item_kind = get_args(kind)[0]
        if type(raw) is not list:
            raise ValueError(f"expected a list, got {_shown(raw)}")
        return tuple(from_wire(item_kind, item) for item in raw)  # type: ignore[return-value]
    if origin is Union or origin is types.UnionType:  # X | None
        if raw is None:
            return raw
        (option,) = [a for a in get_args(kind) if a is not type(None)]
        return from_wire(option, raw)
    if isinstance(kind, type) and issubclass(kind, msgspec.Struct):
        if type(raw) is not dict:
            raise ValueError(f"expected an object for {kind.__name__}")
        hints = _types(kind)
        try:
            return kind(**{field: from_wire(hints[field], raw[name])
                           for field, name in _fields(kind) if name in raw})
        except TypeError as exc:  # a required field missing
            raise ValueError(f"{kind.__name__}: {exc}") from None
    return raw


def _shown(raw: Any) -> str:
    """A wire value as JSON text, cut short, for an error message."""
    try:
        text = msgspec.json.encode(raw).decode()
    except (TypeError, msgspec.EncodeError):
        text = "an unreadable value"
    return text if len(text) <= 80 else text[:77] + "..."


@cache
def _fields(kind: type) -> tuple[tuple[str, str], ...]:
    """(attribute, wire name) of a struct's fields."""
    return tuple(zip(kind.__struct_fields__, kind.__struct_encode_fields__, strict=True))


@cache
def _types(kind: type) -> dict[str, Any]:
    return {f.name: f.type for f in msgspec.structs.fields(kind)}


# --- JSON-RPC over HTTP -----------------------------------------------------------------------


class _JsonRpc:
    """JSON-RPC 2.0 requests over :class:`HttpClient`, each outcome told to the breaker."""

    def __init__(self, http: HttpClient, breaker: CircuitBreaker | None) -> None:
        self.http = http
        self.breaker = breaker
        # Told (method, seconds) of every answered request: the node's latency metrics.
        self.observe_latency: Callable[[str, float], None] | None = None
        self._ids = itertools.count(1)

    def headers(self) -> dict[str, str] | None:
        return None

    async def post(self, method: str, body: bytes) -> bytes:
        """Send a prepared body; the answer's body (HTTP errors raise EngineRpcError)."""
        breaker = self.breaker
        if breaker is not None and not breaker.allow():
            raise EngineUnavailable(
                method, f"not sent: the circuit breaker is open (last failure: "
                        f"{breaker.last_failure}); next try in {breaker.retry_in():.1f} s")
        started = time.perf_counter()
        try:
            answer = await self.http.post(body, self.headers())
        except TransportError as exc:
            if breaker is not None:
                breaker.record_failure(f"{method}: {exc}",
                                       timeout=isinstance(exc, TransportTimeout))
            kind = EngineTimeout if isinstance(exc, TransportTimeout) else EngineUnavailable
            raise kind(method, str(exc)) from None
        except BaseException:  # cancelled: a probe must not stay out forever
            if breaker is not None:
                breaker.abandon()
            raise
        if answer.status in (401, 403):
            reason = answer.body.decode(errors="replace").strip()[:200]
            if breaker is not None:
                breaker.record_failure(f"{method}: authentication refused ({reason})")
            raise EngineRpcError(method, answer.status,
                                 f"HTTP {answer.status}, authentication refused: {reason}")
        if breaker is not None:
            breaker.record_success()
        if self.observe_latency is not None:
            self.observe_latency(method, time.perf_counter() - started)
        return answer.body

    async def call(self, method: str, params: Sequence[Any]) -> Any:
        request = {"jsonrpc": "2.0", "id": next(self._ids), "method": method,
                   "params": list(params)}
        body = await self.post(method, msgspec.json.encode(request))
        try:
            answer = msgspec.json.decode(body)
        except msgspec.DecodeError:
            raise EngineRpcError(method, -32700, "not a JSON answer: "
                                 + body.decode(errors="replace")[:200]) from None
        if type(answer) is not dict:
            raise EngineRpcError(method, -32700, "the answer is not a JSON-RPC object")
        error = answer.get("error")
        if error is not None:
            if type(error) is not dict:
                error = {"message": str(error)}
            raise EngineRpcError(method, error.get("code", -32603),
                                 str(error.get("message", "no message")), error.get("data"))
        if "result" not in answer:
            raise EngineRpcError(method, -32603, "the answer has neither result nor error")
        return answer["result"]

    async def close(self) -> None:
        await self.http.close()


class EngineApi(_JsonRpc):
    """The Engine API of one execution client; see the module docstring.

    ``timeout`` bounds each request (geth executing a full block answers newPayload in well
    under a second; a hung geth must not hold the chain). ``clock`` gives JWT ``iat``.
    """

    def __init__(
        self,
        url: str,
        jwt_secret: bytes,
        fork: Fork | str,
        *,
        timeout: float = 8.0,
        breaker: CircuitBreaker | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(HttpClient(url, timeout=timeout), breaker)
        if len(jwt_secret) != 32:
            raise ValueError(f"the JWT secret must be 32 bytes, got {len(jwt_secret)}")
        self.fork = Fork(fork)
        self.jwt_secret = jwt_secret
        self.clock = clock
        version = 3 if self.fork is Fork.CANCUN else 2
        self.forkchoice_method = f"engine_forkchoiceUpdatedV{version}"
        self.get_payload_method = f"engine_getPayloadV{version}"
        self.new_payload_method = f"engine_newPayloadV{version}"
        self.payload_type: type[ExecutionPayloadV2] = (
            ExecutionPayloadV3 if self.fork is Fork.CANCUN else ExecutionPayloadV2)

    def headers(self) -> dict[str, str]:
        token = jwt.encode({"iat": int(self.clock())}, self.jwt_secret, algorithm="HS256")
        return {"Authorization": f"Bearer {token}"}

    @property
    def methods(self) -> tuple[str, ...]:
        """The Engine API methods this client calls (for ``engine_exchangeCapabilities``)."""
        return (self.forkchoice_method, self.get_payload_method, self.new_payload_method)

    async def exchange_capabilities(self) -> tuple[str, ...]:
        """geth's Engine API methods; EngineRpcError if it lacks one this client needs.
        Cheap, so it doubles as the breaker's probe."""
        method = "engine_exchangeCapabilities"
        theirs = tuple(await self.call(method, [list(self.methods)]))
        missing = [m for m in self.methods if m not in theirs]
        if missing:
            raise EngineRpcError(method, -32601, f"geth lacks {', '.join(missing)}")
        return theirs

    async def forkchoice_updated(
        self, state: ForkchoiceState, attributes: PayloadAttributes | None = None
    ) -> ForkchoiceUpdated:
        """Move geth's head (and start a build, with ``attributes``). Raises PayloadRefused
        when the head is INVALID; SYNCING is returned (``payload_status.valid`` False)."""
        method = self.forkchoice_method
        if attributes is not None:
            attributes = self._attributes_for_fork(attributes)
        raw = await self.call(method, [to_wire(state), to_wire(attributes)])
        result = _decode(method, ForkchoiceUpdated, raw)
        _refuse_invalid(method, result.payload_status)
        return result

    def _attributes_for_fork(self, attributes: PayloadAttributes) -> PayloadAttributes:
        """V3 needs a beacon root (zero when none is given); V2 must not carry one."""
        root = attributes.parent_beacon_block_root
        if self.fork is Fork.CANCUN and root is None:
            return msgspec.structs.replace(attributes, parent_beacon_block_root=ZERO_HASH)
        if self.fork is Fork.SHANGHAI and root is not None:
            raise ValueError("a Shanghai payload has no parent beacon block root")
        return attributes

    async def get_payload(self, payload_id: bytes) -> BuiltPayload:
        method = self.get_payload_method
        raw = await self.call(method, [to_wire(payload_id)])
        if type(raw) is not dict or type(raw.get("executionPayload")) is not dict:
            raise EngineRpcError(method, -32603, "malformed answer: no executionPayload")
        payload = _decode(method, self.payload_type, raw["executionPayload"])
        return BuiltPayload(payload, _decode(method, int, raw.get("blockValue")),
                            raw.get("shouldOverrideBuilder") is True)

    async def new_payload(
        self,
        payload: ExecutionPayload,
        *,
        parent_beacon_block_root: bytes = ZERO_HASH,
        versioned_hashes: Sequence[bytes] = (),
    ) -> PayloadStatus:
        """Have geth validate ``payload`` (it does not become the head). Raises
        PayloadRefused for INVALID / INVALID_BLOCK_HASH; VALID, SYNCING and ACCEPTED return."""
        method = self.new_payload_method
        if type(payload) is not self.payload_type:
            raise ValueError(f"{method} takes an {self.payload_type.__name__}, "
                             f"got an {type(payload).__name__}")
        params: list[Any] = [to_wire(payload)]
        if self.fork is Fork.CANCUN:
            params += [to_wire(list(versioned_hashes)), to_wire(parent_beacon_block_root)]
        status = _decode(method, PayloadStatus, await self.call(method, params))
        _refuse_invalid(method, status)
        return status

    async def build(
        self, state: ForkchoiceState, attributes: PayloadAttributes, *, wait: float = 0.0
    ) -> BuiltPayload:
        """Build a block on ``state``'s head: forkchoiceUpdated with ``attributes``, then
        getPayload after ``wait`` seconds. geth fills the payload from its pool in the
        background; getPayload takes what it has, so without a wait a block may come out
        empty while transactions wait."""
        updated = await self.forkchoice_updated(state, attributes)
        if updated.payload_id is None:
            raise PayloadNotValidated(self.forkchoice_method, updated.payload_status)
        if wait > 0:
            await asyncio.sleep(wait)
        return await self.get_payload(updated.payload_id)

    async def import_payload(
        self,
        payload: ExecutionPayload,
        *,
        safe: bytes = ZERO_HASH,
        finalized: bytes = ZERO_HASH,
        parent_beacon_block_root: bytes = ZERO_HASH,
    ) -> None:
        """Validate ``payload`` and make it geth's head: newPayload, then forkchoiceUpdated.
        Raises PayloadRefused or, when geth cannot validate it yet, PayloadNotValidated."""
        status = await self.new_payload(payload, parent_beacon_block_root=parent_beacon_block_root)
        if not status.valid:
            raise PayloadNotValidated(self.new_payload_method, status)
        head = ForkchoiceState(payload.block_hash, safe, finalized)
        updated = await self.forkchoice_updated(head)
        if not updated.payload_status.valid:
            raise PayloadNotValidated(self.forkchoice_method, updated.payload_status)


async def replay(
    api: EngineApi,
    payloads: Sequence[ExecutionPayload],
    *,
    parent_beacon_block_roots: Sequence[bytes] | None = None,
    safe: bytes = ZERO_HASH,
    finalized: bytes = ZERO_HASH,
) -> bytes:
    """Bring a geth that lost its chain (wiped, or restarted behind) to the last of
    ``payloads``: newPayload each in order (every one must be VALID), then forkchoiceUpdated
    to the last. Blocks geth still has answer VALID at once. Returns the new head's hash."""
    if not payloads:
        raise ValueError("nothing to replay")
    roots = parent_beacon_block_roots or [ZERO_HASH] * len(payloads)
    if len(roots) != len(payloads):
        raise ValueError(f"{len(payloads)} payloads but {len(roots)} beacon roots")
    for payload, root in zip(payloads, roots, strict=True):
        status = await api.new_payload(payload, parent_beacon_block_root=root)
        if not status.valid:
            raise PayloadNotValidated(
                f"{api.new_payload_method} (block {payload.block_number})", status)
    head = payloads[-1].block_hash
    updated = await api.forkchoice_updated(ForkchoiceState(head, safe, finalized))
    if not updated.payload_status.valid:
        raise PayloadNotValidated(api.forkchoice_method, updated.payload_status)
    return head


def _decode(method: str, kind: type[T], raw: Any) -> T:
    try:
        return from_wire(kind, raw)
    except (ValueError, TypeError, KeyError) as exc:
        raise EngineRpcError(method, -32603, f"malformed answer: {exc}") from None


def _refuse_invalid(method: str, status: PayloadStatus) -> None:
    if status.status in (Status.INVALID, Status.INVALID_BLOCK_HASH):
        raise PayloadRefused(method, status)
    if status.status not in Status.__members__:
        raise EngineRpcError(method, -32603, f"unknown payload status {status.status}")


class EthRpc(_JsonRpc):
    """geth's public JSON-RPC (``--http``): what the node forwards state and transaction
    methods to. :meth:`call` decodes, :meth:`forward` passes a request's bytes through as
    they are (the client's ids, batches and errors untouched). Several requests may be out at
    once, each on its own kept connection."""

    def __init__(self, url: str, *, timeout: float = 10.0, max_connections: int = 8,
                 breaker: CircuitBreaker | None = None) -> None:
        super().__init__(HttpClient(url, timeout=timeout, max_connections=max_connections),
                         breaker)

    async def forward(self, body: bytes) -> bytes:
        """A JSON-RPC request (or batch) as bytes → geth's answer as bytes."""
        return await self.post("forward", body)
