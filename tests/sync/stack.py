"""A node's storage, engine, network and sync actors and its two signature-recovery processes,
without the rest of the node (no chain actor, pool or RPC), for the sync tests and
``benches/bench_sync.py``.

The chain side is :class:`WorkflowChain`, the narrowest honest :class:`ChainLink`: the real
:class:`BlockImportWorkflow` over the real storage and engine actors, as the chain actor runs it
for its own blocks (what the chain actor's import message will do in the node; it leaves out the
AuxPoW finality rules, which the chain actor owns). Source chains are built straight into a data
dir with :func:`build_chain`: blocks signed by the dev authority, one slot apart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from alys_fast.actors import (
    ActorRef,
    ActorSystem,
    ChildSpec,
    Directory,
    Strategy,
    SupervisorSpec,
)
from alys_fast.actors.worker import Worker
from alys_fast.chain.genesis import genesis_alloc, genesis_header, store_genesis
from alys_fast.chain.spec import DEV_AUTHORITY_KEY, ChainSpec
from alys_fast.chain.workflows import BlockImportWorkflow, build_block, import_segment
from alys_fast.engine import BlockEnv, BlockExecution, RevmEngine
from alys_fast.engine.actor import EngineActor, EngineClient, EngineSettings
from alys_fast.metrics.stats import NodeStats
from alys_fast.network.peers import PeerLimits
from alys_fast.network.service import NetworkActor, NetworkClient, NetworkSettings, NetworkSetup
from alys_fast.network.transport import NodeKey, Transport
from alys_fast.network.wire import Status
from alys_fast.paths import RECOVERY
from alys_fast.storage import BlockRecord
from alys_fast.storage.actor import StorageActor, StorageSettings, StoreClient, open_store
from alys_fast.sync.core import Failure
from alys_fast.sync.service import (
    ImportReport,
    StoreBlocks,
    SyncActor,
    SyncClient,
    SyncSettings,
    SyncSetup,
)
from alys_fast.validation import Block, Header, Transaction
from alys_fast.validation.actor import RecoveryActor, RecoveryClient

AUTHORITY = bytes.fromhex(DEV_AUTHORITY_KEY[2:])
#: Quick to notice a dead peer and to dial again, so tests finish soon.
FAST_PEERS = PeerLimits(ping_interval=0.2, dead_after=2.0, backoff_first=0.05, backoff_cap=0.4)


class WorkflowChain:
    """:class:`~alys_fast.sync.service.ChainLink` over the import workflow and the node's
    storage and engine actors; ``transitions`` records every ``set_syncing``."""

    def __init__(self, spec: ChainSpec, directory: Directory) -> None:
        self.spec = spec
        self.store = StoreClient(directory)
        self.engine = EngineClient(directory)
        self.worker = Worker("sync-import")
        self.recovery = RecoveryClient(directory, spec.chain_id)
        self.header: Header | None = None
        self.transitions: list[bool] = []
        self.on_head: Callable[[Header], None] | None = None

    async def head(self) -> tuple[int, bytes]:
        if self.header is None:
            self.header = await self.store.head_header()
        return self.header.number, self.header.hash

    def set_syncing(self, syncing: bool) -> None:
        self.transitions.append(syncing)

    async def import_blocks(self, blocks: Sequence[bytes]) -> ImportReport:
        await self.head()
        assert self.header is not None
        report = await import_segment(blocks, self.header, self._workflow, self._recover)
        self.header = report.head
        if report.imported and self.on_head is not None:
            self.on_head(report.head)
        failure = (None if report.block_at_fault is None
                   else Failure.INVALID if report.block_at_fault else Failure.UNAVAILABLE)
        return ImportReport(report.imported, report.head.number, failure, report.reason)

    def _workflow(self, parent: Header) -> BlockImportWorkflow:
        return BlockImportWorkflow(parent, spec=self.spec, engine=self.engine, store=self.store,
                                   offload=self.worker.run)

    async def _recover(self, block: Block) -> dict[bytes, Transaction]:
        txs = await self.recovery.recover(block.transactions)
        return {tx.raw: tx for tx in txs if isinstance(tx, Transaction)}

    def close(self) -> None:
        self.worker.close()


@dataclass
class SyncNode:
    """Storage, engine, network and sync actors of one node (the host both actors take)."""

    storage: StorageSettings
    directory: Directory
    network: NetworkSetup
    sync: SyncSetup
    chain: WorkflowChain
    system: ActorSystem | None = None
    statuses: list[int] = field(default_factory=list)

    @classmethod
    def create(
        cls, data_dir: Path, spec: ChainSpec, *, listen: str, bootnodes: Iterable[str] = (),
        transport: Callable[[NetworkSetup], Transport] | None = None,
        settings: SyncSettings | None = None,
    ) -> SyncNode:
        storage = StorageSettings(data_dir, store_genesis(spec))
        directory = Directory()
        genesis = genesis_header(spec).hash
        status = Status(spec.chain_id, genesis, 0, genesis, 0, "full", "")
        network_settings = NetworkSettings(listen=listen, bootnodes=tuple(bootnodes),
                                           limits=FAST_PEERS, tick=0.05)
        extra = {} if transport is None else {"transport_factory": transport}
        network = NetworkSetup.create(network_settings, NodeKey.generate(), status, **extra)
        chain = WorkflowChain(spec, directory)
        sync = SyncSetup(settings or SyncSettings(), chain, StoreBlocks(StoreClient(directory)))
        return cls(storage, directory, network, sync, chain)

    def ref(self, path: str) -> ActorRef:
        return self.directory.ref(path)

    @property
    def id(self) -> str:
        return self.network.node_id

    @property
    def enode(self) -> str:
        return self.network.enode

    @property
    def client(self) -> SyncClient:
        return SyncClient(self)

    async def start(self) -> SyncNode:
        engine = EngineSettings(self.chain.spec.fork, self.chain.spec.chain_id)
        spec = SupervisorSpec("alys", Strategy.ONE_FOR_ALL, (
            SupervisorSpec("storage", Strategy.ONE_FOR_ONE, (
                ChildSpec("storage", StorageActor, args=(self.storage,)),)),
            SupervisorSpec("chain", Strategy.ONE_FOR_ONE, (
                ChildSpec("engine", EngineActor,
                          args=(engine, self.directory, NodeStats())),)),
            SupervisorSpec("rpc", Strategy.ONE_FOR_ONE, tuple(
                ChildSpec(path.partition("/")[2], RecoveryActor,
                          args=(self.chain.spec.chain_id,), process=True)
                for path in RECOVERY)),
            SupervisorSpec("network", Strategy.REST_FOR_ONE, (
                ChildSpec("network", NetworkActor, args=(self,)),
                ChildSpec("sync", SyncActor, args=(self,)),
            )),
        ))
        self.system = ActorSystem(spec, directory=self.directory)
        await self.system.start()
        # What the chain actor will do on each new head: tell peers (their sync's target).
        network = NetworkClient(self)
        self.chain.on_head = lambda header: network.set_status(self.status_at(header))
        network.set_status(self.status_at(await StoreClient(self.directory).head_header()))
        return self

    def status_at(self, header: Header) -> Status:
        self.statuses.append(header.number)
        status = self.network.status
        return Status(status.chain_id, status.genesis_hash, header.number, header.hash, 0,
                      "full", "")

    async def stop(self) -> None:
        if self.system is not None:
            await self.system.stop()
            self.system = None
        self.chain.close()



class _InlineEngine:
    """The sync engine behind the workflow's async ExecutionClient (to build source chains)."""

    def __init__(self, engine: RevmEngine) -> None:
        self.engine = engine

    async def execute_block(self, parent_state_root: bytes, env: BlockEnv,
                            txs: Sequence[Transaction], *, skip_invalid: bool = False,
                            header: Header | None = None) -> BlockExecution:
        return self.engine.execute_block(parent_state_root, env, txs, skip_invalid=skip_invalid)

    async def commit(self, execution: BlockExecution, block_hash: bytes) -> None:
        self.engine.commit(execution)


def build_chain(data_dir: Path, spec: ChainSpec,
                blocks: Iterable[Sequence[Transaction]]) -> Header:
    """Write a chain into ``data_dir`` as a node's store holds it: one block per item of
    ``blocks`` (its transactions, all of which must apply), each in the slot after its parent's,
    signed by the dev authority. Returns the head."""

    async def build() -> Header:
        store = open_store(StorageSettings(data_dir, store_genesis(spec)))
        engine = _InlineEngine(RevmEngine.from_alloc(genesis_alloc(spec), fork=spec.fork,
                                                     chain_id=spec.chain_id))
        head = genesis_header(spec)
        slot = head.timestamp * 1000 // spec.slot_ms + 1
        try:
            for txs in blocks:
                block, execution = await build_block(spec, head, txs, engine, slot, AUTHORITY)
                assert len(execution.transactions) == len(txs), "every transaction applies"
                header = block.header
                store.write_block(
                    BlockRecord(header.number, block.hash, header.parent_hash, header.encode(),
                                block.transactions, tuple(tx.sender for tx in txs)),
                    execution.receipts, execution.changes)
                await engine.commit(execution, block.hash)
                head, slot = header, slot + 1
        finally:
            store.close()
        return head

    return asyncio.run(build())
