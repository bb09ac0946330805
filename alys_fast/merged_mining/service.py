"""Alys's consensus JSON-RPC (ALYS-PROTOCOL §3.1): the endpoint merge-mining pools talk to.

JSON-RPC 1.0 style over HTTP POST, on its own port (Alys's 3000): a request is
``{"method", "params", "id"}`` (``params`` must be there, else -32600), an answer
``{"result", "error", "id"}`` with no ``jsonrpc`` field. Methods, with Alys's parameter and
result shapes, HTTP statuses and error codes:

- ``createauxblock [evm_address]``: the ``AuxBlock`` over every unfinalized block (``hash``,
  ``chainid``, ``previousblockhash``, ``coinbasevalue`` 0, ``bits`` as lowercase hex,
  ``height``, ``_target`` little-endian hex); hashes are hex of their bytes as they are, no
  reversal. Nothing to mine: HTTP 503, -32606.
- ``submitauxblock [hash_hex, auxpow_hex]``: ``null`` once the proof is checked and queued for
  the next block. Undecodable parameters: HTTP 400, -32605. Where Alys drops the connection
  (an unknown hash, a bad proof) this answers HTTP 400, -32605 with a message that starts with
  the broken rule (``auxpow chain-merkle-root-not-in-coinbase …``, RULES.md's codes), and
  nothing changes.
- ``getqueuedpow``: the queued AuxPoW header or ``null``; ``getheadblock``,
  ``getblockbyheight`` (a bare number), ``getblockbyhash`` (bare hex): a block as Alys's
  ``SignedConsensusBlock`` JSON is laid out, with this chain's fields (one hash is both the
  consensus and the execution block hash; ``signature`` is the block's approvals as Alys's
  ``AggregateApproval``: ``aggregation_bits``, the SSZ bit list's hex, and
  ``aggregate_signature``; the proof is its consensus hex).

``createauxblock`` remembers what each hash covers (:class:`ConsensusApi`, as Alys's miner
does, in memory, bounded); ``submitauxblock`` must come to the node that handed the work out.
The HTTP side is a small bounded HTTP/1.1 loop (keep-alive, Content-Length bodies only, a cap
on connections, header and body sizes, idle timeout), not the eth RPC's server: the 1.0 answers
and their statuses do not fit a JSON-RPC 2.0 dispatcher. :class:`AuxPowActor` runs it in the
supervision tree; :class:`FinalityCollector` exports the finality to ``/metrics``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import msgspec
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from alys_fast.actors import Actor, ActorError, Directory, Refused
from alys_fast.auxpow import AuxPowError, parse_auxpow, target_from_bits
from alys_fast.chain.actor import ChainClient
from alys_fast.chain.finality import AuxWork, NoWork
from alys_fast.chain.topics import FINALIZED, Finalized
from alys_fast.metrics.stats import NodeStats
from alys_fast.storage.actor import StoreClient
from alys_fast.storage.store import BlockRecord
from alys_fast.validation import decode_header
from alys_fast.validation.blocks import AuxPowHeader

log = logging.getLogger(__name__)

# Work handed out and not yet answered; the oldest is forgotten first (a pool asks every few
# seconds and only answers its latest).
MAX_PENDING = 256
MAX_CONNECTIONS = 64
MAX_HEADER_BYTES = 16 * 1024
MAX_BODY_BYTES = 1024 * 1024  # a proof is at most 64 KiB, 128 KiB as hex
IDLE_SECONDS = 30.0

INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS = -32600, -32601, -32602
BLOCK_NOT_FOUND, DEBUG_ERROR, CHAIN_SYNCING = -32604, -32605, -32606


class ConsensusError(Exception):
    """An error answer: JSON-RPC ``code`` and ``message``, sent with HTTP ``status``."""

    def __init__(self, code: int, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True)
class Pending:
    """What a ``createauxblock`` hash stands for, kept until its proof is queued."""

    work: AuxWork
    fee_recipient: bytes


def aux_block_json(work: AuxWork) -> dict[str, Any]:
    """Alys's ``AuxBlock`` (byte orders and formats as its serde)."""
    return {
        "hash": work.hash.hex(),
        "chainid": work.chain_id,
        "previousblockhash": work.previous_pow_hash.hex(),
        "coinbasevalue": 0,
        "bits": format(work.bits, "x"),
        "height": work.height,
        "_target": target_from_bits(work.bits).to_bytes(32, "little").hex(),
    }


