"""One node's live numbers, shared between the services that count them and those that read them."""

from __future__ import annotations

from typing import Any


class NodeStats(dict[str, Any]):
    """Counters by the service that owns them: ``chain`` and ``auxpow`` (the chain actor),
    ``rpc`` (the RPC actor), ``engine`` (an external engine's breaker), ``pool`` (sampled by
    the metrics actor).

    Shared on purpose, and kept by the node rather than an actor so that a restart keeps
    them: each entry has one writer, and others read it — ``/health`` and the collectors read
    them all, the engine reads the chain's finality (what it tells geth is finalized).
    """
