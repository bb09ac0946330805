"""Real clients: web3.py's HTTPProvider (sync, requests-based) and AsyncWeb3 with its
WebSocketProvider, against the server on its own uvloop thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
import uvloop
from web3 import AsyncWeb3, Web3
from web3.exceptions import Web3RPCError
from web3.providers import HTTPProvider, WebSocketProvider

from alys_fast.rpc import RpcServer
from tests.rpc.helpers import CHAIN_ID, Chain, methods


@pytest.fixture
def node() -> Iterator[tuple[RpcServer, asyncio.AbstractEventLoop]]:
    """The server runs on its own uvloop in a thread, as it will inside the node."""
    loop = uvloop.new_event_loop()
    server = RpcServer(methods(Chain()), port=0)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(5)
    try:
        yield server, loop
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(grace=1.0), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_web3_http_provider(node):
    server, _ = node
    w3 = Web3(HTTPProvider(server.url, request_kwargs={"timeout": 5}))
    assert w3.is_connected()
    assert w3.eth.chain_id == CHAIN_ID
    assert w3.eth.block_number == 7
    with w3.batch_requests() as batch:
        batch.add(w3.eth.get_block_number())
        batch.add(w3.eth.get_block_number())
        assert batch.execute() == [7, 7]
    with pytest.raises(Web3RPCError, match="does not exist"):
        w3.eth.get_balance("0x" + "11" * 20)


def test_web3_websocket_subscription(node):
    server, loop = node

    def publish_soon() -> None:
        loop.call_later(0.05, server.publish, "newHeads", {"number": "0x8"})

    async def main() -> None:
        async with AsyncWeb3(WebSocketProvider(server.ws_url)) as w3:
            assert await w3.eth.chain_id == CHAIN_ID
            sid = await w3.eth.subscribe("newHeads")
            loop.call_soon_threadsafe(publish_soon)
            async with asyncio.timeout(5):
                async for message in w3.socket.process_subscriptions():
                    assert message["subscription"] == sid
                    assert message["result"]["number"] == 8
                    break
            assert await w3.eth.unsubscribe(sid) is True

    asyncio.run(main())