def auxpow_header_json(aux: AuxPowHeader) -> dict[str, Any]:
    """Alys's ``AuxPowHeader`` JSON (the proof as its consensus hex)."""
    return {
        "range_start": "0x" + aux.range_start.hex(),
        "range_end": "0x" + aux.range_end.hex(),
        "bits": aux.bits,
        "chain_id": aux.chain_id,
        "height": aux.height,
        "auxpow": aux.auxpow.hex(),
        "fee_recipient": "0x" + aux.fee_recipient.hex(),
    }


def consensus_block_json(record: BlockRecord) -> dict[str, Any]:
    """A stored block laid out as Alys's ``SignedConsensusBlock`` JSON (see the docstring)."""
    header = decode_header(record.header)
    quoted = str  # lighthouse's payload writes its integers as decimal strings
    return {
        "message": {
            "parent_hash": "0x" + header.parent_hash.hex(),
            "slot": header.slot,
            "auxpow_header": None if header.auxpow is None else auxpow_header_json(header.auxpow),
            "execution_payload": {
                "parent_hash": "0x" + header.parent_hash.hex(),
                "fee_recipient": "0x" + header.author.hex(),
                "state_root": "0x" + header.state_root.hex(),
                "receipts_root": "0x" + header.receipts_root.hex(),
                "logs_bloom": "0x" + header.logs_bloom.hex(),
                "prev_randao": "0x" + bytes(32).hex(),
                "block_number": quoted(header.number),
                "gas_limit": quoted(header.gas_limit),
                "gas_used": quoted(header.gas_used),
                "timestamp": quoted(header.timestamp),
                "extra_data": "0x" + header.extra_data.hex(),
                "base_fee_per_gas": quoted(header.base_fee_per_gas),
                "block_hash": "0x" + record.hash.hex(),
                "transactions": ["0x" + tx.hex() for tx in record.transactions],
                "withdrawals": [],
            },
            "pegins": [],
            "pegout_payment_proposal": None,
            "finalized_pegouts": [],
        },
        "signature": {
            "aggregation_bits": "0x" + header.signature[:2].hex(),
            "aggregate_signature": "0x" + header.signature[2:].hex(),
        },
    }


def _hex(value: object, what: str, size: int | None = None) -> bytes:
    if type(value) is not str:
        raise ConsensusError(DEBUG_ERROR, f"{what} must be a hex string")
    text = value[2:] if value[:2] in ("0x", "0X") else value
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise ConsensusError(DEBUG_ERROR, f"{what} is not hex") from None
    if size is not None and len(raw) != size:
        raise ConsensusError(DEBUG_ERROR, f"{what} must be {size} bytes, got {len(raw)}")
    return raw


