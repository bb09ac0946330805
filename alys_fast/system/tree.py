"""The supervision tree of the node, declared once, as a table.

``AlysSystem`` (ONE_FOR_ALL) supervises one supervisor per subsystem; each row below names a
child actor, its restart policy and the class that implements it. A row whose class is still
``None`` is an actor a later issue builds: it is shown by ``alys-fast system tree`` but not
started, so nothing runs that does not exist yet.

Supervisors start in the order listed and stop in reverse: storage first (every other actor
reads its state from it on start), then the chain's actors (engine before pool before chain),
then the network's (a node with peers only), then the RPC that serves them. The RPC has its
own supervisor, beside the seed's four, so a crash elsewhere never takes the client-facing
port down with it; its two signature-recovery actors run in child processes
(``process=True``), taking that CPU off the node's event loop. The node gives each built row
its constructor arguments (:func:`build_spec`); a row it gives none is not run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib import import_module

from alys_fast.actors import (
    ChildSpec,
    CircuitBreaker,
    ExponentialBackoff,
    Immediate,
    Never,
    Strategy,
    SupervisorSpec,
)
from alys_fast.actors.policies import Policy

ROOT = "alys"
ROOT_STRATEGY = Strategy.ONE_FOR_ALL

SUPERVISORS: dict[str, Strategy] = {
    "storage": Strategy.ONE_FOR_ONE,
    "chain": Strategy.ONE_FOR_ONE,
    "network": Strategy.REST_FOR_ONE,
    "bridge": Strategy.ONE_FOR_ONE,
    "rpc": Strategy.ONE_FOR_ONE,
}


@dataclass(frozen=True, slots=True)
class Row:
    supervisor: str
    name: str
    policy: Policy
    actor: str | None      # "module:Class", or None until the issue that builds it lands
    built_by: str
    process: bool = False  # run in a child process (then its arguments must be msgpack-able)


# supervisor  child         restart policy          actor class    built by
TREE: tuple[Row, ...] = (
    Row("storage", "storage", Immediate(), "alys_fast.storage.actor:StorageActor", "issue 5"),
    Row("storage", "metrics", Never(), "alys_fast.node.metrics:MetricsActor", "issue 5"),
    Row("chain", "engine", CircuitBreaker(), "alys_fast.engine.actor:EngineActor", "issue 5"),
    Row("chain", "txpool", Immediate(), "alys_fast.chain.pool_actor:TxPoolActor", "issue 5"),
    Row("chain", "chain", ExponentialBackoff(), "alys_fast.chain.actor:ChainActor", "issue 5"),
    Row("chain", "auxpow", Immediate(), "alys_fast.merged_mining.service:AuxPowActor",
        "issue 13"),
    Row("network", "network", CircuitBreaker(), "alys_fast.network.service:NetworkActor",
        "issue 12"),
    Row("network", "sync", ExponentialBackoff(), "alys_fast.sync.service:SyncActor", "issue 12"),
    Row("network", "gossip", ExponentialBackoff(), "alys_fast.gossip.service:GossipActor",
        "issue 12"),
    Row("network", "stream", Immediate(), None, "roadmap 5 (governance stream)"),
    Row("bridge", "bridge", CircuitBreaker(), None, "roadmap 4 (peg)"),
    Row("bridge", "federation", ExponentialBackoff(), None, "roadmap 4 (peg)"),
    Row("rpc", "recovery-0", Immediate(), "alys_fast.validation.actor:RecoveryActor", "issue 5",
        process=True),
    Row("rpc", "recovery-1", Immediate(), "alys_fast.validation.actor:RecoveryActor", "issue 5",
        process=True),
    Row("rpc", "rpc", ExponentialBackoff(), "alys_fast.rpc.actor:RpcActor", "issue 5"),
)


def _load(target: str) -> type:
    module, _, name = target.partition(":")
    return getattr(import_module(module), name)


def _child(row: Row, args: tuple) -> ChildSpec:
    assert row.actor is not None
    return ChildSpec(row.name, _load(row.actor), args=args, policy=row.policy,
                     process=row.process)


def build_spec(
    args: Mapping[str, tuple], extra: tuple[SupervisorSpec | ChildSpec, ...] = ()
) -> SupervisorSpec:
    """The root spec with every built actor of :data:`TREE` that ``args`` gives constructor
    arguments (by row name: the node builds each service's settings), plus ``extra``
    children. With no arguments only the supervisors are built: the bare tree the supervision
    demo runs its own workers in."""
    supervisors = []
    for sup, strategy in SUPERVISORS.items():
        children = tuple(
            _child(row, args[row.name])
            for row in TREE
            if row.supervisor == sup and row.actor is not None and row.name in args
        )
        supervisors.append(SupervisorSpec(sup, strategy, children))
    return SupervisorSpec(ROOT, ROOT_STRATEGY, (*supervisors, *extra))


def policy_name(policy: Policy) -> str:
    return type(policy).__name__


def render_table() -> str:
    """The declared tree as text: supervisors with their strategy, children with policy."""
    lines = [f"{ROOT} ({ROOT_STRATEGY.name})"]
    sups = list(SUPERVISORS.items())
    for i, (sup, strategy) in enumerate(sups):
        last_sup = i == len(sups) - 1
        lines.append(f"{'└──' if last_sup else '├──'} {sup} ({strategy.name})")
        rows = [row for row in TREE if row.supervisor == sup]
        for j, row in enumerate(rows):
            stem = "    " if last_sup else "│   "
            branch = "└──" if j == len(rows) - 1 else "├──"
            status = row.actor if row.actor else f"not built yet: {row.built_by}"
            lines.append(
                f"{stem}{branch} {row.name:<11} {policy_name(row.policy):<19} {status}"
            )
    return "\n".join(lines)


def render_health(node: dict, prefix: str = "") -> list[str]:
    """A live health tree (from ``ActorSystem.health()``) as indented text lines."""
    if node["kind"] == "supervisor":
        head = f"{node['name']} ({node['strategy']}) {node['state']}"
    else:
        head = (
            f"{node['name']} {node['state']} restarts={node['restarts']} "
            f"mailbox={node['mailbox']} handled={node['handled']}"
            + (" STUCK" if node["stuck"] else "")
        )
    lines = [prefix + head]
    for child in node.get("children", ()):
        lines.extend(render_health(child, prefix + "  "))
    return lines
