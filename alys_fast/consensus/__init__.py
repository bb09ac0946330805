"""The federation's consensus core: BLS keys, block approvals and fork choice (ALYS-PROTOCOL §1).

Pure code, no actors: the chain actor drives :class:`Consensus` and carries out the actions it
returns. ``bls`` wraps the signature library, ``approvals`` holds Alys's approval types and the
``(2n + 2) // 3`` threshold, ``forkchoice`` states and applies the rules.
"""

from alys_fast.consensus.approvals import (
    AggregateApproval,
    Approval,
    ApprovalError,
    Prevote,
    sign_approval,
    sign_prevote,
    threshold,
)
from alys_fast.consensus.bls import BlsError, PublicKey, SecretKey, Signature
from alys_fast.consensus.forkchoice import (
    Action,
    Author,
    BlockRef,
    Consensus,
    Equivocation,
    Gossip,
    ImportBlock,
    Lock,
    Penalize,
    Proposal,
    RequestSync,
    SaveLock,
    Validate,
)

__all__ = [
    "Action",
    "AggregateApproval",
    "Approval",
    "ApprovalError",
    "Author",
    "BlockRef",
    "BlsError",
    "Consensus",
    "Equivocation",
    "Gossip",
    "ImportBlock",
    "Lock",
    "Penalize",
    "Prevote",
    "Proposal",
    "PublicKey",
    "RequestSync",
    "SaveLock",
    "SecretKey",
    "Signature",
    "Validate",
    "sign_approval",
    "sign_prevote",
    "threshold",
]
