"""A peer's candidate is checked once: the fork choice verified its approvals, so the
candidate's validation does not verify them again, and once certified it is imported without
its stateless checks running a second time (``BlockImportWorkflow.receive``'s ``checked``)."""

from __future__ import annotations

from pathlib import Path

import msgspec

from alys_fast.consensus import AggregateApproval
from alys_fast.validation import Block, header_approvals
from tests.chain.test_workflows import (
    FEDERATION,
    HAPPY,
    OUTSIDER,
    S,
    _federation_chain,
    _transfers,
    run,
)


def test_a_certified_candidate_is_not_checked_twice(tmp_path: Path) -> None:
    chain = _federation_chain(tmp_path / "db")
    try:
        _transfers(chain, 2)
        block, _ = chain.build_with_execution(slot=4, key=FEDERATION[1])
        # as a peer's candidate: validated and executed, approvals left to the fork choice
        forged = AggregateApproval().add(1, OUTSIDER.sign(block.hash))  # would not verify
        unverifiable = Block(msgspec.structs.replace(block.header, signature=forged.encode()),
                             block.transactions)
        candidate = chain.workflow(min_approvals=0)
        execution, txs = run(candidate.execute(unverifiable))
        assert [tx.raw for tx in txs] == list(block.transactions)
        approvals = header_approvals(block.header).add(2, FEDERATION[2].sign(block.hash))
        certified = Block(msgspec.structs.replace(block.header, signature=approvals.encode()),
                          block.transactions)
        executed = chain.client.executed
        workflow = chain.workflow()
        imported = run(workflow.run(certified, execution=execution, checked=txs))
        assert [state for state, _ in workflow.history] == HAPPY
        assert workflow.history[2] == (S.EXECUTING, "checked as a candidate")
        assert chain.client.executed == executed  # its execution reused, not run again
        assert imported.block.header.signature == approvals.encode()
        assert chain.store.head() == (1, block.hash)
    finally:
        chain.store.close()

