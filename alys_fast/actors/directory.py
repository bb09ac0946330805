"""How an actor reaches a peer by path, from objects built before their actor system exists.

Actors never hold each other's refs: a service keeps the :class:`Directory` and looks a peer up
(:meth:`Directory.ref`) at the moment it asks, so a restarted peer (a new cell generation, same
path) is reached without anyone re-wiring. The directory exists before the system because the
tree's specs (and the clients made in actors' constructors) are built first; the system binds
it when it is made (``ActorSystem(spec, directory=...)``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alys_fast.actors.cell import ActorRef
    from alys_fast.actors.system import ActorSystem


class Directory:
    """The actors of one system by path, once the system is bound."""

    def __init__(self) -> None:
        self._system: ActorSystem | None = None

    def bind(self, system: ActorSystem) -> None:
        if self._system is not None and self._system is not system:
            raise RuntimeError("this directory already serves another actor system")
        self._system = system

    @property
    def system(self) -> ActorSystem:
        if self._system is None:
            raise RuntimeError("the directory's actor system is not built yet")
        return self._system

    def ref(self, path: str) -> ActorRef:
        """The current ref of the actor at ``path`` (from the root, e.g. ``chain/engine``)."""
        return self.system.ref(path)
