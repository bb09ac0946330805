"""What one client, and all clients together, may take from the RPC server: the pure
bookkeeping behind :class:`~alys_fast.rpc.server.RpcServer`'s limits, with no sockets in it.

- :class:`ClientTable` keys clients by remote address (an IPv6 client by its /64, the block
  one host is given) and admits each new connection as ``NORMAL``, as a ``PROBE`` (over a
  connection limit, but a reserved slot is free: it may only ask ``/health`` or ``/metrics``)
  or refuses it. It also holds each client's token bucket (requests per second) and its count
  of batches in flight. A client's entry lives while it has connections, and after that only
  until its bucket has refilled (:meth:`ClientTable.prune`), so reconnecting does not reset a
  spent bucket and the table is bounded by the connections.
- :class:`UnsentBudget` keeps the bytes each connection has queued but the peer has not read,
  as last measured, and, when their sum is over the node-wide budget, names the connections to
  drop: the ones holding most first, until the rest fit.
- :class:`Refusals` counts refusals per reason for ``/metrics``.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from enum import Enum

__all__ = [
    "Admission",
    "ClientTable",
    "Limits",
    "Refusals",
    "UnsentBudget",
    "client_key",
]

# Reasons a request or connection is refused or dropped, as /metrics labels them.
TOO_MANY_CONNECTIONS = "connections"  # the server's max_connections
IP_CONNECTIONS = "ip_connections"
IP_RATE = "ip_rate"
IP_BATCHES = "ip_batches"
SLOW_CONSUMER = "slow_consumer"  # one connection's unsent bytes over its budget
UNSENT_BUDGET = "unsent_budget"  # dropped to bring the node's unsent bytes under its budget
REASONS = (TOO_MANY_CONNECTIONS, IP_CONNECTIONS, IP_RATE, IP_BATCHES, SLOW_CONSUMER,
           UNSENT_BUDGET)


def client_key(host: str) -> tuple[str, bool]:
    """The client an address belongs to (an IPv6 address's /64) and whether it is loopback."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:  # not an IP (a Unix socket): one client
        return host, False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        else:
            return str(ipaddress.ip_network(f"{ip}/64", strict=False)), ip.is_loopback
    return str(ip), ip.is_loopback


@dataclass(frozen=True, slots=True)
class Limits:
    """What one client, and all together, can make the server hold or wait for; each is
    described in :mod:`alys_fast.rpc.server`'s docstring."""

    max_body: int = 5 * 1024 * 1024
    max_batch: int = 1000
    max_header: int = 16 * 1024
    idle_timeout: float = 60.0
    max_connections: int = 1024
    max_ws_buffer: int = 16 * 1024 * 1024
    max_subscriptions: int = 128
    linger: float = 1.0
    unsent_budget: int = 256 * 1024 * 1024
    ip_connections: int = 64
    ip_rate: float = 2000.0
    ip_burst: float = 4000.0
    ip_batches: int = 16
    rate_limit_loopback: bool = False
    reserved_connections: int = 32
    probe_timeout: float = 2.0


class Admission(Enum):
    NORMAL = "normal"
    PROBE = "probe"  # over a connection limit: /health and /metrics only
    REFUSED = "refused"


class _Client:
    __slots__ = ("batches", "connections", "exempt", "probes", "stamp", "tokens")

    def __init__(self, burst: float, now: float, exempt: bool) -> None:
        self.connections = 0
        self.probes = 0
        self.batches = 0
        self.tokens = burst
        self.stamp = now
        self.exempt = exempt


class ClientTable:
    """Connections, request rate and batches in flight per client; see the module docstring."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.connections = 0
        self.probes = 0
        self._clients: dict[str, _Client] = {}

    def __len__(self) -> int:
        return len(self._clients)

    def connect(self, key: str, loopback: bool, now: float) -> tuple[Admission, str]:
        """Admit a new connection of ``key``: its kind, and the reason when over a limit."""
        client = self._clients.get(key)
        if client is None:
            exempt = loopback and not self.limits.rate_limit_loopback
            client = self._clients[key] = _Client(self.limits.ip_burst, now, exempt)
        limits = self.limits
        if (client.connections < limits.ip_connections
                and self.connections < limits.max_connections):
            client.connections += 1
            self.connections += 1
            return Admission.NORMAL, ""
        reason = (IP_CONNECTIONS if client.connections >= limits.ip_connections
                  else TOO_MANY_CONNECTIONS)
        # A client may hold at most a quarter of the reserve, so one cannot take it all.
        reserved = limits.reserved_connections
        if self.probes < reserved and client.probes < max(1, reserved // 4):
            client.probes += 1
            self.probes += 1
            return Admission.PROBE, reason
        return Admission.REFUSED, reason

    def disconnect(self, key: str, admission: Admission) -> None:
        client = self._clients[key]
        if admission is Admission.NORMAL:
            client.connections -= 1
            self.connections -= 1
        elif admission is Admission.PROBE:
            client.probes -= 1
            self.probes -= 1

    def take(self, key: str, now: float) -> bool:
        """One request of ``key``: False when its bucket is empty (refuse it)."""
        client = self._clients[key]
        if client.exempt:
            return True
        tokens = min(self.limits.ip_burst,
                     client.tokens + (now - client.stamp) * self.limits.ip_rate)
        client.stamp = now
        if tokens < 1.0:
            client.tokens = tokens
            return False
        client.tokens = tokens - 1.0
        return True

    def begin_batch(self, key: str) -> bool:
        """A batch of ``key`` starts: False when it already has its limit in flight."""
        client = self._clients[key]
        if client.batches >= self.limits.ip_batches:
            return False
        client.batches += 1
        return True

    def end_batch(self, key: str) -> None:
        self._clients[key].batches -= 1

    def prune(self, now: float) -> None:
        """Forget clients without connections whose bucket has refilled by ``now``."""
        rate, burst = self.limits.ip_rate, self.limits.ip_burst
        gone = [key for key, c in self._clients.items()
                if not c.connections and not c.probes
                and (c.exempt or c.tokens + (now - c.stamp) * rate >= burst)]
        for key in gone:
            del self._clients[key]


class UnsentBudget:
    """Unsent bytes per connection as last measured, and their total; see the module docstring.

    Noted sizes can only be too high (a buffer shrinks without being noted as the peer reads),
    so :meth:`shed` measures every connection again before choosing whom to drop.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.total = 0
        self._unsent: dict[Hashable, int] = {}

    def note(self, key: Hashable, unsent: int) -> None:
        self.total += unsent - self._unsent.get(key, 0)
        if unsent:
            self._unsent[key] = unsent
        else:
            self._unsent.pop(key, None)

    def forget(self, key: Hashable) -> int:
        """Stop tracking ``key`` (a closed connection); what it was last noted holding."""
        unsent = self._unsent.pop(key, 0)
        self.total -= unsent
        return unsent

    def over(self) -> bool:
        return self.total > self.limit

    def shed(self, measure: Callable[[Hashable], int]) -> list[Hashable]:
        """Measure every noted connection again; the ones to drop, largest first, so that the
        rest fit the budget (they are forgotten here)."""
        for key in list(self._unsent):
            self.note(key, measure(key))
        victims = []
        for key in sorted(self._unsent, key=self._unsent.__getitem__, reverse=True):
            if self.total <= self.limit:
                break
            victims.append(key)
            self.forget(key)
        return victims


class Refusals:
    """Refusals and drops per reason (the labels of ``alys_rpc_refused_total``)."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def add(self, reason: str, n: int = 1) -> None:
        self.counts[reason] += n

    def items(self) -> Iterable[tuple[str, int]]:
        return ((reason, self.counts[reason]) for reason in REASONS)
