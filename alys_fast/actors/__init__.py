"""Actor runtime: isolated actors, typed messages and replies, bounded mailboxes, topics,
OTP-style supervision.

>>> from alys_fast.actors import Actor, ActorSystem, ChildSpec, SupervisorSpec, Strategy
"""

from alys_fast.actors.actor import Actor
from alys_fast.actors.cell import ActorRef
from alys_fast.actors.directory import Directory
from alys_fast.actors.errors import (
    ActorCrashed,
    ActorError,
    ActorKilled,
    ActorStopped,
    AskTimeout,
    BadReply,
    CircuitOpen,
    Escalation,
    MailboxFull,
    Refused,
    RemoteError,
    Shutdown,
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
from alys_fast.actors.topics import Topic

__all__ = [
    "Actor",
    "ActorCrashed",
    "ActorError",
    "ActorKilled",
    "ActorRef",
    "ActorStopped",
    "ActorSystem",
    "AskTimeout",
    "BadReply",
    "ChildSpec",
    "CircuitBreaker",
    "CircuitOpen",
    "Directory",
    "Escalation",
    "ExponentialBackoff",
    "Immediate",
    "MailboxFull",
    "Never",
    "Refused",
    "RemoteError",
    "Restart",
    "Shutdown",
    "StartFailed",
    "Strategy",
    "Supervisor",
    "SupervisorSpec",
    "Topic",
]