class ConsensusApi:
    """The consensus RPC's methods over the chain and the store (see the module docstring)."""

    def __init__(self, chain: ChainClient, store: StoreClient) -> None:
        self.chain = chain
        self.store = store
        self.pending: OrderedDict[bytes, Pending] = OrderedDict()
        self.methods: dict[str, Callable[[Any], Awaitable[Any]]] = {
            "createauxblock": self.create_aux_block,
            "submitauxblock": self.submit_aux_block,
            "getqueuedpow": self.get_queued_pow,
            "getheadblock": self.get_head_block,
            "getblockbyheight": self.get_block_by_height,
            "getblockbyhash": self.get_block_by_hash,
        }

    async def answer(self, body: bytes) -> tuple[int, bytes]:
        """One HTTP POST body -> (HTTP status, JSON answer)."""
        try:
            request = msgspec.json.decode(body)
        except msgspec.DecodeError:
            return self._error(None, ConsensusError(INVALID_REQUEST, "Invalid Request: not JSON"))
        if type(request) is not dict or type(request.get("method")) is not str:
            return self._error(None, ConsensusError(
                INVALID_REQUEST, "Invalid Request: want an object with method, params and id"))
        ident = request.get("id")
        if "params" not in request:
            return self._error(ident, ConsensusError(
                INVALID_REQUEST, "Invalid Request: params is missing", status=200))
        method = self.methods.get(request["method"])
        if method is None:
            return self._error(ident, ConsensusError(
                METHOD_NOT_FOUND, f"Method not found: {request['method'][:64]}", status=404))
        try:
            result = await method(request["params"])
        except ConsensusError as exc:
            return self._error(ident, exc)
        except ActorError as exc:
            log.warning("consensus RPC %s: %s", request["method"], exc)
            return self._error(ident, ConsensusError(
                CHAIN_SYNCING, "the chain is not answering (restarting); try again", 503))
        return 200, msgspec.json.encode({"result": result, "error": None, "id": ident})

    @staticmethod
    def _error(ident: Any, error: ConsensusError) -> tuple[int, bytes]:
        payload = {"result": None, "error": {"code": error.code, "message": error.message},
                   "id": ident}
        return error.status, msgspec.json.encode(payload)

    async def create_aux_block(self, params: Any) -> dict[str, Any]:
        if type(params) is not list or len(params) != 1:
            raise ConsensusError(INVALID_PARAMS, "Invalid params: want [evm_address]")
        try:
            fee_recipient = _hex(params[0], "evm_address", 20)
        except ConsensusError:
            raise ConsensusError(INVALID_PARAMS, "Invalid params: evm_address must be "
                                 "a 20-byte hex address") from None
        try:
            work = await self.chain.create_aux_block()
        except NoWork as exc:
            raise ConsensusError(CHAIN_SYNCING, f"no work: {exc}", 503) from None
        self.pending[work.hash] = Pending(work, fee_recipient)
        self.pending.move_to_end(work.hash)
        while len(self.pending) > MAX_PENDING:
            self.pending.popitem(last=False)
        return aux_block_json(work)

    async def submit_aux_block(self, params: Any) -> None:
        if type(params) is not list or len(params) != 2:
            raise ConsensusError(DEBUG_ERROR, "want [hash_hex, auxpow_hex]")
        block_hash = _hex(params[0], "hash", 32)
        proof = _hex(params[1], "auxpow")
        try:
            parse_auxpow(proof)
        except AuxPowError as exc:
            raise ConsensusError(DEBUG_ERROR, f"auxpow {exc.code}: {exc.message}") from None
        pending = self.pending.get(block_hash)
        if pending is None:
            raise ConsensusError(DEBUG_ERROR, f"submitted AuxPoW for unknown block "
                                 f"{block_hash.hex()}: ask createauxblock for work first")
        work = pending.work
        header = AuxPowHeader(
            range_start=work.range_start, range_end=work.range_end, bits=work.bits,
            chain_id=work.chain_id, height=work.height, auxpow=proof,
            fee_recipient=pending.fee_recipient,
        )
        try:
            await self.chain.queue_pow(header)
        except Refused as exc:   # the rule the proof breaks
            raise ConsensusError(DEBUG_ERROR, exc.reason) from None
        self.pending.pop(block_hash, None)

    def forget_finalized(self, finalized: Finalized) -> None:
        """Drop the work whose range a landed proof finalized: no second proof can use it."""
        for block_hash, pending in list(self.pending.items()):
            if pending.work.range_end == finalized.block_hash:
                del self.pending[block_hash]

    async def get_queued_pow(self, params: Any) -> dict[str, Any] | None:
        queued = await self.chain.queued_pow()
        return None if queued is None else auxpow_header_json(queued)

    async def get_head_block(self, params: Any) -> dict[str, Any]:
        head = await self.store.head()
        record = None if head is None else await self.store.block(hash=head[1])
        if record is None:
            raise ConsensusError(BLOCK_NOT_FOUND, "Block not found", status=200)
        return consensus_block_json(record)

    async def get_block_by_height(self, params: Any) -> dict[str, Any] | None:
        if type(params) is not int or params < 0:
            raise ConsensusError(DEBUG_ERROR, "params must be a block number, e.g. \"params\":1")
        record = await self.store.block(number=params)
        return None if record is None else consensus_block_json(record)

    async def get_block_by_hash(self, params: Any) -> dict[str, Any] | None:
        if type(params) is not str:
            raise ConsensusError(INVALID_PARAMS, "Invalid params: want the block hash as hex")
        record = await self.store.block(hash=_hex(params, "block hash", 32))
        return None if record is None else consensus_block_json(record)


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            413: "Payload Too Large", 503: "Service Unavailable"}


