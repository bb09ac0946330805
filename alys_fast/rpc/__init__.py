"""JSON-RPC 2.0 over HTTP and WebSocket, independent of the chain: the chain's RPC actor
hands :class:`RpcServer` a method table and calls :meth:`RpcServer.publish` for subscriptions."""

from alys_fast.rpc.dispatch import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    SERVER_ERROR,
    Dispatcher,
    InvalidParams,
    Methods,
    RpcError,
    ServerError,
)
from alys_fast.rpc.server import SUBSCRIPTION_KINDS, Limits, RpcServer

__all__ = [
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "PARSE_ERROR",
    "SERVER_ERROR",
    "SUBSCRIPTION_KINDS",
    "Dispatcher",
    "InvalidParams",
    "Limits",
    "Methods",
    "RpcError",
    "RpcServer",
    "ServerError",
]
