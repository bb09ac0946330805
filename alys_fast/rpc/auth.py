"""Who may call what on the JSON-RPC port: namespaces, credentials and the audit log.

A method's namespace is its name up to the first ``_`` (``admin_nodeInfo`` → ``admin``), as in
geth. An :class:`Authenticator` serves its ``public`` namespaces (geth's ``--http.api``; the
node's default :data:`PUBLIC_NAMESPACES`, plus ``rpc`` always) to anyone, and the others only
to callers whose credentials grant them. Credentials travel as ``Authorization: Bearer
<token>``, where the token is one of:

- a JWT signed with HS256 by the node's 32-byte secret (geth's ``--authrpc.jwtsecret``, the
  Engine API's rule): its ``iat`` must be within :data:`JWT_MAX_SKEW` seconds of the node's
  clock; any other algorithm (``none`` included), a bad signature or a missing ``iat`` is
  refused. A JWT grants the namespaces configured for JWT (default: every one).
- a static API key (:func:`new_api_key`): the node keeps only its SHA-256 (:class:`ApiKey`, a
  config record), which names the key's id and its role, the namespaces it grants.

:meth:`Authenticator.authorize` turns the header into a :class:`Grant` before any JSON-RPC is
read; the grant holds for one HTTP request, or for a whole WebSocket connection (taken at its
upgrade). Without a header the grant is the public one.

Answers (every message written for a person; a token or key is never quoted):

- HTTP **401** (:class:`AuthError`) for credentials that are present but bad: a malformed
  header, an unknown key, a JWT that is stale, from the future, unsigned or wrongly signed.
  Its body is a JSON-RPC error with code :data:`UNAUTHORIZED`.
- JSON-RPC **-32601** "the method X does not exist/is not available" (geth's words) for a
  method that does not exist, or whose namespace no credential this node accepts could open.
- JSON-RPC **-32001** (:data:`UNAUTHORIZED`) for a method that exists and that credentials
  could open: "unauthorized: X needs credentials with the N namespace" when none were given,
  "forbidden: …" when the given ones do not grant N.

The :class:`AuditLog` records, as JSON lines, every call made with credentials (its outcome:
``ok`` or the error code) and every refusal (bad credentials, a -32001): when (UTC), who (the
key id, ``jwt`` or ``anonymous``), from which IP, which method, and the outcome. It never
holds a token, a key or a call's parameters.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import queue
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from logging.handlers import QueueListener, RotatingFileHandler
from pathlib import Path
from typing import Annotated, Any, TextIO

import jwt
import msgspec
from msgspec import Meta

from alys_fast.rpc.dispatch import METHOD_NOT_FOUND, RpcError, error_response

__all__ = [
    "ALL_NAMESPACES",
    "JWT_MAX_SKEW",
    "PUBLIC_NAMESPACES",
    "UNAUTHORIZED",
    "ApiKey",
    "AuditLog",
    "AuthError",
    "Authenticator",
    "Grant",
    "check_namespaces",
    "namespace_of",
    "new_api_key",
]

log = logging.getLogger(__name__)

PUBLIC_NAMESPACES = ("eth", "net", "web3", "txpool")
ALL_NAMESPACES = "*"
ALWAYS_PUBLIC = "rpc"  # rpc_modules: what is served, as geth always answers it
UNAUTHORIZED = -32001
JWT_MAX_SKEW = 60  # seconds, geth's and the Engine API's bound on a token's iat
JWT_WHO = "jwt"
API_KEY_PREFIX = "afk_"  # recognisable in a leak (secret scanners), and never a JWT

_NAMESPACE = re.compile(r"^(\*|[a-z][a-z0-9]{0,31})$")
_KEY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_namespaces(names: Iterable[str]) -> None:
    """``ValueError`` naming the first name that is not a namespace (or ``*``, every one)."""
    for name in names:
        if not _NAMESPACE.match(name):
            raise ValueError(f"namespace \"{name}\" must be lowercase letters and digits "
                             f"(e.g. admin), or * for every namespace")


def namespace_of(method: str) -> str:
    """``admin_nodeInfo`` → ``admin`` (a name without ``_`` is its own namespace)."""
    return method.partition("_")[0]


class AuthError(Exception):
    """Credentials that were presented but cannot be accepted: answer ``status`` with
    :meth:`body`, before any JSON-RPC is read."""

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    def body(self) -> bytes:
        """The JSON-RPC error object the HTTP answer carries."""
        return error_response(None, UNAUTHORIZED, self.message)


class ApiKey(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A static API key as the config holds it (``[[rpc.api_keys]]``): never the key itself,
    only its SHA-256, so a leaked config opens nothing."""

    id: str
    sha256: Annotated[str, Meta(pattern="^[0-9a-f]{64}$")]
    namespaces: tuple[str, ...]

    def __post_init__(self) -> None:
        check_namespaces(self.namespaces)
        if not _KEY_ID.match(self.id):
            raise ValueError(f"API key id \"{self.id}\" must be 1 to 64 letters, digits, "
                             f"'.', '_' or '-', starting with a letter or digit")
        if self.id == JWT_WHO:
            raise ValueError(f"API key id \"{JWT_WHO}\" is reserved for JWT bearers")
        if not self.namespaces:
            raise ValueError(f"API key {self.id} grants no namespace")