class ConsensusRpcServer:
    """The small HTTP/1.1 loop serving ``answer(body) -> (status, json)`` (module docstring)."""

    def __init__(self, answer: Callable[[bytes], Awaitable[tuple[int, bytes]]], host: str,
                 port: int) -> None:
        self.answer = answer
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, self.host, self.port, limit=MAX_HEADER_BYTES)
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in self._connections:
            task.cancel()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._connections) >= MAX_CONNECTIONS:
            writer.close()
            return
        self._connections.add(task)
        try:
            while await self._exchange(reader, writer):
                pass
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError,
                ConnectionError, ValueError):
            pass  # a client gone, idle, or sending what is not HTTP: close
        finally:
            self._connections.discard(task)
            writer.close()

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """One request and its answer; whether the connection stays open."""
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IDLE_SECONDS)
        request_line, *lines = head[:-4].decode("latin-1").split("\r\n")
        method, _target, version = request_line.split(" ")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "transfer-encoding" in headers:
            await self._send(writer, 400, b"send the body with a Content-Length", False)
            return False
        length = int(headers.get("content-length", "0"))
        if not 0 <= length <= MAX_BODY_BYTES:
            await self._send(writer, 413, b"body too large", False)
            return False
        body = await asyncio.wait_for(reader.readexactly(length), IDLE_SECONDS)
        keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        if method != "POST":
            await self._send(writer, 405, b"JSONRPC server handles only POST requests", keep)
        else:
            status, payload = await self.answer(body)
            await self._send(writer, status, payload, keep, json=True)
        return keep

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, status: int, body: bytes, keep: bool,
                    json: bool = False) -> None:
        kind = "application/json" if json else "text/plain"
        head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
                f"Content-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
                f"Connection: {'keep-alive' if keep else 'close'}\r\n\r\n")
        writer.write(head.encode() + body)
        await writer.drain()


@dataclass(frozen=True)
class ConsensusRpcSettings:
    """Where the consensus RPC listens: ``port`` None does not serve it, 0 binds an ephemeral
    port (the bound one is in :attr:`ConsensusRpcEndpoint.bound`)."""

    host: str = "127.0.0.1"
    port: int | None = None


@dataclass
class ConsensusRpcEndpoint:
    """Filled by the actor once it serves, read by the node: the bound port (a restarted actor
    binds it again)."""

    bound: int | None = None


class AuxPowActor(Actor):
    """Serves the consensus RPC where its settings say (no port: not served); a restart
    re-binds the same port and forgets the work handed out. Follows the chain's
    :data:`~alys_fast.chain.topics.FINALIZED` to forget work a landed proof used up."""

    subscribes = (FINALIZED,)

    def __init__(self, settings: ConsensusRpcSettings, endpoint: ConsensusRpcEndpoint,
                 directory: Directory) -> None:
        self.settings = settings
        self.endpoint = endpoint
        self.api = ConsensusApi(ChainClient(directory), StoreClient(directory))
        self.server: ConsensusRpcServer | None = None

    async def started(self) -> None:
        settings, endpoint = self.settings, self.endpoint
        if settings.port is None:
            return
        port = endpoint.bound or settings.port  # a restart keeps its port
        self.server = ConsensusRpcServer(self.api.answer, settings.host, port)
        await self.server.start()
        endpoint.bound = self.server.port
        log.info("consensus RPC (AuxPoW mining) on %s", self.server.url)

    def receive(self, message: Finalized) -> None:
        if type(message) is not Finalized:
            raise TypeError(f"auxpow: unexpected message {message!r}")
        self.api.forget_finalized(message)

    def pre_restart(self, error: BaseException) -> None:
        self._close()

    def stopped(self) -> None:
        self._close()

    def _close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None


class FinalityCollector(Collector):
    """The chain's finality (the node's ``stats["auxpow"]``, kept by the chain actor) for
    /metrics."""

    def __init__(self, stats: NodeStats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stats = self.stats.get("auxpow", {})
        for name, key, help_text in (
            ("alys_chain_finalized", "finalized", "Number of the last block finalized by AuxPoW"),
            ("alys_chain_blocks_since_finality", "blocks_since_finality",
             "Blocks after the last finalized one"),
            ("alys_chain_pow_block", "pow_block", "Number of the latest block carrying an AuxPoW"),
        ):
            yield GaugeMetricFamily(name, help_text, value=stats.get(key, 0))
        yield GaugeMetricFamily("alys_auxpow_queued", "1 if a proof waits for the next block",
                                value=int(bool(stats.get("queued"))))
        yield GaugeMetricFamily("alys_chain_halted_for_pow",
                                "1 if block production is halted for lack of an AuxPoW",
                                value=int(stats.get("halted") is not None))
