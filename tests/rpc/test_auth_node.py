"""Access on a real node: a node that is not a dev chain serves the public namespaces to anyone
and the operator's methods and geth's tracers only with credentials; a dev chain stays open.

Every call goes over the node's port: HTTP with an ``Authorization`` header, a WebSocket whose
upgrade carried one, and HTTPS/WSS with the test certificate in ``tests/rpc/data``."""

from __future__ import annotations

import hashlib
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import msgspec
import pytest
import websockets.exceptions
import websockets.sync.client

from alys_fast.chain.mining import DevMining
from alys_fast.chain.spec import DEV_AUTHORITY_PUBKEY, DEV_CHAIN_ID
from alys_fast.config.node import tls_context
from alys_fast.rpc.auth import UNAUTHORIZED, ApiKey, AuditLog, Authenticator, AuthError
from alys_fast.rpc.dispatch import METHOD_NOT_FOUND
from tests.node.harness import ThreadNode, rpc, running_node

DATA = Path(__file__).parent / "data"
SECRET = bytes(range(32))
OPS_KEY = "afk_" + "44" * 32
AUTHORITY = DEV_AUTHORITY_PUBKEY  # admin_nodeInfo names the authority by its BLS public key
PUBLIC_MODULES = {name: "1.0" for name in ("eth", "net", "rpc", "txpool", "web3")}


def rpc_error(url: str, method: str, *params: Any) -> tuple[int, str]:
    with pytest.raises(RuntimeError) as caught:
        rpc(url, method, *params)
    error = caught.value.args[0]
    return error["code"], error["message"]


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadNode]:
    """A node as ``alys-fast run`` makes one: an access policy with a JWT and an API key."""
    data_dir = tmp_path_factory.mktemp("guarded")
    access = Authenticator(
        api_keys=[ApiKey("ops", hashlib.sha256(OPS_KEY.encode()).hexdigest(), ("admin",))],
        jwt_secret=SECRET, audit=AuditLog(data_dir / "audit.log"))
    with running_node(data_dir, slot_ms=1000, archive=True, rpc_access=access) as node:
        yield node


