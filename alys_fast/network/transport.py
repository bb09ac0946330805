"""Frames between nodes over ZeroMQ/TCP, encrypted and authenticated with CURVE.

Each node has a persistent node key, a CURVE keypair kept in ``<data dir>/network.key``
(:func:`load_node_key`: the secret in z85, created on first start, mode 0600). Its id is the
public key in hex; its address ``alys://<id>@host:port``.

:class:`ZmqTransport` binds one ROUTER (the listen address, ``curve_server``) and connects one
DEALER per peer it dials (bootnodes), to that peer's known public key, so a dialed peer is
authenticated by the handshake itself. Inbound peers are authenticated by ZAP
(``zmq.auth.asyncio.AsyncioAuthenticator``): any CURVE key may connect (full nodes sync and
send transactions) unless ``admit(key)`` refuses it (banned); the authenticated key travels
with every frame as its ``User-Id`` property, which is what the ROUTER reports as the sender.
A frame always comes with the key the handshake proved, never with a claim of the sender's.
A plaintext client, or one that does not hold the secret of the key it presents, fails the
handshake and never reaches the node (counted in :attr:`ZmqTransport.handshake_failures`).

Both directions of a link carry frames: to a peer we dialed we send on its DEALER, to one that
dialed us on the ROUTER (by the routing id of its last frame). ``libzmq`` queues at most
``hwm`` frames per link; :meth:`ZmqTransport.send` retries a full link for ``send_timeout``
seconds, then reports the frame unsent (False). libzmq drops a peer whose frame exceeds
``MAXMSGSIZE`` (the wire's frame cap + slack) before reading it; libzmq reconnects a dialed
peer itself (100 ms, doubling to 5 s), and ZMTP heartbeats close dead TCP links.

Any object with the :class:`Transport` methods can stand in for this one (``faults.py``'s
in-process transport for tests); the layers above see only (peer key, frame) pairs.

Should the transport run in its own process (a remote actor)? No. ``benches/bench_network.py``
on the 2-core machine (shared, so ±50 %): a block of 1,000 transfers (117 kB) encodes in 5 µs
and is received (split, decoded, its SHA-256 gossip id) in 0.17–0.24 ms; an approval in 0.3 and
1–2 µs; a batch of 100 transactions in 4 and 20–25 µs. A CURVE round trip over loopback takes
0.2–0.4 ms for an approval, 0.6–0.7 ms for a block; one link carries 20–30k approvals/s or
300–500 MB/s of blocks — CURVE's crypto and the TCP work run in libzmq's I/O thread, outside
the GIL. A federation's load (a block and ≤ 15 approvals a slot, 5,000 tx/s in 50 batches of
100, each forwarded to a few peers) costs about 1 % of a core here, against hundreds of
milliseconds a second of signature checks that the consensus and the recovery processes do.
A separate process would add a msgpack hop and a copy to every message and save nothing: the
transport runs in the node's process, in the network actor. What it does cost under load is
the GIL: every libzmq call releases it, and the event loop then waits for worker threads
(execution, recovery, storage) to hand it back; a 3-node devnet at 6,000 tx/s spent 8 % of a
node's loop in the asyncio wrapper's sends (three releases each), hence :meth:`ZmqTransport.
send`'s plain sockets (one).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import zmq
import zmq.asyncio
from zmq.auth.asyncio import AsyncioAuthenticator
from zmq.utils import z85
from zmq.utils.monitor import parse_monitor_message

from alys_fast.keyfiles import KeyFileError, keep_private
from alys_fast.network.wire import MAX_FRAME

log = logging.getLogger(__name__)

NODE_KEY_FILE = "network.key"
ZAP_DOMAIN = "alys"
#: Frames a link queues inside libzmq (each direction) before sends wait.
HWM = 1000
#: Frames received but not yet read by the node, all peers together.
INBOX = 1024
#: Routing ids of inbound peers remembered (the oldest forgotten first).
MAX_ROUTES = 4096
#: Milliseconds a closed link may still take to send its farewell frame.
FAREWELL_LINGER_MS = 200
_COPY_BELOW = 65_536  # pyzmq copies small frames faster than it tracks them
_HANDSHAKE_EVENTS = {
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "no_detail",
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "protocol",
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: "auth",
}


class NodeKeyError(Exception):
    """The node key file cannot be used (the text says why and what to do)."""


@dataclass(frozen=True, slots=True)
class NodeKey:
    """A CURVE keypair, both halves in z85 (40 characters)."""

    public: bytes
    secret: bytes

    @classmethod
    def generate(cls) -> NodeKey:
        public, secret = zmq.curve_keypair()
        return cls(public, secret)

    @classmethod
    def from_secret(cls, secret: bytes) -> NodeKey:
        return cls(zmq.curve_public(secret), secret)

    @property
    def id(self) -> str:
        """The node id: the public key in hex (64 digits)."""
        return z85.decode(self.public).hex()


def key_to_z85(node_id: str) -> bytes:
    """A node id (hex) as the z85 key ZeroMQ's options take."""
    return z85.encode(bytes.fromhex(node_id))


