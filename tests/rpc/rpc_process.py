"""An :class:`RpcServer` in a process of its own, so a test can measure the server's memory:
``python -m tests.rpc.rpc_process '{"idle_timeout": 1}'`` (Limits fields as JSON) prints
``port N`` and serves until its stdin closes."""

from __future__ import annotations

import asyncio
import sys

import msgspec
import uvloop

from alys_fast.rpc import Limits, RpcServer


async def main(limits: Limits) -> None:
    server = await RpcServer({"eth_chainId": lambda: "0x1"}, port=0, limits=limits).start()
    print(f"port {server.port}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await server.stop(grace=1.0)


if __name__ == "__main__":
    uvloop.run(main(Limits(**msgspec.json.decode(sys.argv[1]))))
