"""Actor runtime: isolated actors, typed messages, bounded mailboxes, OTP-style supervision.

>>> from alys_fast.actors import Actor, ActorSystem, ChildSpec, SupervisorSpec, Strategy
"""

from alys_fast.actors.actor import Actor
from alys_fast.actors.cell import ActorRef
from alys_fast.actors.errors import (
    ActorCrashed,
    ActorError,
    ActorStopped,
    AskTimeout,
    CircuitOpen,
    Escalation,
    MailboxFull,
    RemoteError,
    StartFailed,
)
from alys_fast.actors.policies import (
    CircuitBreaker,
    ExponentialBackoff,
    Immediate,
    Never,
    Restart,
)
from alys_fast.actors.supervisor import ChildSpec, Strategy, Supervisor, SupervisorSpec
from alys_fast.actors.system import ActorSystem

__all__ = [
    "Actor",
    "ActorCrashed",
    "ActorError",
    "ActorRef",
    "ActorStopped",
    "ActorSystem",
    "AskTimeout",
    "ChildSpec",
    "CircuitBreaker",
    "CircuitOpen",
    "Escalation",
    "ExponentialBackoff",
    "Immediate",
    "MailboxFull",
    "Never",
    "RemoteError",
    "Restart",
    "StartFailed",
    "Strategy",
    "Supervisor",
    "SupervisorSpec",
]