def new_api_key(key_id: str, namespaces: Iterable[str]) -> tuple[str, ApiKey]:
    """A fresh random key (to hand the client once) and the record the config keeps of it;
    ``ValueError`` for an id or namespace the config would refuse."""
    key = API_KEY_PREFIX + secrets.token_hex(32)
    try:
        record = msgspec.convert(
            {"id": key_id, "sha256": _digest(key.encode()), "namespaces": list(namespaces)},
            ApiKey)
    except msgspec.ValidationError as exc:
        raise ValueError(str(exc)) from None
    return key, record


def _digest(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()


@dataclass(frozen=True, slots=True)
class Grant:
    """What one caller may use: ``who`` is the key id, ``jwt`` or None (no credentials);
    ``namespaces`` None means every one."""

    who: str | None
    peer: str
    namespaces: frozenset[str] | None

    def allows(self, method: str) -> bool:
        return self.namespaces is None or namespace_of(method) in self.namespaces


def _namespaces(names: Iterable[str]) -> frozenset[str] | None:
    names = frozenset(names)
    return None if ALL_NAMESPACES in names else names


class Authenticator:
    """The port's policy: who gets which namespaces (see the module docstring).

    ``public`` is what anyone gets; ``api_keys`` and ``jwt_secret`` (32 bytes, None: no JWT)
    are the ways in; ``clock`` gives Unix seconds (tests move it).
    """

    def __init__(
        self,
        public: Iterable[str] = PUBLIC_NAMESPACES,
        *,
        api_keys: Iterable[ApiKey] = (),
        jwt_secret: bytes | None = None,
        jwt_namespaces: Iterable[str] = (ALL_NAMESPACES,),
        audit: AuditLog | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if jwt_secret is not None and len(jwt_secret) != 32:
            raise ValueError(f"a JWT secret is 32 bytes, got {len(jwt_secret)}")
        self.public = _namespaces((*public, ALWAYS_PUBLIC))
        self._keys: dict[str, Grant] = {}
        for key in api_keys:
            if key.sha256 in self._keys:
                raise ValueError(f"API keys {self._keys[key.sha256].who} and {key.id} are "
                                 f"the same key")
            if any(grant.who == key.id for grant in self._keys.values()):
                raise ValueError(f"two API keys have the id {key.id}: the audit log could not "
                                 f"tell them apart")
            self._keys[key.sha256] = Grant(key.id, "", self._with_public(key.namespaces))
        self._jwt_secret = jwt_secret
        self._jwt_namespaces = self._with_public(jwt_namespaces)
        self.audit = audit
        self._clock = clock
        self.anonymous = Grant(None, "", self.public)
        # The namespaces some credential opens: beyond them, a method is simply not served.
        opened = [self.public, *(grant.namespaces for grant in self._keys.values())]
        if jwt_secret is not None:
            opened.append(self._jwt_namespaces)
        self._reachable = (None if any(names is None for names in opened)
                           else frozenset().union(*opened))

    @property
    def takes_jwt(self) -> bool:
        return self._jwt_secret is not None

    def _with_public(self, namespaces: Iterable[str]) -> frozenset[str] | None:
        granted = _namespaces(namespaces)
        return None if granted is None or self.public is None else granted | self.public

    def authorize(self, authorization: bytes | None, peer: str) -> Grant:
        """The grant for a request's ``Authorization`` header (None: absent) from ``peer``;
        raises :class:`AuthError` (recorded in the audit log) for bad credentials."""
        if authorization is None:
            return Grant(None, peer, self.public)
        try:
            grant = self._credentials(authorization)
        except AuthError as exc:
            who = JWT_WHO if authorization.count(b".") == 2 else "unknown"
            self._audit(who, peer, None, "refused", reason=exc.message)
            raise
        return Grant(grant.who, peer, grant.namespaces)

    def _credentials(self, authorization: bytes) -> Grant:
        scheme, _, token = authorization.strip().partition(b" ")
        token = token.strip()
        if scheme.lower() != b"bearer" or not token or b" " in token:
            raise AuthError("the Authorization header must be \"Bearer <token>\", with a JWT "
                            "or an API key as the token")
        if token.count(b".") == 2:
            return self._jwt(token)
        grant = self._keys.get(_digest(token))
        if grant is None:
            raise AuthError("unknown API key")
        return grant

    def _jwt(self, token: bytes) -> Grant:
        if self._jwt_secret is None:
            raise AuthError("this node takes no JWT: use an API key")
        try:
            claims = jwt.decode(token, self._jwt_secret, algorithms=["HS256"],
                                options={"require": ["iat"], "verify_iat": False})
        except jwt.InvalidAlgorithmError:
            raise AuthError("the JWT must be signed with HS256") from None
        except jwt.InvalidSignatureError:
            raise AuthError("the JWT's signature does not match this node's secret") from None
        except jwt.MissingRequiredClaimError:
            raise AuthError("the JWT has no iat (issued-at) claim") from None
        except jwt.ExpiredSignatureError:
            raise AuthError("the JWT has expired (exp)") from None
        except jwt.InvalidTokenError:
            raise AuthError("the JWT is malformed") from None
        iat = claims["iat"]
        if type(iat) not in (int, float) or not math.isfinite(iat):
            raise AuthError("the JWT's iat is not a number of seconds")
        skew = iat - self._clock()
        if skew < -JWT_MAX_SKEW:
            raise AuthError(f"the JWT is stale: issued {-skew:.0f} s ago, more than "
                            f"{JWT_MAX_SKEW} s")
        if skew > JWT_MAX_SKEW:
            raise AuthError(f"the JWT is issued {skew:.0f} s in the future, more than "
                            f"{JWT_MAX_SKEW} s")
        return Grant(JWT_WHO, "", self._jwt_namespaces)

    def refuse(self, grant: Grant, method: str) -> RpcError:
        """The error for calling ``method``, which ``grant`` does not allow (audited)."""
        namespace = namespace_of(method)
        if self._reachable is not None and namespace not in self._reachable:
            error = RpcError(METHOD_NOT_FOUND,
                             f"the method {method} does not exist/is not available")
        elif grant.who is None:
            error = RpcError(UNAUTHORIZED, f"unauthorized: {method} needs credentials with "
                                           f"the {namespace} namespace")
        else:
            holder = "the JWT" if grant.who == JWT_WHO else f"the API key {grant.who}"
            error = RpcError(UNAUTHORIZED, f"forbidden: {holder} does not grant the "
                                           f"{namespace} namespace, which {method} needs")
        if grant.who is not None or error.code == UNAUTHORIZED:
            self._audit(grant.who, grant.peer, method, "refused", reason=error.message)
        return error

    def record(self, grant: Grant, method: str, code: int | None) -> None:
        """A call made with credentials and its outcome (``code`` None: answered)."""
        if code is None:
            self._audit(grant.who, grant.peer, method, "ok")
        else:
            self._audit(grant.who, grant.peer, method, "error", code=code)

    def _audit(self, who: str | None, peer: str, method: str | None, outcome: str,
               **detail: Any) -> None:
        if self.audit is not None:
            self.audit.write(who or "anonymous", peer, method, outcome, **detail)

    def close(self) -> None:
        """Flush and close the audit log."""
        if self.audit is not None:
            self.audit.close()


# ---------------------------------------------------------------------------------------------
# The audit log.

AUDIT_MAX_BYTES = 16 * 1024 * 1024
AUDIT_BACKUPS = 5
AUDIT_QUEUE = 65_536  # lines waiting for the writer thread; beyond, lines are counted, dropped
_METHOD_CHARS = 64  # a client's made-up method name is cut, not logged whole


class _PrivateRotatingFile(RotatingFileHandler):
    """A rotating log only the node's user may read: who called what, and from where."""

    def _open(self) -> TextIO:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return open(fd, self.mode, encoding=self.encoding, errors=self.errors)


class AuditLog:
    """JSON lines in ``path``, rotated at ``max_bytes`` keeping ``backups`` old files.

    :meth:`write` only encodes the line and queues it: a thread writes (QueueListener through
    a RotatingFileHandler), so the event loop never waits on the disk. If the writer falls
    ``AUDIT_QUEUE`` lines behind, further lines are dropped and counted in :attr:`dropped`.
    """

    def __init__(self, path: Path, max_bytes: int = AUDIT_MAX_BYTES,
                 backups: int = AUDIT_BACKUPS) -> None:
        self.path = path
        self.dropped = 0
        self._handler = _PrivateRotatingFile(path, maxBytes=max_bytes, backupCount=backups,
                                             encoding="utf-8")
        self._handler.setFormatter(logging.Formatter("%(message)s"))
        self._queue: queue.Queue[logging.LogRecord] = queue.Queue(AUDIT_QUEUE)
        self._listener: QueueListener | None = QueueListener(self._queue, self._handler)
        self._listener.start()

    def write(self, who: str, peer: str, method: str | None, outcome: str, *,
              code: int | None = None, reason: str | None = None) -> None:
        entry: dict[str, Any] = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "who": who, "ip": peer,
        }
        if method is not None:
            entry["method"] = method[:_METHOD_CHARS]
        entry["outcome"] = outcome
        if code is not None:
            entry["code"] = code
        if reason is not None:
            entry["reason"] = reason
        if self._listener is None:
            return
        record = logging.makeLogRecord({"msg": msgspec.json.encode(entry).decode()})
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            if not self.dropped:
                log.warning("audit log %s: the writer is behind, dropping lines", self.path)
            self.dropped += 1

    def close(self) -> None:
        """Write what is queued, then close the file; later lines are dropped."""
        if self._listener is not None:
            self._listener.stop()
            self._listener = None
            self._handler.close()