def load_node_key(data_dir: Path) -> NodeKey:
    """The node key in ``data_dir`` (created, mode 0600, if there is none)."""
    path = data_dir / NODE_KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_node_key(path)
    key = NodeKey.generate()
    with os.fdopen(fd, "wb") as out:
        out.write(key.secret + b"\n")
    log.info("created node key %s in %s", key.id, path)
    return key


def _read_node_key(path: Path) -> NodeKey:
    try:
        keep_private(path, "node key")
    except KeyFileError as exc:
        raise NodeKeyError(str(exc)) from None
    secret = path.read_bytes().strip()
    if len(secret) != 40:
        raise NodeKeyError(f"{path} does not hold a node key (a 40-character z85 CURVE "
                           "secret); move it away to have a new key created")
    try:
        return NodeKey.from_secret(secret)
    except (ValueError, zmq.ZMQError) as exc:
        raise NodeKeyError(f"{path} does not hold a valid z85 CURVE secret ({exc})") from None


class Transport(Protocol):
    """What the network service needs from a transport (ZeroMQ here, in-process in tests)."""

    node_id: str

    async def start(self) -> str:
        """Start listening; the endpoint actually bound (``tcp://host:port``)."""

    def dial(self, peer: str, endpoint: str) -> None:
        """Open (or open afresh) a link to ``peer`` at ``endpoint``."""

    def hang_up(self, peer: str, farewell: bytes | None = None) -> None:
        """Close our link to ``peer`` and forget its route, after trying (without waiting)
        to send it ``farewell``."""

    async def send(self, peer: str, frame: bytes) -> bool:
        """Hand ``frame`` to the link to ``peer``; False if it could not be (no link, full)."""

    async def recv(self) -> tuple[str, bytes | memoryview]:
        """The next frame and the authenticated key of its sender."""

    def close(self) -> None:
        """Stop at once; frames not yet sent are dropped."""


class _Admission:
    """ZAP's CURVE callback: the authenticated key, refused when ``admit`` says so."""

    def __init__(self, admit: Callable[[str], bool]) -> None:
        self.admit = admit

    def callback(self, domain: str, key: bytes) -> bool:
        return self.admit(z85.decode(key).hex())


class _Authenticator(AsyncioAuthenticator):
    def curve_user_id(self, client_public_key: bytes) -> str:
        """The frames' ``User-Id``: the client's key in hex (the node id), not z85."""
        return client_public_key.hex()