def dispatch(node: ThreadNode, authorization: bytes | None, method: str, *params: Any) -> Any:
    """One call over HTTP with the given ``Authorization`` header: its result or error object;
    a 401 raises AuthError with the answer's message and the header asking for a bearer."""
    body = msgspec.json.encode({"jsonrpc": "2.0", "id": 1, "method": method,
                                "params": list(params)})
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization.decode()
    request = urllib.request.Request(node.url, body, headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = msgspec.json.decode(response.read())
    except urllib.error.HTTPError as refused:
        assert refused.code == 401 and refused.headers["WWW-Authenticate"] == "Bearer"
        error = msgspec.json.decode(refused.read())["error"]
        assert error["code"] == UNAUTHORIZED
        raise AuthError(error["message"]) from None
    return answer.get("result", answer.get("error"))


def test_public_namespaces_are_served_to_anyone(guarded: ThreadNode) -> None:
    assert rpc(guarded.url, "eth_chainId") == hex(DEV_CHAIN_ID)
    assert rpc(guarded.url, "net_version") == str(DEV_CHAIN_ID)
    assert rpc(guarded.url, "txpool_status") == {"pending": "0x0", "queued": "0x0"}
    assert rpc(guarded.url, "rpc_modules") == PUBLIC_MODULES


def test_operator_methods_and_tracers_need_credentials(guarded: ThreadNode) -> None:
    for method, params in (("admin_nodeInfo", ()), ("admin_datadir", ()),
                           ("debug_traceBlockByNumber", ("0x0",))):
        namespace = method.partition("_")[0]
        assert rpc_error(guarded.url, method, *params) == (
            UNAUTHORIZED, f"unauthorized: {method} needs credentials with the {namespace} "
                          f"namespace")


def test_a_dev_chains_methods_are_not_served(guarded: ThreadNode) -> None:
    for method in ("evm_mine", "anvil_setBalance", "eth_sendTransaction", "personal_sign"):
        code, message = rpc_error(guarded.url, method)
        assert code in (METHOD_NOT_FOUND, UNAUTHORIZED) and method in message
    assert rpc_error(guarded.url, "evm_mine") == (
        METHOD_NOT_FOUND, "the method evm_mine does not exist/is not available")


def test_an_api_key_opens_its_namespaces_only(guarded: ThreadNode) -> None:
    ops = f"Bearer {OPS_KEY}".encode()
    info = dispatch(guarded, ops, "admin_nodeInfo")
    assert info["chainId"] == hex(DEV_CHAIN_ID) and info["authority"] == AUTHORITY
    assert info["dataDir"] == str(guarded.ctx.data_dir.resolve())
    assert dispatch(guarded, ops, "admin_datadir") == info["dataDir"]
    assert dispatch(guarded, ops, "debug_traceBlockByNumber", "0x0") == {
        "code": UNAUTHORIZED,
        "message": "forbidden: the API key ops does not grant the debug namespace, which "
                   "debug_traceBlockByNumber needs"}


def test_a_jwt_opens_the_tracers(guarded: ThreadNode) -> None:
    deadline = time.monotonic() + 30
    while rpc(guarded.url, "eth_blockNumber") == "0x0":  # block 1: the first traceable one
        assert time.monotonic() < deadline, "the node made no block"
        time.sleep(0.1)
    bearer = f"Bearer {jwt.encode({'iat': int(time.time())}, SECRET, algorithm='HS256')}"
    assert dispatch(guarded, bearer.encode(), "debug_traceBlockByNumber", "0x1") == []
    assert dispatch(guarded, bearer.encode(), "admin_nodeInfo")["authority"] == AUTHORITY


def test_the_audit_log_saw_it_all(guarded: ThreadNode) -> None:
    """A call with a key and a refused key reach the file (closed here, so written out)."""
    access = guarded.ctx.rpc_access
    assert access is not None and access.audit is not None
    dispatch(guarded, f"Bearer {OPS_KEY}".encode(), "admin_datadir")
    with pytest.raises(AuthError, match="unknown API key"):
        dispatch(guarded, b"Bearer afk_nope", "admin_datadir")
    access.audit.close()
    lines = [msgspec.json.decode(line) for line in access.audit.path.read_text().splitlines()]
    assert {"who": "ops", "ip": "127.0.0.1", "method": "admin_datadir", "outcome": "ok"} in [
        {k: v for k, v in line.items() if k != "time"} for line in lines]
    assert any(line["who"] == "unknown" and line["reason"] == "unknown API key"
               for line in lines)
    assert OPS_KEY not in access.audit.path.read_text()


def test_a_node_without_a_policy_of_its_own_serves_only_the_public_namespaces(
        tmp_path: Path) -> None:
    with running_node(tmp_path, slot_ms=1000) as node:
        assert rpc(node.url, "rpc_modules") == PUBLIC_MODULES
        assert rpc_error(node.url, "admin_nodeInfo") == (
            METHOD_NOT_FOUND, "the method admin_nodeInfo does not exist/is not available")
        assert rpc_error(node.url, "debug_traceBlockByNumber", "0x0")[0] == METHOD_NOT_FOUND


def test_a_dev_chain_is_open(tmp_path: Path) -> None:
    with running_node(tmp_path, slot_ms=1000, dev_mining=DevMining()) as node:
        modules = rpc(node.url, "rpc_modules")
        assert {"admin", "anvil", "debug", "eth", "evm", "hardhat", "personal"} <= set(modules)
        info = rpc(node.url, "admin_nodeInfo")
        assert info["authority"] == AUTHORITY and info["chainId"] == hex(DEV_CHAIN_ID)
        assert info["rpc"] == {"http": node.url, "ws": node.ws_url}
        assert info["head"]["number"] == rpc(node.url, "eth_blockNumber")
        assert rpc(node.url, "admin_datadir") == str(tmp_path.resolve())
        assert rpc_error(node.url, "debug_traceBlockByNumber", "0x0")[1] != \
            "the method debug_traceBlockByNumber does not exist/is not available"


def test_bad_credentials_get_401_on_http_and_at_the_websocket_upgrade(
        guarded: ThreadNode) -> None:
    stale = jwt.encode({"iat": int(time.time()) - 3600}, SECRET, algorithm="HS256")
    for header in (b"Bearer afk_nope", f"Bearer {stale}".encode(), b"Basic abc"):
        with pytest.raises(AuthError):
            dispatch(guarded, header, "eth_chainId")
    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        websockets.sync.client.connect(guarded.ws_url, open_timeout=10,
                                       additional_headers={"Authorization": "Bearer afk_nope"})
    assert refused.value.response.status_code == 401


def test_a_websocket_keeps_the_grant_of_its_upgrade(guarded: ThreadNode) -> None:
    call = {"jsonrpc": "2.0", "id": 1, "method": "admin_datadir", "params": []}
    with websockets.sync.client.connect(
            guarded.ws_url, open_timeout=10,
            additional_headers={"Authorization": f"Bearer {OPS_KEY}"}) as ws:
        for _ in range(2):
            ws.send(msgspec.json.encode(call).decode())
            assert msgspec.json.decode(ws.recv(timeout=10))["result"] == str(
                guarded.ctx.data_dir.resolve())
    with websockets.sync.client.connect(guarded.ws_url, open_timeout=10) as ws:
        ws.send(msgspec.json.encode(call).decode())
        assert msgspec.json.decode(ws.recv(timeout=10))["error"]["code"] == UNAUTHORIZED


def test_tls_serves_https_and_wss(tmp_path: Path) -> None:
    context = tls_context(DATA / "tls-test.crt", DATA / "tls-test.key")
    client = ssl.create_default_context(cafile=DATA / "tls-test.crt")
    with running_node(tmp_path, slot_ms=1000, rpc_tls=context) as node:
        assert node.url.startswith("https://") and node.ws_url.startswith("wss://")
        body = msgspec.json.encode({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"})
        request = urllib.request.Request(node.url, body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10, context=client) as response:
            assert msgspec.json.decode(response.read())["result"] == hex(DEV_CHAIN_ID)
        with websockets.sync.client.connect(node.ws_url, ssl=client, open_timeout=10) as ws:
            ws.send('{"jsonrpc":"2.0","id":2,"method":"net_version"}')
            assert msgspec.json.decode(ws.recv(timeout=10))["result"] == str(DEV_CHAIN_ID)
        # plain HTTP is not spoken on a TLS port: the handshake fails, the client is cut off
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            urllib.request.urlopen(node.url.replace("https", "http"), body, timeout=10)