class ZmqTransport:
    """The ZeroMQ CURVE transport; see the module docstring."""

    def __init__(
        self,
        key: NodeKey,
        listen: str,
        admit: Callable[[str], bool] = lambda key: True,
        *,
        hwm: int = HWM,
        send_timeout: float = 1.0,
        heartbeat: float = 5.0,
        handshake_failures: Counter[str] | None = None,
    ) -> None:
        self.key = key
        self.node_id = key.id
        self.listen = listen
        self.admit = admit
        self.hwm = hwm
        self.send_timeout = send_timeout
        self.heartbeat = heartbeat
        self.handshake_failures = Counter() if handshake_failures is None else handshake_failures
        self._context = zmq.asyncio.Context()
        self._auth: _Authenticator | None = None
        self._router: zmq.asyncio.Socket | None = None
        self._dealers: dict[str, zmq.asyncio.Socket] = {}
        # Plain sockets over the same libzmq sockets, to send with (:meth:`send`): by peer,
        # "" for the router; and the asyncio ones to look for input after sends.
        self._plain: dict[str, zmq.Socket] = {}
        self._sent_on: set[zmq.asyncio.Socket] = set()
        self._readers: dict[str, asyncio.Task[None]] = {}
        self._routes: OrderedDict[str, bytes] = OrderedDict()
        self._inbox: asyncio.Queue[tuple[str, bytes | memoryview]] = asyncio.Queue(INBOX)

    def _socket(self, kind: int) -> zmq.asyncio.Socket:
        sock = self._context.socket(kind)
        sock.linger = 0
        sock.sndhwm = self.hwm
        sock.rcvhwm = self.hwm
        sock.maxmsgsize = MAX_FRAME + 4096
        sock.heartbeat_ivl = int(self.heartbeat * 1000)
        sock.heartbeat_timeout = int(self.heartbeat * 3000)
        sock.curve_secretkey = self.key.secret
        sock.curve_publickey = self.key.public
        return sock

    async def start(self) -> str:
        auth = _Authenticator(self._context)
        auth.start()
        auth.configure_curve_callback(ZAP_DOMAIN, _Admission(self.admit))
        self._auth = auth
        router = self._socket(zmq.ROUTER)
        router.curve_server = True
        router.zap_domain = ZAP_DOMAIN.encode()
        router.router_mandatory = 1
        monitor = router.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
            | zmq.EVENT_HANDSHAKE_FAILED_AUTH)
        router.bind(self.listen)
        self._router = router
        self._plain[""] = zmq.Socket.shadow(router)
        loop = asyncio.get_running_loop()
        self._readers[""] = loop.create_task(self._read_router(router), name="network-router")
        self._readers["monitor"] = loop.create_task(self._watch(monitor), name="network-mon")
        return router.last_endpoint.decode()

    def dial(self, peer: str, endpoint: str) -> None:
        self.hang_up(peer)
        dealer = self._socket(zmq.DEALER)
        dealer.curve_serverkey = key_to_z85(peer)
        dealer.immediate = 1
        dealer.reconnect_ivl = 100
        dealer.reconnect_ivl_max = 5000
        dealer.connect(endpoint)
        self._dealers[peer] = dealer
        self._plain[peer] = zmq.Socket.shadow(dealer)
        self._readers[peer] = asyncio.get_running_loop().create_task(
            self._read_dealer(peer, dealer), name=f"network-dealer-{peer[:8]}")

    def hang_up(self, peer: str, farewell: bytes | None = None) -> None:
        route = self._routes.pop(peer, None)
        reader = self._readers.pop(peer, None)
        if reader is not None:
            reader.cancel()
        dealer = self._dealers.pop(peer, None)
        self._plain.pop(peer, None)
        self._sent_on.discard(dealer)
        with contextlib.suppress(zmq.ZMQError):  # a farewell that does not fit is not sent
            if farewell is not None and dealer is not None:
                dealer.send(farewell, zmq.NOBLOCK)
            elif farewell is not None and route is not None and self._router is not None:
                self._router.send_multipart([route, farewell], zmq.NOBLOCK)
        if dealer is not None:
            dealer.close(linger=FAREWELL_LINGER_MS if farewell is not None else 0)

    async def send(self, peer: str, frame: bytes) -> bool:
        """Sends go through plain sockets: one libzmq call, which releases the GIL, where the
        asyncio wrapper makes three and schedules a callback; each release costs the event loop
        a wait for the GIL while worker threads run (up to ``sys.getswitchinterval()``). What
        the wrapper checks after a send (input the send's processing may have taken the fd's
        edge from) is then done once per loop turn for every socket sent on."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.send_timeout
        pause = 0.001
        copy = len(frame) < _COPY_BELOW
        while True:
            dealer = self._dealers.get(peer)
            try:
                if dealer is not None:
                    self._plain[peer].send(frame, zmq.NOBLOCK, copy=copy)
                    self._sent(dealer)
                    return True
                route = self._routes.get(peer)
                if route is None or self._router is None:
                    return False
                self._plain[""].send_multipart([route, frame], zmq.NOBLOCK, copy=copy)
                self._sent(self._router)
                return True
            except zmq.Again:
                pass                            # the link's queue is full, or not up yet
            except zmq.ZMQError as exc:
                if exc.errno == errno.EHOSTUNREACH:  # the inbound peer has gone
                    self._routes.pop(peer, None)
                    return False
                if exc.errno != zmq.ENOTSOCK:        # hung up meanwhile: no link now
                    raise
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)

    def _sent(self, sock: zmq.asyncio.Socket) -> None:
        if not self._sent_on:
            asyncio.get_running_loop().call_soon(self._look_for_input)
        self._sent_on.add(sock)

    def _look_for_input(self) -> None:
        """Have each socket sent on since the last turn check for input (the asyncio
        wrapper's ``get(EVENTS)`` wakes its pending receive if a message waits)."""
        for sock in self._sent_on:
            if not sock.closed:
                sock.get(zmq.EVENTS)
        self._sent_on.clear()

    async def recv(self) -> tuple[str, bytes | memoryview]:
        return await self._inbox.get()

    def close(self) -> None:
        for peer in list(self._dealers):
            self.hang_up(peer)
        for task in self._readers.values():
            task.cancel()
        self._readers.clear()
        self._plain.clear()
        self._sent_on.clear()
        if self._router is not None:
            self._router.close(linger=0)
            self._router = None
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        self._context.destroy(linger=0)

    # -- readers ----------------------------------------------------------------------
    @staticmethod
    def _payload(frames: list[zmq.Frame], expected: int) -> bytes | memoryview:
        """The data frame; an empty frame (which no message decodes from) for a multipart
        message of the wrong shape, so that the sender is charged for it."""
        if len(frames) != expected:
            return b""
        data = frames[-1]
        return data.bytes if len(data) < _COPY_BELOW else data.buffer

    async def _read_router(self, router: zmq.asyncio.Socket) -> None:
        routes = self._routes
        while True:
            frames = await router.recv_multipart(copy=False)
            peer = frames[-1].get("User-Id")
            routes[peer] = frames[0].bytes
            routes.move_to_end(peer)
            if len(routes) > MAX_ROUTES:
                routes.popitem(last=False)
            await self._inbox.put((peer, self._payload(frames, 2)))

    async def _read_dealer(self, peer: str, dealer: zmq.asyncio.Socket) -> None:
        while True:
            frames = await dealer.recv_multipart(copy=False)
            await self._inbox.put((peer, self._payload(frames, 1)))

    async def _watch(self, monitor: zmq.asyncio.Socket) -> None:
        with contextlib.closing(monitor):
            while True:
                event = parse_monitor_message(await monitor.recv_multipart())
                reason = _HANDSHAKE_EVENTS.get(event["event"])
                if reason is not None:
                    self.handshake_failures[reason] += 1
                    log.info("network: a handshake failed (%s) from %s", reason,
                             event["endpoint"].decode(errors="replace"))
